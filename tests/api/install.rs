//! `POST /bitrix/install`: both install shapes, bad input, and who may replace an installed portal.

use openchannel_gateway::bitrix::form;
use openchannel_gateway::store::PortalStatus;
use serde_json::json;

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
    let reply = app
        .http
        .post(format!("{}/bitrix/install?{query}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.text().await.unwrap().contains("BX24.installFinish()"));
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

fn install_form(app: &TestApp, application_token: &str, refresh_token: &str) -> String {
    form::encode(&json!({
        "event": "ONAPPINSTALL",
        "auth": {
            "member_id": app.portal.member_id(), "domain": app.portal.domain(),
            "client_endpoint": app.portal.client_endpoint(), "access_token": "forged-access",
            "refresh_token": refresh_token, "expires_in": "3600",
            "application_token": application_token, "scope": "imconnector imopenlines"
        }
    }))
}

#[tokio::test]
async fn a_forged_install_cannot_replace_an_installed_portal() {
    let app = spawn_app().await;
    let before = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .unwrap();
    let reply = app
        .post_form(
            "/bitrix/install",
            install_form(&app, "attacker-token", "made-up"),
        )
        .await;
    let (status, body) = status_json(reply).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("install_not_verified"))
    );
    assert_eq!(
        app.store()
            .portal(&app.portal.member_id())
            .unwrap()
            .unwrap(),
        before
    );
}

#[tokio::test]
async fn a_reinstall_the_oauth_server_confirms_replaces_the_portal() {
    let app = spawn_app().await;
    let genuine = app.portal.issue_tokens();
    let reply = app
        .post_form(
            "/bitrix/install",
            install_form(&app, "new-app-token", &genuine.refresh_token),
        )
        .await;
    assert_eq!(reply.status(), 200);
    let portal = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .unwrap();
    assert_eq!(portal.application_token, "new-app-token");
    assert_ne!(
        portal.refresh_token, genuine.refresh_token,
        "the confirmed exchange rotated the tokens"
    );
    assert_ne!(portal.access_token, "forged-access");
    app.post_event("message.created", created("c", "u", "m", "x"))
        .await;
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
}
