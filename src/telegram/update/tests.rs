use serde_json::json;

use super::*;

fn link(f: &MediaFile) -> String {
    format!(
        "https://gw.example/media/{}|{}|{}",
        f.file_id, f.name, f.mime
    )
}

fn run(update: Value) -> Mapped {
    map(update.to_string().as_bytes(), &link, true).expect("maps")
}

fn customer() -> Value {
    json!({"id": 200, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "username": "annlee"})
}

#[test]
fn a_message_becomes_message_created_with_the_contract_ids_and_the_user() {
    let m = run(json!({"update_id": 10, "message": {
        "message_id": 5, "date": 1_773_265_993,
        "chat": {"id": 200, "type": "private", "first_name": "Ann", "last_name": "Lee"},
        "from": customer(), "text": "hello"}}));
    assert_eq!((m.update_id, m.kind), (10, Kind::Message));
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert_eq!(c.chat.id, "200");
    assert_eq!(c.chat.name.as_deref(), Some("Ann Lee"));
    assert_eq!(c.message.id, "200:5");
    assert_eq!(c.message.text.as_deref(), Some("hello"));
    assert_eq!(c.message.date, Some(1_773_265_993));
    assert_eq!(c.user.id, "200");
    assert_eq!(c.user.name.as_deref(), Some("Ann"));
    assert_eq!(c.user.last_name.as_deref(), Some("Lee"));
    assert_eq!(c.user.url.as_deref(), Some("https://t.me/annlee"));
}

#[test]
fn large_ids_are_kept_exactly() {
    let m = run(json!({"update_id": 1, "message": {
        "message_id": 9_007_199_254_740_993_i64,
        "chat": {"id": -1_001_234_567_890_123_i64, "type": "supergroup", "title": "Shop"},
        "from": {"id": 4_503_599_627_370_497_i64, "is_bot": false, "first_name": "X"}, "text": "t"}}));
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert_eq!(c.message.id, "-1001234567890123:9007199254740993");
    assert_eq!(c.user.id, "4503599627370497");
    assert_eq!(c.chat.name.as_deref(), Some("Shop"));
}

