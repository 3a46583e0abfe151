//! The Telegram adapter (contract §6): a channel with `platform = "telegram"` speaks the Bot API
//! itself.
//!
//! - `update`: a Telegram `Update` becomes the platform events of contract §2
//!   ([`crate::domain::Event`]) at this one boundary; from there it takes the
//!   same durable, ordered path as a generic event (`store::ingest`, the outbox).
//! - `ids`: the external ids of contract §6 (business chats keyed by their connection).
//! - `media`: signed, expiring `{public_url}/media/<token>` links for customers' files.
//! - `api`: the Bot API client (no redirects, capped reads, the bot token never in a log line or
//!   an error), with Telegram's flood limits (`flood`) and `429 retry_after`.
//! - `deliver`: operators' messages, edits and deletions as Bot API calls.
//! - `webhook`: `getWebhookInfo` / `setWebhook` at start and on setup, retried in the background.
//! - `reactions`: Telegram's emoji ↔ Bitrix24's reaction codes.

pub mod api;
pub mod deliver;
pub mod flood;
pub mod ids;
pub mod media;
pub mod reactions;
pub mod update;
pub mod webhook;

/// The update types the gateway maps, asked for by name in `setWebhook` (reactions are not in
/// Telegram's default set).
pub const ALLOWED_UPDATES: [&str; 6] = [
    "message",
    "edited_message",
    "message_reaction",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
];

/// The header Telegram repeats `secret_token` in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The webhook path of a channel, under `server.public_url`.
pub fn webhook_path(channel: &str) -> String {
    format!("/v1/channels/{channel}/telegram")
}
