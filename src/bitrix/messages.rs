//! imconnector message items: building `MESSAGES[]` entries and reading `DATA.RESULT[]`
//! (fact sheet §5.7–§5.9).

use serde_json::{Map, Value, json};

use super::BitrixError;
use super::envelope::as_i64;
use crate::domain::CustomerMessage;

/// One `MESSAGES[]` entry of send/update.messages.
pub fn send_item(m: &CustomerMessage) -> Value {
    let mut user = Map::new();
    user.insert("id".into(), json!(m.user.id));
    let optional = [
        ("name", &m.user.name),
        ("last_name", &m.user.last_name),
        ("url", &m.user.url),
        ("email", &m.user.email),
        ("phone", &m.user.phone),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            user.insert(key.into(), json!(v));
        }
    }
    if let Some(picture) = &m.user.picture {
        user.insert("picture".into(), json!({ "url": picture }));
    }
    let mut message = Map::new();
    message.insert("id".into(), json!(m.message.id));
    if let Some(date) = m.message.date {
        message.insert("date".into(), json!(date));
    }
    if let Some(text) = &m.message.text {
        message.insert("text".into(), json!(text));
    }
    if !m.message.files.is_empty() {
        message.insert("files".into(), json!(m.message.files));
    }
    let mut chat = Map::new();
    chat.insert("id".into(), json!(m.chat.id));
    if let Some(name) = &m.chat.name {
        chat.insert("name".into(), json!(name));
    }
    if let Some(url) = &m.chat.url {
        chat.insert("url".into(), json!(url));
    }
    json!({ "user": user, "message": message, "chat": chat })
}

/// One `MESSAGES[]` entry of delete.messages.
pub fn delete_item(user_id: &str, message_id: &str, chat_id: &str) -> Value {
    json!({ "user": { "id": user_id }, "message": { "id": message_id }, "chat": { "id": chat_id } })
}

/// One `MESSAGES[]` entry of `imconnector.send.status.delivery` (fact sheet §5.10):
/// `message.id` is always an array of the external ids.
pub fn delivery_status_item(
    im_chat_id: u64,
    im_message_id: u64,
    external_ids: &[String],
    date: i64,
    chat_id: &str,
) -> Value {
    json!({
        "im": { "chat_id": im_chat_id, "message_id": im_message_id },
        "message": { "id": external_ids, "date": date },
        "chat": { "id": chat_id },
    })
}

/// What Bitrix24 said about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub chat_id: Option<String>,
    pub message_id: Option<String>,
    pub success: bool,
    pub errors: Vec<String>,
    /// Internal Bitrix24 user id (send.messages).
    pub user: Option<String>,
    /// (`session.CHAT_ID`, `session.ID`) (send.messages).
    pub session: Option<(String, String)>,
}

/// Read `{"SUCCESS": .., "DATA": {"RESULT": [..]}}`.
pub fn parse_results(result: &Value) -> Result<Vec<ItemResult>, BitrixError> {
    let entries = result
        .get("DATA")
        .and_then(|d| d.get("RESULT"))
        .and_then(Value::as_array);
    let Some(entries) = entries else {
        let top = result.get("SUCCESS").map(truthy);
        return Err(BitrixError::Decode {
            status: 200,
            detail: format!(
                "no DATA.RESULT in result (SUCCESS={top:?}): {}",
                errors_of(result).join("; ")
            ),
        });
    };
    Ok(entries.iter().map(item_result).collect())
}

fn item_result(entry: &Value) -> ItemResult {
    let session = entry
        .get("session")
        .and_then(|s| Some((id_string(s.get("CHAT_ID")?)?, id_string(s.get("ID")?)?)));
    ItemResult {
        chat_id: entry
            .get("chat")
            .and_then(|c| c.get("id"))
            .and_then(id_string),
        message_id: entry
            .get("message")
            .and_then(|m| m.get("id"))
            .and_then(id_string),
        success: entry.get("SUCCESS").is_some_and(truthy),
        errors: errors_of(entry),
        user: entry.get("user").and_then(id_string),
        session,
    }
}

