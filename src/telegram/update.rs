//! A Telegram `Update` → the platform events of contract §2, the one place where Telegram's
//! shapes meet the gateway's (contract §6):
//!
//! - `message`, `business_message` → `message.created`; `edited_message`,
//!   `edited_business_message` → `message.updated`;
//! - `deleted_business_messages` → one `message.deleted` with all its ids;
//! - `message_reaction` → the difference of `old_reaction` / `new_reaction` as `reaction.added` /
//!   `reaction.removed` (emoji mapped to Bitrix24 codes; others ignored);
//! - files (the largest photo, documents, voice, audio, video, video notes, stickers) as media
//!   links made by the caller;
//! - ignored, and said why: the gateway's own sends echoing back (`sender_business_bot`),
//!   messages the business account itself wrote in a business chat, bot senders, and update
//!   types it does not map.
//!
//! Pure: no I/O; ids are converted from integers exactly (never through floating point).

use serde::Deserialize;
use serde_json::Value;

use super::ids::ChatKey;
use super::reactions;
use crate::domain::Event;
use crate::domain::{ChatRef, CustomerMessage, FileRef, MessageBody, UserRef};
use crate::ids::UserId;

/// The update types, as a fixed label set for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    EditedMessage,
    BusinessMessage,
    EditedBusinessMessage,
    DeletedBusinessMessages,
    MessageReaction,
    BusinessConnection,
    /// Any other update type.
    Other,
}

impl Kind {
    fn of(field: &str) -> Kind {
        match field {
            "message" => Kind::Message,
            "edited_message" => Kind::EditedMessage,
            "business_message" => Kind::BusinessMessage,
            "edited_business_message" => Kind::EditedBusinessMessage,
            "deleted_business_messages" => Kind::DeletedBusinessMessages,
            "message_reaction" => Kind::MessageReaction,
            "business_connection" => Kind::BusinessConnection,
            _ => Kind::Other,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::EditedMessage => "edited_message",
            Kind::BusinessMessage => "business_message",
            Kind::EditedBusinessMessage => "edited_business_message",
            Kind::DeletedBusinessMessages => "deleted_business_messages",
            Kind::MessageReaction => "message_reaction",
            Kind::BusinessConnection => "business_connection",
            Kind::Other => "other",
        }
    }
}

/// A file of a message, as the media link names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    pub file_id: String,
    pub name: String,
    pub mime: String,
}

/// What an update becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub update_id: i64,
    pub kind: Kind,
    /// In order; empty when the update is ignored.
    pub events: Vec<Event>,
    /// Why nothing is forwarded (for the log), when `events` is empty.
    pub ignored: Option<&'static str>,
}

/// Why a body is not an Update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidUpdate(pub String);

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PhotoSize {
    file_id: String,
    #[serde(default)]
    file_unique_id: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
    #[serde(default)]
    file_size: Option<u64>,
}

/// Document, audio, voice, video, video note, animation, sticker: the fields the link needs.
#[derive(Debug, Deserialize)]
struct FileLike {
    file_id: String,
    #[serde(default)]
    file_unique_id: String,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    is_animated: bool,
    #[serde(default)]
    is_video: bool,
}

