//! [`FakeTelegram`]: a fake Telegram Bot API on loopback, for tests and the sandbox. It shares no
//! code with the gateway (its own structs and JSON, nothing from the gateway crate), so a
//! mistake in the gateway's reading of the Bot API cannot hide here.
//!
//! - Methods: `getMe`, `getWebhookInfo`, `setWebhook`, `deleteWebhook`, `sendMessage`,
//!   `sendPhoto`, `sendDocument`, `editMessageText`, `deleteMessage`, `deleteBusinessMessages`,
//!   `getFile`, and file downloads at `/file/bot<token>/<file_path>`.
//! - Faults on demand ([`FakeTelegram::fail_next`]): e.g. `429` with `retry_after`, or a `400`
//!   "message can't be edited".
//! - The business flow: business connections with their rights, the bot's sends in a business
//!   chat echoing back as `business_message` with `sender_business_bot` (as Telegram does), and
//!   `deleteBusinessMessages` needing `can_delete_sent_messages`.
//! - Updates posted to the registered webhook with the `secret_token` header, as Telegram posts
//!   them ([`FakeTelegram::post_update`]), with builders for the updates the tests need.

mod server;
pub mod updates;

pub use server::{ApiCall, FakeTelegram, SentMessage};
