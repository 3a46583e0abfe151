//! The operator side: messages going out to clients through the connector, line/app lifecycle events.
//!
//! Each action updates the state under the lock, then POSTs the Bitrix24 event (form-encoded) to the
//! handlers bound with `event.bind`, exactly once: Bitrix24 does not retry (§4.2).

use serde_json::{Value, json};

use super::FakePortal;
use super::events::{self, Emission, EmitResult};
use super::files::{self, FakeFile};
use super::state::{ChatTarget, OPERATOR_USER_ID, Outbound, PortalState};

/// Record an outgoing message and build its ONIMCONNECTORMESSAGEADD (§6.1).
pub(crate) fn outbound_add(
    st: &mut PortalState,
    target: ChatTarget,
    im_chat_id: u64,
    im_message_id: u64,
    author_id: u64,
    text: &str,
) -> Emission {
    let data = json!({
        "CONNECTOR": target.connector,
        "LINE": target.line,
        "MESSAGES": [{
            "im": {"chat_id": im_chat_id, "message_id": im_message_id},
            "message": {"user_id": author_id, "text": text},
            "chat": {"id": target.ext_chat_id},
        }],
    });
    st.outbound
        .insert(im_message_id, Outbound { target, im_chat_id });
    Emission {
        event: "ONIMCONNECTORMESSAGEADD",
        data,
        with_tokens: true,
    }
}

/// ONIMCONNECTORMESSAGEUPDATE (§6.2): `message.id` is the ARRAY of external ids the gateway reported
/// through `send.status.delivery` (empty, hence absent on the wire, if it never reported any).
pub(crate) fn outbound_update(
    st: &mut PortalState,
    im_message_id: u64,
    text: &str,
) -> Option<Emission> {
    let ids = st
        .delivered_ext_ids
        .get(&im_message_id)
        .cloned()
        .unwrap_or_default();
    let out = st.outbound.get(&im_message_id)?;
    let data = outbound_data(out, im_message_id, json!({"id": ids, "text": text}));
    Some(Emission {
        event: "ONIMCONNECTORMESSAGEUPDATE",
        data,
        with_tokens: true,
    })
}

/// ONIMCONNECTORMESSAGEDELETE (§6.3): here `message.id` is a STRING (the first reported external id).
pub(crate) fn outbound_delete(st: &mut PortalState, im_message_id: u64) -> Option<Emission> {
    let first = st
        .delivered_ext_ids
        .get(&im_message_id)
        .and_then(|ids| ids.first().cloned())
        .unwrap_or_default();
    let out = st.outbound.get(&im_message_id)?;
    let data = outbound_data(out, im_message_id, json!({"id": first}));
    Some(Emission {
        event: "ONIMCONNECTORMESSAGEDELETE",
        data,
        with_tokens: true,
    })
}

fn outbound_data(out: &Outbound, im_message_id: u64, message: Value) -> Value {
    json!({
        "CONNECTOR": out.target.connector,
        "LINE": out.target.line,
        "MESSAGES": [{
            "im": {"chat_id": out.im_chat_id, "message_id": im_message_id},
            "message": message,
            "chat": {"id": out.target.ext_chat_id},
        }],
    })
}

impl FakePortal {
    async fn send(
        &self,
        emission: Option<Emission>,
        im_chat_id: u64,
        im_message_id: u64,
    ) -> EmitResult {
        let Some(emission) = emission else {
            return EmitResult::undelivered("unknown message or line");
        };
        let mut result = events::emit(&self.shared, &emission).await;
        result.im_chat_id = im_chat_id;
        result.im_message_id = im_message_id;
        result
    }

    /// An operator writes `text` in the open-line chat of external chat `chat_id` on `line`
    /// (ONIMCONNECTORMESSAGEADD). The text is sent verbatim (no `[b]Name:[/b]` signature), and the
    /// session is created if the client never wrote.
    pub async fn operator_message(&self, line: u64, chat_id: &str, text: &str) -> EmitResult {
        self.operator_message_with_files(line, chat_id, text, &[])
            .await
    }

