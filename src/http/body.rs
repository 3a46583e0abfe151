//! Reading a request body with a size limit and a deadline, as raw bytes (signatures need the
//! exact bytes).
//!
//! The buffer grows with the data received, never from `Content-Length` (a peer that announces
//! a megabyte and sends nothing costs nothing), and a body not complete within
//! `server.body_timeout_ms` of the handler's start is answered `408` and its connection closed.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::settings::ServerSettings;

/// A `/bitrix/*` form body: at most `server.max_form_bytes`.
pub async fn read_form(
    req: &HttpRequest,
    payload: Payload,
    server: &ServerSettings,
) -> Result<Bytes, ApiError> {
    read_limited(req, payload, server.max_form_bytes, server.body_timeout()).await
}

/// Any other body: at most `server.max_body_bytes`.
pub async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    server: &ServerSettings,
) -> Result<Bytes, ApiError> {
    read_limited(req, payload, server.max_body_bytes, server.body_timeout()).await
}

/// The whole body; 413 as soon as it is known to exceed `limit`, 408 when it is not complete
/// within `timeout`.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = async move {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| super::error::bad_request("unreadable_body", e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::BodyTimeout {
            after_ms: timeout.as_millis() as u64,
        }))
}
