use serde_json::json;

use super::*;

fn parse_json(v: serde_json::Value) -> Result<Event, InvalidEvent> {
    parse(&serde_json::to_vec(&v).unwrap())
}

fn code(v: serde_json::Value) -> &'static str {
    match parse_json(v) {
        Err(e) => e.code,
        Ok(ok) => panic!("expected an error, got {ok:?}"),
    }
}

#[test]
fn a_full_created_event_becomes_a_customer_message() {
    let event = parse_json(json!({"type": "message.created", "data": {
        "chat": {"id": "channel-123", "name": "Support", "url": "https://x/c"},
        "user": {"id": "ext-user-42", "name": "Ivan", "last_name": "P", "picture": "https://x/p.png",
                 "url": "https://x/u", "email": "i@x", "phone": "+1"},
        "message": {"id": "ext-msg-1001", "date": 1773265993, "text": "Hello",
                    "files": [{"url": "https://x/spec.pdf", "name": "spec.pdf"}, {"url": "https://x/a/b.png"}]}
    }}))
    .unwrap();
    let Event::Created(m) = event else { panic!() };
    assert_eq!(m.chat.id, "channel-123");
    assert_eq!(m.user.email.as_deref(), Some("i@x"));
    assert_eq!(m.message.date, Some(1_773_265_993));
    assert_eq!(
        m.message.files[1].name, "b.png",
        "a missing file name comes from the URL"
    );
}

#[test]
fn integer_ids_are_converted_exactly_without_floating_point() {
    let event = parse_json(json!({"type": "message.updated", "data": {
        "chat": {"id": 9_007_199_254_740_993u64}, "user": {"id": -5},
        "message": {"id": 18_446_744_073_709_551_615u64, "text": "x"}}}))
    .unwrap();
    let Event::Updated(m) = event else { panic!() };
    assert_eq!(m.chat.id, "9007199254740993");
    assert_eq!(m.user.id, "-5");
    assert_eq!(m.message.id, "18446744073709551615");
    let too_big = br#"{"type":"message.created","data":{"chat":{"id":1},"user":{"id":1},"message":{"id":184467440737095516150,"text":"x"}}}"#;
    assert_eq!(parse(too_big).unwrap_err().code, "invalid_field");
    assert_eq!(
        code(
            json!({"type": "message.created", "data": {"chat": {"id": 1.5}, "user": {"id": 1}, "message": {"id": 1, "text": "x"}}})
        ),
        "invalid_field"
    );
}

#[test]
fn a_deleted_event_lists_its_message_ids_and_an_optional_user() {
    let event = parse_json(json!({"type": "message.deleted", "data": {
        "chat": {"id": "c"}, "messages": [{"id": "m1"}, {"id": 2}]}}))
    .unwrap();
    assert_eq!(
        event,
        Event::Deleted {
            chat_id: "c".into(),
            user_id: None,
            message_ids: vec!["m1".into(), "2".into()]
        }
    );
    let with_user = parse_json(json!({"type": "message.deleted", "data": {
        "chat": {"id": "c"}, "user": {"id": "u"}, "messages": [{"id": "m1"}]}}))
    .unwrap();
    assert!(matches!(with_user, Event::Deleted { user_id: Some(u), .. } if u == "u"));
}

#[test]
fn each_kind_of_bad_input_has_its_code() {
    assert_eq!(parse(b"{not json").unwrap_err().code, "invalid_json");
    assert_eq!(parse(b"[1,2]").unwrap_err().code, "invalid_json");
    assert_eq!(code(json!({"data": {}})), "missing_field");
    assert_eq!(
        code(json!({"type": "message.exploded", "data": {}})),
        "unknown_type"
    );
    assert_eq!(code(json!({"type": "message.created"})), "missing_field");
    assert_eq!(
        code(
            json!({"type": "message.created", "data": {"chat": {"id": "c"}, "user": {"id": "u"}}})
        ),
        "missing_field"
    );
    assert_eq!(
        code(
            json!({"type": "message.created", "data": {"chat": {"id": "c"}, "user": {"id": "u"}, "message": {"id": "m"}}})
        ),
        "missing_field",
        "text or files is required"
    );
    assert_eq!(
        code(
            json!({"type": "message.created", "data": {"chat": {"id": ""}, "user": {"id": "u"}, "message": {"id": "m", "text": "t"}}})
        ),
        "invalid_field"
    );
    assert_eq!(
        code(
            json!({"type": "message.created", "data": {"chat": "c", "user": {"id": "u"}, "message": {"id": "m", "text": "t"}}})
        ),
        "invalid_field"
    );
    assert_eq!(
        code(
            json!({"type": "message.created", "data": {"chat": {"id": "c"}, "user": {"id": "u"}, "message": {"id": "m", "files": [{"url": "ftp://x"}]}}})
        ),
        "invalid_field"
    );
    assert_eq!(
        code(json!({"type": "message.deleted", "data": {"chat": {"id": "c"}, "messages": []}})),
        "invalid_field"
    );
}

