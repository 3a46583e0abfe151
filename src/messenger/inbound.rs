//! Platform events `{"type": "...", "data": {...}}` (contract §2), validated into domain types.
//!
//! IDs are strings everywhere; integer IDs from adapters are accepted and converted exactly
//! (never through floating point). A value that is not an exact integer or a string is refused.

use serde_json::{Map, Value};

use crate::domain::{ChatRef, CustomerMessage, FileRef, MessageBody, UserRef};

/// Most messages in one `message.deleted` event.
pub const MAX_DELETE_ITEMS: usize = 1000;
/// Longest accepted external ID.
const MAX_ID_LEN: usize = 256;

/// A validated platform event.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformEvent {
    Created(CustomerMessage),
    Updated(CustomerMessage),
    Deleted {
        chat_id: String,
        user_id: Option<String>,
        message_ids: Vec<String>,
    },
    /// `reaction.added` / `reaction.removed` on a message (an operator's, by its external id).
    Reaction {
        added: bool,
        chat_id: String,
        user_id: String,
        message_id: String,
        reaction: String,
    },
}

impl PlatformEvent {
    /// The event type as on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            PlatformEvent::Created(_) => "message.created",
            PlatformEvent::Updated(_) => "message.updated",
            PlatformEvent::Deleted { .. } => "message.deleted",
            PlatformEvent::Reaction { added: true, .. } => "reaction.added",
            PlatformEvent::Reaction { added: false, .. } => "reaction.removed",
        }
    }
}

/// Why an event was refused: a stable snake_case code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> InvalidEvent {
    InvalidEvent {
        code,
        message: message.into(),
    }
}

fn missing(path: &str) -> InvalidEvent {
    invalid("missing_field", format!("{path} is required"))
}

/// Parse and validate a raw (already authenticated) body.
pub fn parse(body: &[u8]) -> Result<PlatformEvent, InvalidEvent> {
    match fast::parse(body) {
        Some(event) => Ok(event),
        None => parse_general(body),
    }
}

/// The general parser: every event type and shape, with a precise error for each refusal.
fn parse_general(body: &[u8]) -> Result<PlatformEvent, InvalidEvent> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("invalid_json", format!("body is not valid JSON: {e}")))?;
    let Value::Object(root) = value else {
        return Err(invalid("invalid_json", "body must be a JSON object"));
    };
    let kind = match root.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(invalid("invalid_field", "type must be a string")),
        None => return Err(missing("type")),
    };
    let data = object(&root, "data", "data")?.ok_or_else(|| missing("data"))?;
    match kind {
        "message.created" => customer_message(data).map(PlatformEvent::Created),
        "message.updated" => customer_message(data).map(PlatformEvent::Updated),
        "message.deleted" => deleted(data),
        "reaction.added" => reaction(data, true),
        "reaction.removed" => reaction(data, false),
        other => Err(invalid(
            "unknown_type",
            format!(
                "unknown event type {other:?}; expected message.created, message.updated, \
                 message.deleted, reaction.added or reaction.removed"
            ),
        )),
    }
}

fn customer_message(data: &Map<String, Value>) -> Result<CustomerMessage, InvalidEvent> {
    let chat = object(data, "chat", "data.chat")?.ok_or_else(|| missing("data.chat"))?;
    let user = object(data, "user", "data.user")?.ok_or_else(|| missing("data.user"))?;
    let message =
        object(data, "message", "data.message")?.ok_or_else(|| missing("data.message"))?;
    let files = match message.get("files") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, f)| file(f, &format!("data.message.files[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(
                "invalid_field",
                "data.message.files must be an array",
            ));
        }
    };
    let body = text(message, "text", "data.message.text")?.filter(|t| !t.trim().is_empty());
    if body.is_none() && files.is_empty() {
        return Err(missing("data.message.text or data.message.files"));
    }
    let date =
        match message.get("date") {
            None | Some(Value::Null) => None,
            Some(v) => Some(integer(v).ok_or_else(|| {
                invalid("invalid_field", "data.message.date must be unix seconds")
            })?),
        };
    Ok(CustomerMessage {
        chat: ChatRef {
            id: id(chat, "id", "data.chat.id")?,
            name: text(chat, "name", "data.chat.name")?,
            url: text(chat, "url", "data.chat.url")?,
        },
        user: UserRef {
            id: id(user, "id", "data.user.id")?,
            name: text(user, "name", "data.user.name")?,
            last_name: text(user, "last_name", "data.user.last_name")?,
            picture: text(user, "picture", "data.user.picture")?,
            url: text(user, "url", "data.user.url")?,
            email: text(user, "email", "data.user.email")?,
            phone: text(user, "phone", "data.user.phone")?,
        },
        message: MessageBody {
            id: id(message, "id", "data.message.id")?,
            date,
            text: body,
            files,
        },
    })
}

