//! `POST /bitrix/install`: the install handler (fact sheet §3.4). Accepts the form-encoded
//! `ONAPPINSTALL` event and the install-page POST, and stores the portal with its tokens.
//!
//! Authenticity: Bitrix24 signs nothing. A portal that is already installed can only be
//! replaced by an install carrying the same `application_token`, or one whose refresh token
//! the OAuth server confirms belongs to that member_id (a genuine reinstall whose uninstall
//! event was lost). A first install is taken as it comes.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::error::{ApiError, bad_request, unauthorized};
use super::{AppState, body};
use crate::bitrix::form;
use crate::domain::now_ms;
use crate::store::{PortalRecord, PortalStatus};

/// Handle an install.
pub async fn install(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_form(&req, payload, &state.settings.server).await?;
    let form = form::decode_bytes(&body).map_err(|e| bad_request("invalid_form", e.to_string()))?;
    let query =
        form::decode(req.query_string()).map_err(|e| bad_request("invalid_form", e.to_string()))?;
    let (mut portal, page) = parse(&form, &query)?;
    if let Some(existing) = state.store.portal(&portal.member_id)? {
        let same_app = existing.application_token == portal.application_token;
        if existing.status == PortalStatus::Installed && !same_app {
            confirm_with_oauth(&state, &mut portal).await?;
        }
    }
    tracing::info!(portal = %portal.member_id, domain = ?portal.domain, "app installed");
    let member_id = portal.member_id.clone();
    let record = portal.clone();
    state.store.commit(move |d| d.put_portal(&record)).await?;
    state.outbox.portal_installed(&member_id);
    Ok(if page {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(INSTALL_PAGE)
    } else {
        HttpResponse::Ok()
            .json(serde_json::json!({ "status": "installed", "member_id": member_id }))
    })
}

/// Ask the OAuth server whose refresh token this is; keep the fresh tokens it returns.
async fn confirm_with_oauth(state: &AppState, portal: &mut PortalRecord) -> Result<(), ApiError> {
    let refused = || {
        unauthorized(
            "install_not_verified",
            "the portal is installed with another application token and the OAuth server did not confirm this install",
        )
    };
    let tokens = state
        .client
        .exchange_refresh_token(&portal.refresh_token)
        .await
        .map_err(|e| {
            tracing::warn!(portal = %portal.member_id, error = %e, "install for an installed portal not confirmed");
            refused()
        })?;
    if tokens.member_id.as_deref() != Some(portal.member_id.as_str()) {
        return Err(refused());
    }
    portal.expires_at = tokens.expires_at((now_ms() / 1000) as i64);
    portal.access_token = tokens.access_token;
    portal.refresh_token = tokens.refresh_token;
    Ok(())
}

/// The portal record from either install shape, and whether it was the install page.
fn parse(form: &Value, query: &Value) -> Result<(PortalRecord, bool), ApiError> {
    let empty = Map::new();
    let form = form.as_object().unwrap_or(&empty);
    let query = query.as_object().unwrap_or(&empty);
    let now = now_ms();
    let now_secs = (now / 1000) as i64;
    if form
        .get("event")
        .and_then(Value::as_str)
        .is_some_and(|e| e.eq_ignore_ascii_case("ONAPPINSTALL"))
    {
        let auth = form
            .get("auth")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let client_endpoint = required(auth, "auth[client_endpoint]", "client_endpoint")?;
        let portal = PortalRecord {
            member_id: member_id(required(auth, "auth[member_id]", "member_id")?)?,
            domain: required(auth, "auth[domain]", "domain")?,
            client_endpoint: endpoint(client_endpoint)?,
            access_token: required(auth, "auth[access_token]", "access_token")?,
            refresh_token: required(auth, "auth[refresh_token]", "refresh_token")?,
            expires_at: now_secs + seconds(auth.get("expires_in")).unwrap_or(3600),
            application_token: required(auth, "auth[application_token]", "application_token")?,
            scope: optional(auth, "scope"),
            status: PortalStatus::Installed,
            installed_at_ms: now,
            updated_at_ms: now,
            setup_at_ms: None,
            bot_id: None,
        };
        return Ok((portal, false));
    }
    let domain = required(query, "DOMAIN (query)", "DOMAIN")?;
    let scheme = if optional(query, "PROTOCOL") == "0" {
        "http"
    } else {
        "https"
    };
    let portal = PortalRecord {
        member_id: member_id(required(form, "member_id", "member_id")?)?,
        client_endpoint: endpoint(format!("{scheme}://{domain}/rest/"))?,
        domain,
        access_token: required(form, "AUTH_ID", "AUTH_ID")?,
        refresh_token: required(form, "REFRESH_ID", "REFRESH_ID")?,
        expires_at: now_secs + seconds(form.get("AUTH_EXPIRES")).unwrap_or(3600),
        application_token: required(form, "APPLICATION_TOKEN", "APPLICATION_TOKEN")?,
        scope: optional(form, "APPLICATION_SCOPE"),
        status: PortalStatus::Installed,
        installed_at_ms: now,
        updated_at_ms: now,
        setup_at_ms: None,
        bot_id: None,
    };
    Ok((portal, true))
}

fn required(map: &Map<String, Value>, name: &str, key: &str) -> Result<String, ApiError> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| bad_request("missing_field", format!("{name} is required")))
}

fn optional(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn seconds(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

fn member_id(id: String) -> Result<String, ApiError> {
    if id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(bad_request(
            "invalid_field",
            "member_id must be alphanumeric",
        ))
    }
}

fn endpoint(url: String) -> Result<String, ApiError> {
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(url),
        _ => Err(bad_request(
            "invalid_field",
            "client_endpoint must be an http(s) URL",
        )),
    }
}

/// What Bitrix24 shows in the install frame: the app tells the portal it is installed.
const INSTALL_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Open Channel Gateway</title>
<script src="https://api.bitrix24.com/api/v1/"></script></head>
<body><p>Open Channel Gateway is installed.</p>
<script>if (window.BX24) { BX24.init(function () { BX24.installFinish(); }); }</script>
</body></html>"#;
