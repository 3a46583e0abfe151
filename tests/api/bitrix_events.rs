//! Bitrix24's side: setup, verified events, operator replies relayed, disconnects, uninstall.

use openchannel_gateway::bitrix::form;
use openchannel_gateway::store::{OperatorState, PortalStatus};
use openchannel_sim::messenger::Mode;
use serde_json::json;

use crate::helpers::*;

const EVENTS: [&str; 6] = [
    "ONIMCONNECTORMESSAGEADD",
    "ONIMCONNECTORMESSAGEUPDATE",
    "ONIMCONNECTORMESSAGEDELETE",
    "ONIMCONNECTORSTATUSDELETE",
    "ONIMCONNECTORLINEDELETE",
    "ONAPPUNINSTALL",
];

async fn delivered(app: &TestApp, event_type: &str, n: usize) -> Vec<serde_json::Value> {
    let t = event_type.to_string();
    let seen = app
        .messenger
        .wait_for(
            move |d| {
                d.iter()
                    .filter(|d| d.acknowledged() && d.event_type == t)
                    .count()
                    >= n
            },
            WAIT,
        )
        .await
        .unwrap();
    seen.into_iter()
        .filter(|d| d.acknowledged() && d.event_type == event_type)
        .map(|d| d.data)
        .collect()
}

