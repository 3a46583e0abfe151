//! Signed deliveries to a channel's `outbound_url` (contract §4), Standard Webhooks v1.

use std::time::Duration;

use serde_json::{Value, json};

use crate::signature::{self, WebhookSecret};

/// How long the platform has to answer one delivery (Standard Webhooks suggests 15–30 s).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// The platform's answer to a delivery.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// Any 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// HTTP client for deliveries.
#[derive(Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
}

impl OutboundClient {
    /// A client with [`DELIVERY_TIMEOUT`].
    pub fn new() -> Result<OutboundClient, String> {
        crate::tls::install_provider();
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .user_agent(concat!("openchannel-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(OutboundClient { http })
    }

    /// POST `{"type", "data"}` signed with the channel's secret; `webhook_id` is stable across
    /// retries of one event. Err is a transport failure (no answer).
    pub async fn deliver(
        &self,
        url: &str,
        secret: &WebhookSecret,
        webhook_id: &str,
        event_type: &str,
        data: &Value,
    ) -> Result<Answer, String> {
        let body = serde_json::to_vec(&json!({ "type": event_type, "data": data }))
            .map_err(|e| e.to_string())?;
        let timestamp = (crate::domain::now_ms() / 1000) as i64;
        let headers = signature::sign_headers(secret, webhook_id, timestamp, &body);
        let reply = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(signature::HEADER_ID, headers.id)
            .header(signature::HEADER_TIMESTAMP, headers.timestamp)
            .header(signature::HEADER_SIGNATURE, headers.signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "no answer within the delivery timeout".to_string()
                } else {
                    e.without_url().to_string()
                }
            })?;
        let status = reply.status().as_u16();
        let body = reply.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Ok(Answer { status, body })
    }
}
