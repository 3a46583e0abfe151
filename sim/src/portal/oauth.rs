//! The OAuth server double (`/oauth/token/`, §3.2) and the install-time token hand-outs (§3.4).

use std::time::SystemTime;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::envelope::{json_response, unix_secs};
use super::state::{ADMIN_USER_ID, IssuedTokens};
use super::{FakePortal, SCOPE, Shared, params};
use crate::form;

fn oauth_error(status: u16, code: &str, description: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

/// `GET /oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token`.
/// A POST form is undocumented (§3.2 GAP) but accepted too; its fields override the query's.
pub(crate) async fn token(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (Ok(mut query), Ok(form_body)) =
        (form::decode(req.query_string()), form::decode_bytes(&body))
    else {
        return oauth_error(400, "invalid_request", "Malformed parameters");
    };
    if let (Some(query), Value::Object(fields)) = (query.as_object_mut(), form_body) {
        query.extend(fields);
    }
    shared.lock().oauth_calls += 1;
    shared.changed();
    let client_id = params::opt_str(&query, "client_id").unwrap_or_default();
    let client_secret = params::opt_str(&query, "client_secret").unwrap_or_default();
    if client_id != shared.config.client_id || client_secret != shared.config.client_secret {
        return oauth_error(401, "invalid_client", "Invalid client credentials");
    }
    match params::opt_str(&query, "grant_type").as_deref() {
        Some("refresh_token") => {}
        // The fake never hands out authorization codes, so any code is unknown.
        Some("authorization_code") => {
            return oauth_error(400, "invalid_grant", "Invalid authorization code");
        }
        _ => return oauth_error(400, "invalid_request", "Unsupported or missing grant_type"),
    }
    let refresh = params::opt_str(&query, "refresh_token").unwrap_or_default();
    let issued = {
        let mut st = shared.lock();
        // Rotation: the used refresh token dies with this call.
        if !st.refresh_tokens.remove(&refresh) {
            return oauth_error(400, "invalid_grant", "Invalid refresh token");
        }
        st.refresh_count += 1;
        st.issue_tokens(shared.config.access_token_ttl)
    };
    shared.changed();
    json_response(200, &token_json(&shared, &issued))
}

/// The §3.2 answer for a token pair.
fn token_json(shared: &Shared, tokens: &IssuedTokens) -> Value {
    let client_endpoint = shared
        .lock()
        .reported_client_endpoint
        .clone()
        .unwrap_or_else(|| shared.client_endpoint());
    json!({
        "access_token": tokens.access_token,
        "client_endpoint": client_endpoint,
        "domain": "oauth.bitrix.info",
        "expires": unix_secs(SystemTime::now()) + tokens.expires_in,
        "expires_in": tokens.expires_in,
        "member_id": shared.config.member_id,
        "refresh_token": tokens.refresh_token,
        "scope": SCOPE,
        "server_endpoint": shared.server_endpoint(),
        "status": "L",
        "user_id": ADMIN_USER_ID,
    })
}

impl FakePortal {
    /// Mint a fresh valid access/refresh pair (as an install would) and return it.
    pub fn issue_tokens(&self) -> IssuedTokens {
        self.shared
            .lock()
            .issue_tokens(self.shared.config.access_token_ttl)
    }

    /// A complete form-encoded `ONAPPINSTALL` body (§3.4) carrying freshly issued tokens. The scope is
    /// space-separated here, as the install event documents it.
    pub fn install_event_body(&self) -> String {
        install_event_body(&self.shared)
    }

    /// POST this portal's `ONAPPINSTALL` to the gateway at `base` (`http://host:port`), as the
    /// portal does when the app is installed; panics unless the gateway answers `200`.
    pub async fn install_on(&self, base: &str) {
        let install = reqwest::Client::new()
            .post(format!("{base}/bitrix/install"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(self.install_event_body())
            .send()
            .await
            .expect("the gateway answers the install");
        assert_eq!(install.status(), 200, "the gateway accepts the install");
    }

    /// The install page request of an app with UI, as captured from real portals (fact sheet
    /// §11): `(query, body)`. Query: `DOMAIN`, `PROTOCOL=0` (plain HTTP), `LANG`, `APP_SID`; form
    /// body: `AUTH_ID`, `AUTH_EXPIRES`, `REFRESH_ID`, `member_id`, `status`, `PLACEMENT=DEFAULT` —
    /// no `APPLICATION_TOKEN`, no `SERVER_ENDPOINT`.
    pub fn install_page_request(&self) -> (String, String) {
        self.page_request(false)
    }

    /// The install page request as the August 2026 docs describe it: also `SERVER_ENDPOINT`,
    /// `APPLICATION_TOKEN` and `APPLICATION_SCOPE`.
    pub fn install_page_request_documented(&self) -> (String, String) {
        self.page_request(true)
    }

    fn page_request(&self, documented: bool) -> (String, String) {
        let tokens = self.issue_tokens();
        let shared = &self.shared;
        let query = form::encode(&json!({
            "DOMAIN": shared.domain, "PROTOCOL": "0", "LANG": "en", "APP_SID": super::config::random_hex()
        }));
        let mut body = json!({
            "AUTH_ID": tokens.access_token,
            "AUTH_EXPIRES": tokens.expires_in.to_string(),
            "REFRESH_ID": tokens.refresh_token,
            "member_id": shared.config.member_id,
            "status": "L",
            "PLACEMENT": "DEFAULT",
        });
        if documented {
            body["SERVER_ENDPOINT"] = json!(shared.server_endpoint());
            body["APPLICATION_TOKEN"] = json!(shared.application_token);
            body["APPLICATION_SCOPE"] = json!(SCOPE);
        }
        (query, form::encode(&body))
    }

    /// Every refresh token issued so far is refused from now on (`invalid_grant`), as after 180
    /// idle days or a revoked authorization.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh_tokens.clear();
    }

    /// Requests the authorization server received, refused ones included.
    pub fn oauth_calls(&self) -> usize {
        self.shared.lock().oauth_calls
    }

    /// The authorization server reports this `client_endpoint` from now on (None: the portal's own).
    pub fn report_client_endpoint(&self, endpoint: Option<String>) {
        self.shared.lock().reported_client_endpoint = endpoint;
    }

    /// How many times the install page's `BX24.installFinish()` reached the portal.
    pub fn install_finished(&self) -> usize {
        self.shared.lock().install_finished
    }
}

/// The `ONAPPINSTALL` body with freshly issued tokens (see [`FakePortal::install_event_body`]).
pub(crate) fn install_event_body(shared: &Shared) -> String {
    let tokens = shared.lock().issue_tokens(shared.config.access_token_ttl);
    form::encode(&json!({
        "event": "ONAPPINSTALL",
        "data": {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
        "ts": unix_secs(SystemTime::now()).to_string(),
        "auth": {
            "access_token": tokens.access_token,
            "expires_in": tokens.expires_in.to_string(),
            "scope": SCOPE.replace(',', " "),
            "domain": shared.domain,
            "server_endpoint": shared.server_endpoint(),
            "status": "L",
            "client_endpoint": shared.client_endpoint(),
            "member_id": shared.config.member_id,
            "refresh_token": tokens.refresh_token,
            "application_token": shared.application_token,
        }
    }))
}