#[tokio::test]
async fn setup_registers_the_connector_binds_each_event_once_and_activates_each_line() {
    let app = spawn_app().await;
    let connectors = app.portal.connectors();
    assert_eq!(connectors.len(), 1);
    assert_eq!(connectors[0].id, "ocgw");
    assert_eq!(
        connectors[0].placement_handler,
        format!("{}/bitrix/placement", app.base)
    );
    assert!(
        connectors[0].icon["DATA_IMAGE"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml")
    );
    let bindings = app.portal.bindings();
    for event in EVENTS {
        let matching: Vec<_> = bindings.iter().filter(|b| b.event == event).collect();
        assert_eq!(matching.len(), 1, "{event} bound once: {bindings:?}");
        assert_eq!(matching[0].handler, format!("{}/bitrix/events", app.base));
    }
    for (line, channel) in [(LINE, "acme"), (LINE_B, "beta")] {
        let state = app.portal.line("ocgw", line).expect("line configured");
        assert!(state.active && state.data.is_some(), "{line}: {state:?}");
        let recorded = app
            .store()
            .channel_state(channel)
            .unwrap()
            .expect("status recorded");
        assert!(recorded.active);
        assert_eq!(recorded.status.unwrap()["LINE"], json!(line));
    }
    // Activation comes before the data, per line (fact sheet: register → bind → activate → data.set → status).
    let methods: Vec<String> = app
        .portal
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    let first = |m: &str| methods.iter().position(|x| x == m).unwrap();
    assert!(first("imconnector.register") < first("event.bind"));
    assert!(first("imconnector.activate") < first("imconnector.connector.data.set"));
}

#[tokio::test]
async fn running_setup_again_changes_nothing_and_binds_nothing_twice() {
    let app = spawn_app().await;
    let bindings = app.portal.bindings();
    let reply = app
        .http
        .post(format!(
            "{}/v1/portals/{}/setup",
            app.base,
            app.portal.member_id()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(reply).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["setup"]["bound"], json!([]), "nothing new to bind");
    assert_eq!(app.portal.bindings(), bindings);
    assert!(
        app.portal
            .requests()
            .iter()
            .all(|r| r.error.as_deref() != Some("ERROR_CORE"))
    );
    assert!(app.portal.line("ocgw", LINE).unwrap().active);
    let unauthorized = app
        .http
        .post(format!(
            "{}/v1/portals/{}/setup",
            app.base,
            app.portal.member_id()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let unknown = app
        .http
        .post(format!("{}/v1/portals/nope/setup", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn forged_events_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let genuine = format!(
        "event=ONIMCONNECTORMESSAGEADD&data[CONNECTOR]=ocgw&data[LINE]={LINE}&data[MESSAGES][0][im][chat_id]=1\
         &data[MESSAGES][0][im][message_id]=99&data[MESSAGES][0][message][text]=x&data[MESSAGES][0][chat][id]=c1\
         &auth[member_id]={}&auth[application_token]=",
        app.portal.member_id()
    );
    let wrong_token = format!("{genuine}forged");
    let (status, body) = status_json(app.post_form("/bitrix/events", wrong_token).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_application_token"))
    );
    let unknown =
        genuine.replace(&app.portal.member_id(), "otherportal") + &app.portal.application_token();
    assert_eq!(app.post_form("/bitrix/events", unknown).await.status(), 401);
    let no_auth = "event=ONIMCONNECTORMESSAGEADD&data[LINE]=7".to_string();
    assert_eq!(app.post_form("/bitrix/events", no_auth).await.status(), 401);
    // The sender is checked before the body is decoded: a malformed body is refused as
    // unauthenticated unless it names a known sender.
    let malformed = "event=X&auth[member_id=1".to_string();
    assert_eq!(
        app.post_form("/bitrix/events", malformed).await.status(),
        401
    );
    let auth = format!(
        "auth[member_id]={}&auth[application_token]={}",
        app.portal.member_id(),
        app.portal.application_token()
    );
    let (status, body) = status_json(
        app.post_form("/bitrix/events", format!("event=X&a[b=1&{auth}"))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_form"))
    );
    // Two senders in one body: the decoded one must be the one that was checked.
    let twice = format!("{auth}&auth[member_id][]=x");
    assert_eq!(app.post_form("/bitrix/events", twice).await.status(), 400);
    assert!(
        app.store()
            .operator(&app.portal.member_id(), 99)
            .unwrap()
            .is_none()
    );
    assert!(app.store().pending_deliveries().unwrap().is_empty());
}

#[tokio::test]
async fn an_operator_reply_reaches_the_platform_and_its_ids_are_reported_back() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let emitted = app
        .portal
        .operator_message(LINE, "c1", "Hello from the operator")
        .await;
    assert_eq!(emitted.status, Some(200), "{}", emitted.body);
    let created = delivered(&app, "operator.message.created", 1).await;
    assert_eq!(created[0]["chat"]["id"], "c1");
    assert_eq!(created[0]["message"]["text"], "Hello from the operator");
    assert_eq!(
        created[0]["message"]["bitrix_id"],
        emitted.im_message_id.to_string()
    );
    assert!(created[0]["operator"]["id"].is_string());
    let member = app.portal.member_id();
    app.portal
        .wait_until(WAIT, |p| !p.delivery_reports().is_empty())
        .await
        .unwrap();
    let report = &app.portal.delivery_reports()[0];
    assert_eq!(
        report["message"]["id"],
        json!(["ext-op-1"]),
        "an array, always: {report}"
    );
    assert_eq!(report["im"]["message_id"], json!(emitted.im_message_id));
    assert_eq!(report["im"]["chat_id"], json!(emitted.im_chat_id));
    assert_eq!(report["chat"]["id"], "c1");
    let record = app
        .store()
        .operator(&member, emitted.im_message_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.state, record.external_ids),
        (OperatorState::Delivered, vec!["ext-op-1".to_string()])
    );
    assert_eq!(
        app.store()
            .operator_by_external(&member, LINE, "c1", "ext-op-1")
            .unwrap(),
        Some(emitted.im_message_id)
    );
}

#[tokio::test]
async fn edits_and_deletions_of_operator_messages_are_relayed_with_the_external_id() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let emitted = app.portal.operator_message(LINE, "c1", "first").await;
    delivered(&app, "operator.message.created", 1).await;
    app.portal
        .wait_until(WAIT, |p| !p.delivery_reports().is_empty())
        .await
        .unwrap();
    assert_eq!(
        app.portal
            .operator_edit(emitted.im_message_id, "second")
            .await
            .status,
        Some(200)
    );
    let updated = delivered(&app, "operator.message.updated", 1).await;
    assert_eq!(
        updated[0],
        json!({"chat": {"id": "c1"}, "message": {"id": "ext-op-1", "bitrix_id": emitted.im_message_id.to_string(), "text": "second"}})
    );
    assert_eq!(
        app.portal
            .operator_delete(emitted.im_message_id)
            .await
            .status,
        Some(200)
    );
    let deleted = delivered(&app, "operator.message.deleted", 1).await;
    assert_eq!(
        deleted[0],
        json!({"chat": {"id": "c1"}, "message": {"id": "ext-op-1", "bitrix_id": emitted.im_message_id.to_string()}})
    );
}

#[tokio::test]
async fn a_replayed_event_is_acknowledged_but_not_relayed_twice() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let body = form::encode(&json!({
        "event": "ONIMCONNECTORMESSAGEADD", "event_handler_id": "1",
        "data": {"CONNECTOR": "ocgw", "LINE": LINE.to_string(), "MESSAGES": [{"im": {"chat_id": "5", "message_id": "777"}, "message": {"user_id": "27", "text": "once"}, "chat": {"id": "c1"}}]},
        "ts": "1773759161",
        "auth": {"member_id": app.portal.member_id(), "application_token": app.portal.application_token()}
    }));
    let (status, first) = status_json(app.post_form("/bitrix/events", body.clone()).await).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("ok")));
    let (status, again) = status_json(app.post_form("/bitrix/events", body).await).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    delivered(&app, "operator.message.created", 1).await;
    // A second genuine event for the same Bitrix24 message (a new ts) is not relayed twice either.
    let same_message = form::encode(&json!({
        "event": "ONIMCONNECTORMESSAGEADD",
        "data": {"CONNECTOR": "ocgw", "LINE": LINE.to_string(), "MESSAGES": [{"im": {"chat_id": "5", "message_id": "777"}, "message": {"text": "once"}, "chat": {"id": "c1"}}]},
        "ts": "1773759999",
        "auth": {"member_id": app.portal.member_id(), "application_token": app.portal.application_token()}
    }));
    assert_eq!(
        app.post_form("/bitrix/events", same_message).await.status(),
        200
    );
    app.portal
        .wait_until(WAIT, |p| !p.delivery_reports().is_empty())
        .await
        .unwrap();
    let created = app
        .messenger
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "operator.message.created")
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn while_the_platform_is_down_operator_messages_are_retried_and_a_rejected_one_is_visible() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    app.messenger.set_mode(Mode::FailNext(3, 503));
    let first = app.portal.operator_message(LINE, "c1", "while down").await;
    delivered(&app, "operator.message.created", 1).await;
    let attempts: Vec<_> = app
        .messenger
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "operator.message.created")
        .collect();
    assert_eq!(attempts.len(), 4, "three failures, then taken");
    assert!(
        attempts
            .iter()
            .all(|d| d.webhook_id == attempts[0].webhook_id)
    );
    let member = app.portal.member_id();
    app.wait_for("delivered", |s| {
        s.operator(&member, first.im_message_id)
            .unwrap()
            .unwrap()
            .state
            == OperatorState::Delivered
    })
    .await;

    app.messenger.set_mode(Mode::Fail(422));
    let rejected = app.portal.operator_message(LINE, "c1", "refused").await;
    app.wait_for("failed", |s| {
        matches!(
            s.operator(&member, rejected.im_message_id)
                .unwrap()
                .unwrap()
                .state,
            OperatorState::Failed { .. }
        )
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "gateway_deliveries_total{type=\"operator.message.created\",outcome=\"failed\"} 1"
        ),
        "{metrics}"
    );
    let failed: Vec<_> = app
        .store()
        .pending_deliveries()
        .unwrap()
        .into_iter()
        .filter(|d| d.failed.is_some())
        .collect();
    assert_eq!(failed.len(), 1, "kept, marked failed");
    // A failed message does not hold the channel: the next one goes through.
    app.messenger.set_mode(Mode::Accept);
    let after = app.portal.operator_message(LINE, "c1", "back up").await;
    app.wait_for("delivered", |s| {
        s.operator(&member, after.im_message_id)
            .unwrap()
            .unwrap()
            .state
            == OperatorState::Delivered
    })
    .await;
}

