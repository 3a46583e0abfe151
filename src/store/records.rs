//! The JSON documents stored as sled values (see `trees.rs` for where each one lives).

use serde::{Deserialize, Serialize};

use crate::domain::CustomerMessage;

/// A portal that installed the app (`memberid_portal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalRecord {
    pub member_id: String,
    /// Portal host, e.g. `acme.bitrix24.com`.
    pub domain: String,
    /// REST base, e.g. `https://acme.bitrix24.com/rest/`.
    pub client_endpoint: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds when the access token expires (informational: the gateway refreshes on
    /// `expired_token`, as Bitrix24 recommends, never on a timer).
    pub expires_at: i64,
    /// Compared with `auth[application_token]` of every event.
    pub application_token: String,
    pub scope: String,
    pub status: PortalStatus,
    pub installed_at_ms: u64,
    pub updated_at_ms: u64,
    /// When the connector setup last completed for this installation (None: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_at_ms: Option<u64>,
}

impl PortalRecord {
    /// Installed and set up: queued work may flow to it.
    pub fn is_ready(&self) -> bool {
        self.status == PortalStatus::Installed && self.setup_at_ms.is_some()
    }
}

/// Whether a portal currently has the app installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalStatus {
    Installed,
    Uninstalled,
}

/// The first reply given to a webhook-id (`webhookid_reply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookReply {
    pub status: u16,
    pub body: String,
    pub at_ms: u64,
}

/// Bitrix24's side of an external chat (`chat_link`), from `session` of send.messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLink {
    pub bitrix_chat_id: String,
    pub session_id: String,
    pub updated_at_ms: u64,
}

/// Bitrix24's internal user id of an external user (`user_link`), from `DATA.RESULT[].user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    pub bitrix_user_id: String,
    pub updated_at_ms: u64,
}

/// What the gateway knows of one external message (`message_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub channel: String,
    /// The external user id the message was sent with (needed by update and delete).
    pub user_id: String,
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
    /// Accepted, send still pending.
    Queued,
    /// Bitrix24 confirmed it.
    Sent,
    /// Bitrix24 rejected it, or it was given up.
    Failed,
    /// Bitrix24 confirmed its deletion.
    Deleted,
}

/// A pending Bitrix24 operation (`seq_op`). Ops of one (portal, line, chat) take effect in
/// `seq` order; an op is removed in the same transaction that records its final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub seq: u64,
    pub channel: String,
    pub portal: String,
    pub line: u64,
    pub chat_id: String,
    pub kind: OpKind,
    /// Calls this op has been part of so far.
    pub attempts: u32,
    pub accepted_at_ms: u64,
    /// Not to be sent before this time (backoff).
    pub due_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What an op does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    /// `imconnector.send.messages`
    Send { message: CustomerMessage },
    /// `imconnector.update.messages`
    Update { message: CustomerMessage },
    /// One item of a deletion: `imconnector.delete.messages`.
    Delete {
        deletion_id: String,
        index: u32,
        message_id: String,
        user_id: String,
    },
}

impl Op {
    /// The external message id this op is about.
    pub fn message_id(&self) -> &str {
        match &self.kind {
            OpKind::Send { message } | OpKind::Update { message } => &message.message.id,
            OpKind::Delete { message_id, .. } => message_id,
        }
    }
}

/// One `message.deleted` event (`deletionid_deletion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRecord {
    pub id: String,
    pub channel: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
    pub total: u32,
    /// Items without a final result yet; 0 means completed.
    pub pending: u32,
}

/// One message of a deletion (`deletionitem_item`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionItem {
    pub message_id: String,
    pub chat_id: String,
    /// None while pending.
    pub success: Option<bool>,
    pub errors: Vec<String>,
    pub attempts: u32,
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
}

/// The `data` of a delivery: stored inline, or rendered from a record when sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryPayload {
    Inline { data: serde_json::Value },
    DeletionReport { deletion_id: String },
}
