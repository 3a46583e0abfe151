//! Temporary stand-in for the Standard Webhooks module (replaced by the full one on merge).
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};

pub const TOLERANCE_SECS: i64 = 300;

#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}
impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("empty secret")]
    Empty,
    #[error("invalid base64")]
    InvalidBase64,
}
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SignatureError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("invalid timestamp")]
    InvalidTimestamp,
    #[error("timestamp too old")]
    TimestampTooOld,
    #[error("timestamp in future")]
    TimestampInFuture,
    #[error("no matching signature")]
    NoMatchingSignature,
}
impl WebhookSecret {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b = s.strip_prefix("whsec_").unwrap_or(s);
        let key = STANDARD.decode(b).map_err(|_| SecretError::InvalidBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key })
    }
    pub fn generate() -> Self {
        Self { key: vec![7; 32] }
    }
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.key))
    }
}
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}
pub struct ReceivedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}
fn mac(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> hmac::Hmac<sha2::Sha256> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret.key).expect("any key size");
    m.update(format!("{msg_id}.{timestamp}.").as_bytes());
    m.update(payload);
    m
}
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(
            mac(secret, msg_id, timestamp, payload)
                .finalize()
                .into_bytes()
        )
    )
}
pub fn sign_headers(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> SignedHeaders {
    SignedHeaders {
        id: msg_id.into(),
        timestamp: timestamp.to_string(),
        signature: sign(secret, msg_id, timestamp, payload),
    }
}
pub fn verify(
    secret: &WebhookSecret,
    h: &ReceivedHeaders<'_>,
    payload: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id =
        h.id.filter(|s| !s.is_empty())
            .ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let ts = h
        .timestamp
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let sig = h
        .signature
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts.parse().map_err(|_| SignatureError::InvalidTimestamp)?;
    if now - ts > TOLERANCE_SECS {
        return Err(SignatureError::TimestampTooOld);
    }
    if ts - now > TOLERANCE_SECS {
        return Err(SignatureError::TimestampInFuture);
    }
    for tok in sig.split(' ') {
        if let Some(("v1", b)) = tok.split_once(',') {
            if let Ok(raw) = STANDARD.decode(b) {
                if mac(secret, id, ts, payload).verify_slice(&raw).is_ok() {
                    return Ok(());
                }
            }
        }
    }
    Err(SignatureError::NoMatchingSignature)
}
