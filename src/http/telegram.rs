//! Telegram's side of the HTTP boundary (contract §6):
//! - `POST /v1/channels/{channel}/telegram`: the webhook. The secret-token header is checked in
//!   constant time before the body is read; the Update becomes platform events
//!   (`telegram::update`), each stored durably (`Store::ingest`, replay key `tg:<update_id>#<n>`
//!   on the channel) before the `200`. A repeated `update_id` finds its events accepted already:
//!   acknowledged, nothing done. Updates the gateway does not map are acknowledged and counted.
//! - `GET /media/{token}`: a customer's file, streamed from the Bot API (`getFile`, then the
//!   download) up to 20 MiB; a bad, tampered or expired token is `404`.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::error::{ApiError, bad_request, not_found, unauthorized};
use super::{AppState, Channel, body, csrf};
use crate::domain::Event;
use crate::ids::{ChannelId, DeletionId, MemberId};
use crate::metrics::Metrics;
use crate::settings::TelegramSettings;
use crate::store::WebhookReply;
use crate::store::ingest::{IngestOutcome, IngestRequest};
use crate::telegram::api::ApiError as BotError;
use crate::telegram::media::{self, MediaClaims};
use crate::telegram::update::{self, MediaFile};
use crate::telegram::{self as tg};

/// Handle one Telegram webhook request.
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = accept(&req, &path, payload, &state).await;
    let (kind, outcome) = match &result {
        Ok((kind, outcome, _)) => (*kind, *outcome),
        Err(e) => ("unknown", e.metric_label()),
    };
    Metrics::inc2(
        &state.metrics.telegram_updates,
        "update",
        kind,
        "outcome",
        outcome,
    );
    result.map(|(_, outcome, first)| {
        // Telegram reads nothing but a `method` here; the body is for people and tests: the
        // first reply of a single event (a deletion's id and size), with what happened now.
        let mut body = first
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| json!({}));
        body["status"] = json!(outcome);
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body.to_string())
    })
}

fn telegram_channel<'a>(
    state: &'a AppState,
    channel_id: &str,
) -> Option<(&'a Channel, &'a TelegramSettings)> {
    let channel = state.channels.get(channel_id)?;
    let settings = channel.settings.telegram.as_ref()?;
    channel
        .settings
        .is_telegram()
        .then_some((channel, settings))
}

