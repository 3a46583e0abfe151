//! The JSON documents stored as sled values (see `trees.rs` for where each one lives).

use serde::{Deserialize, Serialize};

use crate::domain::CustomerMessage;
use crate::ids::{ChannelId, ChatId, DeletionId, MemberId, MessageId, UserId};

/// A portal that installed the app (`memberid_portal`). Every address and token here comes from
/// a trusted authorization server's reply, never from an install request (contract §5).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalRecord {
    pub member_id: MemberId,
    /// Portal host, e.g. `acme.bitrix24.com` (the host of `client_endpoint`).
    pub domain: String,
    /// REST base, e.g. `https://acme.bitrix24.com/rest/`.
    pub client_endpoint: String,
    /// The trusted authorization server (a base of `bitrix.oauth_servers`) that verified the
    /// install; the portal's tokens are refreshed there. Empty in records of older versions: the
    /// first trusted server is used.
    #[serde(default)]
    pub oauth_server: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds when the access token expires (informational: the gateway refreshes on
    /// `expired_token`, as Bitrix24 recommends, never on a timer).
    pub expires_at: i64,
    /// Compared with `auth[application_token]` of every event. Empty after a UI install until
    /// the `ONAPPINSTALL` event brings it (no event is accepted meanwhile).
    pub application_token: String,
    pub scope: String,
    pub status: PortalStatus,
    pub installed_at_ms: u64,
    pub updated_at_ms: u64,
    /// When the connector setup last completed for this installation (None: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_at_ms: Option<u64>,
    /// The gateway's chat-bot in this portal, once registered or found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<u64>,
    /// Why the portal must reinstall the app (its refresh token was refused for good, e.g.
    /// `invalid_grant`); its work is held until a verified install clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_reinstall: Option<String>,
}

/// What a verified install establishes about a portal (every field from the authorization
/// server's reply, except the application token, which comes with the install event).
pub struct Installation {
    pub member_id: String,
    pub domain: String,
    pub client_endpoint: String,
    pub oauth_server: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: i64,
    pub application_token: String,
    pub scope: String,
}

impl PortalRecord {
    /// A freshly installed portal, not yet set up.
    pub fn installed(i: Installation, now_ms: u64) -> PortalRecord {
        PortalRecord {
            member_id: i.member_id.into(),
            domain: i.domain,
            client_endpoint: i.client_endpoint,
            oauth_server: i.oauth_server,
            access_token: i.access_token,
            refresh_token: i.refresh_token,
            expires_at: i.expires_at,
            application_token: i.application_token,
            scope: i.scope,
            status: PortalStatus::Installed,
            installed_at_ms: now_ms,
            updated_at_ms: now_ms,
            setup_at_ms: None,
            bot_id: None,
            needs_reinstall: None,
        }
    }

    /// Installed and set up: queued work may flow to it.
    pub fn is_ready(&self) -> bool {
        self.status == PortalStatus::Installed
            && self.setup_at_ms.is_some()
            && self.needs_reinstall.is_none()
    }
}

/// Tokens never reach a log line through `{:?}`.
impl std::fmt::Debug for PortalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |t: &str| if t.is_empty() { "" } else { "***" };
        f.debug_struct("PortalRecord")
            .field("member_id", &self.member_id)
            .field("domain", &self.domain)
            .field("client_endpoint", &self.client_endpoint)
            .field("oauth_server", &self.oauth_server)
            .field("access_token", &redacted(&self.access_token))
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("expires_at", &self.expires_at)
            .field("application_token", &redacted(&self.application_token))
            .field("scope", &self.scope)
            .field("status", &self.status)
            .field("installed_at_ms", &self.installed_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .field("setup_at_ms", &self.setup_at_ms)
            .field("bot_id", &self.bot_id)
            .field("needs_reinstall", &self.needs_reinstall)
            .finish()
    }
}

/// Whether a portal currently has the app installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalStatus {
    Installed,
    Uninstalled,
}

/// The first reply given to a webhook-id (`webhookid_reply`). The common reply (`202`,
/// [`ACCEPTED_BODY`]) is stored as its time alone: one is kept per accepted event, for the
/// replay window, and every byte of it is paid in sled's pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookReply {
    #[serde(
        default = "accepted_status",
        skip_serializing_if = "is_accepted_status"
    )]
    pub status: u16,
    #[serde(default = "accepted_body", skip_serializing_if = "is_accepted_body")]
    pub body: String,
    pub at_ms: u64,
}

