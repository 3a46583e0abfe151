//! Platform events `{"type": "...", "data": {...}}` (contract §2): one typed serde model per event
//! type, validated into domain types.
//!
//! IDs are strings everywhere; integer IDs from adapters are accepted and converted exactly
//! (never through floating point: a JSON number that is not an exact 64-bit integer is refused).
//! A refusal names the field by its path (`data.messages[3].id`), found by `serde_path_to_error`.

use serde::{Deserialize, Deserializer, de};
use serde_json::value::RawValue;

use crate::domain::{ChatRef, CustomerMessage, Event, FileRef, MessageBody, UserRef};

/// Most messages in one `message.deleted` event.
pub const MAX_DELETE_ITEMS: usize = 1000;
/// Longest accepted external ID.
const MAX_ID_LEN: usize = 256;

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

/// The envelope; `data` is parsed once its type is known.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// An external id: a non-empty string of at most [`MAX_ID_LEN`] bytes, or an exact integer.
struct ExternalId(String);

impl<'de> Deserialize<'de> for ExternalId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ExternalId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(
                    f,
                    "a string of 1 to {MAX_ID_LEN} bytes or an integer that fits 64 bits"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExternalId, E> {
                if v.is_empty() || v.len() > MAX_ID_LEN {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                Ok(ExternalId(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExternalId, E> {
                Ok(ExternalId(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExternalId, E> {
                Ok(ExternalId(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Unix seconds: an integer, or a string holding one.
fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("unix seconds")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<i64>, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<i64>, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<i64>, E> {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(Visitor)
}

#[derive(Deserialize)]
struct MessageData {
    chat: Chat,
    user: User,
    message: Message,
}

#[derive(Deserialize)]
struct Chat {
    id: ExternalId,
    name: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: ExternalId,
    name: Option<String>,
    last_name: Option<String>,
    picture: Option<String>,
    url: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: ExternalId,
    #[serde(default, deserialize_with = "unix_seconds")]
    date: Option<i64>,
    text: Option<String>,
    files: Option<Vec<File>>,
}

#[derive(Deserialize)]
struct File {
    url: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Id {
    id: ExternalId,
}

#[derive(Deserialize)]
struct OptionalId {
    id: Option<ExternalId>,
}

#[derive(Deserialize)]
struct DeletedData {
    chat: Id,
    user: Option<OptionalId>,
    messages: Vec<Id>,
}

#[derive(Deserialize)]
struct ReactionData {
    chat: Id,
    user: Id,
    message: Id,
    reaction: String,
}

/// Parse and validate a raw (already authenticated) body.
pub fn parse(body: &[u8]) -> Result<Event, InvalidEvent> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| invalid("invalid_json", format!("body is not a JSON object: {e}")))?;
    let kind = envelope.kind.ok_or_else(|| missing("type"))?;
    let data = envelope.data.ok_or_else(|| missing("data"))?;
    match kind.as_ref() {
        "message.created" => typed(data).and_then(customer_message).map(Event::Created),
        "message.updated" => typed(data).and_then(customer_message).map(Event::Updated),
        "message.deleted" => typed(data).and_then(deleted),
        "reaction.added" => typed(data).and_then(|r| reaction(r, true)),
        "reaction.removed" => typed(data).and_then(|r| reaction(r, false)),
        other => Err(invalid(
            "unknown_type",
            format!(
                "unknown event type {other:?}; expected message.created, message.updated, \
                 message.deleted, reaction.added or reaction.removed"
            ),
        )),
    }
}

/// `data` as `T`; a refusal names the field's path.
fn typed<'a, T: Deserialize<'a>>(data: &'a RawValue) -> Result<T, InvalidEvent> {
    let mut de = serde_json::Deserializer::from_str(data.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = match e.path().to_string().as_str() {
            "." => "data".to_string(),
            p => format!("data.{p}"),
        };
        let inner = e.into_inner().to_string();
        match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                missing(&format!("{path}.{field}"))
            }
            None => {
                let detail = inner.split(" at line ").next().unwrap_or(&inner);
                invalid("invalid_field", format!("{path}: {detail}"))
            }
        }
    })
}

fn customer_message(data: MessageData) -> Result<CustomerMessage, InvalidEvent> {
    let files = data
        .message
        .files
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, f)| file(f, &format!("data.message.files[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let text = data.message.text.filter(|t| !t.trim().is_empty());
    if text.is_none() && files.is_empty() {
        return Err(missing("data.message.text or data.message.files"));
    }
    Ok(CustomerMessage {
        chat: ChatRef {
            id: data.chat.id.0.into(),
            name: data.chat.name,
            url: data.chat.url,
        },
        user: UserRef {
            id: data.user.id.0.into(),
            name: data.user.name,
            last_name: data.user.last_name,
            picture: data.user.picture,
            url: data.user.url,
            email: data.user.email,
            phone: data.user.phone,
        },
        message: MessageBody {
            id: data.message.id.0.into(),
            date: data.message.date,
            text,
            files,
        },
    })
}

fn deleted(data: DeletedData) -> Result<Event, InvalidEvent> {
    if data.messages.is_empty() {
        return Err(invalid(
            "invalid_field",
            "data.messages must hold at least one message",
        ));
    }
    if data.messages.len() > MAX_DELETE_ITEMS {
        return Err(invalid(
            "too_many_items",
            format!(
                "data.messages holds {} messages; at most {MAX_DELETE_ITEMS} per event",
                data.messages.len()
            ),
        ));
    }
    Ok(Event::Deleted {
        chat_id: data.chat.id.0.into(),
        user_id: data.user.and_then(|u| u.id).map(|id| id.0.into()),
        message_ids: data.messages.into_iter().map(|m| m.id.0.into()).collect(),
    })
}

fn reaction(data: ReactionData, added: bool) -> Result<Event, InvalidEvent> {
    if data.reaction.is_empty() {
        return Err(missing("data.reaction"));
    }
    Ok(Event::Reaction {
        added,
        chat_id: data.chat.id.0.into(),
        user_id: data.user.id.0.into(),
        message_id: data.message.id.0.into(),
        reaction: data.reaction,
    })
}

fn file(f: File, path: &str) -> Result<FileRef, InvalidEvent> {
    let parsed = url::Url::parse(&f.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            invalid(
                "invalid_field",
                format!("{path}.url must be an http(s) URL"),
            )
        })?;
    let name = match f.name {
        Some(name) => name,
        None => parsed
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or("file")
            .to_string(),
    };
    Ok(FileRef { url: f.url, name })
}

#[cfg(test)]
mod tests;
