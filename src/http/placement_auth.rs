//! Who may use the settings page: the caller checks of `POST /bitrix/placement` (an installed
//! portal, an `AUTH_ID` that portal accepts at its stored, verified address, and
//! `APPLICATION_TOKEN` when the request carries one) and the action's Origin check.

use actix_web::HttpRequest;
use serde_json::{Map, Value, json};

use super::AppState;
use super::csrf;
use super::error::{ApiError, forbidden, unauthorized};
use super::placement::text;
use crate::bitrix::BitrixError;
use crate::store::{PortalRecord, PortalStatus};

/// The installed portal the caller belongs to, once it passed every check (401 otherwise).
/// `app.info` goes to the portal's stored address with the caller's token, so nothing in the
/// request decides where the gateway calls.
pub(super) async fn authenticate(
    state: &AppState,
    form: &Map<String, Value>,
) -> Result<PortalRecord, ApiError> {
    let refused = || {
        unauthorized(
            "invalid_application_token",
            "member_id is not an installed portal or APPLICATION_TOKEN does not match it",
        )
    };
    let member_id = text(form, "member_id");
    if member_id.is_empty() {
        return Err(refused());
    }
    let portal = state
        .store
        .portal(&member_id)?
        .filter(|p| p.status == PortalStatus::Installed)
        .ok_or_else(refused)?;
    // Optional (fact sheet §11: real placement requests rarely carry it); compared when both
    // sides have one.
    let offered = text(form, "APPLICATION_TOKEN");
    if !offered.is_empty()
        && !portal.application_token.is_empty()
        && !csrf::constant_time_eq(offered.as_bytes(), portal.application_token.as_bytes())
    {
        return Err(refused());
    }
    let auth_id = text(form, "AUTH_ID");
    let rejected = || unauthorized("auth_rejected", "the portal does not accept AUTH_ID");
    if auth_id.is_empty() {
        return Err(rejected());
    }
    match state
        .client
        .call_as(&member_id, &auth_id, "app.info", json!({}))
        .await
    {
        Ok(_) => Ok(portal),
        Err(BitrixError::Api { status, code, .. })
            if matches!(status, 401 | 403)
                || matches!(
                    code.as_str(),
                    "expired_token" | "invalid_token" | "NO_AUTH_FOUND"
                ) =>
        {
            tracing::info!(portal = %member_id, %code, "settings page: AUTH_ID refused by the portal");
            Err(rejected())
        }
        Err(BitrixError::NotInstalled(_)) => Err(refused()),
        Err(e) => {
            tracing::warn!(portal = %member_id, error = %e, "settings page: app.info failed");
            Err(ApiError::Upstream {
                code: "portal_unavailable",
                message: "the portal did not answer; retry later".into(),
            })
        }
    }
}

/// 403 unless a present `Origin` is the origin of `server.public_url`.
pub(super) fn check_origin(req: &HttpRequest, public_base: &str) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get("origin") else {
        return Ok(());
    };
    let ours = url::Url::parse(public_base)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or("(not text)");
    if origin == ours {
        Ok(())
    } else {
        Err(forbidden(
            "origin_mismatch",
            format!("the form was sent from {origin:?}, not from the gateway's own page"),
        ))
    }
}
