//! `POST /bitrix/placement`: the connector settings page Bitrix24 opens in its frame
//! (placement `SETTING_CONNECTOR`, fact sheet §5.1), and `POST /bitrix/placement/action`, its
//! activate / deactivate buttons (`imconnector.activate` with `ACTIVE` 1 / 0, §5.2).
//!
//! The page proves who asks before anything is read from or done to the portal: `member_id`
//! names an installed portal that accepts `AUTH_ID` (an `app.info` call with that token at the
//! portal's stored address), and `APPLICATION_TOKEN` matches when present. The page carries no
//! token: its action forms carry a CSRF token (`csrf.rs`, bound to the portal, line and action,
//! valid 15 minutes) that only a page served after those checks has, and must come from our
//! own origin.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::csrf::{self, Action, Claims, CsrfError};
use super::error::{ApiError, bad_request, forbidden};
use super::placement_page;
use super::placement_view::{ActionForm, LineState, Notice, View};
use super::{AppState, body, placement_auth};
use crate::bitrix::{BitrixError, form};
use crate::settings::ChannelSettings;
use crate::store::PortalRecord;

/// The only placement this page serves.
const PLACEMENT: &str = "SETTING_CONNECTOR";

/// Render the settings page for the line in `PLACEMENT_OPTIONS`.
pub async fn page(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let form = read_form(&req, payload, &state).await?;
    let portal = placement_auth::authenticate(&state, &form).await?;
    let line = placement_line(&form, &state.settings.connector.id)?;
    let notice = portal.needs_reinstall.as_ref().map(|reason| {
        Notice::error(format!(
            "Bitrix24 revoked this gateway's access to the portal ({reason}): messages are held \
             until an administrator reinstalls the application."
        ))
    });
    render(&state, &portal, line, notice).await
}

/// Activate or deactivate the connector on a line, then render the page again.
pub async fn action(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    placement_auth::check_origin(&req, state.settings.public_base())?;
    let form = read_form(&req, payload, &state).await?;
    let bad = |what: &str| bad_request("invalid_field", format!("{what} is missing or invalid"));
    let action = Action::parse(&text(&form, "action")).ok_or_else(|| bad("action"))?;
    let line = positive(&text(&form, "line")).ok_or_else(|| bad("line"))?;
    let expires = text(&form, "expires").parse().map_err(|_| bad("expires"))?;
    let member_id = text(&form, "member_id");
    let claims = Claims {
        member_id: &member_id,
        line,
        action,
        expires,
    };
    let key = state.store.placement_key()?;
    csrf::verify(&key, &claims, &text(&form, "csrf"), state.clock.now_secs()).map_err(
        |e| match e {
            CsrfError::Invalid => forbidden("csrf_invalid", e.to_string()),
            CsrfError::Expired => forbidden("csrf_expired", e.to_string()),
        },
    )?;
    let portal = state
        .store
        .portal(&member_id)?
        .filter(|p| p.status == crate::store::PortalStatus::Installed)
        .ok_or_else(|| {
            super::error::unauthorized("not_installed", "member_id is not an installed portal")
        })?;
    let notice = perform(&state, &portal, line, action).await;
    render(&state, &portal, line, Some(notice)).await
}

async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Map<String, Value>, ApiError> {
    let body = body::read_form(req, payload, &state.settings.server).await?;
    match form::decode_bytes(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(bad_request("invalid_form", e.to_string())),
    }
}

/// A top-level text field, or "" when absent or not text.
pub(super) fn text(form: &Map<String, Value>, key: &str) -> String {
    form.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn positive(s: &str) -> Option<u64> {
    s.trim().parse().ok().filter(|&n| n > 0)
}

/// `PLACEMENT` must be ours and `PLACEMENT_OPTIONS` (a JSON string) must name our connector
/// and a line (`LINE` arrives as a string; a number is accepted too).
fn placement_line(form: &Map<String, Value>, connector_id: &str) -> Result<u64, ApiError> {
    let placement = text(form, "PLACEMENT");
    if placement != PLACEMENT {
        return Err(bad_request(
            "wrong_placement",
            format!("PLACEMENT must be {PLACEMENT}, not {placement:?}"),
        ));
    }
    let options: Value = serde_json::from_str(&text(form, "PLACEMENT_OPTIONS"))
        .map_err(|_| bad_request("invalid_field", "PLACEMENT_OPTIONS is not a JSON object"))?;
    let connector = options
        .get("CONNECTOR")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !connector.eq_ignore_ascii_case(connector_id) {
        return Err(bad_request(
            "foreign_connector",
            format!("this page configures connector {connector_id:?}, not {connector:?}"),
        ));
    }
    let line = match options.get("LINE") {
        Some(Value::String(s)) => positive(s),
        Some(Value::Number(n)) => n.as_u64().filter(|&n| n > 0),
        _ => None,
    };
    line.ok_or_else(|| bad_request("invalid_field", "PLACEMENT_OPTIONS.LINE is not a line id"))
}

/// The channels of our settings bound to this portal and line.
fn channels_of<'a>(state: &'a AppState, member_id: &str, line: u64) -> Vec<&'a ChannelSettings> {
    state
        .settings
        .channels
        .iter()
        .filter(|c| c.portal == member_id && c.line == line)
        .collect()
}