fn deleted(data: &Map<String, Value>) -> Result<PlatformEvent, InvalidEvent> {
    let chat = object(data, "chat", "data.chat")?.ok_or_else(|| missing("data.chat"))?;
    let user_id = match object(data, "user", "data.user")? {
        Some(user) if user.contains_key("id") => Some(id(user, "id", "data.user.id")?),
        _ => None,
    };
    let messages = match data.get("messages") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("invalid_field", "data.messages must be an array")),
        None => return Err(missing("data.messages")),
    };
    if messages.is_empty() {
        return Err(invalid(
            "invalid_field",
            "data.messages must hold at least one message",
        ));
    }
    if messages.len() > MAX_DELETE_ITEMS {
        return Err(invalid(
            "too_many_items",
            format!(
                "data.messages holds {} messages; at most {MAX_DELETE_ITEMS} per event",
                messages.len()
            ),
        ));
    }
    let message_ids = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = format!("data.messages[{i}]");
            match m {
                Value::Object(m) => id(m, "id", &format!("{path}.id")),
                _ => Err(invalid(
                    "invalid_field",
                    format!("{path} must be an object with an id"),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PlatformEvent::Deleted {
        chat_id: id(chat, "id", "data.chat.id")?,
        user_id,
        message_ids,
    })
}

fn reaction(data: &Map<String, Value>, added: bool) -> Result<PlatformEvent, InvalidEvent> {
    let chat = object(data, "chat", "data.chat")?.ok_or_else(|| missing("data.chat"))?;
    let user = object(data, "user", "data.user")?.ok_or_else(|| missing("data.user"))?;
    let message =
        object(data, "message", "data.message")?.ok_or_else(|| missing("data.message"))?;
    let reaction = text(data, "reaction", "data.reaction")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| missing("data.reaction"))?;
    Ok(PlatformEvent::Reaction {
        added,
        chat_id: id(chat, "id", "data.chat.id")?,
        user_id: id(user, "id", "data.user.id")?,
        message_id: id(message, "id", "data.message.id")?,
        reaction,
    })
}

fn file(value: &Value, path: &str) -> Result<FileRef, InvalidEvent> {
    let Value::Object(f) = value else {
        return Err(invalid(
            "invalid_field",
            format!("{path} must be an object"),
        ));
    };
    let url =
        text(f, "url", &format!("{path}.url"))?.ok_or_else(|| missing(&format!("{path}.url")))?;
    let parsed = url::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            invalid(
                "invalid_field",
                format!("{path}.url must be an http(s) URL"),
            )
        })?;
    let name = match text(f, "name", &format!("{path}.name"))? {
        Some(name) => name,
        None => parsed
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or("file")
            .to_string(),
    };
    Ok(FileRef { url, name })
}

fn object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, InvalidEvent> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(invalid(
            "invalid_field",
            format!("{path} must be an object"),
        )),
    }
}

/// An optional string field.
fn text(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, InvalidEvent> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid("invalid_field", format!("{path} must be a string"))),
    }
}

/// A required ID: a non-empty string, or an exact integer converted to its decimal text.
fn id(map: &Map<String, Value>, key: &str, path: &str) -> Result<String, InvalidEvent> {
    let id = match map.get(key) {
        None | Some(Value::Null) => return Err(missing(path)),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => {
            return Err(invalid(
                "invalid_field",
                format!("{path} must be a string (or an integer that fits 64 bits)"),
            ));
        }
    };
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(invalid(
            "invalid_field",
            format!("{path} must be 1 to {MAX_ID_LEN} bytes"),
        ));
    }
    Ok(id)
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

mod fast;
#[cfg(test)]
mod tests;
