use super::*;

fn claims() -> MediaClaims {
    MediaClaims {
        channel: "tg-shop".into(),
        file_id: "AgACAgIAAxkBAAIBY2Z".into(),
        name: "счёт №1.pdf".into(),
        mime: "application/pdf".into(),
        expires: 1_000_000,
    }
}

#[test]
fn a_token_verifies_with_its_channels_secret_until_it_expires() {
    let secret = WebhookSecret::generate();
    let token = sign(&secret, &claims());
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "URL-safe: {token}"
    );
    assert_eq!(verify(&secret, &token, 999_999), Some(claims()));
    assert_eq!(verify(&secret, &token, 1_000_000), Some(claims()));
    assert_eq!(verify(&secret, &token, 1_000_001), None, "expired");
    assert_eq!(peek(&token), Some(claims()));
}

#[test]
fn another_secret_a_changed_payload_or_a_broken_token_is_refused() {
    let secret = WebhookSecret::generate();
    let token = sign(&secret, &claims());
    assert_eq!(verify(&WebhookSecret::generate(), &token, 0), None);
    let (_, tag) = token.split_once('.').unwrap();
    let mut other = claims();
    other.file_id = "another-file".into();
    let forged_payload = sign(&WebhookSecret::generate(), &other);
    let (payload, _) = forged_payload.split_once('.').unwrap();
    assert_eq!(verify(&secret, &format!("{payload}.{tag}"), 0), None);
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify(&secret, &String::from_utf8(flipped).unwrap(), 0),
        None
    );
    for bad in ["", ".", "abc", "abc.def", &"a".repeat(5000)] {
        assert_eq!(verify(&secret, bad, 0), None, "{bad}");
    }
}
