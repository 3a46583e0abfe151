//! `POST /v1/channels/{channel}/events`: signed platform events, stored durably before 202.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tracing::Instrument as _;

use super::error::{ApiError, bad_request, not_found, unauthorized};
use super::{AppState, body};
use crate::domain::Event;
use crate::ids::{ChannelId, DeletionId, MemberId};
use crate::messenger::inbound;
use crate::metrics::Metrics;
use crate::signature::{self, ReceivedHeaders, SignatureError};
use crate::store::WebhookReply;
use crate::store::ingest::{IngestOutcome, IngestRequest};

/// The body of a 202 for anything but a deletion.
use crate::store::ACCEPTED_BODY as ACCEPTED;

/// Handle one platform event.
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let span = tracing::info_span!(
        "webhook",
        channel = %path.as_str(),
        webhook_id = tracing::field::Empty,
        deletion_id = tracing::field::Empty,
    );
    let result = accept(&req, &path, payload, &state).instrument(span).await;
    let label = match &result {
        Ok((kind, reply)) if reply.status().as_u16() == 202 => (*kind, "accepted"),
        Ok((kind, _)) => (*kind, "replayed"),
        Err(e) => ("unknown", e.metric_label()),
    };
    Metrics::inc2(&state.metrics.webhooks, "type", label.0, "reply", label.1);
    result.map(|(_, reply)| reply)
}

async fn accept(
    req: &HttpRequest,
    channel_id: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<(&'static str, HttpResponse), ApiError> {
    let channel = state.channels.get(channel_id).ok_or_else(|| {
        not_found(
            "unknown_channel",
            format!("no channel {channel_id:?} is configured"),
        )
    })?;
    let body = body::read_body(req, payload, &state.settings.server).await?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = ReceivedHeaders {
        id: header(signature::HEADER_ID),
        timestamp: header(signature::HEADER_TIMESTAMP),
        signature: header(signature::HEADER_SIGNATURE),
    };
    signature::verify(&channel.secret, &headers, &body, state.clock.now_secs())
        .map_err(signature_error)?;
    let webhook_id = headers.id.unwrap_or_default().to_string();
    tracing::Span::current().record("webhook_id", webhook_id.as_str());
    let event = inbound::parse(&body).map_err(|e| bad_request(e.code, e.message))?;
    let kind = event.type_name();
    let now = state.clock.now_ms();
    let (deletion_id, reply_body) = match &event {
        Event::Created(_) | Event::Updated(_) => (None, ACCEPTED.to_string()),
        Event::Deleted { message_ids, .. } => {
            let deletion_id = DeletionId::generate();
            tracing::Span::current().record("deletion_id", deletion_id.as_str());
            let reply =
                json!({ "deletion_id": deletion_id, "items": message_ids.len() }).to_string();
            (Some(deletion_id), reply)
        }
        Event::Reaction { reaction, .. } => {
            if !state.settings.bot.enabled {
                return Err(bad_request(
                    "bot_disabled",
                    "reactions need the chat-bot, and bot.enabled is false",
                ));
            }
            if !crate::bitrix::reactions::is_known(reaction) {
                return Err(bad_request(
                    "unknown_reaction",
                    format!("{reaction:?} is not a Bitrix24 reaction code"),
                ));
            }
            (None, ACCEPTED.to_string())
        }
    };
    let request = IngestRequest {
        channel: ChannelId::from(channel_id),
        webhook_id,
        portal: MemberId::from(channel.settings.portal.as_str()),
        line: channel.settings.line,
        event,
        deletion_id,
        reply: WebhookReply {
            status: 202,
            body: reply_body,
            at_ms: now,
        },
        now_ms: now,
    };
    let outcome = state.store.ingest(request).await?;
    let (status, body) = match outcome {
        IngestOutcome::Accepted { reply, ops } => {
            tracing::info!(event = kind, items = ops.len(), "event accepted");
            (StatusCode::ACCEPTED, reply.body)
        }
        IngestOutcome::Replayed(first) => {
            tracing::info!(event = kind, "event replayed: the first reply is repeated");
            (StatusCode::OK, first.body)
        }
    };
    Ok((
        kind,
        HttpResponse::build(status)
            .content_type("application/json")
            .body(body),
    ))
}

fn signature_error(e: SignatureError) -> ApiError {
    let code = match e {
        SignatureError::MissingHeader(_) => "missing_signature_headers",
        SignatureError::InvalidTimestamp
        | SignatureError::TimestampTooOld
        | SignatureError::TimestampInFuture => "timestamp_out_of_window",
        SignatureError::NoMatchingSignature => "invalid_signature",
    };
    unauthorized(code, e.to_string())
}