/// The body of the reply to an accepted `message.created` or `message.updated`.
pub const ACCEPTED_BODY: &str = r#"{"status":"accepted"}"#;

fn accepted_status() -> u16 {
    202
}

fn is_accepted_status(status: &u16) -> bool {
    *status == 202
}

fn accepted_body() -> String {
    ACCEPTED_BODY.to_string()
}

fn is_accepted_body(body: &str) -> bool {
    body == ACCEPTED_BODY
}

/// Bitrix24's side of an external chat (`chat_link`), from `session` of send.messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLink {
    pub bitrix_chat_id: String,
    pub session_id: String,
    /// When Bitrix24 last named a different chat or session (an unchanged answer is not
    /// written again).
    pub updated_at_ms: u64,
}

/// Bitrix24's internal user id of an external user (`user_link`), from `DATA.RESULT[].user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    pub bitrix_user_id: String,
    /// When Bitrix24 last named a different user id (an unchanged answer is not written again).
    pub updated_at_ms: u64,
}

/// What the gateway knows of one external message (`message_state`), once Bitrix24 answered.
/// Stored compactly (there is one per message): the common state is left out, and so is the
/// channel, which the key's portal and line already name (records of earlier builds carry it;
/// it is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The external user id the message was sent with (needed by update and delete).
    pub user_id: UserId,
    #[serde(
        default = "MessageState::sent",
        skip_serializing_if = "MessageState::is_sent"
    )]
    pub state: MessageState,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// The last per-item error Bitrix24 gave for this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lifecycle of an external message in Bitrix24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Accepted and not answered by Bitrix24 yet (its send is pending).
    Queued,
    /// Bitrix24 confirmed it.
    Sent,
    /// Bitrix24 rejected it, or it was given up.
    Failed,
    /// Bitrix24 confirmed its deletion.
    Deleted,
}

impl MessageState {
    fn sent() -> MessageState {
        MessageState::Sent
    }

    fn is_sent(&self) -> bool {
        *self == MessageState::Sent
    }
}

/// An accepted platform event whose Bitrix24 work is not finished (`seq_event`). Writing this
/// one record is what accepting an event means; it is removed, with the write that records the
/// last result, when every item is final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub channel: ChannelId,
    pub webhook_id: String,
    /// The reply given, replayed for a retry of the same webhook-id.
    pub reply: WebhookReply,
    pub portal: MemberId,
    pub line: u64,
    pub chat_id: ChatId,
    pub accepted_at_ms: u64,
    pub work: Work,
}

/// The Bitrix24 work of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Work {
    /// `imconnector.send.messages` of one message.
    Send {
        message: CustomerMessage,
        state: ItemState,
    },
    /// `imconnector.update.messages` of one message.
    Update {
        message: CustomerMessage,
        state: ItemState,
    },
    /// `imconnector.delete.messages` of every item. The items live under their own keys
    /// (`seqitem_deletionitem`), so recording one item's result rewrites that item only.
    Delete {
        deletion: DeletionRecord,
        /// Only in records of earlier builds (moved to `seqitem_deletionitem` at open).
        #[serde(default, skip_serializing)]
        items: Vec<DeletionItem>,
    },
    /// The bot's reaction on an operator's message (`imbot.v2.Chat.Message.Reaction.add/.delete`).
    Reaction {
        added: bool,
        /// The platform's id of the message (resolved to Bitrix24's when sent).
        message_id: MessageId,
        reaction: String,
        state: ItemState,
    },
}

/// Retry state of a single-item event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemState {
    /// Calls the item has been part of so far.
    pub attempts: u32,
    /// Not to be sent before this time (backoff).
    pub due_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One pending Bitrix24 item, as the outbox plans it (derived from an `EventRecord`, never
/// stored on its own). Items of one (portal, line, chat) take effect in (`seq`, `item`) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub seq: u64,
    /// Index of the item within its event (0 for sends and updates).
    pub item: u32,
    pub channel: ChannelId,
    pub portal: MemberId,
    pub line: u64,
    pub chat_id: ChatId,
    pub kind: OpKind,
    pub attempts: u32,
    pub accepted_at_ms: u64,
    pub due_at_ms: u64,
    pub last_error: Option<String>,
}

