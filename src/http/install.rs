//! `POST /bitrix/install`: the install handler (contract §5, fact sheet §3.4 and §11). Takes the
//! form-encoded `ONAPPINSTALL` / `ONAPPUPDATE` event and the install page's POST (a UI install).
//!
//! Trust: Bitrix24 signs nothing, so an install is believed only once a trusted authorization
//! server vouches for it. Its refresh token is exchanged at the server its `server_endpoint`
//! names, which must be one of `bitrix.oauth_servers` (the page may name none: each trusted
//! server is tried in order); the reply's `member_id` must be the claimed one and pass
//! `bitrix.portals`. The portal's address and tokens stored are the reply's, never the
//! request's. A refused install stores nothing, calls no address from the request and releases
//! no held work.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{DOCTYPE, PreEscaped, html};
use serde_json::{Map, Value};

use super::error::{ApiError, bad_request, forbidden, unauthorized};
use super::{AppState, body, csrf};
use crate::bitrix::client::host_of;
use crate::bitrix::oauth::Tokens;
use crate::bitrix::{BitrixError, form};
use crate::metrics::Metrics;
use crate::store::{Installation, PortalRecord, PortalStatus};

/// What an install request claims, before anything is verified.
struct Claim {
    member_id: String,
    refresh_token: String,
    /// The authorization server's REST root the request names, if any.
    server_endpoint: Option<String>,
    /// Present in the event; optional on the page.
    application_token: Option<String>,
    scope: String,
    /// The install page (a UI install) rather than the event.
    page: bool,
}

/// An install the authorization server vouched for.
struct Verified {
    server: String,
    tokens: Tokens,
    client_endpoint: String,
}

/// Handle an install.
pub async fn install(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_form(&req, payload, &state.settings.server).await?;
    let form = form::decode_bytes(&body).map_err(|e| bad_request("invalid_form", e.to_string()))?;
    let claim = parse(&form)?;
    let existing = state.store.portal(&claim.member_id)?;
    if claim.page && page_reopened(existing.as_ref(), &claim) {
        // Any user opening the app gets this POST: never replace the installer's tokens.
        return Ok(finish_page());
    }
    let verified = match verify(&state, &claim).await {
        Ok(v) => v,
        Err(refusal) => {
            Metrics::inc1(&state.metrics.installs, "outcome", refusal.label());
            tracing::warn!(portal = ?claim.member_id, page = claim.page, reason = refusal.label(), "install refused");
            return Err(refusal.into_api_error());
        }
    };
    Metrics::inc1(&state.metrics.installs, "outcome", "verified");
    let now = state.clock.now_ms();
    let record = record(&claim, verified, existing.as_ref(), now);
    let member_id = record.member_id.clone();
    tracing::info!(portal = %member_id, domain = ?record.domain, server = %record.oauth_server, page = claim.page, "install verified");
    let was_revoked = existing.is_some_and(|p| p.needs_reinstall.is_some());
    state.store.commit(move |d| d.put_portal(&record)).await?;
    if was_revoked {
        state.metrics.portals_needing_reinstall.dec();
    }
    if !claim.page {
        state.outbox.portal_installed(&member_id);
        return Ok(HttpResponse::Ok()
            .json(serde_json::json!({ "status": "installed", "member_id": member_id })));
    }
    // A UI install: set the portal up now (this binds ONAPPINSTALL, which brings the application
    // token once BX24.installFinish() completes the install), then let the page finish it.
    if let Err(e) = state.outbox.setup(&member_id).await {
        tracing::warn!(portal = %member_id, error = %e, "setup after the install page failed; retrying in the background");
        state.outbox.portal_installed(&member_id);
    }
    Ok(finish_page())
}

/// The install page opened again on a portal that is installed: nothing to verify or store,
/// unless it carries an application token other than the stored one (a reinstall whose
/// uninstall event was lost), which is verified as an install.
fn page_reopened(existing: Option<&PortalRecord>, claim: &Claim) -> bool {
    let Some(portal) = existing else { return false };
    if portal.status != PortalStatus::Installed || portal.needs_reinstall.is_some() {
        return false;
    }
    match claim.application_token.as_deref() {
        None => true,
        Some(_) if portal.application_token.is_empty() => true,
        Some(token) => {
            csrf::constant_time_eq(token.as_bytes(), portal.application_token.as_bytes())
        }
    }
}

