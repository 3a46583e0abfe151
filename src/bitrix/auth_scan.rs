//! A cheap look at a Bitrix24 event body for its sender, before the body is decoded.
//!
//! `auth[member_id]` and `auth[application_token]` are found by one pass over the raw
//! `name=value` fields: a name is percent-decoded only when it is short enough to be one of
//! them, and nothing else is allocated. An event route authenticates with this and decodes the
//! body only for a known sender, so an unauthenticated body costs a scan, not a decode.

use super::events::Sender;

const MEMBER_ID: &[u8] = b"auth[member_id]";
const APPLICATION_TOKEN: &[u8] = b"auth[application_token]";
/// Longest encoding of the longest name we look for (every bracket as `%5B` / `%5D`).
const MAX_ENCODED_NAME: usize = APPLICATION_TOKEN.len() + 4;
/// Longest value taken for either field (both are 32 hex digits in practice).
const MAX_VALUE: usize = 256;

/// The sender named by a form body, if both fields are present, non-empty and plausible. Like
/// PHP's `parse_str`, a later field of the same name wins.
pub fn sender(body: &[u8]) -> Option<Sender> {
    let mut member_id = None;
    let mut application_token = None;
    for field in body.split(|b| *b == b'&') {
        let (name, value) = match field.iter().position(|b| *b == b'=') {
            Some(eq) => (&field[..eq], &field[eq + 1..]),
            None => (field, &b""[..]),
        };
        if name.len() > MAX_ENCODED_NAME || !name.starts_with(b"auth") {
            continue;
        }
        let mut decoded = [0u8; MAX_ENCODED_NAME];
        let Some(len) = decode_into(name, &mut decoded) else {
            continue;
        };
        let slot = match &decoded[..len] {
            n if n == MEMBER_ID => &mut member_id,
            n if n == APPLICATION_TOKEN => &mut application_token,
            _ => continue,
        };
        *slot = Some(value);
    }
    Some(Sender {
        member_id: text(member_id?)?,
        application_token: text(application_token?)?,
    })
}

/// A short, non-empty, UTF-8 value.
fn text(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > 3 * MAX_VALUE {
        return None;
    }
    let mut out = vec![0u8; raw.len()];
    let len = decode_into(raw, &mut out)?;
    out.truncate(len);
    String::from_utf8(out).ok().filter(|s| s.len() <= MAX_VALUE)
}

/// Strict form decoding of `input` into `out` (at least as long); the decoded length.
fn decode_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut len = 0;
    let mut i = 0;
    while i < input.len() {
        out[len] = match input[i] {
            b'+' => b' ',
            b'%' => {
                let hex = input.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 2;
                u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?
            }
            byte => byte,
        };
        len += 1;
        i += 1;
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitrix::{events, form};

    fn sender_of(body: &str) -> Option<(String, String)> {
        sender(body.as_bytes()).map(|s| (s.member_id, s.application_token))
    }

    #[test]
    fn finds_the_sender_plain_or_encoded_and_agrees_with_the_decoder() {
        for body in [
            "event=X&auth[member_id]=m1&auth[application_token]=t1",
            "auth%5Bapplication_token%5D=t1&data%5BA%5D=1&auth%5Bmember_id%5D=m1",
            "auth[member_id]=old&auth[member_id]=m1&auth[application_token]=t%31",
        ] {
            assert_eq!(sender_of(body), Some(("m1".into(), "t1".into())), "{body}");
            let decoded = form::decode(body).unwrap();
            assert_eq!(events::sender(&decoded).ok(), sender(body.as_bytes()));
        }
    }

    #[test]
    fn a_missing_empty_or_implausible_field_is_no_sender() {
        for body in [
            "",
            "auth[member_id]=m1",
            "auth[member_id]=m1&auth[application_token]=",
            "auth[member_id]=m1&auth[application_token]=%zz",
            "auth[member_id]=m1&auth[application_token]=%ff",
            "auth[member_id][]=m1&auth[application_token]=t1",
            "AUTH[member_id]=m1&auth[application_token]=t1",
        ] {
            assert_eq!(sender_of(body), None, "{body}");
        }
        let long = format!(
            "auth[member_id]=m1&auth[application_token]={}",
            "t".repeat(MAX_VALUE + 1)
        );
        assert_eq!(sender_of(&long), None);
    }

    #[test]
    fn a_hostile_body_is_scanned_without_decoding_it() {
        let field = format!("a{}=", "[]".repeat(32));
        let mut body = vec![field.as_str(); 15_000].join("&");
        body.push_str("&auth[member_id]=m1&auth[application_token]=t1");
        assert_eq!(sender_of(&body), Some(("m1".into(), "t1".into())));
    }
}
