use super::*;

#[test]
fn chat_and_message_ids_round_trip() {
    let plain = ChatKey {
        chat_id: -1001234567890,
        business_connection_id: None,
    };
    assert_eq!(plain.external(), "-1001234567890");
    assert_eq!(plain.message(7), "-1001234567890:7");
    assert_eq!(ChatKey::parse("-1001234567890"), Some(plain.clone()));
    assert_eq!(parse_message("-1001234567890:7"), Some((plain, 7)));

    let business = ChatKey {
        chat_id: 200,
        business_connection_id: Some("AbC-1_x:y".into()),
    };
    assert_eq!(business.external(), "b:AbC-1_x:y:200");
    assert_eq!(ChatKey::parse("b:AbC-1_x:y:200"), Some(business.clone()));
    assert_eq!(parse_message("b:AbC-1_x:y:200:0"), Some((business, 0)));
}

#[test]
fn ids_that_are_not_telegrams_are_refused() {
    assert_eq!(ChatKey::parse("acme-chat"), None);
    assert_eq!(ChatKey::parse("b::200"), None);
    assert_eq!(ChatKey::parse("b:conn"), None);
    assert_eq!(parse_message("b24-55"), None);
    assert_eq!(parse_message("200"), None);
    assert_eq!(parse_message("200:x"), None);
}
