//! Media links (contract §6): a customer's file is offered to Bitrix24 as
//! `{public_url}/media/<token>`, where the token names the channel, Telegram's `file_id`, the
//! original file name and MIME type and an expiry, and is signed with the channel's secret.
//! Nothing in it is the bot token: whoever holds a link can fetch that one file until it expires,
//! and nothing else.
//!
//! Token: `base64url(payload JSON) "." base64url(HMAC-SHA256)`, the MAC taken with the channel's
//! secret over `ocgw-media-link.0.<encoded payload>` (`signature::sign` with a message id no
//! webhook uses and timestamp 0, which no webhook window accepts). A token that does not decode,
//! names an unknown channel, does not verify or has expired is refused alike.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::signature::{self, WebhookSecret};

/// How long a media link works after the message arrived (Bitrix24 fetches files when the
/// message arrives; operators may open the link later).
pub const LINK_TTL_SECS: i64 = 30 * 24 * 3600;

/// Telegram's cloud Bot API serves files up to 20 MB; the gateway streams at most this.
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// Domain separation of the media MAC.
const MAC_CONTEXT: &str = "ocgw-media-link";

/// Longest token accepted (a file_id is ~100 characters, a name at most a few hundred).
const MAX_TOKEN_LEN: usize = 2048;

/// What a media link names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaClaims {
    /// Channel id.
    #[serde(rename = "c")]
    pub channel: String,
    /// Telegram's file_id.
    #[serde(rename = "f")]
    pub file_id: String,
    /// The original file name.
    #[serde(rename = "n")]
    pub name: String,
    /// The MIME type to serve it with.
    #[serde(rename = "m")]
    pub mime: String,
    /// Unix seconds after which the link is refused.
    #[serde(rename = "x")]
    pub expires: i64,
}

fn mac(secret: &WebhookSecret, encoded_payload: &str) -> Vec<u8> {
    let signed = signature::sign(secret, MAC_CONTEXT, 0, encoded_payload.as_bytes());
    let tag = signed.split_once(',').map(|(_, t)| t).unwrap_or_default();
    STANDARD.decode(tag).unwrap_or_default()
}

/// The token of a link.
pub fn sign(secret: &WebhookSecret, claims: &MediaClaims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let encoded = URL_SAFE_NO_PAD.encode(payload);
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, &encoded));
    format!("{encoded}.{tag}")
}

/// The claims of a token, unverified (to find the channel whose secret verifies it).
pub fn peek(token: &str) -> Option<MediaClaims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (encoded, _) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    serde_json::from_slice(&payload).ok()
}

/// The claims of a token that verifies with `secret` and has not expired at `now` (unix
/// seconds); the MAC is compared in constant time.
pub fn verify(secret: &WebhookSecret, token: &str, now: i64) -> Option<MediaClaims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (encoded, tag) = token.split_once('.')?;
    let offered = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if !crate::http::csrf::constant_time_eq(&offered, &mac(secret, encoded)) {
        return None;
    }
    let claims = peek(token)?;
    (now <= claims.expires).then_some(claims)
}

/// The link of a file: `{public_base}/media/<token>`.
pub fn link(public_base: &str, secret: &WebhookSecret, claims: &MediaClaims) -> String {
    format!("{public_base}/media/{}", sign(secret, claims))
}

#[cfg(test)]
mod tests;
