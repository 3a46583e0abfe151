//! Client-message methods: `imconnector.send/update/delete.messages` and `send.status.delivery/reading`
//! (fact sheet §5.7–§5.11), with per-item results.

use serde_json::{Map, Value, json};

use super::envelope::ApiError;
use super::imconnector::{connector, require_active};
use super::params::{self, text_at};
use super::rest::Ctx;
use super::state::{ChatTarget, FakeMessage, PortalState};

/// Validated common arguments of the message methods.
struct Call {
    connector: String,
    line: u64,
    items: Vec<Value>,
}

/// Argument checks shared by every message method, in the order the portal reports them.
fn prologue(
    st: &PortalState,
    cx: &Ctx<'_>,
    p: &Value,
    needs_active_line: bool,
) -> Result<Call, ApiError> {
    params::req_str(p, "CONNECTOR")?;
    let line = params::req_int(p, "LINE")?;
    let messages = params::get(p, "MESSAGES").ok_or_else(|| ApiError::argument("MESSAGES"))?;
    let items: Vec<Value> = match messages {
        Value::Array(items) => items.clone(),
        // A form body with keys other than 0..n-1 still is a PHP array.
        Value::Object(map) => map.values().cloned().collect(),
        Value::String(s) if s.is_empty() => return Err(ApiError::argument("MESSAGES")),
        _ => {
            return Err(ApiError::bad(
                "ERROR_ARGUMENT",
                "The value of an argument 'MESSAGES' must be of type array",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::argument("MESSAGES"));
    }
    let connector = connector(st, p)?;
    check_cap(cx, items.len())?;
    if items.iter().any(|item| !item.is_object()) {
        return Err(ApiError::bad(
            "ERROR_ARGUMENT",
            "The MESSAGES parameter must be an array of messages (arrays)",
        ));
    }
    if needs_active_line {
        require_active(st, &connector, line)?;
    }
    Ok(Call {
        connector,
        line,
        items,
    })
}

/// The configured `MESSAGES` cap (the real one is undocumented, so it is off by default).
fn check_cap(cx: &Ctx<'_>, count: usize) -> Result<(), ApiError> {
    match cx.shared.config.max_messages_per_call {
        Some(cap) if count > cap => Err(ApiError::bad(
            "ERROR_ARGUMENT",
            format!("Too many messages in MESSAGES: {count} (at most {cap} per call)"),
        )),
        _ => Ok(()),
    }
}

/// `{"SUCCESS": all, "DATA": {"RESULT": entries}}`, reversed on request to test id-based matching.
fn batch_result(cx: &Ctx<'_>, mut entries: Vec<Value>) -> Value {
    let all_ok = entries.iter().all(|e| e["SUCCESS"] == json!(true));
    if cx.shared.config.reverse_results {
        entries.reverse();
    }
    json!({"SUCCESS": all_ok, "DATA": {"RESULT": entries}})
}

/// Echo of `message`; `always_date` mirrors send.messages, which always answers `"date": {}`.
fn echo_message(item: &Value, always_date: bool) -> Value {
    let mut message = item
        .get("message")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if always_date || message.contains_key("date") {
        // The portal answers the date as an (empty) object; clients must not parse it.
        message.insert("date".into(), json!({}));
    }
    if always_date && !message.contains_key("files") {
        message.insert("files".into(), json!([]));
    }
    Value::Object(message)
}

/// Echo of `chat`: id, name, and `description` built from `url`.
fn echo_chat(item: &Value) -> Value {
    let mut chat = Map::new();
    if let Some(id) = text_at(item, &["chat", "id"]) {
        chat.insert("id".into(), json!(id));
    }
    if let Some(name) = text_at(item, &["chat", "name"]) {
        chat.insert("name".into(), json!(name));
    }
    if let Some(url) = text_at(item, &["chat", "url"]) {
        chat.insert(
            "description".into(),
            json!(format!("Link to the original post: {url}")),
        );
    }
    Value::Object(chat)
}

/// One `DATA.RESULT` entry; `ERRORS` only on failure.
fn entry(
    st: &mut PortalState,
    item: &Value,
    message: Value,
    errors: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(user) = text_at(item, &["user", "id"]) {
        out.insert("user".into(), json!(st.user_id(&user).to_string()));
    }
    out.insert("message".into(), message);
    out.insert("chat".into(), echo_chat(item));
    let mut extra = Map::new();
    if text_at(item, &["user", "skip_phone_validate"]).is_some_and(|v| v == "Y") {
        extra.insert("skip_phone_validate".into(), json!("Y"));
    }
    if text_at(item, &["message", "disable_crm"]).is_some_and(|v| v == "Y") {
        extra.insert("disable_tracker".into(), json!("Y"));
    }
    if !extra.is_empty() {
        out.insert("extra".into(), Value::Object(extra));
    }
    out.insert("SUCCESS".into(), json!(errors.is_empty()));
    if !errors.is_empty() {
        out.insert("ERRORS".into(), json!(errors));
    }
    out
}

/// Errors injected with `FakePortal::fail_item` for this item's external message id.
fn injected(st: &PortalState, item: &Value) -> Option<Vec<String>> {
    text_at(item, &["message", "id"]).and_then(|id| st.item_failures.get(&id).cloned())
}

fn has_content(item: &Value) -> bool {
    text_at(item, &["message", "text"]).is_some()
        || item
            .pointer("/message/files")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

fn files_of(item: &Value) -> Vec<Value> {
    item.pointer("/message/files")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn send(st: &mut PortalState, cx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let call = prologue(st, cx, p, true)?;
    let mut entries = Vec::new();
    for item in &call.items {
        if !cx.spend(cx.shared.config.item_cost) {
            break;
        }
        let user = text_at(item, &["user", "id"]);
        let chat = text_at(item, &["chat", "id"]);
        let mut errors = Vec::new();
        if user.is_none() {
            errors.push("The user ID (user.id) is not specified".to_owned());
        }
        if chat.is_none() {
            errors.push("The chat ID (chat.id) is not specified".to_owned());
        }
        if !has_content(item) {
            errors.push("The message has neither text nor files".to_owned());
        }
        if errors.is_empty()
            && let Some(injected) = injected(st, item)
        {
            errors = injected;
        }
        let mut out = entry(st, item, echo_message(item, true), &errors);
        if let (true, Some(user), Some(chat)) = (errors.is_empty(), user, chat) {
            let target = ChatTarget {
                connector: call.connector.clone(),
                line: call.line,
                ext_chat_id: chat.clone(),
            };
            let session = st.session(&target);
            let internal_id = st.next_message_id();
            // A repeated external id is stored again on purpose: duplicates must be visible to tests.
            st.push_message(FakeMessage {
                connector: call.connector.clone(),
                line: call.line,
                chat_id: chat,
                user_id: user,
                message_id: text_at(item, &["message", "id"]).unwrap_or_default(),
                internal_id,
                text: text_at(item, &["message", "text"]).unwrap_or_default(),
                files: files_of(item),
                deleted: false,
                update_count: 0,
                delete_requests: 0,
            });
            out.insert(
                "session".into(),
                json!({"ID": session.id.to_string(), "CHAT_ID": session.chat_id.to_string()}),
            );
        }
        entries.push(Value::Object(out));
    }
    Ok(batch_result(cx, entries))
}

/// Index of the newest live copy of a client message.
fn find(
    st: &PortalState,
    call: &Call,
    chat: &str,
    message: &str,
    user: Option<&str>,
) -> Option<usize> {
    st.messages_with(&call.connector, call.line, chat, message)
        .into_iter()
        .rev()
        .find(|&i| {
            let m = &st.messages[i];
            !m.deleted && user.is_none_or(|u| u == m.user_id)
        })
}

pub(crate) fn update(st: &mut PortalState, cx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let call = prologue(st, cx, p, true)?;
    let mut entries = Vec::new();
    for item in &call.items {
        if !cx.spend(cx.shared.config.item_cost) {
            break;
        }
        let chat = text_at(item, &["chat", "id"]).unwrap_or_default();
        let message = text_at(item, &["message", "id"]).unwrap_or_default();
        let mut errors = Vec::new();
        let found = find(st, &call, &chat, &message, None);
        if let Some(injected) = injected(st, item) {
            errors = injected;
        } else if found.is_none() {
            errors.push("Message not found".to_owned());
        } else if !has_content(item) {
            errors.push("The message has neither text nor files".to_owned());
        }
        if let (true, Some(index)) = (errors.is_empty(), found) {
            let stored = &mut st.messages[index];
            if let Some(text) = text_at(item, &["message", "text"]) {
                stored.text = text;
            }
            if item.pointer("/message/files").is_some() {
                stored.files = files_of(item);
            }
            stored.update_count += 1;
        }
        entries.push(Value::Object(entry(
            st,
            item,
            echo_message(item, false),
            &errors,
        )));
    }
    Ok(batch_result(cx, entries))
}

pub(crate) fn delete(st: &mut PortalState, cx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let call = prologue(st, cx, p, true)?;
    let mut entries = Vec::new();
    for item in &call.items {
        if !cx.spend(cx.shared.config.delete_item_cost) {
            break;
        }
        let user = text_at(item, &["user", "id"]).unwrap_or_default();
        let chat = text_at(item, &["chat", "id"]).unwrap_or_default();
        let message = text_at(item, &["message", "id"]).unwrap_or_default();
        let mut errors = Vec::new();
        for m in st.messages.iter_mut().filter(|m| {
            m.connector == call.connector
                && m.line == call.line
                && m.chat_id == chat
                && m.message_id == message
        }) {
            m.delete_requests += 1;
        }
        // Only the author's own message can be deleted, and only once.
        let found = find(st, &call, &chat, &message, Some(&user));
        if let Some(injected) = injected(st, item) {
            errors = injected;
        } else if found.is_none() {
            errors.push("Message not found".to_owned());
        }
        if let (true, Some(index)) = (errors.is_empty(), found) {
            st.messages[index].deleted = true;
        }
        entries.push(Value::Object(entry(
            st,
            item,
            echo_message(item, false),
            &errors,
        )));
    }
    Ok(batch_result(cx, entries))
}

/// `send.status.delivery` (records external ids for later UPDATE/DELETE events) and
/// `send.status.reading` (a documented stub: validated, then ignored).
pub(crate) fn status(
    st: &mut PortalState,
    cx: &Ctx<'_>,
    p: &Value,
    delivery: bool,
) -> Result<Value, ApiError> {
    params::req_str(p, "CONNECTOR")?;
    params::req_int(p, "LINE")?;
    let items: Vec<Value> = match params::get(p, "MESSAGES") {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        Some(Value::Object(map)) if !map.is_empty() => map.values().cloned().collect(),
        _ => return Err(ApiError::argument("MESSAGES")),
    };
    connector(st, p)?;
    check_cap(cx, items.len())?;
    // Validate everything before recording anything.
    for item in &items {
        if !item.pointer("/message/id").is_some_and(Value::is_array) {
            return Err(ApiError::bad(
                "ERROR_ARGUMENT",
                "The message id (message.id) must be an array of external ids",
            ));
        }
    }
    if delivery {
        for item in items {
            let im_message_id = item
                .pointer("/im/message_id")
                .map(params::int_value)
                .unwrap_or(0);
            let ids = item
                .pointer("/message/id")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let known = st.delivered_ext_ids.entry(im_message_id).or_default();
            for id in ids.iter().filter_map(params::scalar_text) {
                if !known.contains(&id) {
                    known.push(id);
                }
            }
            st.delivery_reports.push(item);
        }
    }
    Ok(json!({"SUCCESS": true, "DATA": []}))
}
