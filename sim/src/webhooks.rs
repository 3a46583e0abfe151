//! Standard Webhooks v1 for the fake platform, written apart from the gateway's
//! `signature.rs`: `webhook-signature` is `v1,` + base64 of HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the secret's bytes (`whsec_` + base64).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Header names.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Accepted clock skew, seconds.
const TOLERANCE_SECS: i64 = 300;

/// A channel's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// 24 random bytes.
    pub fn generate() -> Secret {
        Secret((0..24).map(|_| rand::random::<u8>()).collect())
    }

    /// `whsec_<base64>` (or bare base64).
    pub fn parse(text: &str) -> Option<Secret> {
        let b64 = text.strip_prefix("whsec_").unwrap_or(text);
        STANDARD
            .decode(b64)
            .ok()
            .filter(|b| !b.is_empty())
            .map(Secret)
    }

    /// The `whsec_` form, as the gateway's settings take it.
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64>` for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Whether the headers sign `body` with this secret, within the time tolerance of `now`.
    pub fn verifies(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> bool {
        let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
            return false;
        };
        let Ok(ts) = timestamp.trim().parse::<i64>() else {
            return false;
        };
        if (now - ts).abs() > TOLERANCE_SECS {
            return false;
        }
        let expected = self.sign(id, ts, body);
        signatures.split(' ').any(|s| s == expected)
    }
}

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl SignedHeaders {
    /// Sign `body` as message `id` at `timestamp`.
    pub fn new(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
        SignedHeaders {
            id: id.to_string(),
            timestamp: timestamp.to_string(),
            signature: secret.sign(id, timestamp, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification.
    #[test]
    fn the_specifications_vector() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let sig = secret.sign("m", 1000, b"x");
        assert!(secret.verifies(
            Some("m"),
            Some("1000"),
            Some(&format!("v2,x {sig}")),
            b"x",
            1100
        ));
        assert!(!secret.verifies(Some("m"), Some("1000"), Some(&sig), b"y", 1100));
        assert!(!secret.verifies(Some("m"), Some("1000"), Some(&sig), b"x", 2000));
        assert_eq!(Secret::parse(&secret.to_whsec()), Some(secret));
    }
}