#[tokio::test]
async fn a_disconnected_line_is_reported_and_its_messages_are_held_until_setup_again() {
    let app = spawn_app().await;
    assert_eq!(app.portal.disconnect_line(LINE).await.status, Some(200));
    let reports = delivered(&app, "line.disconnected", 1).await;
    assert_eq!(reports[0]["line"], json!(LINE));
    let state = app.store().channel_state("acme").unwrap().unwrap();
    assert!(!state.active);
    let before = app.portal.messages().len();
    assert_eq!(
        app.post_event("message.created", created("c", "u", "held", "x"))
            .await
            .0,
        202
    );
    let (status, _) = status_json(
        app.beta
            .post_event("message.created", created("c", "u", "flows", "y"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    app.portal
        .wait_until(WAIT, |p| {
            p.messages().iter().any(|m| m.message_id == "flows")
        })
        .await
        .unwrap();
    assert_eq!(
        app.portal.messages().len(),
        before + 1,
        "the message on the disconnected line is held"
    );
    let reply = app
        .http
        .post(format!(
            "{}/v1/portals/{}/setup",
            app.base,
            app.portal.member_id()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    app.portal
        .wait_until(WAIT, |p| {
            p.messages().iter().any(|m| m.message_id == "held")
        })
        .await
        .unwrap();
    assert!(app.store().channel_state("acme").unwrap().unwrap().active);
}

#[tokio::test]
async fn a_deleted_line_is_reported() {
    let app = spawn_app().await;
    assert_eq!(app.portal.delete_line(LINE_B).await.status, Some(200));
    let reports = delivered(&app, "line.disconnected", 1).await;
    assert_eq!(reports[0]["line"], json!(LINE_B));
    assert!(!app.store().channel_state("beta").unwrap().unwrap().active);
}

#[tokio::test]
async fn uninstall_forgets_the_tokens_and_holds_later_messages() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let member = app.portal.member_id();
    assert_eq!(app.portal.uninstall(false).await.status, Some(200));
    let portal = app.store().portal(&member).unwrap().unwrap();
    assert_eq!(portal.status, PortalStatus::Uninstalled);
    assert!(portal.access_token.is_empty() && portal.refresh_token.is_empty());
    assert!(
        app.store().user_link(&member, "u").unwrap().is_some(),
        "data kept without CLEAN"
    );
    let before = app.portal.requests().len();
    assert_eq!(
        app.post_event("message.created", created("c1", "u", "after", "x"))
            .await
            .0,
        202
    );
    assert_eq!(app.store().pending_ops().unwrap().len(), 1, "held");
    assert_eq!(
        app.portal.requests().len(),
        before,
        "nothing sent to an uninstalled portal"
    );
}

#[tokio::test]
async fn uninstall_with_clean_purges_the_portals_data() {
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let member = app.portal.member_id();
    assert_eq!(app.portal.uninstall(true).await.status, Some(200));
    assert!(app.store().portal(&member).unwrap().is_none());
    assert!(app.store().user_link(&member, "u").unwrap().is_none());
    assert!(
        app.store()
            .chat_link(&member, LINE, "c1")
            .unwrap()
            .is_none()
    );
    assert!(
        app.store()
            .message_record(&member, LINE, "c1", "hello-c1")
            .unwrap()
            .is_none()
    );
    assert!(app.store().channel_state("acme").unwrap().is_none());
}

#[tokio::test]
async fn an_operators_file_reaches_the_platform_with_an_absolute_url_it_can_fetch() {
    use openchannel_sim::portal::FakeFile;
    let app = spawn_app().await;
    open_chat(&app, "c1").await;
    let pdf = b"%PDF-1.4 operator's spec".to_vec();
    let files = [
        // Only a portal-relative downloadLink: made absolute against the portal's address.
        FakeFile {
            name: "spec.pdf".into(),
            kind: "file".into(),
            mime: "application/pdf".into(),
            content: pdf.clone(),
            with_link: false,
        },
        FakeFile {
            name: "photo.png".into(),
            kind: "image".into(),
            mime: "image/png".into(),
            content: vec![0x89, b'P', b'N', b'G'],
            with_link: true,
        },
    ];
    let emitted = app
        .portal
        .operator_message_with_files(LINE, "c1", "see attached", &files)
        .await;
    assert_eq!(emitted.status, Some(200), "{}", emitted.body);
    let created = delivered(&app, "operator.message.created", 1).await;
    let sent = created[0]["message"]["files"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for file in &sent {
        let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["name", "url", "type", "size"],
            "the contract's shape"
        );
    }
    assert_eq!(
        (&sent[0]["name"], &sent[0]["type"], &sent[0]["size"]),
        (&json!("spec.pdf"), &json!("file"), &json!(pdf.len()))
    );
    let url = sent[0]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/rest/download.json?token=", app.portal.url())),
        "{url}"
    );
    // The platform follows the link to the portal and gets the operator's bytes.
    let fetched = app.http.get(url).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), pdf);
    // An absolute `link` is passed on as it is.
    let link = sent[1]["url"].as_str().unwrap();
    assert!(
        link.starts_with(&app.portal.url()) && link.ends_with("&show=1"),
        "{link}"
    );
    assert_eq!(
        (&sent[1]["type"], &sent[1]["size"]),
        (&json!("image"), &json!(4))
    );
}