#[derive(Debug, Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Debug, Deserialize)]
struct Contact {
    phone_number: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    #[serde(default)]
    date: Option<i64>,
    chat: Chat,
    #[serde(default)]
    from: Option<User>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<PhotoSize>,
    #[serde(default)]
    document: Option<FileLike>,
    #[serde(default)]
    animation: Option<FileLike>,
    #[serde(default)]
    voice: Option<FileLike>,
    #[serde(default)]
    audio: Option<FileLike>,
    #[serde(default)]
    video: Option<FileLike>,
    #[serde(default)]
    video_note: Option<FileLike>,
    #[serde(default)]
    sticker: Option<FileLike>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    contact: Option<Contact>,
    #[serde(default)]
    business_connection_id: Option<String>,
    #[serde(default)]
    sender_business_bot: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BusinessMessagesDeleted {
    business_connection_id: String,
    chat: Chat,
    message_ids: Vec<i64>,
}

#[derive(Debug, Deserialize)]
struct ReactionType {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageReactionUpdated {
    chat: Chat,
    message_id: i64,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    actor_chat: Option<Chat>,
    #[serde(default)]
    old_reaction: Vec<ReactionType>,
    #[serde(default)]
    new_reaction: Vec<ReactionType>,
}

/// Map one raw Update. `link` makes the media link of a file; `reactions` says whether
/// reactions can be taken (they need the chat-bot).
pub fn map(
    body: &[u8],
    link: &dyn Fn(&MediaFile) -> String,
    reactions: bool,
) -> Result<Mapped, InvalidUpdate> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InvalidUpdate(format!("body is not valid JSON: {e}")))?;
    let Value::Object(root) = value else {
        return Err(InvalidUpdate("an Update is a JSON object".into()));
    };
    let update_id = root
        .get("update_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| InvalidUpdate("update_id (an integer) is required".into()))?;
    // An Update carries at most one of its optional fields.
    let Some((field, payload)) = root.iter().find(|(k, _)| k.as_str() != "update_id") else {
        return Ok(ignored(update_id, Kind::Other, "an update with no content"));
    };
    let kind = Kind::of(field);
    let parse_error = |e: serde_json::Error| InvalidUpdate(format!("{field}: {e}"));
    let mapped = match kind {
        Kind::Message
        | Kind::BusinessMessage
        | Kind::EditedMessage
        | Kind::EditedBusinessMessage => {
            let message: Message = serde_json::from_value(payload.clone()).map_err(parse_error)?;
            let edited = matches!(kind, Kind::EditedMessage | Kind::EditedBusinessMessage);
            match customer_message(message, link) {
                Ok(m) if edited => vec![Event::Updated(m)],
                Ok(m) => vec![Event::Created(m)],
                Err(why) => return Ok(ignored(update_id, kind, why)),
            }
        }
        Kind::DeletedBusinessMessages => {
            let deleted: BusinessMessagesDeleted =
                serde_json::from_value(payload.clone()).map_err(parse_error)?;
            if deleted.message_ids.is_empty() {
                return Ok(ignored(update_id, kind, "no message ids"));
            }
            let chat = ChatKey {
                chat_id: deleted.chat.id,
                business_connection_id: Some(deleted.business_connection_id),
            };
            vec![Event::Deleted {
                chat_id: chat.external(),
                user_id: None,
                message_ids: deleted
                    .message_ids
                    .iter()
                    .map(|id| chat.message(*id))
                    .collect(),
            }]
        }
        Kind::MessageReaction => {
            if !reactions {
                return Ok(ignored(
                    update_id,
                    kind,
                    "reactions need the chat-bot (bot.enabled is false)",
                ));
            }
            let r: MessageReactionUpdated =
                serde_json::from_value(payload.clone()).map_err(parse_error)?;
            let events = reaction_events(r);
            if events.is_empty() {
                return Ok(ignored(update_id, kind, "no change in mapped reactions"));
            }
            events
        }
        Kind::BusinessConnection => {
            return Ok(ignored(
                update_id,
                kind,
                "business connections need no action",
            ));
        }
        Kind::Other => {
            return Ok(ignored(
                update_id,
                kind,
                "an update type the gateway does not map",
            ));
        }
    };
    Ok(Mapped {
        update_id,
        kind,
        events: mapped,
        ignored: None,
    })
}

fn ignored(update_id: i64, kind: Kind, why: &'static str) -> Mapped {
    Mapped {
        update_id,
        kind,
        events: Vec::new(),
        ignored: Some(why),
    }
}

fn customer_message(
    m: Message,
    link: &dyn Fn(&MediaFile) -> String,
) -> Result<CustomerMessage, &'static str> {
    if m.sender_business_bot.is_some() {
        return Err("the gateway's own send echoing back (sender_business_bot)");
    }
    let from = m.from.as_ref().ok_or("a message without a sender")?;
    if from.is_bot {
        return Err("a message from a bot");
    }
    if m.business_connection_id.is_some() && from.id != m.chat.id {
        // In a business chat the customer is the chat; anyone else writing is the business.
        return Err("a message the business account itself wrote");
    }
    let chat = ChatKey {
        chat_id: m.chat.id,
        business_connection_id: m.business_connection_id.clone(),
    };
    let files: Vec<FileRef> = files_of(&m)
        .iter()
        .map(|f| FileRef {
            url: link(f),
            name: f.name.clone(),
        })
        .collect();
    let mut text = m.text.clone().or(m.caption.clone());
    if let Some(loc) = &m.location {
        text = Some(format!(
            "Location: {}, {} https://maps.google.com/?q={},{}",
            loc.latitude, loc.longitude, loc.latitude, loc.longitude
        ));
    }
    if let Some(c) = &m.contact {
        let name = join_name(c.first_name.as_deref(), c.last_name.as_deref());
        text = Some(format!("Contact: {name} {}", c.phone_number).replace("  ", " "));
    }
    let text = text.filter(|t| !t.trim().is_empty());
    let text = match (text, files.is_empty()) {
        (None, true) => Some("(a Telegram message of a kind the gateway does not forward)".into()),
        (text, _) => text,
    };
    let name = m
        .chat
        .title
        .clone()
        .or_else(|| {
            Some(join_name(
                m.chat.first_name.as_deref(),
                m.chat.last_name.as_deref(),
            ))
            .filter(|n| !n.is_empty())
        })
        .or(m.chat.username.clone().map(|u| format!("@{u}")));
    Ok(CustomerMessage {
        chat: ChatRef {
            id: chat.external(),
            name,
            url: None,
        },
        user: UserRef {
            id: UserId::new(from.id.to_string()),
            name: from.first_name.clone(),
            last_name: from.last_name.clone(),
            picture: None,
            url: from.username.as_ref().map(|u| format!("https://t.me/{u}")),
            email: None,
            phone: None,
        },
        message: MessageBody {
            id: chat.message(m.message_id),
            date: m.date,
            text,
            files,
        },
    })
}

