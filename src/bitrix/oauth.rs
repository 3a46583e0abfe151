//! OAuth token refresh against `bitrix.oauth_url` (fact sheet §3.2).

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::BitrixError;
use crate::settings::BitrixSettings;

/// Fresh tokens from the OAuth server.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub expires: Option<i64>,
    /// The portal the tokens belong to, as the OAuth server (the trusted party) says.
    #[serde(default)]
    pub member_id: Option<String>,
    #[serde(default)]
    pub client_endpoint: Option<String>,
}

impl Tokens {
    /// Unix seconds of expiry.
    pub fn expires_at(&self, now_secs: i64) -> i64 {
        self.expires
            .unwrap_or_else(|| now_secs + self.expires_in.unwrap_or(3600))
    }
}

/// `GET oauth_url?grant_type=refresh_token&client_id&client_secret&refresh_token`.
pub async fn refresh(
    http: &reqwest::Client,
    settings: &BitrixSettings,
    refresh_token: &str,
) -> Result<Tokens, BitrixError> {
    let mut url = url::Url::parse(&settings.oauth_url)
        .map_err(|e| BitrixError::Refresh(format!("bad oauth_url: {e}")))?;
    url.query_pairs_mut()
        .append_pair("grant_type", "refresh_token")
        .append_pair("client_id", &settings.client_id)
        .append_pair("client_secret", settings.client_secret.expose_secret())
        .append_pair("refresh_token", refresh_token);
    let reply = http.get(url).send().await.map_err(BitrixError::transport)?;
    let status = reply.status().as_u16();
    let body = reply.bytes().await.map_err(BitrixError::transport)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| BitrixError::Refresh(format!("HTTP {status}, not JSON")))?;
    if let Some(code) = value.get("error").and_then(|e| e.as_str()) {
        let description = value
            .get("error_description")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        return Err(BitrixError::Refresh(format!("{code}: {description}")));
    }
    serde_json::from_value(value)
        .map_err(|e| BitrixError::Refresh(format!("HTTP {status}, unexpected reply: {e}")))
}
