//! The named sled trees and their key → value layouts: the whole on-disk schema in one place.
//!
//! Keys are built by `keys.rs` only: strings are raw UTF-8 (which never contains the byte 0xFF,
//! so 0xFF separates parts), integers are big-endian so that byte order is numeric order.
//! Values are JSON documents (`records.rs`), readable with any sled tool.

/// Bumped whenever a layout below changes incompatibly; checked at open.
/// Version 1 kept a deletion's items inside its `seq_event` record and had no
/// `channelseq_due`: when such a directory is opened the items are moved to
/// `seqitem_deletionitem` and the channel queues are built from `seq_delivery`.
pub const SCHEMA_VERSION: u32 = 2;

/// `"schema_version"` → u32 BE; [`META_PLACEMENT_KEY`] → 32 random bytes;
/// [`META_UNINDEXED`] → empty; [`META_TELEGRAM_WEBHOOK_PREFIX`] ‖ channel id → SHA-256 of the Telegram `webhook_secret` last
/// registered for that channel. (`"probe"` and
/// `"journal_floor"`, u64 BE, were written by earlier builds.)
pub const META: &str = "meta";
/// Key in `meta` of the HMAC key signing the settings page's action forms (made at first open).
pub const META_PLACEMENT_KEY: &str = "placement_key";
/// Key in `meta` (empty value) present while records are written without retention index
/// entries (`storage.retention_days = 0`); the next open that prunes indexes them all first.
pub const META_UNINDEXED: &str = "unindexed";
/// Prefix in `meta` of a Telegram channel's registered-secret digest.
pub const META_TELEGRAM_WEBHOOK_PREFIX: &str = "telegram_webhook_secret:";
/// member_id → `PortalRecord` (domain, client_endpoint, tokens, application_token, status).
pub const MEMBERID_PORTAL: &str = "memberid_portal";
/// seq u64 BE → `EventRecord`: an accepted event whose Bitrix24 work is not finished; written
/// when the event is accepted, removed when its last item is final. A deletion's record lives
/// in the main database; a send's, an update's and a reaction's in the inbox (`inbox.rs`).
pub const SEQ_EVENT: &str = "seq_event";
/// seq u64 BE → empty: an inbox event whose result is on disk here (the commit point of that
/// result, its last write) while its removal from the inbox may not be yet. Removed once that
/// removal is synced; at open, each marked event is removed from the inbox first.
pub const SEQ_DONE: &str = "seq_done";
/// The inbox's own database, in this subdirectory of the data directory (`inbox.rs`): its
/// `seq_event`, and while the in-memory index of pending events is full, its
/// `webhookid_reply` (the replies of pending events) and `message_state` (queued sends).
pub const INBOX_DIR: &str = "queue";
/// seq u64 BE ‖ item u32 BE → `DeletionItem`: the items of a pending deletion (its header is
/// in `seq_event`), each under its own key so that recording a result rewrites only that item.
/// Written with the event, removed in the transaction that finishes it.
pub const SEQITEM_DELETIONITEM: &str = "seqitem_deletionitem";
/// channel ‖ 0xFF ‖ webhook-id → `WebhookReply` of an event whose work is finished (the first
/// reply, replayed for a late retry; pending events are found through `seq_event`).
pub const WEBHOOKID_REPLY: &str = "webhookid_reply";
/// member_id ‖ 0xFF ‖ line u64 BE ‖ external chat id → `ChatLink` (Bitrix24 chat id, session id).
pub const CHAT_LINK: &str = "chat_link";
/// member_id ‖ 0xFF ‖ external user id → `UserLink` (Bitrix24 user id).
pub const USER_LINK: &str = "user_link";
/// member_id ‖ 0xFF ‖ line u64 BE ‖ external chat id ‖ 0xFF ‖ external message id → `MessageRecord`.
pub const MESSAGE_STATE: &str = "message_state";
/// deletion_id → `DeletionReport` of a finished deletion (pending ones live in `seq_event`).
pub const DELETIONID_DELETION: &str = "deletionid_deletion";
/// deletion_id → seq u64 BE of the `seq_event` record of a deletion not finished yet (lets a
/// report be read without asking the writer). Written before that record, removed after the
/// transaction that finishes it; reconciled with `seq_event` at open.
pub const DELETIONID_SEQ: &str = "deletionid_seq";
/// seq u64 BE → `Delivery`: an event for the messaging platform; removed once delivered (kept,
/// marked failed, when it finally fails).
pub const SEQ_DELIVERY: &str = "seq_delivery";
/// channel ‖ 0xFF ‖ seq u64 BE → due_at_ms u64 BE: the live queue of each channel (deliveries
/// neither done nor failed), in delivery order; a channel's head is one seek away, so the
/// deliverer never scans `seq_delivery`. Changed in the same transaction as `seq_delivery`.
pub const CHANNELSEQ_DUE: &str = "channelseq_due";
/// class u8 ‖ at_ms u64 BE ‖ kind u8 ‖ a record's key → empty, or for a sent message the key
/// of its send's reply (pruned with it): the time-ordered index through which retention prunes
/// (`retention.rs`: class 1 replay protection, 2 other records; kind names the tree).
pub const ATTIME_KEY: &str = "attime_key";
/// The `attime_key` key of an entry for the messages one call sent → their (message key,
/// reply key) pairs (`retention::encode_pairs`). Apart from `attime_key`: sled rewrites a
/// whole leaf every few writes to it, and the last leaf of `attime_key` takes every event's
/// entry; with kilobyte lists in it, the first events after a burst wrote 86 KB each.
pub const ATTIME_CALLS: &str = "attime_calls";
/// member_id ‖ 0xFF ‖ Bitrix24 message id u64 BE → `OperatorRecord`.
pub const BITRIXMSG_OPERATOR: &str = "bitrixmsg_operator";
/// member_id ‖ 0xFF ‖ line u64 BE ‖ external chat id ‖ 0xFF ‖ external message id →
/// Bitrix24 message id u64 BE (the other direction of `bitrixmsg_operator`).
pub const EXTMSG_BITRIXMSG: &str = "extmsg_bitrixmsg";
/// channel id → `ChannelState`.
pub const CHANNEL_STATE: &str = "channel_state";
/// SHA-256 of a Bitrix24 event body → received-at ms u64 BE (a replayed body is ignored).
pub const EVENTDIGEST_SEEN: &str = "eventdigest_seen";