/// Which imconnector method an item needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Send,
    Update,
    Delete,
    ReactionAdd,
    ReactionDelete,
}

/// A pending item as the outbox queues it: what planning needs, nothing more. The payload stays
/// on disk (in its event record) until the item is about to be sent, so items held for a portal
/// that is down or not installed cost little memory.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRef {
    pub seq: u64,
    pub item: u32,
    pub portal: std::sync::Arc<str>,
    pub line: u64,
    pub chat: std::sync::Arc<str>,
    pub method: Method,
    pub due_at_ms: u64,
}

impl OpRef {
    /// Unique and ordered within a portal.
    pub fn key(&self) -> (u64, u32) {
        (self.seq, self.item)
    }
}

/// What an op does.
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// `imconnector.send.messages`
    Send { message: CustomerMessage },
    /// `imconnector.update.messages`
    Update { message: CustomerMessage },
    /// One item of a deletion: `imconnector.delete.messages`.
    Delete {
        deletion_id: DeletionId,
        message_id: MessageId,
        user_id: UserId,
    },
    /// The bot's reaction on the message the platform knows as `message_id`.
    Reaction {
        added: bool,
        message_id: MessageId,
        reaction: String,
        /// (bot id, Bitrix24 message id), resolved just before sending.
        target: Option<(u64, u64)>,
    },
}

impl Op {
    /// The external message id this op is about.
    pub fn message_id(&self) -> &str {
        match &self.kind {
            OpKind::Send { message } | OpKind::Update { message } => &message.message.id,
            OpKind::Delete { message_id, .. } | OpKind::Reaction { message_id, .. } => message_id,
        }
    }

    /// Unique and ordered within a portal.
    pub fn key(&self) -> (u64, u32) {
        (self.seq, self.item)
    }

    /// The imconnector method.
    pub fn method(&self) -> Method {
        match self.kind {
            OpKind::Send { .. } => Method::Send,
            OpKind::Update { .. } => Method::Update,
            OpKind::Delete { .. } => Method::Delete,
            OpKind::Reaction { added: true, .. } => Method::ReactionAdd,
            OpKind::Reaction { added: false, .. } => Method::ReactionDelete,
        }
    }

    /// The queue's view of this op.
    pub fn to_ref(&self) -> OpRef {
        OpRef {
            seq: self.seq,
            item: self.item,
            portal: self.portal.as_str().into(),
            line: self.line,
            chat: self.chat_id.as_str().into(),
            method: self.method(),
            due_at_ms: self.due_at_ms,
        }
    }
}

impl EventRecord {
    /// The queue's view of one item of this event, in O(1): `item` is the deletion item for
    /// deletions (None for an item that is final), ignored otherwise.
    pub fn item_ref(&self, index: u32, item: Option<&DeletionItem>) -> Option<OpRef> {
        let (method, state) = self.item_method(item)?;
        Some(OpRef {
            seq: self.seq,
            item: index,
            portal: self.portal.as_str().into(),
            line: self.line,
            chat: self.chat_id.as_str().into(),
            method,
            due_at_ms: state.due_at_ms,
        })
    }

    fn item_method<'a>(
        &'a self,
        item: Option<&'a DeletionItem>,
    ) -> Option<(Method, &'a ItemState)> {
        match (&self.work, item) {
            (Work::Send { state, .. }, _) => Some((Method::Send, state)),
            (Work::Update { state, .. }, _) => Some((Method::Update, state)),
            (
                Work::Reaction {
                    added: true, state, ..
                },
                _,
            ) => Some((Method::ReactionAdd, state)),
            (Work::Reaction { state, .. }, _) => Some((Method::ReactionDelete, state)),
            (Work::Delete { .. }, Some(i)) if i.success.is_none() && i.user_id.is_some() => {
                Some((Method::Delete, &i.state))
            }
            (Work::Delete { .. }, _) => None,
        }
    }

    /// The full op of one pending item, in O(1): for a deletion, `item` is that item's stored
    /// record (None, or a final item: None).
    pub fn op(&self, index: u32, item: Option<&DeletionItem>) -> Option<Op> {
        let (_, state) = self.item_method(item)?;
        let kind = match (&self.work, item) {
            (Work::Send { message, .. }, _) => OpKind::Send {
                message: message.clone(),
            },
            (Work::Update { message, .. }, _) => OpKind::Update {
                message: message.clone(),
            },
            (
                Work::Reaction {
                    added,
                    message_id,
                    reaction,
                    ..
                },
                _,
            ) => OpKind::Reaction {
                added: *added,
                message_id: message_id.clone(),
                reaction: reaction.clone(),
                target: None,
            },
            (Work::Delete { deletion, .. }, Some(i)) => OpKind::Delete {
                deletion_id: deletion.id.clone(),
                message_id: i.message_id.clone(),
                user_id: i.user_id.clone()?,
            },
            (Work::Delete { .. }, None) => return None,
        };
        Some(Op {
            seq: self.seq,
            item: index,
            channel: self.channel.clone(),
            portal: self.portal.clone(),
            line: self.line,
            chat_id: self.chat_id.clone(),
            kind,
            attempts: state.attempts,
            accepted_at_ms: self.accepted_at_ms,
            due_at_ms: state.due_at_ms,
            last_error: state.last_error.clone(),
        })
    }
}

