//! imconnector.* over HTTP: registration, line state and per-item message semantics.

use serde_json::json;

use super::{CONNECTOR, Env, LINE, item, register_params};
use crate::portal::FakePortalConfig;

#[tokio::test(flavor = "multi_thread")]
async fn register_validation_and_update() {
    let env = Env::default().await;
    let cases = [
        (json!({"NAME": "x"}), "CONNECTOR_ID_REQUIRED"),
        (
            json!({"ID": "a.b", "NAME": "x"}),
            "APPLICATION_REGISTRATION_ERROR_POINT",
        ),
        (json!({"ID": "a"}), "NAME_REQUIRED"),
        (
            json!({"ID": "a", "NAME": "x", "ICON": {"COLOR": "#fff"}}),
            "ICON_REQUIRED",
        ),
        (
            json!({"ID": "a", "NAME": "x", "ICON": {"DATA_IMAGE": "data:"}}),
            "NO_PLACEMENT_HANDLER",
        ),
    ];
    for (params, code) in cases {
        let (status, body) = env.call("imconnector.register", params).await;
        assert_eq!(status, 200, "logical failures are HTTP 200");
        assert_eq!(body["result"]["result"], false);
        assert_eq!(body["result"]["error"], code, "{body}");
    }
    assert!(env.portal.connectors().is_empty());
    env.call("imconnector.register", register_params("OC_Test"))
        .await;
    let mut again = register_params("oc_test");
    again["PLACEMENT_HANDLER"] = json!("https://gateway.example/v2");
    env.call("imconnector.register", again).await;
    let connectors = env.portal.connectors();
    assert_eq!(connectors.len(), 1);
    assert_eq!(
        (connectors[0].id.as_str(), connectors[0].register_count),
        ("oc_test", 2)
    );
    assert_eq!(
        connectors[0].placement_handler,
        "https://gateway.example/v2"
    );
    assert_eq!(connectors[0].icon["COLOR"], "#69acc0");

    let (_, list) = env.call("imconnector.list", json!({})).await;
    assert_eq!(list["result"]["oc_test"], "Test connector");
    let (_, body) = env
        .call("imconnector.unregister", json!({"ID": "nope"}))
        .await;
    assert_eq!(body["result"]["error"], "APPLICATION_UNREGISTRATION_ERROR");
    let (_, body) = env
        .call("imconnector.unregister", json!({"ID": "oc_test"}))
        .await;
    assert_eq!(body["result"], json!({"result": true}));
    assert!(env.portal.connectors().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn activate_status_and_data() {
    let env = Env::default().await;
    let (status, body) = env
        .call(
            "imconnector.activate",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "ACTIVE": 1}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("IMCONNECTOR_NO_CORRECT_PROVIDER"))
    );
    let (status, body) = env
        .call(
            "imconnector.activate",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE}),
        )
        .await;
    assert_eq!(
        (status, &body["error_description"]),
        (400, &json!("Argument 'ACTIVE' is null or empty"))
    );
    env.connector_ready().await;
    let (_, body) = env
        .call(
            "imconnector.status",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE}),
        )
        .await;
    assert_eq!(
        body["result"],
        json!({"LINE": LINE, "CONNECTOR": CONNECTOR, "ERROR": false, "CONFIGURED": true, "STATUS": false})
    );
    let data = json!({"ID": "chan-1", "URL": "https://example.com", "NAME": "Chan"});
    let (status, _) = env
        .call(
            "imconnector.connector.data.set",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "DATA": data}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = env
        .call(
            "imconnector.status",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE}),
        )
        .await;
    assert_eq!(body["result"]["STATUS"], true);
    env.call_form(
        "imconnector.activate",
        json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "ACTIVE": "N"}),
    )
    .await;
    let line = env.portal.line(CONNECTOR, LINE).unwrap();
    assert_eq!(
        (line.active, line.activate_calls, line.data),
        (false, 2, Some(data))
    );
    let (status, body) = env.send(json!([item("u", "c", "m", "hi")])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("NOT_ACTIVE_LINE"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_update_delete_per_item() {
    let env = Env::default().await;
    env.connector_ready().await;
    let no_text = json!({"user": {"id": "u1"}, "message": {"id": "m0"}, "chat": {"id": "c1"}});
    let (status, body) = env
        .send(json!([item("u1", "c1", "m1", "Good afternoon"), no_text]))
        .await;
    assert_eq!(status, 200);
    let result = &body["result"];
    assert_eq!(result["SUCCESS"], false, "one item failed");
    let entries = result["DATA"]["RESULT"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["SUCCESS"], true);
    assert_eq!(entries[0]["user"], "585");
    assert_eq!(
        entries[0]["message"],
        json!({"id": "m1", "date": {}, "text": "Good afternoon", "files": []})
    );
    assert_eq!(
        entries[0]["chat"]["description"],
        "Link to the original post: https://example.com/chats/1"
    );
    assert!(
        entries[0]["session"]["ID"].is_string() && entries[0]["session"]["CHAT_ID"].is_string()
    );
    assert!(entries[0].get("ERRORS").is_none());
    assert_eq!(entries[1]["SUCCESS"], false);
    assert!(!entries[1]["ERRORS"].as_array().unwrap().is_empty());
    assert_eq!(env.portal.messages().len(), 1);

    // Same chat → same session; same user → same internal user id.
    let (_, body) = env.send(json!([item("u1", "c1", "m2", "second")])).await;
    assert_eq!(
        body["result"]["DATA"]["RESULT"][0]["session"],
        entries[0]["session"]
    );
    assert_eq!(body["result"]["DATA"]["RESULT"][0]["user"], "585");

    let update = |id: &str, text: &str| json!({"user": {"id": "u1"}, "message": {"id": id, "text": text}, "chat": {"id": "c1"}});
    let (_, body) = env
        .call(
            "imconnector.update.messages",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE,
            "MESSAGES": [update("m1", "edited"), update("nope", "x")]}),
        )
        .await;
    let entries = body["result"]["DATA"]["RESULT"].as_array().unwrap();
    assert_eq!(
        (entries[0]["SUCCESS"].clone(), entries[1]["SUCCESS"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(entries[1]["ERRORS"], json!(["Message not found"]));
    assert!(entries[0].get("session").is_none());
    let m1 = env
        .portal
        .messages()
        .into_iter()
        .find(|m| m.message_id == "m1")
        .unwrap();
    assert_eq!((m1.text.as_str(), m1.update_count), ("edited", 1));

    let delete = |user: &str, id: &str| json!({"user": {"id": user}, "message": {"id": id}, "chat": {"id": "c1"}});
    let call = |items| {
        env.call(
            "imconnector.delete.messages",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": items}),
        )
    };
    let (_, body) = call(json!([delete("someone-else", "m1")])).await;
    assert_eq!(body["result"]["SUCCESS"], false, "only the author deletes");
    let (_, body) = call(json!([delete("u1", "m1")])).await;
    assert_eq!(
        body["result"]["DATA"]["RESULT"][0],
        json!({"user": "585", "message": {"id": "m1"}, "chat": {"id": "c1"}, "SUCCESS": true})
    );
    let (_, body) = call(json!([delete("u1", "m1")])).await;
    assert_eq!(body["result"]["SUCCESS"], false, "already deleted");
    let (_, body) = env
        .call(
            "imconnector.update.messages",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": [update("m1", "late")]}),
        )
        .await;
    assert_eq!(
        body["result"]["SUCCESS"], false,
        "deleted messages cannot be edited"
    );
    assert!(
        env.portal
            .messages()
            .into_iter()
            .find(|m| m.message_id == "m1")
            .unwrap()
            .deleted
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_item_failure_and_duplicates() {
    let env = Env::default().await;
    env.connector_ready().await;
    env.portal
        .fail_item("bad", vec!["Provider rejected it".into()]);
    let (_, body) = env
        .send(json!([
            item("u1", "c1", "ok", "a"),
            item("u1", "c1", "bad", "b")
        ]))
        .await;
    let entries = body["result"]["DATA"]["RESULT"].as_array().unwrap();
    assert_eq!(entries[1]["ERRORS"], json!(["Provider rejected it"]));
    assert_eq!(entries[0]["SUCCESS"], true);
    env.send(json!([item("u1", "c1", "ok", "a")])).await;
    let copies: Vec<u64> = env
        .portal
        .messages()
        .iter()
        .filter(|m| m.message_id == "ok")
        .map(|m| m.internal_id)
        .collect();
    assert_eq!(copies.len(), 2, "a resend is stored again");
    assert_ne!(copies[0], copies[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reverse_results_and_message_cap() {
    let config = FakePortalConfig {
        reverse_results: true,
        max_messages_per_call: Some(2),
        ..Default::default()
    };
    let env = Env::new(config).await;
    env.connector_ready().await;
    let (_, body) = env
        .send(json!([
            item("u1", "c1", "first", "1"),
            item("u2", "c2", "second", "2")
        ]))
        .await;
    let ids: Vec<&str> = body["result"]["DATA"]["RESULT"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["second", "first"]);
    let three = json!([
        item("u", "c", "a", "1"),
        item("u", "c", "b", "2"),
        item("u", "c", "c", "3")
    ]);
    let (status, body) = env.send(three).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ERROR_ARGUMENT"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn argument_errors() {
    let env = Env::default().await;
    env.connector_ready().await;
    let (status, body) = env
        .call(
            "imconnector.send.messages",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE}),
        )
        .await;
    assert_eq!(
        (status, &body["error_description"]),
        (400, &json!("Argument 'MESSAGES' is null or empty"))
    );
    let (status, body) = env
        .call(
            "imconnector.send.messages",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ERROR_ARGUMENT"))
    );
    let (status, body) = env
        .call(
            "imconnector.send.messages",
            json!({"CONNECTOR": "other", "LINE": LINE, "MESSAGES": [{}]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("IMCONNECTOR_NO_CORRECT_PROVIDER"))
    );
    let item =
        json!({"im": {"chat_id": 1, "message_id": 2}, "message": {"id": "x"}, "chat": {"id": "c"}});
    let (status, body) = env
        .call(
            "imconnector.send.status.delivery",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": [item]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ERROR_ARGUMENT")),
        "message.id must be an array"
    );
    let item = json!({"im": {"chat_id": 1, "message_id": 2}, "message": {"id": ["x"]}, "chat": {"id": "c"}});
    let (status, body) = env
        .call(
            "imconnector.send.status.reading",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": [item]}),
        )
        .await;
    assert_eq!(
        (status, &body["result"]),
        (200, &json!({"SUCCESS": true, "DATA": []}))
    );
    assert!(
        env.portal.delivery_reports().is_empty(),
        "reading is a no-op"
    );
}