/// Do `action` with the portal's stored token; the outcome is told on the page.
async fn perform(state: &AppState, portal: &PortalRecord, line: u64, action: Action) -> Notice {
    let member = &portal.member_id;
    let connector = &state.settings.connector.id;
    let channels = channels_of(state, member, line);
    if action == Action::Activate && channels.is_empty() {
        return Notice::error(format!(
            "Not activated: no channel of this gateway is configured for line {line}."
        ));
    }
    let active = u8::from(action == Action::Activate);
    let params = json!({ "CONNECTOR": connector, "LINE": line, "ACTIVE": active });
    let mut result = state
        .client
        .call(member, "imconnector.activate", params)
        .await;
    if let (Ok(_), Some(channel)) = (&result, channels.first())
        && action == Action::Activate
    {
        let params = crate::setup::data_set_params(&state.settings, channel);
        result = state
            .client
            .call(member, "imconnector.connector.data.set", params)
            .await;
    }
    match result {
        Ok(_) => {
            tracing::info!(portal = %member, line, action = action.as_str(), "connector changed from the settings page");
            Notice::success(match action {
                Action::Activate => format!("The connector is now active on line {line}."),
                Action::Deactivate => format!("The connector is now inactive on line {line}."),
            })
        }
        Err(e) => {
            tracing::warn!(portal = %member, line, action = action.as_str(), error = %e, "settings page action failed");
            Notice::error(format!(
                "Bitrix24 did not accept the change: {}",
                describe(&e)
            ))
        }
    }
}

/// A failure as told to the page's user (no URLs, no tokens).
fn describe(e: &BitrixError) -> String {
    match e {
        BitrixError::Api {
            code, description, ..
        } if description.is_empty() => code.clone(),
        BitrixError::Api {
            code, description, ..
        } => format!("{code} ({description})"),
        BitrixError::Timeout | BitrixError::Transport(_) => "the portal did not answer".into(),
        // Never the reply's own text: it is not ours to show (contract §5).
        BitrixError::Decode { status, .. } => {
            format!("unexpected reply from the portal (HTTP {status})")
        }
        other => other.to_string(),
    }
}

/// Read the line's state and build the page, with fresh CSRF tokens in its forms.
async fn render(
    state: &AppState,
    portal: &PortalRecord,
    line: u64,
    notice: Option<Notice>,
) -> Result<HttpResponse, ApiError> {
    let key = state.store.placement_key()?;
    let connector = &state.settings.connector.id;
    let status = state
        .client
        .call(
            &portal.member_id,
            "imconnector.status",
            json!({ "CONNECTOR": connector, "LINE": line }),
        )
        .await;
    let line_state = match status {
        Ok(v) => LineState::from_status(&v),
        Err(e) => LineState::Unknown(describe(&e)),
    };
    let channels: Vec<(String, String)> = channels_of(state, &portal.member_id, line)
        .into_iter()
        .map(|c| {
            let host = match (&c.telegram, &c.outbound_url) {
                (Some(_), _) => "Telegram Bot API".to_string(),
                (None, Some(url)) => placement_page::host_of(url),
                (None, None) => String::new(),
            };
            (c.id.clone(), host)
        })
        .collect();
    let mut actions = match line_state.active() {
        Some(true) => vec![Action::Deactivate],
        Some(false) => vec![Action::Activate],
        None => vec![Action::Activate, Action::Deactivate],
    };
    if channels.is_empty() {
        actions.retain(|a| *a != Action::Activate);
    }
    let expires = state.clock.now_secs() + csrf::TTL_SECS;
    let forms = actions
        .into_iter()
        .map(|action| {
            let claims = Claims {
                member_id: &portal.member_id,
                line,
                action,
                expires,
            };
            ActionForm {
                action,
                fields: vec![
                    ("member_id", portal.member_id.to_string()),
                    ("line", line.to_string()),
                    ("action", action.as_str().to_string()),
                    ("expires", expires.to_string()),
                    ("csrf", csrf::sign(&key, &claims)),
                ],
            }
        })
        .collect();
    let view = View {
        connector_name: state.settings.connector.name.clone(),
        connector_id: connector.clone(),
        portal_domain: portal.domain.clone(),
        member_id: portal.member_id.to_string(),
        line,
        state: line_state,
        channels,
        notice,
        forms,
        action_url: format!("{}/bitrix/placement/action", state.settings.public_base()),
    };
    Ok(placement_page::respond(&view, &portal.client_endpoint))
}