/// Why an install was refused.
enum Refusal {
    NotConfigured,
    NotAllowed,
    UntrustedServer,
    NotVerified,
    ServerUnavailable,
}

impl Refusal {
    fn label(&self) -> &'static str {
        match self {
            Refusal::NotConfigured => "oauth_not_configured",
            Refusal::NotAllowed => "portal_not_allowed",
            Refusal::UntrustedServer => "untrusted_oauth_server",
            Refusal::NotVerified => "install_not_verified",
            Refusal::ServerUnavailable => "oauth_server_unavailable",
        }
    }

    fn into_api_error(self) -> ApiError {
        match self {
            Refusal::NotConfigured => ApiError::ServiceUnavailable {
                code: "oauth_not_configured",
                message: "bitrix.client_secret is empty: installs cannot be verified with the \
                          authorization server until the application's credentials are set"
                    .into(),
            },
            Refusal::NotAllowed => forbidden(
                "portal_not_allowed",
                "this portal is not in the gateway's bitrix.portals allow-list",
            ),
            Refusal::UntrustedServer => forbidden(
                "untrusted_oauth_server",
                "server_endpoint is not one of the gateway's trusted authorization servers",
            ),
            Refusal::NotVerified => unauthorized(
                "install_not_verified",
                "the authorization server did not confirm this install",
            ),
            Refusal::ServerUnavailable => ApiError::ServiceUnavailable {
                code: "oauth_server_unavailable",
                message: "the authorization server did not answer; retry later".into(),
            },
        }
    }
}

/// Exchange the claim's refresh token at its trusted authorization server (contract §5).
async fn verify(state: &AppState, claim: &Claim) -> Result<Verified, Refusal> {
    use secrecy::ExposeSecret;
    let bitrix = &state.settings.bitrix;
    if bitrix.client_secret.expose_secret().is_empty() || bitrix.client_id.is_empty() {
        return Err(Refusal::NotConfigured);
    }
    if !bitrix.portal_allowed(&claim.member_id) {
        return Err(Refusal::NotAllowed);
    }
    let servers: Vec<&str> = match &claim.server_endpoint {
        Some(endpoint) => vec![
            bitrix
                .trusted_server(endpoint)
                .ok_or(Refusal::UntrustedServer)?,
        ],
        None => bitrix.oauth_servers.iter().map(String::as_str).collect(),
    };
    let mut unavailable = false;
    for server in servers {
        let tokens = match state
            .client
            .exchange_refresh_token(server, &claim.refresh_token)
            .await
        {
            Ok(tokens) => tokens,
            Err(BitrixError::Refresh { code, .. }) => {
                tracing::info!(portal = ?claim.member_id, server, code = ?code, "the authorization server refused the install's refresh token");
                continue;
            }
            Err(e) => {
                tracing::warn!(portal = ?claim.member_id, server, error = %e, "authorization server unavailable");
                unavailable = true;
                continue;
            }
        };
        if tokens.member_id.as_deref() != Some(claim.member_id.as_str()) {
            tracing::warn!(claimed = ?claim.member_id, server, "install refused: the refresh token belongs to another portal");
            return Err(Refusal::NotVerified);
        }
        let Some(client_endpoint) = tokens.portal_endpoint() else {
            tracing::warn!(portal = ?claim.member_id, server, "install refused: the authorization server gave no usable client_endpoint");
            return Err(Refusal::NotVerified);
        };
        return Ok(Verified {
            server: server.to_string(),
            tokens,
            client_endpoint,
        });
    }
    Err(if unavailable {
        Refusal::ServerUnavailable
    } else {
        Refusal::NotVerified
    })
}

