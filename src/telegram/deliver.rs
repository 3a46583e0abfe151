//! Operators' messages, edits and deletions for a Telegram channel (contract §6), as Bot API
//! calls. The deliverer hands over the same `data` as for a generic channel (contract §4) and
//! gets back an [`Answer`] it already knows how to treat:
//! - `200` with `{"message_ids": [...]}` (external ids of contract §6) when Telegram took it;
//! - `4xx` when Telegram refuses for good (too old to edit, no right to delete, chat not found):
//!   the delivery ends failed, visibly, and the chat's later deliveries go on;
//! - `429` / `502` / no answer: retried with the `[retry]` backoff (a `429`'s `retry_after` is
//!   also kept by the flood scheduler, so the retry waits for it).
//!
//! `deletion.completed` and `line.disconnected` are not Telegram's business: they go to the
//! channel's `outbound_url` when it has one (the caller's fallback, [`handles`] is false).

use serde_json::{Value, json};

use super::api::{ApiError, BotApi};
use super::ids::{self, ChatKey};
use crate::messenger::outbound::Answer;
use crate::settings::TelegramSettings;

/// Telegram's longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Whether this event type is delivered through the Bot API.
pub fn handles(event_type: &str) -> bool {
    matches!(
        event_type,
        "operator.message.created" | "operator.message.updated" | "operator.message.deleted"
    )
}

/// Deliver one operator event.
pub async fn deliver(
    api: &BotApi,
    bot: &TelegramSettings,
    event_type: &str,
    data: &Value,
) -> Result<Answer, String> {
    let result = match event_type {
        "operator.message.created" => send(api, bot, data).await,
        "operator.message.updated" => edit(api, bot, data).await,
        "operator.message.deleted" => delete(api, bot, data).await,
        other => return Err(format!("{other} is not delivered through the Bot API")),
    };
    let failed = |status: u16, reason: String| {
        Ok(Answer {
            status,
            body: Vec::new(),
            reason: Some(reason),
        })
    };
    match result {
        Ok(answer) => Ok(answer),
        Err(Failure::Refused(reason)) => failed(400, reason),
        Err(Failure::Api(e)) if e.is_permanent() => failed(400, e.to_string()),
        Err(Failure::Api(e @ ApiError::Flood { .. })) => failed(429, e.to_string()),
        Err(Failure::Api(ApiError::Transport(e))) => Err(e),
        Err(Failure::Api(e)) => failed(502, e.to_string()),
    }
}