/// One `message.deleted` event: its summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRecord {
    pub id: DeletionId,
    pub channel: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
    pub total: u32,
    /// Items without a final result yet; 0 means completed.
    pub pending: u32,
}

/// One message of a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionItem {
    pub message_id: MessageId,
    pub chat_id: ChatId,
    /// The external user the delete is sent for (None: unknown, the item failed at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// None while pending.
    pub success: Option<bool>,
    pub errors: Vec<String>,
    #[serde(flatten)]
    pub state: ItemState,
}

/// A finished deletion (`deletionid_deletion`): what its report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionReport {
    pub deletion: DeletionRecord,
    pub items: Vec<DeletionItem>,
}

/// An event for the messaging platform (`seq_delivery`), kept until a 2xx or given up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub seq: u64,
    pub channel: String,
    /// Stable across retries (Standard Webhooks idempotency key).
    pub webhook_id: String,
    pub event_type: String,
    pub payload: DeliveryPayload,
    pub attempts: u32,
    pub created_at_ms: u64,
    pub due_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the platform acknowledged it (a follow-up Bitrix24 call may still be pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at_ms: Option<u64>,
    /// Final failure: the platform rejected it, or it kept failing for too long. Kept (not sent
    /// again) so that it stays visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// The `data` of a delivery: stored inline, or rendered from records when sent (so that it
/// reflects what is known then, e.g. the external id an earlier delivery obtained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryPayload {
    Inline {
        data: serde_json::Value,
    },
    DeletionReport {
        deletion_id: DeletionId,
    },
    /// `operator.message.created`; on success the platform's ids are reported back to
    /// Bitrix24 with `imconnector.send.status.delivery`.
    OperatorCreated {
        portal: String,
        im_message_id: u64,
    },
    /// `operator.message.updated` with this text.
    OperatorUpdated {
        portal: String,
        im_message_id: u64,
        text: String,
    },
    /// `operator.message.deleted`.
    OperatorDeleted {
        portal: String,
        im_message_id: u64,
    },
}

/// An operator's message, by Bitrix24 id (`bitrixmsg_operator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    pub channel: String,
    pub line: u64,
    /// The external chat.
    pub chat_id: String,
    pub im_chat_id: u64,
    pub im_message_id: u64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<serde_json::Value>,
    /// Ids the platform gave it (empty until delivered).
    #[serde(default)]
    pub external_ids: Vec<String>,
    pub state: OperatorState,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// The bot's delivery-failure notice in the open-line chat, while there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
}

/// A delivery-failure notice the bot posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The bot message id.
    pub id: u64,
    /// It says the message could not be delivered (not merely that delivery is being retried).
    pub final_failure: bool,
}

impl OperatorRecord {
    /// The id the platform knows this message by (contract §4: `b24-<bitrix_id>` when the
    /// platform gave none).
    pub fn external_id(&self) -> String {
        self.external_ids
            .first()
            .cloned()
            .unwrap_or_else(|| format!("b24-{}", self.im_message_id))
    }
}

/// Lifecycle of an operator's message towards the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OperatorState {
    Pending,
    Delivered,
    Failed { reason: String },
    Deleted,
}

/// A channel's state on its line (`channel_state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    pub active: bool,
    /// Why it is inactive (connector disabled, line deleted, deactivated in the settings page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last `imconnector.status` result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    pub updated_at_ms: u64,
}
