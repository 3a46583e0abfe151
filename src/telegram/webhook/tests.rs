use super::*;

#[test]
fn the_webhook_matches_only_with_the_same_url_and_the_same_update_set() {
    let url = "https://gw.example/v1/channels/tg/telegram";
    let mut reversed: Vec<&str> = ALLOWED_UPDATES.to_vec();
    reversed.reverse();
    assert!(matches(
        &json!({"url": url, "allowed_updates": reversed}),
        url
    ));
    assert!(!matches(
        &json!({"url": "https://old.example/x", "allowed_updates": ALLOWED_UPDATES}),
        url
    ));
    assert!(
        !matches(&json!({"url": url}), url),
        "default set lacks reactions"
    );
    assert!(!matches(
        &json!({"url": url, "allowed_updates": ["message"]}),
        url
    ));
    assert!(!matches(&json!({"url": ""}), url));
}

#[test]
fn the_secret_digest_changes_with_the_secret() {
    assert_eq!(secret_digest("a"), secret_digest("a"));
    assert_ne!(secret_digest("a"), secret_digest("b"));
    assert_eq!(secret_digest("a").len(), 32);
}
