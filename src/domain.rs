//! Platform-neutral domain types shared by the boundaries: what a customer's message is, once
//! the messenger boundary has validated it, independent of any wire format.

use serde::{Deserialize, Serialize};

use crate::ids::{ChatId, MessageId, UserId};

/// The external chat a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRef {
    pub id: ChatId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The external user (customer) who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Public URL of the avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// An attached file, reachable by Bitrix24 at `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub url: String,
    pub name: String,
}

/// The content of a customer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    pub id: MessageId,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRef>,
}

/// A customer message (created or edited) ready to be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerMessage {
    pub chat: ChatRef,
    pub user: UserRef,
    pub message: MessageBody,
}

/// A validated platform event, from the parse (`messenger::inbound`, `telegram::update`) to the
/// store (`store::ingest`). A deletion's id is not part of it: the HTTP layer makes one and
/// passes it in `IngestRequest::deletion_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Created(CustomerMessage),
    Updated(CustomerMessage),
    Deleted {
        chat_id: ChatId,
        user_id: Option<UserId>,
        message_ids: Vec<MessageId>,
    },
    /// `reaction.added` / `reaction.removed` on a message (an operator's, by its external id).
    Reaction {
        added: bool,
        chat_id: ChatId,
        user_id: UserId,
        message_id: MessageId,
        reaction: String,
    },
}

impl Event {
    /// The event type as on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Created(_) => "message.created",
            Event::Updated(_) => "message.updated",
            Event::Deleted { .. } => "message.deleted",
            Event::Reaction { added: true, .. } => "reaction.added",
            Event::Reaction { added: false, .. } => "reaction.removed",
        }
    }
}

/// Milliseconds since the Unix epoch, the gateway's one timestamp unit.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, milliseconds) of a `now_ms()` value.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// One operator message of an ONIMCONNECTORMESSAGE* event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorMessage {
    /// `im.chat_id`: Bitrix24's open-line chat.
    pub im_chat_id: u64,
    /// `im.message_id`: Bitrix24's message id.
    pub im_message_id: u64,
    /// `chat.id`: the external chat.
    pub chat_id: String,
    /// `message.id`: external ids reported earlier (UPDATE: array, DELETE: string).
    pub external_ids: Vec<String>,
    /// `message.text` (BB-code), empty for deletions.
    pub text: String,
    /// `message.user_id`: the operator (ADD only).
    pub operator_id: Option<String>,
    /// `message.files`, when present (undocumented for this event).
    pub files: Vec<serde_json::Value>,
}