    /// [`FakePortal::operator_message`] with attachments, described as Bitrix24 does
    /// (`message.files[j]`: `id`, `name`, `type`, `size`, `mime`, a portal-relative
    /// `downloadLink` and, when asked, an absolute `link`); their bytes are served at
    /// `/rest/download.json?token=…`.
    pub async fn operator_message_with_files(
        &self,
        line: u64,
        chat_id: &str,
        text: &str,
        files: &[FakeFile],
    ) -> EmitResult {
        let (emission, im_chat_id, im_message_id) = {
            let mut st = self.shared.lock();
            let existing = st
                .sessions
                .keys()
                .find(|t| t.line == line && t.ext_chat_id == chat_id);
            let connector = existing
                .map(|t| t.connector.clone())
                .or_else(|| st.connector_for_line(line));
            let Some(connector) = connector else {
                return EmitResult::undelivered("no connector is registered");
            };
            let target = ChatTarget {
                connector,
                line,
                ext_chat_id: chat_id.to_owned(),
            };
            let session = st.session(&target);
            let id = st.next_message_id();
            let mut emission =
                outbound_add(&mut st, target, session.chat_id, id, OPERATOR_USER_ID, text);
            if !files.is_empty() {
                emission.data["MESSAGES"][0]["message"]["files"] =
                    files::describe(&mut st, &self.shared.url, files);
            }
            (emission, session.chat_id, id)
        };
        self.send(Some(emission), im_chat_id, im_message_id).await
    }

    /// The operator edits an outgoing message (ONIMCONNECTORMESSAGEUPDATE).
    pub async fn operator_edit(&self, im_message_id: u64, text: &str) -> EmitResult {
        let (emission, chat) = {
            let mut st = self.shared.lock();
            let chat = st
                .outbound
                .get(&im_message_id)
                .map(|o| o.im_chat_id)
                .unwrap_or(0);
            (outbound_update(&mut st, im_message_id, text), chat)
        };
        self.send(emission, chat, im_message_id).await
    }

    /// The operator deletes an outgoing message (ONIMCONNECTORMESSAGEDELETE).
    pub async fn operator_delete(&self, im_message_id: u64) -> EmitResult {
        let (emission, chat) = {
            let mut st = self.shared.lock();
            let chat = st
                .outbound
                .get(&im_message_id)
                .map(|o| o.im_chat_id)
                .unwrap_or(0);
            (outbound_delete(&mut st, im_message_id), chat)
        };
        self.send(emission, chat, im_message_id).await
    }

    /// The client disables the connector on `line` (ONIMCONNECTORSTATUSDELETE, lowercase
    /// `data[connector]`, `data[line]`); the line becomes inactive.
    pub async fn disconnect_line(&self, line: u64) -> EmitResult {
        let emission = {
            let mut st = self.shared.lock();
            st.connector_for_line(line).map(|connector| {
                if let Some(state) = st.lines.get_mut(&(connector.clone(), line)) {
                    state.active = false;
                }
                let data = json!({"connector": connector, "line": line});
                Emission {
                    event: "ONIMCONNECTORSTATUSDELETE",
                    data,
                    with_tokens: true,
                }
            })
        };
        self.send(emission, 0, 0).await
    }

    /// The open line is deleted (ONIMCONNECTORLINEDELETE with a bare `data=<line>`).
    pub async fn delete_line(&self, line: u64) -> EmitResult {
        self.shared.lock().lines.retain(|(_, l), _| *l != line);
        let emission = Emission {
            event: "ONIMCONNECTORLINEDELETE",
            data: json!(line),
            with_tokens: true,
        };
        self.send(Some(emission), 0, 0).await
    }

    /// The app is uninstalled: all tokens are revoked (→ 401 `NO_AUTH_FOUND`), the app's connectors,
    /// lines, bots and event bindings are deleted, then ONAPPUNINSTALL (`data[LANGUAGE_ID]`,
    /// `data[CLEAN]` = 1|0, `auth` without tokens) goes to the handler(s) that were bound for it.
    pub async fn uninstall(&self, clean: bool) -> EmitResult {
        let prepared = {
            let mut st = self.shared.lock();
            st.access_tokens.clear();
            st.refresh_tokens.clear();
            let data = json!({"LANGUAGE_ID": "en", "CLEAN": if clean { "1" } else { "0" }});
            let emission = Emission {
                event: "ONAPPUNINSTALL",
                data,
                with_tokens: false,
            };
            let prepared = events::prepare(&self.shared, &mut st, &emission);
            st.connectors.clear();
            st.lines.clear();
            st.bots.clear();
            st.bindings.clear();
            prepared
        };
        events::deliver(&self.shared, prepared).await
    }

    /// POST an arbitrary form body to `handler` (forged or replayed events).
    pub async fn post_event_raw(&self, handler: &str, form: &str) -> EmitResult {
        events::post(&self.shared, handler, form.to_owned()).await
    }
}
