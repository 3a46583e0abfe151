//! Standard Webhooks v1 (HMAC-SHA256) secrets, signing and verification; pure, no I/O, clock injected.
//!
//! Signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`; the signature header is a
//! space-separated list of `<version>,<base64>` tokens of which only `v1` ones are checked.
//! See `docs/messenger-webhooks.md` section 1 and `spec/gateway-api.md` sections 2 and 4.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Name of the header carrying the event ID (the idempotency key, same on every retry).
pub const HEADER_ID: &str = "webhook-id";
/// Name of the header carrying the attempt time in integer unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Name of the header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Prefix of the textual form of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The only signature version this module produces and checks.
pub const SIGNATURE_VERSION: &str = "v1";
/// Allowed distance in seconds between `webhook-timestamp` and now, in both directions (inclusive).
pub const TOLERANCE_SECS: i64 = 300;

/// Length in bytes of a key made by [`WebhookSecret::generate`].
const GENERATED_KEY_LEN: usize = 32;

/// HMAC key of a channel; Debug prints "WebhookSecret(***)"; never Display the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: SecretSlice<u8>,
}

/// Why a secret could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No key bytes (e.g. `""` or `"whsec_"`).
    #[error("webhook secret is empty")]
    Empty,
    /// The part after the optional `whsec_` is not canonical, padded, standard base64.
    #[error(
        "webhook secret is not canonical padded standard base64 (optionally prefixed with whsec_)"
    )]
    InvalidBase64,
}

impl WebhookSecret {
    /// Accepts `"whsec_<base64>"` or bare `"<base64>"`. STANDARD base64 with canonical padding only
    /// (reject unpadded and non-canonical trailing bits), decoded key must be non-empty.
    ///
    /// The input is not trimmed: surrounding whitespace is an [`SecretError::InvalidBase64`].
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw key bytes; an empty key is refused.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            key: SecretSlice::from(bytes),
        })
    }

    /// Random 32-byte secret, rendered "whsec_..." by `to_whsec()` (used by sandbox/tests).
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_KEY_LEN];
        // The thread RNG is a CSPRNG seeded from the operating system.
        rand::fill(&mut bytes[..]);
        Self {
            key: SecretSlice::from(bytes),
        }
    }

    /// The textual form `whsec_<base64>`, accepted back by [`WebhookSecret::parse`].
    pub fn to_whsec(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(self.key.expose_secret())
        )
    }

    /// A MAC keyed with this secret that has absorbed `{id}.{timestamp}.{payload}`.
    fn mac_over(&self, msg_id: &str, timestamp: &str, payload: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length (long ones are hashed), so this cannot fail;
        // the hmac crate's own `KeyInit::new` makes the same assertion.
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret())
            .expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// `"v1,<base64 HMAC-SHA256 over {id}.{timestamp}.{payload}>"`; payload is raw bytes (no UTF-8 requirement).
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    let tag = secret
        .mac_over(msg_id, &timestamp.to_string(), payload)
        .finalize()
        .into_bytes();
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag))
}

/// The three header values a sender puts on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Value for `webhook-id`.
    pub id: String,
    /// Value for `webhook-timestamp` (integer unix seconds).
    pub timestamp: String,
    /// Value for `webhook-signature` (one `v1,` token).
    pub signature: String,
}

impl SignedHeaders {
    /// The same values seen from the receiving side, all present.
    pub fn as_received(&self) -> ReceivedHeaders<'_> {
        ReceivedHeaders {
            id: Some(&self.id),
            timestamp: Some(&self.timestamp),
            signature: Some(&self.signature),
        }
    }
}

/// Signs `payload` and returns the header values to send with it.
pub fn sign_headers(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> SignedHeaders {
    SignedHeaders {
        id: msg_id.to_owned(),
        timestamp: timestamp.to_string(),
        signature: sign(secret, msg_id, timestamp, payload),
    }
}

/// Header values as received (None = header missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceivedHeaders<'a> {
    /// Value of `webhook-id`.
    pub id: Option<&'a str>,
    /// Value of `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// Value of `webhook-signature`.
    pub signature: Option<&'a str>,
}

/// Why a request's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SignatureError {
    /// The named header ("webhook-id" | "webhook-timestamp" | "webhook-signature") is absent or empty.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    #[error("webhook-timestamp is not an integer number of seconds")]
    InvalidTimestamp,
    /// `webhook-timestamp` is more than [`TOLERANCE_SECS`] before now.
    #[error("webhook-timestamp is too old")]
    TimestampTooOld,
    /// `webhook-timestamp` is more than [`TOLERANCE_SECS`] after now.
    #[error("webhook-timestamp is too far in the future")]
    TimestampInFuture,
    /// No `v1` token of `webhook-signature` matches the content.
    #[error("no matching v1 signature")]
    NoMatchingSignature,
}

/// Verify over the raw body with an injected clock `now` (unix seconds).
///
/// Checks, in order: all three headers present and non-empty, the timestamp is an integer, it is
/// within [`TOLERANCE_SECS`] of `now`, and at least one `v1` token matches. The MAC is computed over
/// the timestamp exactly as received.
pub fn verify(
    secret: &WebhookSecret,
    headers: &ReceivedHeaders<'_>,
    payload: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = present(headers.id, HEADER_ID)?;
    let raw_timestamp = present(headers.timestamp, HEADER_TIMESTAMP)?;
    let signature_header = present(headers.signature, HEADER_SIGNATURE)?;

    let timestamp = parse_timestamp(raw_timestamp)?;
    if now.saturating_sub(timestamp) > TOLERANCE_SECS {
        return Err(SignatureError::TimestampTooOld);
    }
    if timestamp.saturating_sub(now) > TOLERANCE_SECS {
        return Err(SignatureError::TimestampInFuture);
    }

    let mac = secret.mac_over(id, raw_timestamp, payload);
    let matched = v1_tags(signature_header).any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatchingSignature)
    }
}

/// The header value if it is there and non-empty.
fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SignatureError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeader(name))
}

/// An optional `-` then ASCII digits only (no `+`, spaces, fractions), fitting in i64.
fn parse_timestamp(raw: &str) -> Result<i64, SignatureError> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::InvalidTimestamp);
    }
    raw.parse().map_err(|_| SignatureError::InvalidTimestamp)
}

/// Decoded tags of the `v1` tokens; other versions are not decoded, undecodable tokens are skipped.
fn v1_tags(header: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    header.split(' ').filter_map(|token| {
        let (version, encoded) = token.split_once(',')?;
        if version != SIGNATURE_VERSION {
            return None;
        }
        STANDARD.decode(encoded).ok()
    })
}

#[cfg(test)]
mod tests;