#[test]
fn more_than_a_thousand_deletions_is_too_many_items_and_a_thousand_is_fine() {
    let ids = |n: usize| {
        (0..n)
            .map(|i| json!({"id": format!("m{i}")}))
            .collect::<Vec<_>>()
    };
    let ok = parse_json(
        json!({"type": "message.deleted", "data": {"chat": {"id": "c"}, "messages": ids(1000)}}),
    );
    assert!(ok.is_ok());
    assert_eq!(
        code(
            json!({"type": "message.deleted", "data": {"chat": {"id": "c"}, "messages": ids(1001)}})
        ),
        "too_many_items"
    );
}

#[test]
fn reactions_are_read_with_their_code() {
    let event = parse_json(json!({"type": "reaction.added", "data": {
        "chat": {"id": "c"}, "user": {"id": "u"}, "message": {"id": "ext-op-1"}, "reaction": "like"}}))
    .unwrap();
    assert_eq!(
        event,
        Event::Reaction {
            added: true,
            chat_id: "c".into(),
            user_id: "u".into(),
            message_id: "ext-op-1".into(),
            reaction: "like".into()
        }
    );
    assert_eq!(event.type_name(), "reaction.added");
    let removed = parse_json(json!({"type": "reaction.removed", "data": {
        "chat": {"id": "c"}, "user": {"id": "u"}, "message": {"id": "m"}, "reaction": "fire"}}))
    .unwrap();
    assert_eq!(removed.type_name(), "reaction.removed");
    assert_eq!(
        code(
            json!({"type": "reaction.added", "data": {"chat": {"id": "c"}, "user": {"id": "u"}, "message": {"id": "m"}}})
        ),
        "missing_field"
    );
}

/// Whenever the fast path decides, it decides what the general parser would; it takes the
/// common shape and leaves every other shape to the general parser.

#[test]
fn a_refusal_names_the_field_by_its_path() {
    let message = |v: serde_json::Value| parse_json(v).unwrap_err();
    let ids = (0..5)
        .map(|i| {
            if i == 3 {
                json!({"id": 1.5})
            } else {
                json!({"id": format!("m{i}")})
            }
        })
        .collect::<Vec<_>>();
    let e =
        message(json!({"type": "message.deleted", "data": {"chat": {"id": "c"}, "messages": ids}}));
    assert_eq!(e.code, "invalid_field");
    assert!(
        e.message.starts_with("data.messages[3].id: "),
        "{}",
        e.message
    );
    let e = message(
        json!({"type": "message.deleted", "data": {"chat": {"id": "c"}, "messages": [{"id": "a"}, {}]}}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        ("missing_field", "data.messages[1].id is required")
    );
    let e = message(
        json!({"type": "message.created", "data": {"chat": {"id": "c"}, "user": {"id": "u"}, "message": {"id": "m", "text": "t", "date": 1.5}}}),
    );
    assert!(
        e.message.starts_with("data.message.date: "),
        "{}",
        e.message
    );
    let e = message(
        json!({"type": "message.created", "data": {"chat": {"id": "c"}, "user": {"name": "n"}, "message": {"id": "m", "text": "t"}}}),
    );
    assert_eq!(e.message, "data.user.id is required");
    let long = "x".repeat(257);
    let e = message(
        json!({"type": "message.created", "data": {"chat": {"id": long}, "user": {"id": "u"}, "message": {"id": "m", "text": "t"}}}),
    );
    assert!(e.message.starts_with("data.chat.id: "), "{}", e.message);
    // Dates may come as a string of digits; escaped type names are read too.
    let ok = parse(br#"{"type":"message\u002ecreated","data":{"chat":{"id":"c"},"user":{"id":"u"},"message":{"id":"m","text":"t","date":"1700000000"}}}"#).unwrap();
    match ok {
        Event::Created(m) => assert_eq!(m.message.date, Some(1_700_000_000)),
        other => panic!("{other:?}"),
    }
}
