//! event.bind/get/unbind, the form-encoded emitter and the operator/lifecycle events.

use serde_json::{Value, json};

use super::{CONNECTOR, Env, LINE, Receiver, item};
use crate::form;

async fn bind(env: &Env, event: &str, handler: &str) -> (u16, Value) {
    env.call("event.bind", json!({"event": event, "handler": handler}))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn bind_get_unbind() {
    let env = Env::default().await;
    let (status, body) = bind(&env, "OnImConnectorMessageAdd", "https://gw.example/events").await;
    assert_eq!((status, &body["result"]), (200, &json!(true)));
    let (status, body) = bind(&env, "ONIMCONNECTORMESSAGEADD", "https://gw.example/events").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "ERROR_CORE", "error_description": "Handler already binded"})
    );
    let (status, body) = bind(&env, "OnCrmLeadAdd", "https://gw.example/events").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ERROR_EVENT_NOT_FOUND"))
    );
    bind(&env, "OnImConnectorLineDelete", "https://gw.example/events").await;
    let (_, body) = env.call("event.get", json!({})).await;
    assert_eq!(
        body["result"][0],
        json!({"event": "ONIMCONNECTORMESSAGEADD", "handler": "https://gw.example/events", "auth_type": "0", "offline": 0})
    );
    let (_, body) = env
        .call(
            "event.unbind",
            json!({"event": "onimconnectormessageadd", "handler": "https://gw.example/events"}),
        )
        .await;
    assert_eq!(body["result"], json!({"count": 1}));
    let events: Vec<String> = env.portal.bindings().into_iter().map(|b| b.event).collect();
    assert_eq!(events, ["ONIMCONNECTORLINEDELETE"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_message_edit_delete_round_trip() {
    let env = Env::default().await;
    let mut receiver = Receiver::start().await;
    env.connector_ready().await;
    for event in [
        "OnImConnectorMessageAdd",
        "OnImConnectorMessageUpdate",
        "OnImConnectorMessageDelete",
    ] {
        bind(&env, event, &format!("{}/b24/events", receiver.url)).await;
    }
    let (_, sent) = env.send(json!([item("u1", "c1", "m1", "hello")])).await;
    let session_chat = sent["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
        .as_str()
        .unwrap()
        .to_owned();

    let emitted = env
        .portal
        .operator_message(LINE, "c1", "[b]Klaus:[/b] Guten Tag & hi")
        .await;
    assert_eq!(
        (emitted.status, emitted.body.as_str()),
        (Some(200), "handled")
    );
    assert_eq!(emitted.im_chat_id.to_string(), session_chat);
    let received = receiver.delivered();
    assert_eq!(received.path, "/b24/events");
    assert_eq!(received.content_type, "application/x-www-form-urlencoded");
    assert!(
        received
            .body
            .contains("data%5BMESSAGES%5D%5B0%5D%5Bim%5D%5Bchat_id%5D="),
        "{}",
        received.body
    );
    let event = form::decode(&received.body).unwrap();
    assert_eq!(event["event"], "ONIMCONNECTORMESSAGEADD");
    assert!(
        event["event_handler_id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(event["ts"].as_str().unwrap().parse::<u64>().is_ok());
    let data = &event["data"];
    assert_eq!(
        (data["CONNECTOR"].as_str(), data["LINE"].as_str()),
        (Some(CONNECTOR), Some("7"))
    );
    let message = &data["MESSAGES"][0];
    assert_eq!(message["im"]["chat_id"], json!(session_chat));
    assert_eq!(
        message["im"]["message_id"],
        json!(emitted.im_message_id.to_string())
    );
    assert_eq!(
        message["message"],
        json!({"user_id": "27", "text": "[b]Klaus:[/b] Guten Tag & hi"})
    );
    assert_eq!(message["chat"], json!({"id": "c1"}));
    let auth = &event["auth"];
    for key in [
        "access_token",
        "expires",
        "expires_in",
        "scope",
        "domain",
        "server_endpoint",
        "status",
        "client_endpoint",
        "member_id",
        "user_id",
        "application_token",
    ] {
        assert!(auth[key].is_string(), "auth[{key}] is a string: {auth}");
    }
    assert_eq!(
        auth["application_token"],
        json!(env.portal.application_token())
    );
    assert_eq!(auth["member_id"], json!(env.portal.member_id()));
    assert_eq!(auth["domain"], json!(env.portal.domain()));
    assert_eq!(auth["client_endpoint"], json!(env.portal.client_endpoint()));
    // The event's token works against the portal, as an operator's token would.
    assert_eq!(
        env.call_as(
            auth["access_token"].as_str().unwrap(),
            "app.info",
            json!({})
        )
        .await
        .0,
        200
    );

    // The gateway confirms delivery with its own ids; edits and deletions refer to them.
    let report = json!({"im": {"chat_id": emitted.im_chat_id, "message_id": emitted.im_message_id},
        "message": {"id": ["ext-1", "ext-2"], "date": 1773265993}, "chat": {"id": "c1"}});
    let (_, body) = env
        .call_form(
            "imconnector.send.status.delivery",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": [report]}),
        )
        .await;
    assert_eq!(body["result"], json!({"SUCCESS": true, "DATA": []}));
    assert_eq!(
        env.portal.delivery_reports()[0]["message"]["id"],
        json!(["ext-1", "ext-2"])
    );

    let edited = env
        .portal
        .operator_edit(emitted.im_message_id, "corrected")
        .await;
    assert_eq!(edited.status, Some(200));
    let update = receiver.delivered().form();
    assert_eq!(update["event"], "ONIMCONNECTORMESSAGEUPDATE");
    assert_eq!(
        update["data"]["MESSAGES"][0]["message"],
        json!({"id": ["ext-1", "ext-2"], "text": "corrected"})
    );

    let deleted = env.portal.operator_delete(emitted.im_message_id).await;
    assert_eq!(deleted.status, Some(200));
    let delete = receiver.delivered().form();
    assert_eq!(delete["event"], "ONIMCONNECTORMESSAGEDELETE");
    assert_eq!(
        delete["data"]["MESSAGES"][0]["message"],
        json!({"id": "ext-1"}),
        "a string here"
    );

    assert_eq!(env.portal.operator_edit(999_999, "x").await.status, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn unbound_event_is_not_delivered() {
    let env = Env::default().await;
    env.connector_ready().await;
    let result = env.portal.operator_message(LINE, "c9", "hi").await;
    assert_eq!(result.status, None);
    assert!(
        result.im_message_id > 0,
        "the message exists in the portal even if nobody hears it"
    );
    let unreachable = env
        .portal
        .post_event_raw("http://127.0.0.1:9/none", "event=X")
        .await;
    assert_eq!(unreachable.status, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn line_events() {
    let env = Env::default().await;
    let mut receiver = Receiver::start().await;
    env.connector_ready().await;
    bind(&env, "OnImConnectorStatusDelete", &receiver.url).await;
    bind(&env, "OnImConnectorLineDelete", &receiver.url).await;

    assert_eq!(env.portal.disconnect_line(LINE).await.status, Some(200));
    let event = receiver.delivered().form();
    assert_eq!(event["event"], "ONIMCONNECTORSTATUSDELETE");
    assert_eq!(event["data"], json!({"connector": CONNECTOR, "line": "7"}));
    assert!(!env.portal.line(CONNECTOR, LINE).unwrap().active);

    assert_eq!(env.portal.delete_line(LINE).await.status, Some(200));
    let received = receiver.delivered();
    assert!(received.body.contains("&data=7&"), "{}", received.body);
    assert_eq!(received.form()["data"], "7");
    assert!(env.portal.line(CONNECTOR, LINE).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn uninstall_revokes_and_notifies() {
    let env = Env::default().await;
    let mut receiver = Receiver::start().await;
    env.connector_ready().await;
    let tokens = env.portal.issue_tokens();
    bind(
        &env,
        "OnAppUninstall",
        &format!("{}/uninstall", receiver.url),
    )
    .await;
    bind(&env, "OnImConnectorMessageAdd", &receiver.url).await;

    assert_eq!(env.portal.uninstall(true).await.status, Some(200));
    let event = receiver.delivered().form();
    assert_eq!(event["event"], "ONAPPUNINSTALL");
    assert_eq!(event["data"], json!({"LANGUAGE_ID": "en", "CLEAN": "1"}));
    let mut keys: Vec<&String> = event["auth"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "application_token",
            "client_endpoint",
            "domain",
            "member_id",
            "server_endpoint"
        ]
    );
    let (status, body) = env.call("app.info", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("NO_AUTH_FOUND"))
    );
    let url = format!(
        "{}?grant_type=refresh_token&client_id=app.test&client_secret=secret.test&refresh_token={}",
        env.portal.oauth_url(),
        tokens.refresh_token
    );
    assert_eq!(
        env.http.get(url).send().await.unwrap().status().as_u16(),
        400
    );
    assert!(env.portal.connectors().is_empty() && env.portal.bindings().is_empty());
    assert!(receiver.nothing_delivered());
}

#[tokio::test(flavor = "multi_thread")]
async fn install_bodies() {
    let env = Env::default().await;
    let install = form::decode(&env.portal.install_event_body()).unwrap();
    assert_eq!(install["event"], "ONAPPINSTALL");
    assert_eq!(
        install["data"],
        json!({"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"})
    );
    let auth = &install["auth"];
    assert_eq!(auth["scope"], "imconnector imopenlines im imbot");
    assert_eq!(
        auth["application_token"],
        json!(env.portal.application_token())
    );
    assert_eq!(
        env.call_as(
            auth["access_token"].as_str().unwrap(),
            "app.info",
            json!({})
        )
        .await
        .0,
        200
    );
    assert!(auth["refresh_token"].is_string() && auth["expires_in"] == "3600");

    let (query, body) = env.portal.install_page_request();
    let query = form::decode(&query).unwrap();
    assert_eq!(
        (query["DOMAIN"].as_str(), query["PROTOCOL"].as_str()),
        (Some(env.portal.domain().as_str()), Some("0"))
    );
    assert!(query["LANG"].is_string() && query["APP_SID"].is_string());
    let body = form::decode(&body).unwrap();
    assert_eq!(body["PLACEMENT"], "DEFAULT");
    assert_eq!(body["member_id"], json!(env.portal.member_id()));
    for key in ["AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "status"] {
        assert!(body[key].is_string(), "{key}");
    }
    // As captured from real portals: neither of these (fact sheet §11).
    for key in ["APPLICATION_TOKEN", "SERVER_ENDPOINT"] {
        assert!(body.get(key).is_none(), "{key}");
    }
    let (_, documented) = env.portal.install_page_request_documented();
    let documented = form::decode(&documented).unwrap();
    assert_eq!(
        documented["SERVER_ENDPOINT"],
        json!(env.portal.server_endpoint())
    );
    assert_eq!(
        documented["APPLICATION_TOKEN"],
        json!(env.portal.application_token())
    );
    assert_ne!(
        env.portal.server_endpoint(),
        env.portal.client_endpoint(),
        "the authorization server is not the portal"
    );
    assert_eq!(
        env.call_as(body["AUTH_ID"].as_str().unwrap(), "app.info", json!({}))
            .await
            .0,
        200
    );
}
