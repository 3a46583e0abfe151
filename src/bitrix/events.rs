//! Bitrix24 events (fact sheet §4.2, §6): a decoded form body into typed events, tolerant of the
//! documented inconsistencies — `message.id` as an array or a string, `event_handler_id` or
//! `eventId`, lowercase keys in ONIMCONNECTORSTATUSDELETE, a bare number as `data` in
//! ONIMCONNECTORLINEDELETE, every value a string.

use serde_json::{Map, Value};

/// Who sent an event (the `auth` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub member_id: String,
    pub application_token: String,
}

/// One operator message of an ONIMCONNECTORMESSAGE* event (a domain type: the store records it
/// without depending on this module).
pub use crate::domain::OperatorMessage;

/// An event the gateway acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitrixEvent {
    MessageAdd {
        connector: String,
        line: u64,
        messages: Vec<OperatorMessage>,
    },
    MessageUpdate {
        connector: String,
        line: u64,
        messages: Vec<OperatorMessage>,
    },
    MessageDelete {
        connector: String,
        line: u64,
        messages: Vec<OperatorMessage>,
    },
    StatusDelete {
        connector: String,
        line: u64,
    },
    LineDelete {
        line: u64,
    },
    AppUninstall {
        clean: bool,
    },
    /// ONIMBOTDELETE: a bot of the app was deleted in Bitrix24.
    BotDelete {
        bot_id: u64,
    },
    /// Any other event name (acknowledged, ignored).
    Other(String),
}

/// Why an event body is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("missing auth[member_id] or auth[application_token]")]
    MissingAuth,
    #[error("missing or malformed {0}")]
    Malformed(String),
}

/// The sender of a decoded event body (checked before anything else is looked at).
pub fn sender(form: &Value) -> Result<Sender, EventError> {
    let auth = form.get("auth");
    let field = |k: &str| {
        auth.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(Sender {
        member_id: field("member_id").ok_or(EventError::MissingAuth)?,
        application_token: field("application_token").ok_or(EventError::MissingAuth)?,
    })
}

/// The event name, uppercase.
pub fn name(form: &Value) -> Option<String> {
    form.get("event")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
}

/// The handler id, whichever key carries it.
pub fn handler_id(form: &Value) -> Option<String> {
    ["event_handler_id", "eventId", "EVENT_HANDLER_ID"]
        .iter()
        .find_map(|k| form.get(*k).and_then(scalar))
}

/// Parse a decoded event body.
pub fn parse(form: &Value) -> Result<BitrixEvent, EventError> {
    let event = name(form).ok_or_else(|| EventError::Malformed("event".into()))?;
    let data = form.get("data").unwrap_or(&Value::Null);
    let message_event = |kind: fn(String, u64, Vec<OperatorMessage>) -> BitrixEvent| -> Result<BitrixEvent, EventError> {
        let connector = text(data, &["CONNECTOR", "connector"]).ok_or_else(|| EventError::Malformed("data[CONNECTOR]".into()))?;
        let line = number(data, &["LINE", "line"]).ok_or_else(|| EventError::Malformed("data[LINE]".into()))?;
        let messages = list(data.get("MESSAGES").or_else(|| data.get("messages")))
            .iter()
            .enumerate()
            .map(|(i, m)| operator_message(m).ok_or_else(|| EventError::Malformed(format!("data[MESSAGES][{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(kind(connector, line, messages))
    };
    match event.as_str() {
        "ONIMCONNECTORMESSAGEADD" => {
            message_event(|connector, line, messages| BitrixEvent::MessageAdd {
                connector,
                line,
                messages,
            })
        }
        "ONIMCONNECTORMESSAGEUPDATE" => {
            message_event(|connector, line, messages| BitrixEvent::MessageUpdate {
                connector,
                line,
                messages,
            })
        }
        "ONIMCONNECTORMESSAGEDELETE" => {
            message_event(|connector, line, messages| BitrixEvent::MessageDelete {
                connector,
                line,
                messages,
            })
        }
        "ONIMCONNECTORSTATUSDELETE" => Ok(BitrixEvent::StatusDelete {
            connector: text(data, &["connector", "CONNECTOR"])
                .ok_or_else(|| EventError::Malformed("data[connector]".into()))?,
            line: number(data, &["line", "LINE"])
                .ok_or_else(|| EventError::Malformed("data[line]".into()))?,
        }),
        "ONIMCONNECTORLINEDELETE" => {
            // `data=107` on the wire; tolerate `data[LINE]=107` too.
            let line = scalar(data)
                .and_then(|s| s.trim().parse().ok())
                .or_else(|| number(data, &["LINE", "line"]))
                .ok_or_else(|| EventError::Malformed("data".into()))?;
            Ok(BitrixEvent::LineDelete { line })
        }
        "ONAPPUNINSTALL" => Ok(BitrixEvent::AppUninstall {
            clean: text(data, &["CLEAN", "clean"])
                .is_some_and(|c| c == "1" || c.eq_ignore_ascii_case("Y")),
        }),
        "ONIMBOTDELETE" => Ok(BitrixEvent::BotDelete {
            bot_id: number(data, &["BOT_ID", "bot_id"])
                .ok_or_else(|| EventError::Malformed("data[BOT_ID]".into()))?,
        }),
        _ => Ok(BitrixEvent::Other(event)),
    }
}

fn operator_message(m: &Value) -> Option<OperatorMessage> {
    let im = m.get("im")?;
    let message = m.get("message");
    let external_ids = match message.and_then(|msg| msg.get("id")) {
        Some(Value::Array(ids)) => ids.iter().filter_map(scalar).collect(),
        Some(Value::Object(ids)) => ids.values().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().filter(|s| !s.is_empty()).collect(),
        None => Vec::new(),
    };
    Some(OperatorMessage {
        im_chat_id: number(im, &["chat_id"])?,
        im_message_id: number(im, &["message_id"])?,
        chat_id: m.get("chat").and_then(|c| text(c, &["id"]))?,
        external_ids,
        text: message
            .and_then(|msg| text(msg, &["text"]))
            .unwrap_or_default(),
        operator_id: message.and_then(|msg| text(msg, &["user_id"])),
        files: list(message.and_then(|msg| msg.get("files"))),
    })
}

/// A container as a list: arrays as they are, objects with numeric keys by value.
fn list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Object(map)) => map.values().cloned().collect(),
        _ => Vec::new(),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    let map: &Map<String, Value> = v.as_object()?;
    keys.iter().find_map(|k| map.get(*k).and_then(scalar))
}

fn number(v: &Value, keys: &[&str]) -> Option<u64> {
    text(v, keys).and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests;