/// The portal record of a verified install: address and tokens from the authorization server.
fn record(
    claim: &Claim,
    verified: Verified,
    existing: Option<&PortalRecord>,
    now: u64,
) -> PortalRecord {
    let Verified {
        server,
        tokens,
        client_endpoint,
    } = verified;
    // A page usually brings no application token. On a portal that is still installed (its
    // authorization was revoked and an administrator opened the app again) the stored one stays
    // valid; after an uninstall it comes with the ONAPPINSTALL event, and until then no event is
    // accepted (an empty token never matches).
    let application_token = claim
        .application_token
        .clone()
        .or_else(|| {
            existing
                .filter(|p| p.status == PortalStatus::Installed)
                .map(|p| p.application_token.clone())
        })
        .unwrap_or_default();
    let scope = tokens
        .scope
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| claim.scope.clone());
    let installation = Installation {
        member_id: claim.member_id.clone(),
        domain: host_of(&client_endpoint),
        client_endpoint,
        oauth_server: server,
        expires_at: tokens.expires_at((now / 1000) as i64),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        application_token,
        scope,
    };
    PortalRecord {
        bot_id: existing.and_then(|p| p.bot_id),
        ..PortalRecord::installed(installation, now)
    }
}

/// The claim of either install shape.
fn parse(form: &Value) -> Result<Claim, ApiError> {
    let empty = Map::new();
    let form = form.as_object().unwrap_or(&empty);
    let event = form.get("event").and_then(Value::as_str);
    if let Some(event) = event {
        if !(event.eq_ignore_ascii_case("ONAPPINSTALL")
            || event.eq_ignore_ascii_case("ONAPPUPDATE"))
        {
            return Err(bad_request(
                "invalid_event",
                "only ONAPPINSTALL and ONAPPUPDATE are handled here",
            ));
        }
        let auth = form
            .get("auth")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        return Ok(Claim {
            member_id: member_id(required(auth, "auth[member_id]", "member_id")?)?,
            refresh_token: required(auth, "auth[refresh_token]", "refresh_token")?,
            server_endpoint: optional(auth, "server_endpoint"),
            application_token: Some(required(
                auth,
                "auth[application_token]",
                "application_token",
            )?),
            scope: optional(auth, "scope").unwrap_or_default(),
            page: false,
        });
    }
    Ok(Claim {
        member_id: member_id(required(form, "member_id", "member_id")?)?,
        refresh_token: required(form, "REFRESH_ID", "REFRESH_ID")?,
        server_endpoint: optional(form, "SERVER_ENDPOINT"),
        application_token: optional(form, "APPLICATION_TOKEN"),
        scope: optional(form, "APPLICATION_SCOPE").unwrap_or_default(),
        page: true,
    })
}

fn required(map: &Map<String, Value>, name: &str, key: &str) -> Result<String, ApiError> {
    optional(map, key).ok_or_else(|| bad_request("missing_field", format!("{name} is required")))
}

fn optional(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn member_id(id: String) -> Result<String, ApiError> {
    if crate::settings::is_member_id(&id) {
        Ok(id)
    } else {
        Err(bad_request(
            "invalid_field",
            "member_id must be 1 to 64 letters and digits",
        ))
    }
}

/// What Bitrix24 shows in the install frame: the page tells the portal the install is finished
/// (fact sheet §11: until `BX24.installFinish()` runs, no event is delivered).
fn finish_page() -> HttpResponse {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Open Channel Gateway" }
                script src="//api.bitrix24.com/api/v1/" {}
                style { (PreEscaped(INSTALL_STYLE)) }
            }
            body {
                h1 { "Open Channel Gateway is installed" }
                p id="state" { "Finishing the installation…" }
                script { (PreEscaped(INSTALL_SCRIPT)) }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .body(page.into_string())
}

const INSTALL_STYLE: &str = r#"body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#333;margin:32px}
h1{font-size:20px;margin:0 0 8px}p{margin:0;color:#525c69}"#;

const INSTALL_SCRIPT: &str = r#"
(function () {
  var state = document.getElementById("state");
  if (!window.BX24) {
    state.textContent = "Bitrix24's library did not load: open this page from your Bitrix24 portal.";
    return;
  }
  BX24.init(function () {
    BX24.installFinish();
    state.textContent = "Done. Connect a channel in Contact Center → Open Channel Gateway.";
  });
})();
"#;
