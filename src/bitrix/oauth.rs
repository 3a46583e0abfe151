//! The authorization servers (fact sheet §3.2, §11): exchanging a refresh token at a trusted
//! server, which both renews a portal's tokens and proves whose they are.
//!
//! Trust: a server is called only when it is one of `bitrix.oauth_servers`; the caller picks it
//! (from a portal's stored server, or from an install's `server_endpoint` checked with
//! [`BitrixSettings::trusted_server`]). `client_secret` goes to that server and nowhere else.

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::BitrixError;
use crate::outbound_http::{SMALL_REPLY_CAP, read_capped, snippet};
use crate::settings::BitrixSettings;

/// What an authorization server answers to a refresh (§3.2). Only `access_token` and
/// `refresh_token` are required; the rest is checked by whoever relies on it.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub expires: Option<i64>,
    /// The portal the tokens belong to, as the authorization server (the trusted party) says.
    #[serde(default)]
    pub member_id: Option<String>,
    /// The portal's REST address, as the authorization server says.
    #[serde(default)]
    pub client_endpoint: Option<String>,
    #[serde(default)]
    pub server_endpoint: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("member_id", &self.member_id)
            .field("client_endpoint", &self.client_endpoint)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Unix seconds of expiry.
    pub fn expires_at(&self, now_secs: i64) -> i64 {
        self.expires
            .unwrap_or_else(|| now_secs + self.expires_in.unwrap_or(3600))
    }

    /// The `client_endpoint` of the reply when it is a usable http(s) REST address.
    pub fn portal_endpoint(&self) -> Option<String> {
        let raw = self.client_endpoint.as_deref()?;
        let url = url::Url::parse(raw).ok()?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none();
        ok.then(|| raw.to_string())
    }
}

/// The token URL of a trusted server base (`<base>oauth/token/`).
pub fn token_url(base: &str) -> String {
    format!("{base}oauth/token/")
}

/// `GET <base>oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token`.
/// `base` must be one of the trusted servers (checked here too, so that no caller can ever send
/// the client secret elsewhere).
pub async fn refresh(
    http: &reqwest::Client,
    settings: &BitrixSettings,
    base: &str,
    refresh_token: &str,
) -> Result<Tokens, BitrixError> {
    if !settings.oauth_servers.iter().any(|b| b == base) {
        return Err(BitrixError::Refresh {
            code: "untrusted_oauth_server".into(),
            description: "not one of bitrix.oauth_servers".into(),
        });
    }
    let mut url = url::Url::parse(&token_url(base)).map_err(|_| BitrixError::Refresh {
        code: "invalid_oauth_server".into(),
        description: "the trusted server's URL does not parse".into(),
    })?;
    url.query_pairs_mut()
        .append_pair("grant_type", "refresh_token")
        .append_pair("client_id", &settings.client_id)
        .append_pair("client_secret", settings.client_secret.expose_secret())
        .append_pair("refresh_token", refresh_token);
    let reply = http.get(url).send().await.map_err(BitrixError::transport)?;
    let status = reply.status().as_u16();
    let body = read_capped(reply, SMALL_REPLY_CAP)
        .await
        .map_err(BitrixError::read)?;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        tracing::warn!(server = base, status, reply = %snippet(&body), "authorization server: unexpected reply");
        return Err(BitrixError::Decode {
            status,
            detail: "the authorization server's reply is not JSON".into(),
        });
    };
    if let Some(code) = value.get("error").and_then(|e| e.as_str()) {
        let description = value
            .get("error_description")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        return Err(BitrixError::Refresh {
            code: code.chars().take(64).collect(),
            description: description.chars().take(200).collect(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(BitrixError::Decode {
            status,
            detail: "the authorization server failed".into(),
        });
    }
    serde_json::from_value(value).map_err(|_| BitrixError::Decode {
        status,
        detail: "the authorization server's reply has no tokens".into(),
    })
}
