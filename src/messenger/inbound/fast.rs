//! A typed fast path for the common case: a `message.created` / `message.updated` with string
//! IDs, an integer date and no files. It yields exactly what the general parser would (a test
//! checks that on every shape), and says nothing otherwise: the general parser then decides,
//! with its precise errors. Parsing into typed fields skips building a `serde_json::Value`.

use serde::Deserialize;

use super::{MAX_ID_LEN, PlatformEvent};
use crate::domain::{ChatRef, CustomerMessage, MessageBody, UserRef};

#[derive(Deserialize)]
struct Root {
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    chat: Chat,
    user: UserRef,
    message: Message,
}

#[derive(Deserialize)]
struct Chat {
    id: String,
    name: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    date: Option<i64>,
    text: Option<String>,
    /// Only an absent, null or empty list takes the fast path.
    #[serde(rename = "files")]
    _files: Option<[(); 0]>,
}

/// The event, if the fast path can decide it alone.
pub(super) fn parse(body: &[u8]) -> Option<PlatformEvent> {
    let root: Root = serde_json::from_slice(body).ok()?;
    let Data {
        chat,
        user,
        message,
    } = root.data;
    let ids = [&chat.id, &user.id, &message.id];
    if ids.iter().any(|id| id.is_empty() || id.len() > MAX_ID_LEN) {
        return None;
    }
    let text = message.text.filter(|t| !t.trim().is_empty());
    text.as_ref()?;
    let m = CustomerMessage {
        chat: ChatRef {
            id: chat.id,
            name: chat.name,
            url: chat.url,
        },
        user,
        message: MessageBody {
            id: message.id,
            date: message.date,
            text,
            files: Vec::new(),
        },
    };
    match root.kind.as_str() {
        "message.created" => Some(PlatformEvent::Created(m)),
        "message.updated" => Some(PlatformEvent::Updated(m)),
        _ => None,
    }
}
