//! The named sled trees and their key → value layouts: the whole on-disk schema in one place.
//!
//! Keys are built by `keys.rs` only: strings are raw UTF-8 (which never contains the byte 0xFF,
//! so 0xFF separates parts), integers are big-endian so that byte order is numeric order.
//! Values are JSON documents (`records.rs`), readable with any sled tool.

/// Bumped whenever a layout below changes incompatibly; checked at open.
pub const SCHEMA_VERSION: u32 = 1;

/// `"schema_version"` → u32 BE; `"probe"` → u64 BE (readiness write).
pub const META: &str = "meta";
/// member_id → `PortalRecord` (domain, client_endpoint, tokens, application_token, status).
pub const MEMBERID_PORTAL: &str = "memberid_portal";
/// channel ‖ 0xFF ‖ webhook-id → `WebhookReply` (the first reply, replayed for a retry).
pub const WEBHOOKID_REPLY: &str = "webhookid_reply";
/// member_id ‖ 0xFF ‖ line u64 BE ‖ external chat id → `ChatLink` (Bitrix24 chat id, session id).
pub const CHAT_LINK: &str = "chat_link";
/// member_id ‖ 0xFF ‖ external user id → `UserLink` (Bitrix24 user id).
pub const USER_LINK: &str = "user_link";
/// member_id ‖ 0xFF ‖ line u64 BE ‖ external chat id ‖ 0xFF ‖ external message id → `MessageRecord`.
pub const MESSAGE_STATE: &str = "message_state";
/// seq u64 BE → `Op`: a pending Bitrix24 operation (send, update, delete item); removed when final.
pub const SEQ_OP: &str = "seq_op";
/// deletion_id → `DeletionRecord` (channel, times, pending count).
pub const DELETIONID_DELETION: &str = "deletionid_deletion";
/// deletion_id ‖ 0xFF ‖ item index u32 BE → `DeletionItem` (message, chat, success, errors, attempts).
pub const DELETIONITEM_ITEM: &str = "deletionitem_item";
/// seq u64 BE → `Delivery`: an event for the messaging platform; removed once delivered.
pub const SEQ_DELIVERY: &str = "seq_delivery";

/// Every tree, in the order of `Tx`'s fields.
pub const ALL: [&str; 9] = [
    MEMBERID_PORTAL,
    WEBHOOKID_REPLY,
    CHAT_LINK,
    USER_LINK,
    MESSAGE_STATE,
    SEQ_OP,
    DELETIONID_DELETION,
    DELETIONITEM_ITEM,
    SEQ_DELIVERY,
];
