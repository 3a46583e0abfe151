//! Chat bots, v1: `imbot.register/unregister/bot.list/message.add/update/delete` (§8.2–§8.7);
//! reactions (v2) live in `reactions.rs`.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::envelope::ApiError;
use super::events::Emission;
use super::operator::{outbound_add, outbound_delete, outbound_update};
use super::rest::{Ctx, method_not_found};
use super::state::{FakeBot, FakeBotMessage, PortalState};
use super::{params, reactions};

/// Bot messages older than this cannot be edited or deleted (`CANT_EDIT_MESSAGE`).
const EDIT_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);

const HANDLER_KEYS: &[&str] = &[
    "EVENT_MESSAGE_ADD",
    "EVENT_MESSAGE_UPDATE",
    "EVENT_MESSAGE_DELETE",
    "EVENT_WELCOME_MESSAGE",
    "EVENT_BOT_DELETE",
];

pub(crate) fn dispatch(
    st: &mut PortalState,
    cx: &mut Ctx<'_>,
    method: &str,
    p: &Value,
) -> Result<Value, ApiError> {
    match method {
        "imbot.register" => register(st, p),
        "imbot.unregister" => unregister(st, p),
        "imbot.update" => update(st, p),
        "imbot.bot.list" => Ok(list(st)),
        "imbot.message.add" => message_add(st, cx, p),
        "imbot.message.update" => message_update(st, cx, p),
        "imbot.message.delete" => message_delete(st, cx, p),
        "imbot.v2.chat.message.reaction.add" => reactions::add(st, p),
        "imbot.v2.chat.message.reaction.delete" => reactions::delete(st, p),
        _ => Err(method_not_found()),
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

fn register(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let code = params::opt_str(p, "CODE")
        .ok_or_else(|| ApiError::bad("CODE_ERROR", "Bot code is not specified"))?;
    let type_ = params::opt_str(p, "TYPE")
        .map(|t| t.to_ascii_uppercase())
        .unwrap_or_else(|| "B".into());
    let openline = type_ == "O" || params::flag(p, "OPENLINE");
    let common = params::opt_str(p, "EVENT_HANDLER");
    let mut handlers = Map::new();
    for key in HANDLER_KEYS {
        let url = params::opt_str(p, key).or_else(|| common.clone());
        // UPDATE/DELETE handlers are ignored for B/H bots outside open lines (§8.2).
        let ignored = matches!(*key, "EVENT_MESSAGE_UPDATE" | "EVENT_MESSAGE_DELETE")
            && matches!(type_.as_str(), "B" | "H")
            && !openline;
        let required = matches!(
            *key,
            "EVENT_MESSAGE_ADD" | "EVENT_WELCOME_MESSAGE" | "EVENT_BOT_DELETE"
        );
        match url {
            Some(url) if !is_url(&url) => {
                return Err(ApiError::bad(&format!("{key}_ERROR"), "Wrong handler URL"));
            }
            Some(url) if !ignored => {
                handlers.insert((*key).into(), json!(url));
            }
            None if required => {
                return Err(ApiError::bad(&format!("{key}_ERROR"), "Wrong handler URL"));
            }
            _ => {}
        }
    }
    let properties = params::get(p, "PROPERTIES").cloned().unwrap_or(Value::Null);
    if params::text_at(&properties, &["NAME"]).is_none()
        && params::text_at(&properties, &["LAST_NAME"]).is_none()
    {
        return Err(ApiError::bad("NAME_ERROR", "Bot name is not specified"));
    }
    // A repeated CODE returns the existing bot, whatever application owns it (fact sheet §11).
    if let Some(existing) = st
        .bots
        .values()
        .find(|b| b.code.eq_ignore_ascii_case(&code))
    {
        return Ok(json!(existing.id));
    }
    let id = st.next_bot_id();
    st.bots.insert(
        id,
        FakeBot {
            id,
            code,
            type_,
            openline,
            handlers: Value::Object(handlers),
            properties,
            foreign: false,
        },
    );
    Ok(json!(id))
}

fn unregister(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let id = owned(st, params::int(p, "BOT_ID"))?;
    st.bots.remove(&id);
    Ok(json!(true))
}

/// `imbot.update` (§8.2): `BOT_ID`, `FIELDS` {`CODE`, `EVENT_*`, `PROPERTIES`}; only the owner.
fn update(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let id = owned(st, params::int(p, "BOT_ID"))?;
    let fields = params::get(p, "FIELDS")
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad("WRONG_REQUEST", "Update fields can't be empty"))?;
    let bot = st.bots.get_mut(&id).expect("checked by owned");
    for (key, value) in fields {
        match key.to_ascii_uppercase().as_str() {
            "CODE" => {
                if let Some(code) = params::scalar_text(value).filter(|c| !c.is_empty()) {
                    bot.code = code;
                }
            }
            "PROPERTIES" => bot.properties = value.clone(),
            key if HANDLER_KEYS.contains(&key) || key == "EVENT_HANDLER" => {
                let url = params::scalar_text(value).unwrap_or_default();
                if !is_url(&url) {
                    return Err(ApiError::bad(&format!("{key}_ERROR"), "Wrong handler URL"));
                }
                if let Value::Object(handlers) = &mut bot.handlers {
                    let keys: Vec<&str> = if key == "EVENT_HANDLER" {
                        HANDLER_KEYS.to_vec()
                    } else {
                        vec![key]
                    };
                    for k in keys {
                        handlers.insert(k.into(), json!(url));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(json!(true))
}

/// `id` if it is a bot of the calling application.
fn owned(st: &PortalState, id: u64) -> Result<u64, ApiError> {
    match st.bots.get(&id) {
        None => Err(bot_not_found()),
        Some(bot) if bot.foreign => Err(not_the_owner()),
        Some(_) => Ok(id),
    }
}

fn bot_not_found() -> ApiError {
    ApiError::bad("BOT_ID_ERROR", "Bot not found")
}

fn not_the_owner() -> ApiError {
    ApiError::bad(
        "APP_ID_ERROR",
        "Bot was installed by another rest application",
    )
}

fn list(st: &PortalState) -> Value {
    let bots: Map<String, Value> = st
        .bots
        .values()
        .map(|b| {
            let name = params::text_at(&b.properties, &["NAME"]).unwrap_or_default();
            let openline = if b.openline { "Y" } else { "N" };
            (
                b.id.to_string(),
                json!({"ID": b.id, "NAME": name, "CODE": b.code, "OPENLINE": openline}),
            )
        })
        .collect();
    // PHP serializes an empty array as [].
    if bots.is_empty() {
        json!([])
    } else {
        Value::Object(bots)
    }
}

/// `BOT_ID` if given (must exist and be the app's), else the app's first bot.
fn resolve_bot(st: &PortalState, p: &Value) -> Result<u64, ApiError> {
    match params::int(p, "BOT_ID") {
        0 => st
            .bots
            .values()
            .find(|b| !b.foreign)
            .map(|b| b.id)
            .ok_or_else(bot_not_found),
        id => owned(st, id),
    }
}

/// The open-line chat id of a `chat<id>` dialog.
fn dialog_chat(dialog_id: &str) -> Option<u64> {
    dialog_id
        .strip_prefix("chat")
        .and_then(|id| id.parse().ok())
}

fn message_add(st: &mut PortalState, cx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let bot_id = resolve_bot(st, p)?;
    let dialog_id = params::opt_str(p, "DIALOG_ID")
        .ok_or_else(|| ApiError::bad("DIALOG_ID_EMPTY", "Dialog ID can't be empty"))?;
    let text = params::opt_str(p, "MESSAGE")
        .map(|m| m.trim().to_owned())
        .ok_or_else(|| ApiError::bad("MESSAGE_EMPTY", "Message text can't be empty"))?;
    let skip_connector = params::flag(p, "SKIP_CONNECTOR");
    let id = st.next_message_id();
    let message = FakeBotMessage {
        id,
        bot_id,
        dialog_id: dialog_id.clone(),
        text: text.clone(),
        skip_connector,
        deleted: false,
        complete_delete: false,
    };
    st.bot_messages.insert(id, (message, SystemTime::now()));
    // A message in an open-line chat goes out to the client through the connector (§8.5, INFERRED).
    if !skip_connector
        && let Some(chat) = dialog_chat(&dialog_id)
        && let Some(target) = st.chats.get(&chat).cloned()
    {
        let emission: Emission = outbound_add(st, target, chat, id, bot_id, &text);
        cx.emissions.push(emission);
    }
    Ok(json!(id))
}

/// The live bot message `MESSAGE_ID`, editable by the calling bot.
fn editable(st: &PortalState, p: &Value) -> Result<u64, ApiError> {
    let id = params::int(p, "MESSAGE_ID");
    let (message, posted) = st
        .bot_messages
        .get(&id)
        .filter(|(m, _)| !m.deleted)
        .ok_or_else(|| ApiError::bad("MESSAGE_ID_ERROR", "Message not found"))?;
    let bot = params::int(p, "BOT_ID");
    if bot != 0 {
        owned(st, bot)?;
    }
    let too_old = posted.elapsed().unwrap_or_default() > EDIT_WINDOW;
    if too_old || (bot != 0 && bot != message.bot_id) {
        return Err(ApiError::bad(
            "CANT_EDIT_MESSAGE",
            "Time has expired for modification or you don't have access",
        ));
    }
    Ok(id)
}

fn message_update(st: &mut PortalState, cx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let id = editable(st, p)?;
    // Omitted MESSAGE keeps the text; an empty one deletes the message (§8.6).
    let Some(raw) = params::get(p, "MESSAGE") else {
        return Ok(json!(true));
    };
    let text = params::scalar_text(raw)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let skip_connector = params::flag(p, "SKIP_CONNECTOR");
    let (message, _) = st.bot_messages.get_mut(&id).expect("checked by editable");
    if text.is_empty() {
        message.deleted = true;
    } else {
        message.text = text.clone();
    }
    if !skip_connector && st.outbound.contains_key(&id) {
        let emission = if text.is_empty() {
            outbound_delete(st, id)
        } else {
            outbound_update(st, id, &text)
        };
        cx.emissions.extend(emission);
    }
    Ok(json!(true))
}

fn message_delete(st: &mut PortalState, cx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let id = editable(st, p)?;
    let complete = params::flag(p, "COMPLETE");
    let (message, _) = st.bot_messages.get_mut(&id).expect("checked by editable");
    message.deleted = true;
    message.complete_delete = complete;
    if st.outbound.contains_key(&id) {
        cx.emissions.extend(outbound_delete(st, id));
    }
    Ok(json!(true))
}