#[test]
fn a_business_message_is_keyed_by_its_connection_and_edits_become_updates() {
    let msg = json!({"message_id": 7, "business_connection_id": "bc-1",
        "chat": {"id": 200, "type": "private", "first_name": "Ann"},
        "from": customer(), "text": "v1"});
    let m = run(json!({"update_id": 11, "business_message": msg}));
    assert_eq!(m.kind, Kind::BusinessMessage);
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert_eq!(c.chat.id, "b:bc-1:200");
    assert_eq!(c.message.id, "b:bc-1:200:7");

    let mut edited = msg.clone();
    edited["text"] = json!("v2");
    edited["edit_date"] = json!(1_773_266_000);
    let m = run(json!({"update_id": 12, "edited_business_message": edited}));
    let [Event::Updated(u)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert_eq!(u.message.id, "b:bc-1:200:7");
    assert_eq!(u.message.text.as_deref(), Some("v2"));
    let m = run(json!({"update_id": 13, "edited_message": {"message_id": 3,
        "chat": {"id": 200, "type": "private"}, "from": customer(), "text": "e"}}));
    assert!(matches!(m.events.as_slice(), [Event::Updated(u)] if u.message.id == "200:3"));
}

#[test]
fn the_gateways_own_echo_and_the_business_owners_messages_are_not_customer_messages() {
    let echo = run(
        json!({"update_id": 14, "business_message": {"message_id": 8,
        "business_connection_id": "bc-1", "chat": {"id": 200, "type": "private"},
        "from": {"id": 999, "is_bot": false, "first_name": "Shop owner"},
        "sender_business_bot": {"id": 42, "is_bot": true, "first_name": "GW"}, "text": "op reply"}}),
    );
    assert!(echo.events.is_empty());
    assert!(echo.ignored.unwrap().contains("sender_business_bot"));
    let owner = run(
        json!({"update_id": 15, "business_message": {"message_id": 9,
        "business_connection_id": "bc-1", "chat": {"id": 200, "type": "private"},
        "from": {"id": 999, "is_bot": false, "first_name": "Shop owner"}, "text": "typed by hand"}}),
    );
    assert!(owner.events.is_empty(), "{owner:?}");
}

#[test]
fn files_become_media_links_with_names_and_types() {
    let m = run(json!({"update_id": 16, "message": {"message_id": 4,
    "chat": {"id": 200, "type": "private"}, "from": customer(), "caption": "look",
    "photo": [
        {"file_id": "small", "file_unique_id": "s1", "width": 90, "height": 90, "file_size": 1000},
        {"file_id": "large", "file_unique_id": "l1", "width": 1280, "height": 960, "file_size": 90000},
        {"file_id": "mid", "file_unique_id": "m1", "width": 320, "height": 240, "file_size": 9000}
    ]}}));
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert_eq!(c.message.text.as_deref(), Some("look"));
    assert_eq!(c.message.files.len(), 1);
    assert_eq!(c.message.files[0].name, "photo_l1.jpg");
    assert_eq!(
        c.message.files[0].url,
        "https://gw.example/media/large|photo_l1.jpg|image/jpeg"
    );

    let m = run(json!({"update_id": 17, "message": {"message_id": 5,
        "chat": {"id": 200, "type": "private"}, "from": customer(),
        "document": {"file_id": "doc", "file_unique_id": "d1", "file_name": "invoice.pdf", "mime_type": "application/pdf"},
        "voice": {"file_id": "voi", "file_unique_id": "v1", "mime_type": "audio/ogg"},
        "sticker": {"file_id": "stk", "file_unique_id": "k1", "is_animated": true}}}));
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    let names: Vec<_> = c.message.files.iter().map(|f| f.url.as_str()).collect();
    assert_eq!(
        names,
        [
            "https://gw.example/media/doc|invoice.pdf|application/pdf",
            "https://gw.example/media/voi|voice_v1.ogg|audio/ogg",
            "https://gw.example/media/stk|sticker_k1.tgs|application/x-tgsticker",
        ]
    );
    assert_eq!(c.message.text, None, "files alone are a message");
}

#[test]
fn a_batch_of_business_deletions_is_one_message_deleted() {
    let m = run(json!({"update_id": 18, "deleted_business_messages": {
        "business_connection_id": "bc-1", "chat": {"id": 200, "type": "private"},
        "message_ids": [7, 8, 9]}}));
    assert_eq!(
        m.events,
        vec![Event::Deleted {
            chat_id: "b:bc-1:200".into(),
            user_id: None,
            message_ids: vec![
                "b:bc-1:200:7".into(),
                "b:bc-1:200:8".into(),
                "b:bc-1:200:9".into()
            ],
        }]
    );
}

#[test]
fn reactions_become_the_difference_of_old_and_new_in_bitrix_codes() {
    let emoji = |e: &str| json!({"type": "emoji", "emoji": e});
    let m = run(json!({"update_id": 19, "message_reaction": {
        "chat": {"id": 200, "type": "private"}, "message_id": 31, "user": customer(), "date": 1,
        "old_reaction": [emoji("👍"), emoji("🐳"), emoji("🔥")],
        "new_reaction": [emoji("🔥"), emoji("❤"), {"type": "custom_emoji", "custom_emoji_id": "5"}]}}));
    let r = |added: bool, code: &str| Event::Reaction {
        added,
        chat_id: "200".into(),
        user_id: "200".into(),
        message_id: "200:31".into(),
        reaction: code.into(),
    };
    assert_eq!(m.events, vec![r(false, "like"), r(true, "redHeart")]);

    let unmapped = run(json!({"update_id": 20, "message_reaction": {
        "chat": {"id": 200, "type": "private"}, "message_id": 31, "user": customer(), "date": 1,
        "old_reaction": [], "new_reaction": [emoji("🐳")]}}));
    assert!(unmapped.events.is_empty() && unmapped.ignored.is_some());

    let body = json!({"update_id": 21, "message_reaction": {
        "chat": {"id": 200, "type": "private"}, "message_id": 31, "user": customer(), "date": 1,
        "old_reaction": [], "new_reaction": [emoji("👍")]}});
    let off = map(body.to_string().as_bytes(), &link, false).unwrap();
    assert!(off.events.is_empty() && off.ignored.unwrap().contains("bot.enabled"));
}

#[test]
fn unknown_updates_are_ignored_with_a_fixed_label_and_garbage_is_refused() {
    let m = run(json!({"update_id": 22, "poll": {"id": "p"}}));
    assert_eq!((m.kind, m.kind.label()), (Kind::Other, "other"));
    assert!(m.events.is_empty());
    let m = run(json!({"update_id": 23, "business_connection": {"id": "bc-1"}}));
    assert_eq!(m.kind.label(), "business_connection");
    assert!(m.events.is_empty());
    assert!(map(b"not json", &link, true).is_err());
    assert!(map(br#"{"message": {}}"#, &link, true).is_err());
    assert!(map(br#"{"update_id": 1, "message": {"chat": 5}}"#, &link, true).is_err());
}

#[test]
fn a_message_with_nothing_to_show_still_reaches_the_operator() {
    let m = run(json!({"update_id": 24, "message": {"message_id": 6,
        "chat": {"id": 200, "type": "private"}, "from": customer(), "poll": {"id": "x"}}}));
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert!(
        c.message
            .text
            .as_deref()
            .unwrap()
            .contains("does not forward")
    );
    let m = run(json!({"update_id": 25, "message": {"message_id": 7,
        "chat": {"id": 200, "type": "private"}, "from": customer(),
        "location": {"latitude": 52.5, "longitude": 13.4}}}));
    let [Event::Created(c)] = m.events.as_slice() else {
        panic!("{m:?}")
    };
    assert!(
        c.message
            .text
            .as_deref()
            .unwrap()
            .starts_with("Location: 52.5, 13.4")
    );
}
