//! Connector management: `imconnector.register/unregister/list/activate/status/connector.data.set`
//! and `chat.name.set` (fact sheet §5); message methods live in `messages.rs`.

use serde_json::{Map, Value, json};

use super::envelope::ApiError;
use super::rest::{Ctx, method_not_found};
use super::state::{FakeConnector, PortalState};
use super::{messages, params};

/// Connectors every portal has built in (shown by `imconnector.list`, not usable by the app).
const BUILT_IN: &[(&str, &str)] = &[("livechat", "Live Chat"), ("telegrambot", "Telegram")];

pub(crate) fn dispatch(
    st: &mut PortalState,
    cx: &mut Ctx<'_>,
    method: &str,
    p: &Value,
) -> Result<Value, ApiError> {
    match method {
        "imconnector.register" => Ok(register(st, p)),
        "imconnector.unregister" => Ok(unregister(st, p)),
        "imconnector.list" => Ok(list(st)),
        "imconnector.activate" => activate(st, p),
        "imconnector.status" => status(st, p),
        "imconnector.connector.data.set" => data_set(st, p),
        "imconnector.chat.name.set" => chat_name_set(st, p),
        "imconnector.send.messages" => messages::send(st, cx, p),
        "imconnector.update.messages" => messages::update(st, cx, p),
        "imconnector.delete.messages" => messages::delete(st, cx, p),
        "imconnector.send.status.delivery" => messages::status(st, cx, p, true),
        "imconnector.send.status.reading" => messages::status(st, cx, p, false),
        _ => Err(method_not_found()),
    }
}

/// HTTP 200 logical failure of register/unregister (§5.1, §5.5).
fn logical_failure(code: &str, description: &str) -> Value {
    json!({"result": false, "error": code, "error_description": description})
}

fn register(st: &mut PortalState, p: &Value) -> Value {
    let Some(id) = params::opt_str(p, "ID").map(|id| id.to_lowercase()) else {
        return logical_failure("CONNECTOR_ID_REQUIRED", "Connector ID is required");
    };
    if id.contains('.') {
        return logical_failure(
            "APPLICATION_REGISTRATION_ERROR_POINT",
            "The connector ID must not contain a dot",
        );
    }
    let Some(name) = params::opt_str(p, "NAME") else {
        return logical_failure("NAME_REQUIRED", "Connector name is required");
    };
    let icon = params::get(p, "ICON").cloned().unwrap_or(Value::Null);
    if params::text_at(&icon, &["DATA_IMAGE"]).is_none() {
        return logical_failure(
            "ICON_REQUIRED",
            "Connector icon (ICON[DATA_IMAGE]) is required",
        );
    }
    let Some(placement_handler) = params::opt_str(p, "PLACEMENT_HANDLER") else {
        return logical_failure("NO_PLACEMENT_HANDLER", "PLACEMENT_HANDLER is required");
    };
    // The same ID again updates the connector (also the way to change PLACEMENT_HANDLER).
    let entry = st
        .connectors
        .entry(id.clone())
        .or_insert_with(|| FakeConnector {
            id,
            name: String::new(),
            placement_handler: String::new(),
            icon: Value::Null,
            register_count: 0,
        });
    entry.name = name;
    entry.placement_handler = placement_handler;
    entry.icon = icon;
    entry.register_count += 1;
    json!({"result": true})
}

fn unregister(st: &mut PortalState, p: &Value) -> Value {
    let Some(id) = params::opt_str(p, "ID").map(|id| id.to_lowercase()) else {
        return logical_failure("CONNECTOR_ID_REQUIRED", "Connector ID is required");
    };
    if st.connectors.remove(&id).is_none() {
        return logical_failure(
            "APPLICATION_UNREGISTRATION_ERROR",
            "Failed to unregister the connector",
        );
    }
    st.lines.retain(|(connector, _), _| *connector != id);
    json!({"result": true})
}

fn list(st: &PortalState) -> Value {
    let mut out = Map::new();
    for (id, name) in BUILT_IN {
        out.insert((*id).into(), json!(name));
    }
    for connector in st.connectors.values() {
        out.insert(connector.id.clone(), json!(connector.name));
    }
    Value::Object(out)
}

/// Required `CONNECTOR` (lowercased) that must be registered by the app.
pub(crate) fn connector(st: &PortalState, p: &Value) -> Result<String, ApiError> {
    let id = params::req_str(p, "CONNECTOR")?.to_lowercase();
    if !st.connectors.contains_key(&id) {
        return Err(ApiError::bad(
            "IMCONNECTOR_NO_CORRECT_PROVIDER",
            "Incorrect connector provider",
        ));
    }
    Ok(id)
}

/// 400 `NOT_ACTIVE_LINE` unless the connector is active on the line.
pub(crate) fn require_active(st: &PortalState, connector: &str, line: u64) -> Result<(), ApiError> {
    match st.lines.get(&(connector.to_owned(), line)) {
        Some(state) if state.active => Ok(()),
        _ => Err(ApiError::bad(
            "NOT_ACTIVE_LINE",
            "The connector is not active on this line",
        )),
    }
}

fn activate(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    params::req_str(p, "CONNECTOR")?;
    let line = params::req_int(p, "LINE")?;
    // ACTIVE must be present; an empty value, 0 or N means "disable" (§5.2 — there is no deactivate).
    let active = params::get(p, "ACTIVE").ok_or_else(|| ApiError::argument("ACTIVE"))?;
    let enable = match active {
        Value::Bool(b) => *b,
        other => params::scalar_text(other).is_some_and(|s| {
            !s.trim().is_empty() && s.trim() != "0" && !s.trim().eq_ignore_ascii_case("N")
        }),
    };
    let connector = connector(st, p)?;
    let line_state = st.lines.entry((connector, line)).or_default();
    line_state.active = enable;
    line_state.activate_calls += 1;
    Ok(json!(true))
}

fn status(st: &PortalState, p: &Value) -> Result<Value, ApiError> {
    let connector = connector(st, p)?;
    let line = params::int(p, "LINE");
    let state = st
        .lines
        .get(&(connector.clone(), line))
        .cloned()
        .unwrap_or_default();
    Ok(json!({
        "LINE": line, "CONNECTOR": connector, "ERROR": false,
        "CONFIGURED": state.active, "STATUS": state.active && state.data.is_some()
    }))
}

fn data_set(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    params::req_str(p, "CONNECTOR")?;
    let line = params::req_int(p, "LINE")?;
    let data = params::get(p, "DATA")
        .filter(|d| d.as_object().is_some_and(|m| !m.is_empty()))
        .cloned()
        .ok_or_else(|| ApiError::argument("DATA"))?;
    let connector = connector(st, p)?;
    // Written as a whole: no partial update.
    st.lines.entry((connector, line)).or_default().data = Some(data);
    Ok(json!(true))
}

fn chat_name_set(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    params::req_str(p, "CONNECTOR")?;
    let line = params::req_int(p, "LINE")?;
    params::req_str(p, "CHAT_ID")?;
    params::req_str(p, "NAME")?;
    let connector = connector(st, p)?;
    require_active(st, &connector, line)?;
    Ok(json!({"SUCCESS": true, "DATA": {"RESULT": {}}}))
}
