//! Builders of the Updates a test or the sandbox posts (Bot API shapes, written out here).

use serde_json::{Value, json};

/// A customer (`User`) as Telegram describes one.
pub fn customer(id: i64, first_name: &str, username: Option<&str>) -> Value {
    let mut user = json!({"id": id, "is_bot": false, "first_name": first_name});
    if let Some(u) = username {
        user["username"] = json!(u);
    }
    user
}

/// `message` (or `business_message` with a connection) with text.
pub fn message(
    update_id: i64,
    chat_id: i64,
    message_id: i64,
    text: &str,
    business: Option<&str>,
) -> Value {
    let mut m = json!({
        "message_id": message_id, "date": 1_773_265_993,
        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
        "from": customer(chat_id, "Ann", Some("ann_customer")),
        "text": text,
    });
    wrap(update_id, "message", &mut m, business)
}

/// A photo message (three sizes, the largest `file_id` last) with a caption.
pub fn photo(
    update_id: i64,
    chat_id: i64,
    message_id: i64,
    largest_file_id: &str,
    caption: &str,
    business: Option<&str>,
) -> Value {
    let mut m = json!({
        "message_id": message_id, "date": 1_773_265_993,
        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
        "from": customer(chat_id, "Ann", Some("ann_customer")),
        "caption": caption,
        "photo": [
            {"file_id": "thumb-s", "file_unique_id": "ts", "width": 90, "height": 67, "file_size": 1200},
            {"file_id": "thumb-m", "file_unique_id": "tm", "width": 320, "height": 240, "file_size": 15000},
            {"file_id": largest_file_id, "file_unique_id": "big1", "width": 1280, "height": 960, "file_size": 120000},
        ],
    });
    wrap(update_id, "message", &mut m, business)
}

/// An edit of a customer's message.
pub fn edited(
    update_id: i64,
    chat_id: i64,
    message_id: i64,
    text: &str,
    business: Option<&str>,
) -> Value {
    let mut m = json!({
        "message_id": message_id, "date": 1_773_265_993, "edit_date": 1_773_266_100,
        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
        "from": customer(chat_id, "Ann", Some("ann_customer")),
        "text": text,
    });
    wrap(update_id, "edited_message", &mut m, business)
}

/// `deleted_business_messages`: a batch of deleted ids.
pub fn deleted_business(update_id: i64, connection: &str, chat_id: i64, ids: &[i64]) -> Value {
    json!({"update_id": update_id, "deleted_business_messages": {
        "business_connection_id": connection,
        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
        "message_ids": ids,
    }})
}

/// `message_reaction` from the old to the new emoji list.
pub fn reaction(
    update_id: i64,
    chat_id: i64,
    message_id: i64,
    old: &[&str],
    new: &[&str],
) -> Value {
    let list = |e: &[&str]| {
        e.iter()
            .map(|e| json!({"type": "emoji", "emoji": e}))
            .collect::<Vec<_>>()
    };
    json!({"update_id": update_id, "message_reaction": {
        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
        "message_id": message_id,
        "user": customer(chat_id, "Ann", None),
        "date": 1_773_265_993,
        "old_reaction": list(old), "new_reaction": list(new),
    }})
}

fn wrap(update_id: i64, plain: &str, m: &mut Value, business: Option<&str>) -> Value {
    match business {
        Some(conn) => {
            m["business_connection_id"] = json!(conn);
            let field = if plain == "message" {
                "business_message"
            } else {
                "edited_business_message"
            };
            json!({"update_id": update_id, field: m})
        }
        None => json!({"update_id": update_id, plain: m}),
    }
}
