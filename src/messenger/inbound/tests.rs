use serde_json::json;

use super::*;

fn parse_json(v: serde_json::Value) -> Result<PlatformEvent, InvalidEvent> {
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
    let PlatformEvent::Created(m) = event else {
        panic!()
    };
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
    let PlatformEvent::Updated(m) = event else {
        panic!()
    };
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
        PlatformEvent::Deleted {
            chat_id: "c".into(),
            user_id: None,
            message_ids: vec!["m1".into(), "2".into()]
        }
    );
    let with_user = parse_json(json!({"type": "message.deleted", "data": {
        "chat": {"id": "c"}, "user": {"id": "u"}, "messages": [{"id": "m1"}]}}))
    .unwrap();
    assert!(matches!(with_user, PlatformEvent::Deleted { user_id: Some(u), .. } if u == "u"));
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
        PlatformEvent::Reaction {
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
fn the_fast_path_agrees_with_the_general_parser_on_every_shape() {
    let base = json!({
        "type": "message.created",
        "data": {
            "chat": {"id": "c1", "name": "Chat", "url": "https://x/c1"},
            "user": {"id": "u1", "name": "Ann", "last_name": "Lee", "picture": "https://x/p.png",
                     "url": "https://x/u1", "email": "a@x", "phone": "+1"},
            "message": {"id": "m1", "date": 1700000000, "text": "hello", "extra": 1}
        },
        "unknown": true
    });
    let mut shapes = vec![(base.clone(), true)];
    let mut with = |path: &[&str], value: serde_json::Value, fast: bool| {
        let mut v = base.clone();
        let mut at = &mut v;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        shapes.push((v, fast));
    };
    with(&["type"], json!("message.updated"), true);
    with(&["data", "message", "date"], json!(null), true);
    with(&["data", "message", "files"], json!([]), true);
    with(&["data", "user", "name"], json!(null), true);
    with(&["type"], json!("message.deleted"), false);
    with(&["type"], json!("reaction.added"), false);
    with(&["type"], json!(7), false);
    with(&["data", "chat", "id"], json!(42), false);
    with(&["data", "chat", "id"], json!(""), false);
    with(&["data", "user", "id"], json!("u".repeat(257)), false);
    with(&["data", "message", "id"], json!(1.5), false);
    with(&["data", "message", "date"], json!("1700000000"), false);
    with(&["data", "message", "date"], json!(1.5), false);
    with(&["data", "message", "text"], json!("   "), false);
    with(&["data", "message", "text"], json!(5), false);
    with(
        &["data", "message", "files"],
        json!([{"url": "https://x/f.pdf"}]),
        false,
    );
    with(&["data", "message", "files"], json!({}), false);
    with(&["data", "user", "email"], json!(1), false);
    with(&["data", "chat"], json!(null), false);
    with(&["data"], json!([]), false);
    let mut bodies: Vec<(Vec<u8>, bool)> = shapes
        .into_iter()
        .map(|(v, fast)| (serde_json::to_vec(&v).unwrap(), fast))
        .collect();
    let text = String::from_utf8(bodies[0].0.clone()).unwrap();
    // A repeated key: the general parser keeps the last one.
    let repeated = text.replacen("\"text\":\"hello\"", "\"text\":\"a\",\"text\":\"b\"", 1);
    bodies.push((repeated.into_bytes(), false));
    bodies.push((b"{\"type\":\"message.created\"".to_vec(), false));
    bodies.push((format!("{text} trailing").into_bytes(), false));
    for (body, fast_expected) in bodies {
        let shown = String::from_utf8_lossy(&body).to_string();
        let fast = fast::parse(&body);
        assert_eq!(fast.is_some(), fast_expected, "{shown}");
        if let Some(event) = fast {
            assert_eq!(parse_general(&body), Ok(event), "{shown}");
        }
    }
}