fn join_name(first: Option<&str>, last: Option<&str>) -> String {
    [first, last]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The files of a message: the largest photo size, and each kind of attachment.
fn files_of(m: &Message) -> Vec<MediaFile> {
    let mut files = Vec::new();
    if let Some(photo) = m
        .photo
        .iter()
        .max_by_key(|p| (p.file_size.unwrap_or(0), p.width * p.height))
    {
        files.push(MediaFile {
            file_id: photo.file_id.clone(),
            name: format!("photo_{}.jpg", safe_stem(&photo.file_unique_id)),
            mime: "image/jpeg".into(),
        });
    }
    let kinds: [(&Option<FileLike>, &str, &str, &str); 7] = [
        (&m.document, "document", "", "application/octet-stream"),
        (&m.animation, "animation", ".mp4", "video/mp4"),
        (&m.voice, "voice", ".ogg", "audio/ogg"),
        (&m.audio, "audio", ".mp3", "audio/mpeg"),
        (&m.video, "video", ".mp4", "video/mp4"),
        (&m.video_note, "video_note", ".mp4", "video/mp4"),
        (&m.sticker, "sticker", ".webp", "image/webp"),
    ];
    // A message with an animation also carries it as a document: keep one of them.
    let skip_document = m.animation.is_some();
    for (file, stem, ext, mime) in kinds {
        let Some(f) = file else { continue };
        if stem == "document" && skip_document {
            continue;
        }
        let (ext, mime) = match stem {
            "sticker" if f.is_animated => (".tgs", "application/x-tgsticker"),
            "sticker" if f.is_video => (".webm", "video/webm"),
            _ => (ext, mime),
        };
        let name = f
            .file_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{stem}_{}{ext}", safe_stem(&f.file_unique_id)));
        files.push(MediaFile {
            file_id: f.file_id.clone(),
            name,
            mime: f.mime_type.clone().unwrap_or_else(|| mime.to_string()),
        });
    }
    files
}

/// A file_unique_id as part of a file name (it is base64url already; anything else is dropped).
fn safe_stem(id: &str) -> String {
    let stem: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if stem.is_empty() { "file".into() } else { stem }
}

/// `reaction.removed` for each mapped emoji that left, then `reaction.added` for each that came.
fn reaction_events(r: MessageReactionUpdated) -> Vec<Event> {
    let user = match (&r.user, &r.actor_chat) {
        (Some(u), _) => u.id,
        (None, Some(c)) => c.id,
        (None, None) => return Vec::new(),
    };
    let codes = |list: &[ReactionType]| -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for code in list
            .iter()
            .filter(|t| t.kind == "emoji")
            .filter_map(|t| t.emoji.as_deref().and_then(reactions::bitrix_code))
        {
            if !out.contains(&code) {
                out.push(code);
            }
        }
        out
    };
    let (old, new) = (codes(&r.old_reaction), codes(&r.new_reaction));
    let chat = ChatKey {
        chat_id: r.chat.id,
        business_connection_id: None,
    };
    let event = |added: bool, code: &str| Event::Reaction {
        added,
        chat_id: chat.external(),
        user_id: UserId::new(user.to_string()),
        message_id: chat.message(r.message_id),
        reaction: code.to_string(),
    };
    let removed = old
        .iter()
        .filter(|c| !new.contains(c))
        .map(|c| event(false, c));
    let added = new
        .iter()
        .filter(|c| !old.contains(c))
        .map(|c| event(true, c));
    removed.chain(added).collect()
}

#[cfg(test)]
mod tests;
