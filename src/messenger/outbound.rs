//! Signed deliveries to a channel's `outbound_url` (contract §4), Standard Webhooks v1.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::settings::ChannelSettings;
use crate::signature::{self, WebhookSecret};
use crate::store::OperatorRecord;
use crate::telegram::api::BotApi;

/// `data` of `operator.message.created` (contract §4).
pub fn operator_created(record: &OperatorRecord) -> Value {
    let mut message = json!({ "bitrix_id": record.im_message_id.to_string(), "text": record.text });
    if !record.files.is_empty() {
        message["files"] = json!(record.files);
    }
    json!({
        "chat": { "id": record.chat_id },
        "message": message,
        "operator": { "id": record.operator_id },
    })
}

/// `data` of `operator.message.updated`.
pub fn operator_updated(record: &OperatorRecord, text: &str) -> Value {
    json!({
        "chat": { "id": record.chat_id },
        "message": { "id": record.external_id(), "bitrix_id": record.im_message_id.to_string(), "text": text },
    })
}

/// `data` of `operator.message.deleted`.
pub fn operator_deleted(record: &OperatorRecord) -> Value {
    json!({
        "chat": { "id": record.chat_id },
        "message": { "id": record.external_id(), "bitrix_id": record.im_message_id.to_string() },
    })
}

/// The ids the platform gave an operator's message in its 2xx answer: `{"message_id": ".."}` or
/// `{"message_ids": [..]}`; none → `b24-<bitrix_id>` (contract §4).
pub fn answered_ids(body: &[u8], im_message_id: u64) -> Vec<String> {
    let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut ids: Vec<String> = match (answer.get("message_ids"), answer.get("message_id")) {
        (Some(Value::Array(list)), _) => list.iter().filter_map(text).collect(),
        (_, Some(one)) => text(one).into_iter().collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() {
        ids.push(format!("b24-{im_message_id}"));
    }
    ids
}

/// How long the platform has to answer one delivery (Standard Webhooks suggests 15–30 s).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// The platform's answer to a delivery.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Why it failed, when the platform said so in words worth keeping (the Bot API's
    /// description); otherwise the status tells.
    pub reason: Option<String>,
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
    /// Operators' events of Telegram channels go to the Bot API.
    telegram: Arc<BotApi>,
    /// The gateway's clock: the signature's timestamp.
    clock: crate::clock::Clock,
}

impl OutboundClient {
    /// A client with [`DELIVERY_TIMEOUT`].
    pub fn new(telegram: Arc<BotApi>) -> Result<OutboundClient, String> {
        let http = crate::outbound_http::client(DELIVERY_TIMEOUT, DELIVERY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        Ok(OutboundClient {
            http,
            telegram,
            clock: crate::clock::Clock::system(),
        })
    }

    /// The same client reading time from `clock` (the gateway's one clock).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Deliver one event to the channel's platform: operators' events of a Telegram channel to
    /// the Bot API (`telegram::deliver`), everything else to the channel's `outbound_url`. A
    /// Telegram channel without an `outbound_url` has nowhere to take a report or a line event:
    /// it counts as taken (the report stays at `GET /v1/deletions/{id}`).
    pub async fn deliver_to(
        &self,
        channel: &ChannelSettings,
        webhook_id: &str,
        event_type: &str,
        data: &Value,
    ) -> Result<Answer, String> {
        if let Some(bot) = &channel.telegram
            && channel.is_telegram()
            && crate::telegram::deliver::handles(event_type)
        {
            return crate::telegram::deliver::deliver(&self.telegram, bot, event_type, data).await;
        }
        match &channel.outbound_url {
            Some(url) => {
                self.deliver(url, &channel.webhook_secret(), webhook_id, event_type, data)
                    .await
            }
            None => Ok(Answer {
                status: 200,
                body: Vec::new(),
                reason: None,
            }),
        }
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
        let timestamp = self.clock.now_secs();
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
        // A redirect is an answer like any other (not 2xx: retried); a reply over the cap is a
        // failed delivery.
        let body = crate::outbound_http::read_capped(reply, crate::outbound_http::SMALL_REPLY_CAP)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            body,
            reason: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_ids_are_read_from_either_answer_shape_with_a_fallback() {
        assert_eq!(answered_ids(br#"{"message_id":"ext-1"}"#, 5), vec!["ext-1"]);
        assert_eq!(
            answered_ids(br#"{"message_ids":["a","b"]}"#, 5),
            vec!["a", "b"]
        );
        assert_eq!(answered_ids(br#"{"message_id":42}"#, 5), vec!["42"]);
        assert_eq!(answered_ids(b"{}", 5), vec!["b24-5"]);
        assert_eq!(answered_ids(b"not json", 7), vec!["b24-7"]);
        assert_eq!(answered_ids(br#"{"message_ids":[]}"#, 8), vec!["b24-8"]);
    }
}
