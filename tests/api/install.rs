//! `POST /bitrix/install`: both install shapes, bad input, and the trust rules of contract §5:
//! every install is verified at a trusted authorization server, and nothing from an unverified
//! request is stored or called (a recording server stands for the attacker's host).

use openchannel_gateway::bitrix::form;
use openchannel_gateway::store::PortalStatus;
use openchannel_sim::messenger::MessengerClient;
use openchannel_sim::portal::{FakePortal, FakePortalConfig};
use openchannel_sim::recorder::{CannedReply, Recorder};
use serde_json::{Value, json};

use crate::helpers::*;

fn no_install() -> TestOptions {
    TestOptions {
        install: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_onappinstall_event_stores_the_portal_and_its_tokens() {
    let app = spawn_with(no_install()).await;
    let reply = app
        .post_form("/bitrix/install", app.portal.install_event_body())
        .await;
    assert_eq!(reply.status(), 200);
    let portal = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .expect("stored");
    assert_eq!(portal.status, PortalStatus::Installed);
    assert_eq!(portal.domain, app.portal.domain());
    assert_eq!(portal.client_endpoint, app.portal.client_endpoint());
    assert_eq!(portal.application_token, app.portal.application_token());
    assert!(!portal.access_token.is_empty() && !portal.refresh_token.is_empty());
}

#[tokio::test]
async fn the_install_page_post_stores_the_portal_and_finishes_the_install() {
    let app = spawn_with(no_install()).await;
    let (query, body) = app.portal.install_page_request();
    let reply = post_page(&app, &query, body).await;
    assert_eq!(reply.status(), 200);
    assert!(
        reply
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = reply.text().await.unwrap();
    assert!(html.contains("BX24.installFinish()"));
    assert!(html.contains(r#"<script src="//api.bitrix24.com/api/v1/"></script>"#));
    let portal = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .expect("stored");
    assert_eq!(
        portal.client_endpoint,
        app.portal.client_endpoint(),
        "PROTOCOL=0 means http"
    );
    // The stored token works: a message goes through.
    app.post_event("message.created", created("c", "u", "m", "x"))
        .await;
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_install_without_its_required_fields_is_400_and_stores_nothing() {
    let app = spawn_with(no_install()).await;
    let member = app.portal.member_id();
    let bodies = [
        form::encode(
            &json!({"event": "ONAPPINSTALL", "auth": {"member_id": member, "domain": "x"}}),
        ),
        form::encode(&json!({"member_id": member})),
        "auth[member_id=1".to_string(),
    ];
    for body in bodies {
        let reply = app.post_form("/bitrix/install", body.clone()).await;
        assert_eq!(reply.status(), 400, "{body}");
    }
    assert!(app.store().portal(&member).unwrap().is_none());
}

async fn post_page(app: &TestApp, query: &str, body: String) -> reqwest::Response {
    app.http
        .post(format!("{}/bitrix/install?{query}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// An attacker's host: answers like a Bitrix24 portal and an authorization server would.
async fn attacker() -> Recorder {
    Recorder::start(CannedReply::Json(
        200,
        json!({"result": true, "access_token": "a", "refresh_token": "r", "member_id": "x"}),
    ))
    .await
    .unwrap()
}

/// An ONAPPINSTALL body claiming `app`'s portal, with these fields of `auth` replaced.
fn forged_install(app: &TestApp, changes: Value) -> String {
    let mut body = form::decode(&app.portal.install_event_body()).unwrap();
    for (key, value) in changes.as_object().unwrap() {
        body["auth"][key] = value.clone();
    }
    form::encode(&body)
}

/// A customer message accepted while the portal is not installed: held for it.
async fn hold_a_message(app: &TestApp) {
    let (status, _) = app
        .post_event(
            "message.created",
            created("c", "u", "held-1", "my phone is 555"),
        )
        .await;
    assert_eq!(status, 202);
}

async fn refused(app: &TestApp, body: String) -> (u16, String) {
    let (status, reply) = status_json(app.post_form("/bitrix/install", body).await).await;
    (
        status,
        reply["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn forged_installs_are_refused_and_reach_nothing() {
    let app = spawn_with(no_install()).await;
    hold_a_message(&app).await;
    let evil = attacker().await;
    let evil_rest = format!("{}/rest/", evil.url());
    let genuine = app.portal.issue_tokens();
    let cases = [
        // An unverifiable refresh token with the attacker's address.
        (
            json!({"refresh_token": "made-up", "client_endpoint": evil_rest, "application_token": "evil"}),
            (401, "install_not_verified"),
        ),
        // The attacker's own "authorization server": no request leaves the gateway.
        (
            json!({"server_endpoint": format!("{}/rest/", evil.url()), "client_endpoint": evil_rest}),
            (403, "untrusted_oauth_server"),
        ),
        (
            json!({"server_endpoint": format!("{}rest/x", app.portal.oauth_base())}),
            (403, "untrusted_oauth_server"),
        ),
        // A genuine token of this app claimed for another portal.
        (
            json!({"member_id": "b".repeat(32), "refresh_token": genuine.refresh_token}),
            (401, "install_not_verified"),
        ),
    ];
    let oauth_before = app.portal.oauth_calls();
    for (changes, (status, code)) in cases {
        let what = changes.to_string();
        let (got, got_code) = refused(&app, forged_install(&app, changes)).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{what}");
    }
    assert_eq!(evil.count(), 0, "{:?}", evil.requests());
    assert_eq!(
        app.portal.oauth_calls(),
        oauth_before + 2,
        "only the two refresh tokens were checked, at the trusted server"
    );
    assert!(no_portal_stored(&app));
    assert!(
        app.store().portal(&"b".repeat(32)).unwrap().is_none(),
        "nothing stored for the other member_id"
    );
    assert!(app.portal.messages().is_empty(), "held work stays held");
    assert!(
        app.portal.requests().is_empty(),
        "the portal was never called"
    );
}

#[tokio::test]
async fn a_genuine_token_with_a_foreign_client_endpoint_stores_the_servers_address() {
    let app = spawn_with(no_install()).await;
    hold_a_message(&app).await;
    let evil = attacker().await;
    let body = forged_install(
        &app,
        json!({"client_endpoint": format!("{}/rest/", evil.url()), "domain": "evil.example", "access_token": "forged"}),
    );
    let reply = app.post_form("/bitrix/install", body).await;
    assert_eq!(reply.status(), 200);
    let portal = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .unwrap();
    assert_eq!(portal.client_endpoint, app.portal.client_endpoint());
    assert_eq!(portal.domain, app.portal.domain());
    assert_eq!(portal.oauth_server, app.portal.oauth_base());
    assert_ne!(portal.access_token, "forged");
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
    assert_eq!(evil.count(), 0, "{:?}", evil.requests());
}

#[tokio::test]
async fn a_reinstall_after_uninstall_and_a_known_application_token_are_verified_too() {
    let app = spawn_app().await;
    let before = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .unwrap();
    let evil = attacker().await;
    let evil_rest = format!("{}/rest/", evil.url());
    // The known application token does not stand in for verification.
    let (status, code) = refused(
        &app,
        forged_install(
            &app,
            json!({"refresh_token": "made-up", "client_endpoint": evil_rest}),
        ),
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "install_not_verified"));
    assert_eq!(
        app.store()
            .portal(&app.portal.member_id())
            .unwrap()
            .unwrap(),
        before
    );
    // After an uninstall the portal is not up for grabs either.
    assert_eq!(app.portal.uninstall(false).await.status, Some(200));
    hold_a_message(&app).await;
    let (status, code) = refused(
        &app,
        forged_install(
            &app,
            json!({"refresh_token": "made-up", "client_endpoint": evil_rest, "application_token": "evil"}),
        ),
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "install_not_verified"));
    let stored = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, PortalStatus::Uninstalled);
    // An event signed with the forged token is refused.
    let (status, _) = status_json(
        app.post_form(
            "/bitrix/events",
            form::encode(&json!({"event": "ONIMCONNECTORMESSAGEADD", "auth": {"member_id": app.portal.member_id(), "application_token": "evil"}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(evil.count(), 0, "{:?}", evil.requests());
    // A genuine reinstall releases the held message.
    let reply = app
        .post_form("/bitrix/install", app.portal.install_event_body())
        .await;
    assert_eq!(reply.status(), 200);
    app.portal
        .wait_until(WAIT, |p| {
            p.messages().iter().any(|m| m.message_id == "held-1")
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_empty_client_secret_or_a_portal_outside_the_allow_list_refuses_installs() {
    let app = spawn_with(TestOptions {
        install: false,
        allowed_portals: vec!["c".repeat(32)],
        ..Default::default()
    })
    .await;
    let (status, code) = refused(&app, app.portal.install_event_body()).await;
    assert_eq!((status, code.as_str()), (403, "portal_not_allowed"));
    assert_eq!(app.portal.oauth_calls(), 0, "refused before any request");

    let app = spawn_with(TestOptions {
        install: false,
        portal: FakePortalConfig {
            client_secret: String::new(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let (status, body) = status_json(
        app.post_form("/bitrix/install", app.portal.install_event_body())
            .await,
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "oauth_not_configured");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("client_secret"),
        "{body}"
    );
    assert_eq!(app.portal.oauth_calls(), 0);
    assert!(no_portal_stored(&app));
}

#[tokio::test]
async fn the_ui_install_completes_without_application_token() {
    let app = spawn_with(no_install()).await;
    hold_a_message(&app).await;
    let (query, body) = app.portal.install_page_request();
    assert!(!body.contains("APPLICATION_TOKEN") && !body.contains("SERVER_ENDPOINT"));
    let reply = post_page(&app, &query, body).await;
    assert_eq!(reply.status(), 200);
    let member = app.portal.member_id();
    let portal = app.store().portal(&member).unwrap().unwrap();
    assert!(portal.is_ready(), "set up before the page answered");
    assert_eq!(portal.application_token, "", "not known yet");
    let install_handler = format!("{}/bitrix/install", app.base);
    let bound: Vec<String> = app
        .portal
        .bindings()
        .iter()
        .filter(|b| b.handler == install_handler)
        .map(|b| b.event.clone())
        .collect();
    assert!(
        bound.contains(&"ONAPPINSTALL".to_string()) && bound.contains(&"ONAPPUPDATE".to_string()),
        "{bound:?}"
    );
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
    // Until the install event brings the application token, no event is taken.
    let (status, _) = status_json(
        app.post_form(
            "/bitrix/events",
            form::encode(&json!({"event": "ONIMCONNECTORMESSAGEADD", "auth": {"member_id": member, "application_token": ""}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    // BX24.installFinish() reaches the portal, which sends ONAPPINSTALL to the bound handler.
    let finish = format!("{}/api/v1/install-finish", app.portal.url());
    assert_eq!(reqwest::get(finish).await.unwrap().status(), 200);
    app.wait_for("application token stored", |s| {
        s.portal(&member)
            .unwrap()
            .is_some_and(|p| p.application_token == app.portal.application_token())
    })
    .await;
    // Operator replies (events) are taken from now on.
    app.wait_for("set up again", |s| {
        s.portal(&member).unwrap().is_some_and(|p| p.is_ready())
    })
    .await;
    let emitted = app
        .portal
        .operator_message(LINE, "c", "hello from the operator")
        .await;
    assert_eq!(emitted.status, Some(200), "{emitted:?}");
}

#[tokio::test]
async fn opening_the_app_page_again_never_replaces_the_installers_tokens() {
    let app = spawn_app().await;
    let member = app.portal.member_id();
    let before = app.store().portal(&member).unwrap().unwrap();
    let oauth = app.portal.oauth_calls();
    for (query, body) in [
        app.portal.install_page_request(),
        app.portal.install_page_request_documented(),
    ] {
        let reply = post_page(&app, &query, body).await;
        assert_eq!(reply.status(), 200);
        assert!(reply.text().await.unwrap().contains("installFinish"));
    }
    assert_eq!(app.store().portal(&member).unwrap().unwrap(), before);
    assert_eq!(app.portal.oauth_calls(), oauth, "nothing to verify");
}

#[tokio::test]
async fn a_second_portal_on_a_second_authorization_server_refreshes_there() {
    let second = FakePortal::start(FakePortalConfig::default())
        .await
        .unwrap();
    let app = spawn_with(TestOptions {
        extra_oauth_servers: vec![second.oauth_base()],
        extra_toml: format!(
            "[[channels]]\nid = \"gamma\"\nportal = \"{}\"\nline = 5\nsecret = \"{}\"\noutbound_url = \"{}\"\n",
            second.member_id(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "http://127.0.0.1:9/unused"
        ),
        ..Default::default()
    })
    .await;
    let reply = app
        .post_form("/bitrix/install", second.install_event_body())
        .await;
    assert_eq!(reply.status(), 200);
    let member = second.member_id();
    app.wait_for("second portal set up", |s| {
        s.portal(&member).unwrap().is_some_and(|p| p.is_ready())
    })
    .await;
    let stored = app.store().portal(&member).unwrap().unwrap();
    assert_eq!(stored.oauth_server, second.oauth_base());
    let gamma = MessengerClient::new(
        &app.base,
        "gamma",
        openchannel_sim::webhooks::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
    );
    let (first_refreshes, second_refreshes) = (app.portal.refresh_count(), second.refresh_count());
    second.expire_access_tokens();
    let reply = gamma
        .post_event("message.created", created("c2", "u2", "g1", "hello"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 202);
    second
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
    assert_eq!(second.refresh_count(), second_refreshes + 1);
    assert_eq!(app.portal.refresh_count(), first_refreshes);
}

#[tokio::test]
async fn a_revoked_grant_holds_work_without_a_refresh_loop_until_a_verified_reinstall() {
    let app = spawn_app().await;
    let member = app.portal.member_id();
    app.portal.revoke_refresh_tokens();
    app.portal.expire_access_tokens();
    let (status, _) = app
        .post_event("message.created", created("c", "u", "m1", "one"))
        .await;
    assert_eq!(status, 202);
    app.wait_for("needs reinstall", |s| {
        s.portal(&member)
            .unwrap()
            .is_some_and(|p| p.needs_reinstall.as_deref() == Some("invalid_grant"))
    })
    .await;
    app.wait_for_metric("gateway_portals_needing_reinstall 1")
        .await;
    let oauth = app.portal.oauth_calls();
    // Held across a restart too; the second message waits with the first.
    let app = app.restart().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gateway_portals_needing_reinstall 1"),
        "after a restart: {metrics}"
    );
    let (status, _) = app
        .post_event("message.created", created("c", "u", "m2", "two"))
        .await;
    assert_eq!(status, 202);
    assert!(app.portal.messages().is_empty());
    // The administrator reinstalls: one verification, then everything held is sent.
    let reply = app
        .post_form("/bitrix/install", app.portal.install_event_body())
        .await;
    assert_eq!(reply.status(), 200);
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 2)
        .await
        .unwrap();
    assert_eq!(
        app.portal.oauth_calls(),
        oauth + 1,
        "no refresh was tried while the grant was revoked"
    );
    let stored = app.store().portal(&member).unwrap().unwrap();
    assert!(stored.needs_reinstall.is_none());
}