/// Bitrix24 booleans: JSON bools, or "Y"/"1"/"true" from PHP.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(s.as_str(), "Y" | "y" | "1" | "true"),
        _ => false,
    }
}

/// Ids arrive as strings or numbers.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) => as_i64(v).map(|n| n.to_string()),
        _ => None,
    }
}

/// `ERRORS` as a list of texts, whatever its shape (array, object, string).
fn errors_of(entry: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match entry.get("ERRORS") {
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        Some(Value::Object(o)) => o.values().map(text).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChatRef, FileRef, MessageBody, UserRef};

    #[test]
    fn a_send_item_carries_every_given_field_in_bitrix_shape() {
        let m = CustomerMessage {
            chat: ChatRef {
                id: "channel-123".into(),
                name: Some("Support".into()),
                url: None,
            },
            user: UserRef {
                id: "ext-user-42".into(),
                name: Some("Ivan".into()),
                last_name: None,
                picture: Some("https://x/a.png".into()),
                url: None,
                email: None,
                phone: None,
            },
            message: MessageBody {
                id: "ext-msg-1001".into(),
                date: Some(1_773_265_993),
                text: Some("Good afternoon".into()),
                files: vec![FileRef {
                    url: "https://x/spec.pdf".into(),
                    name: "spec.pdf".into(),
                }],
            },
        };
        assert_eq!(
            send_item(&m),
            json!({
                "user": {"id": "ext-user-42", "name": "Ivan", "picture": {"url": "https://x/a.png"}},
                "message": {"id": "ext-msg-1001", "date": 1_773_265_993, "text": "Good afternoon",
                            "files": [{"url": "https://x/spec.pdf", "name": "spec.pdf"}]},
                "chat": {"id": "channel-123", "name": "Support"}
            })
        );
    }

    #[test]
    fn the_documented_send_reply_is_read_completely() {
        let result = json!({ "SUCCESS": true, "DATA": { "RESULT": [ {
            "user": "585",
            "message": { "id": "ext-msg-1001", "date": {}, "text": "Good afternoon", "files": [] },
            "chat": { "id": "channel-123", "name": "Support Channel" },
            "extra": { "skip_phone_validate": "Y" },
            "SUCCESS": true,
            "session": { "ID": "323", "CHAT_ID": "1767" } } ] } });
        let items = parse_results(&result).unwrap();
        assert_eq!(
            items,
            vec![ItemResult {
                chat_id: Some("channel-123".into()),
                message_id: Some("ext-msg-1001".into()),
                success: true,
                errors: vec![],
                user: Some("585".into()),
                session: Some(("1767".into(), "323".into())),
            }]
        );
    }

    #[test]
    fn per_item_failures_and_odd_shapes_are_read_leniently() {
        let result = json!({ "SUCCESS": false, "DATA": { "RESULT": [
            { "message": { "id": 77 }, "chat": { "id": "c" }, "SUCCESS": "N", "ERRORS": ["Message not found"] },
            { "message": { "id": "m2" }, "chat": { "id": "c" }, "SUCCESS": "Y", "user": 9 },
            { "message": { "id": "m3" }, "SUCCESS": false, "ERRORS": {"a": "x", "b": "y"} } ] } });
        let items = parse_results(&result).unwrap();
        assert_eq!(items[0].message_id.as_deref(), Some("77"));
        assert!(!items[0].success);
        assert_eq!(items[0].errors, vec!["Message not found".to_string()]);
        assert!(items[1].success);
        assert_eq!(items[1].user.as_deref(), Some("9"));
        assert_eq!(items[2].errors.len(), 2);
    }

    #[test]
    fn a_result_without_data_is_an_error_not_a_silent_success() {
        assert!(parse_results(&json!({"SUCCESS": false, "ERRORS": ["line inactive"]})).is_err());
        assert!(parse_results(&json!(true)).is_err());
    }
}
