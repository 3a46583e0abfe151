//! [`MessengerClient`]: the platform's side when it calls the gateway's `POST /v1/channels/{channel}/events`.

use serde_json::{Value, json};

use super::{new_webhook_id, unix_now};
use crate::webhooks::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, SignedHeaders};

/// Header values for [`MessengerClient::post_raw`]; `None` leaves a header out.
///
/// Values are sent verbatim; a value that is not a legal HTTP header value surfaces as the
/// `reqwest::Error` of the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawHeaders {
    /// `webhook-id`.
    pub id: Option<String>,
    /// `webhook-timestamp`.
    pub timestamp: Option<String>,
    /// `webhook-signature`.
    pub signature: Option<String>,
    /// Further headers (name, value). A `content-type` here replaces the default
    /// `application/json`.
    pub extra: Vec<(String, String)>,
}

impl From<SignedHeaders> for RawHeaders {
    fn from(h: SignedHeaders) -> Self {
        RawHeaders {
            id: Some(h.id),
            timestamp: Some(h.timestamp),
            signature: Some(h.signature),
            extra: Vec::new(),
        }
    }
}

/// Posts signed events for one channel to a gateway; cheap to clone (one shared connection pool).
#[derive(Debug, Clone)]
pub struct MessengerClient {
    http: reqwest::Client,
    events_url: String,
    secret: Secret,
}

impl MessengerClient {
    /// A client for `{base_url}/v1/channels/{channel}/events` signing with `secret`.
    pub fn new(base_url: &str, channel: &str, secret: Secret) -> Self {
        MessengerClient {
            http: http_client(),
            events_url: format!(
                "{}/v1/channels/{channel}/events",
                base_url.trim_end_matches('/')
            ),
            secret,
        }
    }

    /// The URL events are posted to.
    pub fn events_url(&self) -> &str {
        &self.events_url
    }

    /// Posts `{"type": event_type, "data": data}` with a fresh `webhook-id`, signed now.
    pub async fn post_event(
        &self,
        event_type: &str,
        data: Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.post_event_with_id(&new_webhook_id(), event_type, data)
            .await
    }

    /// Like [`MessengerClient::post_event`] with a chosen `webhook-id` (for replays/retries);
    /// the timestamp is still now.
    pub async fn post_event_with_id(
        &self,
        webhook_id: &str,
        event_type: &str,
        data: Value,
    ) -> reqwest::Result<reqwest::Response> {
        let body = json!({ "type": event_type, "data": data })
            .to_string()
            .into_bytes();
        let headers = self.sign(webhook_id, &body);
        self.post_raw(body, headers).await
    }

    /// Signs `body` as of now under `webhook_id`, for callers that then alter something.
    pub fn sign(&self, webhook_id: &str, body: &[u8]) -> SignedHeaders {
        SignedHeaders::new(&self.secret, webhook_id, unix_now(), body)
    }

    /// Posts `body` with exactly the given header values (for negative tests).
    pub async fn post_raw(
        &self,
        body: Vec<u8>,
        headers: impl Into<RawHeaders>,
    ) -> reqwest::Result<reqwest::Response> {
        let headers = headers.into();
        let mut request = self.http.post(&self.events_url);
        let custom_content_type = headers
            .extra
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if !custom_content_type {
            request = request.header("content-type", "application/json");
        }
        let standard = [
            (HEADER_ID, headers.id),
            (HEADER_TIMESTAMP, headers.timestamp),
            (HEADER_SIGNATURE, headers.signature),
        ];
        for (name, value) in standard {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        for (name, value) in headers.extra {
            request = request.header(name, value);
        }
        request.body(body).send().await
    }
}

/// A `reqwest::Client` that works with the crate's `rustls-no-provider` build of reqwest.
///
/// reqwest panics while building a client when no rustls crypto provider is installed; this
/// installs the `ring` provider as the process default unless one is already there.
pub(super) fn http_client() -> reqwest::Client {
    // An Err only means another provider was installed first, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
