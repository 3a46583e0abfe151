//! `event.bind` / `event.get` / `event.unbind` and the emitter that POSTs form-encoded events (§4).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::envelope::{ApiError, unix_secs};
use super::state::{FakeBinding, OPERATOR_USER_ID, PortalState};
use super::{Shared, params};
use crate::form;

/// Events `event.bind` accepts: the ones the gateway uses plus install/uninstall.
pub(crate) const KNOWN_EVENTS: &[&str] = &[
    "ONIMCONNECTORMESSAGEADD",
    "ONIMCONNECTORMESSAGEUPDATE",
    "ONIMCONNECTORMESSAGEDELETE",
    "ONIMCONNECTORSTATUSDELETE",
    "ONIMCONNECTORLINEDELETE",
    "ONAPPINSTALL",
    "ONAPPUPDATE",
    "ONAPPUNINSTALL",
];

/// Outcome of delivering one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitResult {
    /// HTTP status the handler answered; `None` when no handler is bound or the connection failed.
    pub status: Option<u16>,
    /// Open-line chat id the event was about (0 when not applicable).
    pub im_chat_id: u64,
    /// IM message id the event was about (0 when not applicable).
    pub im_message_id: u64,
    /// Response body of the handler (or the reason nothing was delivered).
    pub body: String,
}

impl EmitResult {
    pub(crate) fn undelivered(reason: impl Into<String>) -> Self {
        EmitResult {
            status: None,
            im_chat_id: 0,
            im_message_id: 0,
            body: reason.into(),
        }
    }
}

/// An event waiting to be sent (built under the state lock, sent after it is released).
#[derive(Debug, Clone)]
pub(crate) struct Emission {
    pub event: &'static str,
    pub data: Value,
    /// Whether `auth` carries an access token (every event but `ONAPPUNINSTALL`).
    pub with_tokens: bool,
}

pub(crate) fn bind(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let event = params::req_str(p, "event")?.to_ascii_uppercase();
    let handler = params::req_str(p, "handler")?;
    if !KNOWN_EVENTS.contains(&event.as_str()) {
        return Err(ApiError::bad(
            "ERROR_EVENT_NOT_FOUND",
            format!("Event not found: {event}"),
        ));
    }
    // Undocumented in Bitrix24 (§4.1 GAP); the real portal answers this for a repeated pair.
    if st
        .bindings
        .iter()
        .any(|(_, b)| b.event == event && b.handler == handler)
    {
        return Err(ApiError::bad("ERROR_CORE", "Handler already binded"));
    }
    let id = st.next_binding_id();
    st.bindings.push((id, FakeBinding { event, handler }));
    Ok(json!(true))
}

pub(crate) fn get(st: &PortalState) -> Value {
    st.bindings
        .iter()
        .map(|(_, b)| json!({"event": b.event, "handler": b.handler, "auth_type": "0", "offline": 0}))
        .collect()
}

/// Removes the bindings matching the given `event` and/or `handler` (no parameters: all of them).
pub(crate) fn unbind(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let event = params::opt_str(p, "event").map(|e| e.to_ascii_uppercase());
    let handler = params::opt_str(p, "handler");
    let before = st.bindings.len();
    st.bindings.retain(|(_, b)| {
        let hit = event.as_ref().is_none_or(|e| *e == b.event)
            && handler.as_ref().is_none_or(|h| *h == b.handler);
        !hit
    });
    Ok(json!({"count": before - st.bindings.len()}))
}

/// The `auth` block of an event (§4.3). With tokens, a fresh operator token is minted for it.
pub(crate) fn auth_block(
    shared: &Shared,
    st: &mut PortalState,
    with_tokens: bool,
) -> Map<String, Value> {
    let mut auth = Map::new();
    if with_tokens {
        let ttl = shared.config.access_token_ttl;
        let token = st.mint_access_token(ttl);
        auth.insert("access_token".into(), json!(token));
        auth.insert(
            "expires".into(),
            json!(unix_secs(SystemTime::now() + ttl).to_string()),
        );
        auth.insert("expires_in".into(), json!(ttl.as_secs().to_string()));
        auth.insert("scope".into(), json!(super::SCOPE));
    }
    auth.insert("domain".into(), json!(shared.domain));
    auth.insert("server_endpoint".into(), json!(shared.server_endpoint()));
    if with_tokens {
        auth.insert("status".into(), json!("L"));
    }
    auth.insert("client_endpoint".into(), json!(shared.client_endpoint()));
    auth.insert("member_id".into(), json!(shared.config.member_id));
    if with_tokens {
        auth.insert("user_id".into(), json!(OPERATOR_USER_ID.to_string()));
    }
    auth.insert("application_token".into(), json!(shared.application_token));
    auth
}

/// Build the form bodies of `emission` for every handler bound for its event (under the state lock).
pub(crate) fn prepare(shared: &Shared, st: &mut PortalState, emission: &Emission) -> Prepared {
    let handlers: Vec<(u64, String)> = st
        .bindings
        .iter()
        .filter(|(_, b)| b.event == emission.event)
        .map(|(id, b)| (*id, b.handler.clone()))
        .collect();
    let bodies = handlers
        .into_iter()
        .map(|(id, handler)| {
            let auth = auth_block(shared, st, emission.with_tokens);
            let event = json!({
                "event": emission.event,
                "event_handler_id": id.to_string(),
                "data": emission.data,
                "ts": unix_secs(SystemTime::now()).to_string(),
                "auth": auth,
            });
            (handler, form::encode(&event))
        })
        .collect();
    Prepared {
        event: emission.event,
        bodies,
    }
}

/// Form bodies ready to be POSTed, one per bound handler.
pub(crate) struct Prepared {
    event: &'static str,
    bodies: Vec<(String, String)>,
}

/// POST prepared bodies in binding order. The result is the first handler's.
pub(crate) async fn deliver(shared: &Shared, prepared: Prepared) -> EmitResult {
    let mut first = None;
    for (handler, body) in prepared.bodies {
        let result = post(shared, &handler, body).await;
        first.get_or_insert(result);
    }
    first.unwrap_or_else(|| {
        EmitResult::undelivered(format!("no handler bound for {}", prepared.event))
    })
}

/// Deliver `emission` to every handler bound for its event.
pub(crate) async fn emit(shared: &Shared, emission: &Emission) -> EmitResult {
    let prepared = {
        let mut st = shared.lock();
        prepare(shared, &mut st, emission)
    };
    deliver(shared, prepared).await
}

/// Fire-and-forget delivery of events caused by REST calls (Bitrix24 sends them from a queue).
pub(crate) fn spawn_all(shared: Arc<Shared>, emissions: Vec<Emission>) {
    if emissions.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for emission in emissions {
            let result = emit(&shared, &emission).await;
            tracing::debug!(event = emission.event, status = ?result.status, "fake portal event delivered");
        }
    });
}

/// One form POST. No retries: Bitrix24 does not retry either (§4.2).
pub(crate) async fn post(shared: &Shared, handler: &str, form_body: String) -> EmitResult {
    let sent = shared
        .http
        .post(handler)
        .header("content-type", "application/x-www-form-urlencoded")
        .timeout(Duration::from_secs(30))
        .body(form_body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            EmitResult {
                status: Some(status),
                im_chat_id: 0,
                im_message_id: 0,
                body,
            }
        }
        Err(err) => EmitResult::undelivered(format!("POST {handler} failed: {err}")),
    }
}