async fn accept(
    req: &HttpRequest,
    channel_id: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<(&'static str, &'static str, Option<String>), ApiError> {
    let (channel, settings) = telegram_channel(state, channel_id).ok_or_else(|| {
        not_found(
            "unknown_channel",
            format!("no Telegram channel {channel_id:?} is configured"),
        )
    })?;
    let offered = req
        .headers()
        .get(tg::SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    use secrecy::ExposeSecret as _;
    if !csrf::constant_time_eq(offered, settings.webhook_secret.expose_secret().as_bytes()) {
        return Err(unauthorized(
            "invalid_secret_token",
            format!("{} is missing or wrong", tg::SECRET_HEADER),
        ));
    }
    let body = body::read_body(req, payload, &state.settings.server).await?;
    let now = state.clock.now_ms();
    let public = state.settings.public_base().to_string();
    let expires = (now / 1000) as i64 + media::LINK_TTL_SECS;
    let link = |f: &MediaFile| {
        let claims = MediaClaims {
            channel: channel_id.to_string(),
            file_id: f.file_id.clone(),
            name: f.name.clone(),
            mime: f.mime.clone(),
            expires,
        };
        media::link(&public, &channel.secret, &claims)
    };
    let mapped = update::map(&body, &link, state.settings.bot.enabled)
        .map_err(|e| bad_request("invalid_update", e.0))?;
    let kind = mapped.kind.label();
    if mapped.events.is_empty() {
        tracing::info!(
            channel = channel_id,
            update_id = mapped.update_id,
            update = kind,
            why = mapped.ignored.unwrap_or(""),
            "Telegram update acknowledged, nothing to forward"
        );
        return Ok((kind, "ignored", None));
    }
    let single = mapped.events.len() == 1;
    let mut accepted = false;
    let mut first = None;
    for (n, event) in mapped.events.into_iter().enumerate() {
        let (deletion_id, reply) = reply_for(&event);
        let request = IngestRequest {
            channel: ChannelId::from(channel_id),
            webhook_id: format!("tg:{}#{n}", mapped.update_id),
            portal: MemberId::from(channel.settings.portal.as_str()),
            line: channel.settings.line,
            event,
            deletion_id,
            reply: WebhookReply {
                status: 200,
                body: reply,
                at_ms: now,
            },
            now_ms: now,
        };
        // What the write committed reaches the outbox through the store's feed.
        let outcome = state.store.ingest(request).await?;
        let reply = match outcome {
            IngestOutcome::Accepted { reply, .. } => {
                accepted = true;
                reply
            }
            IngestOutcome::Replayed(reply) => reply,
        };
        if single {
            first = Some(reply.body);
        }
    }
    let outcome = if accepted { "accepted" } else { "replayed" };
    Ok((kind, outcome, first))
}

/// A deletion's id (made here), and the reply kept for a repeat.
fn reply_for(event: &Event) -> (Option<DeletionId>, String) {
    match event {
        Event::Deleted { message_ids, .. } => {
            let deletion_id = DeletionId::generate();
            let reply = json!({ "deletion_id": deletion_id, "items": message_ids.len() });
            (Some(deletion_id), reply.to_string())
        }
        _ => (None, r#"{"status":"accepted"}"#.to_string()),
    }
}

/// `GET /media/{token}`.
pub async fn media(path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let (label, reply) = serve(&path, &state).await;
    Metrics::inc1(&state.metrics.media_requests, "outcome", label);
    reply
}

async fn serve(token: &str, state: &AppState) -> (&'static str, HttpResponse) {
    let error = |status: StatusCode, code: &str, message: &str| {
        HttpResponse::build(status)
            .content_type("application/json")
            .body(json!({ "error": { "code": code, "message": message } }).to_string())
    };
    let not_found = || {
        (
            "not_found",
            error(
                StatusCode::NOT_FOUND,
                "unknown_media",
                "no such media link (or it expired)",
            ),
        )
    };
    let unavailable = |e: &BotError| {
        tracing::warn!(error = %e, "a media link's file could not be fetched from Telegram");
        (
            "unavailable",
            error(
                StatusCode::BAD_GATEWAY,
                "telegram_unavailable",
                "the file could not be fetched from Telegram",
            ),
        )
    };
    let too_large = || {
        (
            "too_large",
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                "the file is larger than the Bot API lets bots download (20 MiB)",
            ),
        )
    };
    let Some(claims) = media::peek(token) else {
        return not_found();
    };
    let Some((channel, settings)) = telegram_channel(state, &claims.channel) else {
        return not_found();
    };
    let now = state.clock.now_secs();
    let Some(claims) = media::verify(&channel.secret, token, now) else {
        return not_found();
    };
    let file = match state.telegram.get_file(settings, &claims.file_id).await {
        Ok(file) => file,
        Err(e) if e.description().contains("too big") => return too_large(),
        Err(e) if e.is_permanent() => return not_found(),
        Err(e) => return unavailable(&e),
    };
    if file.file_size.is_some_and(|n| n > media::MAX_FILE_BYTES) {
        return too_large();
    }
    let Some(file_path) = file.file_path else {
        return unavailable(&BotError::Server { status: 200 });
    };
    let download = match state.telegram.download(settings, &file_path).await {
        Ok(reply) => reply,
        Err(e) => return unavailable(&e),
    };
    let length = download.content_length();
    if length.is_some_and(|n| n > media::MAX_FILE_BYTES) {
        return too_large();
    }
    let mut reply = HttpResponse::Ok();
    let (mime, inline) = served_type(&claims.mime);
    reply
        .content_type(mime)
        .insert_header(("Content-Disposition", disposition(inline, &claims.name)))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", "sandbox; default-src 'none'"))
        .insert_header(("Cache-Control", "private, max-age=3600"));
    if let Some(n) = length {
        reply.no_chunking(n);
    }
    ("served", reply.streaming(capped_stream(download)))
}

/// The download's body, cut off with an error once it passes the cap (the client sees a
/// truncated transfer, never more than 20 MiB).
fn capped_stream(
    reply: reqwest::Response,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold((reply, 0u64, false), |(mut reply, sent, done)| async move {
        if done {
            return None;
        }
        match reply.chunk().await {
            Ok(Some(chunk)) => {
                let sent = sent + chunk.len() as u64;
                if sent > media::MAX_FILE_BYTES {
                    let e = std::io::Error::other("file larger than 20 MiB");
                    return Some((Err(e), (reply, sent, true)));
                }
                Some((Ok(chunk), (reply, sent, false)))
            }
            Ok(None) => None,
            Err(e) => {
                let e = std::io::Error::other(e.without_url().to_string());
                Some((Err(e), (reply, sent, true)))
            }
        }
    })
}

/// The Content-Type to serve (a well-formed one, else `application/octet-stream`) and whether it
/// may be shown inline (images but SVG, audio, video); everything else is an attachment.
fn served_type(mime: &str) -> (String, bool) {
    let well_formed = mime.len() <= 100
        && mime.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && mime
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b))
        });
    if !well_formed {
        return ("application/octet-stream".into(), false);
    }
    let mime = mime.to_ascii_lowercase();
    let inline = (mime.starts_with("image/") && !mime.contains("svg"))
        || mime.starts_with("audio/")
        || mime.starts_with("video/");
    (mime, inline)
}

/// `Content-Disposition` with the original name: an ASCII fallback and the UTF-8 form (RFC 6266).
fn disposition(inline: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests;