enum Failure {
    /// The event cannot be carried out at all (not a Telegram id).
    Refused(String),
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

fn chat_of(data: &Value) -> Result<ChatKey, Failure> {
    let id = data["chat"]["id"].as_str().unwrap_or_default();
    ChatKey::parse(id).ok_or_else(|| Failure::Refused(format!("{id:?} is not a Telegram chat id")))
}

fn target(chat: &ChatKey, params: &mut Value) {
    params["chat_id"] = json!(chat.chat_id);
    if let Some(conn) = &chat.business_connection_id {
        params["business_connection_id"] = json!(conn);
    }
}

fn message_id_of(result: &Value) -> Result<i64, Failure> {
    result["message_id"]
        .as_i64()
        .ok_or(Failure::Api(ApiError::Server { status: 200 }))
}

/// `sendMessage` for the text (in parts of at most 4096 characters), then `sendPhoto` for
/// images and `sendDocument` for other files, by URL (Telegram fetches them).
async fn send(api: &BotApi, bot: &TelegramSettings, data: &Value) -> Result<Answer, Failure> {
    let chat = chat_of(data)?;
    let external = chat.external();
    let text = plain_text(data["message"]["text"].as_str().unwrap_or_default());
    let mut sent = Vec::new();
    for part in split_text(&text) {
        let mut params = json!({ "text": part });
        target(&chat, &mut params);
        let result = api
            .call(bot, "sendMessage", &params, Some(&external))
            .await?;
        sent.push(chat.message(message_id_of(&result)?));
    }
    let files = data["message"]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for file in files {
        let Some(url) = file["url"].as_str() else {
            continue;
        };
        let photo = file["type"].as_str() == Some("image");
        let (method, field) = if photo {
            ("sendPhoto", "photo")
        } else {
            ("sendDocument", "document")
        };
        let mut params = json!({ field: url });
        target(&chat, &mut params);
        let result = api.call(bot, method, &params, Some(&external)).await?;
        sent.push(chat.message(message_id_of(&result)?));
    }
    if sent.is_empty() {
        return Err(Failure::Refused(
            "the message has neither text nor files".into(),
        ));
    }
    Ok(Answer {
        status: 200,
        body: json!({ "message_ids": sent }).to_string().into_bytes(),
        reason: None,
    })
}

fn message_of(data: &Value) -> Result<(ChatKey, i64), Failure> {
    let id = data["message"]["id"].as_str().unwrap_or_default();
    ids::parse_message(id)
        .ok_or_else(|| Failure::Refused(format!("{id:?} is not a Telegram message id")))
}

/// `editMessageText`; "message is not modified" counts as done.
async fn edit(api: &BotApi, bot: &TelegramSettings, data: &Value) -> Result<Answer, Failure> {
    let (chat, message_id) = message_of(data)?;
    let text = plain_text(data["message"]["text"].as_str().unwrap_or_default());
    let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
    let mut params = json!({ "message_id": message_id, "text": text });
    target(&chat, &mut params);
    match api
        .call(bot, "editMessageText", &params, Some(&chat.external()))
        .await
    {
        Ok(_) => Ok(done()),
        Err(e) if e.description().contains("message is not modified") => Ok(done()),
        Err(e) => Err(e.into()),
    }
}

/// `deleteMessage`, or `deleteBusinessMessages` with the connection for a business chat; a
/// message already gone counts as deleted.
async fn delete(api: &BotApi, bot: &TelegramSettings, data: &Value) -> Result<Answer, Failure> {
    let (chat, message_id) = message_of(data)?;
    let (method, params) = match &chat.business_connection_id {
        Some(conn) => (
            "deleteBusinessMessages",
            json!({ "business_connection_id": conn, "message_ids": [message_id] }),
        ),
        None => (
            "deleteMessage",
            json!({ "chat_id": chat.chat_id, "message_id": message_id }),
        ),
    };
    match api.call(bot, method, &params, Some(&chat.external())).await {
        Ok(_) => Ok(done()),
        Err(e) if e.description().contains("message to delete not found") => Ok(done()),
        Err(e) => Err(e.into()),
    }
}

fn done() -> Answer {
    Answer {
        status: 200,
        body: b"{}".to_vec(),
        reason: None,
    }
}

/// Bitrix24's BBCode as plain text: `[br]` → newline, `[url=x]y[/url]` → `y (x)`, other known
/// tags dropped. Plain text never fails Telegram's entity parsing.
pub fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find(']') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let tag = &after[1..end];
        let lower = tag.to_ascii_lowercase();
        let name = lower
            .trim_start_matches('/')
            .split(['=', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        if lower == "br" {
            out.push('\n');
        } else if let Some(url) = tag
            .strip_prefix("url=")
            .or_else(|| tag.strip_prefix("URL="))
            && let Some(close) = after[end + 1..].to_ascii_lowercase().find("[/url]")
        {
            let label = &after[end + 1..end + 1 + close];
            if label == url {
                out.push_str(url);
            } else {
                out.push_str(&format!("{label} ({url})"));
            }
            rest = &after[end + 1 + close + "[/url]".len()..];
            continue;
        } else if ![
            "b", "i", "u", "s", "url", "quote", "code", "color", "size", "user", "chat", "icon",
            "send", "put",
        ]
        .contains(&name.as_str())
        {
            out.push_str(&after[..=end]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Text in parts Telegram takes (empty text: no part).
pub fn split_text(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(MAX_TEXT_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

#[cfg(test)]
mod tests;
