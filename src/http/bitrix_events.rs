//! `POST /bitrix/events` and `POST /bitrix/bot`: every Bitrix24 event (contract §5) and the
//! chat-bot's events. The sender is checked first, from a scan of the raw body before it is
//! decoded (`auth[application_token]` must equal the one stored for `auth[member_id]`, else 401
//! and nothing happens); the event is stored durably before the 200, because Bitrix24 never retries
//! an event; the same body twice is acknowledged and ignored.

use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use super::error::{ApiError, bad_request, unauthorized};
use super::{AppState, body};
use crate::bitrix::auth_scan;
use crate::bitrix::events::{self, BitrixEvent, EventError, OperatorMessage};
use crate::bitrix::form;
use crate::bitrix::operator_files;
use crate::store::operator::{Action, Intake, IntakeOutcome, OperatorKind};
use crate::store::{PortalRecord, PortalStatus};

/// Handle one event.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_form(&req, payload, &state.settings.server).await?;
    // The sender is found by a scan of the raw fields and checked before the body is decoded,
    // so that an unauthenticated body costs one pass over its bytes.
    let sender = auth_scan::sender(&body)
        .ok_or_else(|| unauthorized("missing_auth", EventError::MissingAuth.to_string()))?;
    let portal = authenticate(&state, &sender)?;
    let form = form::decode_bytes(&body).map_err(|e| bad_request("invalid_form", e.to_string()))?;
    if events::sender(&form).as_ref() != Ok(&sender) {
        return Err(unauthorized(
            "missing_auth",
            "auth[member_id] or auth[application_token] is ambiguous",
        ));
    }
    let event = events::parse(&form).map_err(|e| bad_request("invalid_event", e.to_string()))?;
    let name = events::name(&form).unwrap_or_default();
    let action = resolve(&state, &portal, event);
    tracing::info!(portal = %portal.member_id, event = ?name, handler = ?events::handler_id(&form), "Bitrix24 event");
    let intake = Intake {
        digest: Sha256::digest(&body).to_vec(),
        portal: portal.member_id.to_string(),
        action: action.clone(),
        now_ms: state.clock.now_ms(),
    };
    let outcome = state.store.commit(move |d| d.take_event(&intake)).await?;
    if outcome == IntakeOutcome::Duplicate {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "duplicate" })));
    }
    match action {
        Action::LineDisconnected { line, .. } => {
            state.outbox.line_active(&portal.member_id, line, false)
        }
        Action::Uninstalled => {
            state.outbox.portal_uninstalled(&portal.member_id);
            if matches!(
                events::parse(&form),
                Ok(BitrixEvent::AppUninstall { clean: true })
            ) {
                let member = portal.member_id.clone();
                let channels: Vec<String> = state.channels_of_portal(&member);
                let purged = state.store.purge_portal(&member, &channels).await?;
                tracing::info!(portal = %portal.member_id, keys = purged, "uninstalled with CLEAN=1: portal data purged");
            } else {
                tracing::info!(portal = %portal.member_id, "uninstalled: tokens forgotten");
            }
        }
        _ => {}
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
}

/// The portal the event claims to come from, if its application token matches.
fn authenticate(state: &AppState, sender: &events::Sender) -> Result<PortalRecord, ApiError> {
    let refused = || {
        unauthorized(
            "invalid_application_token",
            "unknown portal or wrong application token",
        )
    };
    let portal = state
        .store
        .portal(&sender.member_id)?
        .filter(|p| p.status == PortalStatus::Installed && !p.application_token.is_empty())
        .ok_or_else(refused)?;
    // Comparing digests keeps the comparison's timing independent of the token's content.
    if Sha256::digest(portal.application_token.as_bytes())
        != Sha256::digest(sender.application_token.as_bytes())
    {
        tracing::warn!(portal = ?sender.member_id, "event with a wrong application token refused");
        return Err(refused());
    }
    Ok(portal)
}

/// What an event means given our settings.
fn resolve(state: &AppState, portal: &PortalRecord, event: BitrixEvent) -> Action {
    let ours = |connector: &str| connector.eq_ignore_ascii_case(&state.settings.connector.id);
    let channels_on = |line: u64| -> Vec<String> {
        state
            .settings
            .channels
            .iter()
            .filter(|c| c.portal == portal.member_id && c.line == line)
            .map(|c| c.id.clone())
            .collect()
    };
    let operator = |kind, connector: String, line: u64, messages: Vec<OperatorMessage>| {
        if !ours(&connector) {
            return Action::Ignore;
        }
        let messages = messages
            .into_iter()
            .map(|mut m| {
                let given = m.files.len();
                m.files = operator_files::normalize(&m.files, &portal.client_endpoint);
                if m.files.len() < given {
                    tracing::warn!(portal = %portal.member_id, im_message_id = m.im_message_id, dropped = given - m.files.len(), "operator files without a usable address left out");
                }
                m
            })
            .collect();
        match channels_on(line).into_iter().next() {
            Some(channel) => Action::OperatorMessages {
                kind,
                channel,
                line,
                messages,
            },
            None => {
                tracing::warn!(portal = %portal.member_id, line, "operator message on a line with no channel: ignored");
                Action::Ignore
            }
        }
    };
    match event {
        BitrixEvent::MessageAdd {
            connector,
            line,
            messages,
        } => operator(OperatorKind::Created, connector, line, messages),
        BitrixEvent::MessageUpdate {
            connector,
            line,
            messages,
        } => operator(OperatorKind::Updated, connector, line, messages),
        BitrixEvent::MessageDelete {
            connector,
            line,
            messages,
        } => operator(OperatorKind::Deleted, connector, line, messages),
        BitrixEvent::StatusDelete { connector, line } if ours(&connector) => {
            Action::LineDisconnected {
                channels: channels_on(line),
                line,
                reason: "connector_disabled".into(),
            }
        }
        BitrixEvent::LineDelete { line } => Action::LineDisconnected {
            channels: channels_on(line),
            line,
            reason: "line_deleted".into(),
        },
        BitrixEvent::AppUninstall { .. } => Action::Uninstalled,
        BitrixEvent::BotDelete { bot_id } => Action::BotDeleted { bot_id },
        BitrixEvent::StatusDelete { .. } | BitrixEvent::Other(_) => Action::Ignore,
    }
}
