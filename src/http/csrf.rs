//! CSRF tokens of the settings page's action forms: HMAC-SHA256, keyed with the data
//! directory's placement key, over (member_id, line, action, expiry). Pure: no I/O, clock injected.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long a rendered page's buttons stay usable.
pub const TTL_SECS: i64 = 15 * 60;
/// Clock skew tolerated for an expiry further in the future than [`TTL_SECS`].
const SKEW_SECS: i64 = 60;
/// Domain separation: these MACs mean nothing anywhere else.
const CONTEXT: &[u8] = b"ocgw-placement-action-v1";

/// What the settings page lets a user do to the connector on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Activate,
    Deactivate,
}

impl Action {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Activate => "activate",
            Action::Deactivate => "deactivate",
        }
    }

    /// Parse the form value.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "activate" => Some(Action::Activate),
            "deactivate" => Some(Action::Deactivate),
            _ => None,
        }
    }
}

/// What one token vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims<'a> {
    pub member_id: &'a str,
    pub line: u64,
    pub action: Action,
    /// Unix seconds after which the token is refused.
    pub expires: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("the form's security token does not match")]
    Invalid,
    #[error("the page has expired; reopen the settings")]
    Expired,
}

/// The token for `claims` (unpadded URL-safe base64 of the MAC).
pub fn sign(key: &[u8], claims: &Claims<'_>) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, claims).finalize().into_bytes())
}

/// Check `token` against `claims` at unix time `now`: the MAC first (in constant time), then
/// the expiry, which must be neither past nor further ahead than a fresh token's.
pub fn verify(key: &[u8], claims: &Claims<'_>, token: &str, now: i64) -> Result<(), CsrfError> {
    let tag = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| CsrfError::Invalid)?;
    mac(key, claims)
        .verify_slice(&tag)
        .map_err(|_| CsrfError::Invalid)?;
    if claims.expires.saturating_sub(now) > TTL_SECS + SKEW_SECS {
        return Err(CsrfError::Invalid);
    }
    if now > claims.expires {
        return Err(CsrfError::Expired);
    }
    Ok(())
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn mac(key: &[u8], c: &Claims<'_>) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    let line = c.line.to_string();
    let expires = c.expires.to_string();
    for part in [
        CONTEXT,
        c.member_id.as_bytes(),
        line.as_bytes(),
        c.action.as_str().as_bytes(),
        expires.as_bytes(),
    ] {
        // Length-prefixed parts: no two claim sets share an encoding.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_780_000_000;

    fn claims(expires: i64) -> Claims<'static> {
        Claims {
            member_id: "abc",
            line: 7,
            action: Action::Deactivate,
            expires,
        }
    }

    #[test]
    fn a_fresh_token_verifies_until_it_expires() {
        let c = claims(NOW + TTL_SECS);
        let token = sign(KEY, &c);
        assert_eq!(verify(KEY, &c, &token, NOW), Ok(()));
        assert_eq!(verify(KEY, &c, &token, NOW + TTL_SECS), Ok(()));
        assert_eq!(
            verify(KEY, &c, &token, NOW + TTL_SECS + 1),
            Err(CsrfError::Expired)
        );
    }

    #[test]
    fn any_other_claim_key_or_token_is_invalid() {
        let c = claims(NOW + 60);
        let token = sign(KEY, &c);
        let others = [
            Claims {
                member_id: "abd",
                ..c
            },
            Claims { line: 70, ..c },
            Claims {
                action: Action::Activate,
                ..c
            },
            Claims {
                expires: c.expires + 1,
                ..c
            },
        ];
        for other in others {
            assert_eq!(
                verify(KEY, &other, &token, NOW),
                Err(CsrfError::Invalid),
                "{other:?}"
            );
        }
        assert_eq!(
            verify(b"another key", &c, &token, NOW),
            Err(CsrfError::Invalid)
        );
        for bad in ["", "not base64!", "AAAA", &token[1..]] {
            assert_eq!(verify(KEY, &c, bad, NOW), Err(CsrfError::Invalid), "{bad}");
        }
    }

    #[test]
    fn an_expiry_too_far_ahead_is_refused_even_when_signed() {
        let c = claims(NOW + 24 * 3600);
        assert_eq!(
            verify(KEY, &c, &sign(KEY, &c), NOW),
            Err(CsrfError::Invalid)
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
