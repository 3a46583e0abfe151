//! `POST /bitrix/placement` (the connector settings page) and `POST /bitrix/placement/action`:
//! what the page shows, who may see it, and who may press its buttons.

use std::collections::HashMap;

use openchannel_gateway::bitrix::form;
use openchannel_gateway::http::csrf::{self, Action, Claims};
use serde_json::{Map, Value, json};

use crate::helpers::*;

/// The body Bitrix24 POSTs when it opens the connector settings for `line`, with a fresh AUTH_ID,
/// in the shape captured from real portals (fact sheet §11): no `APPLICATION_TOKEN`, no
/// `SERVER_ENDPOINT`.
pub fn page_fields(app: &TestApp, line: &str) -> Map<String, Value> {
    let tokens = app.portal.issue_tokens();
    let options = json!({
        "CONNECTOR": "ocgw", "LINE": line, "STATUS": true, "ACTIVE_STATUS": true,
        "CONNECTION_STATUS": true, "REGISTER_STATUS": true, "ERROR_STATUS": false, "URI": ""
    });
    let fields = json!({
        "AUTH_ID": tokens.access_token,
        "AUTH_EXPIRES": tokens.expires_in.to_string(),
        "REFRESH_ID": tokens.refresh_token,
        "member_id": app.portal.member_id(),
        "status": "L",
        "PLACEMENT": "SETTING_CONNECTOR",
        "PLACEMENT_OPTIONS": options.to_string(),
    });
    match fields {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// The query string Bitrix24 adds to an app page URL.
pub fn page_query(app: &TestApp) -> String {
    form::encode(&json!({
        "DOMAIN": app.portal.domain(), "PROTOCOL": "0", "LANG": "en", "APP_SID": "0123abcd"
    }))
}

async fn open(app: &TestApp, fields: &Map<String, Value>) -> reqwest::Response {
    app.http
        .post(format!("{}/bitrix/placement?{}", app.base, page_query(app)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form::encode(&Value::Object(fields.clone())))
        .send()
        .await
        .expect("request")
}

async fn press(
    app: &TestApp,
    fields: &HashMap<String, String>,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}/bitrix/placement/action", app.base))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let body = form::encode(&serde_json::to_value(fields).unwrap());
    req.body(body).send().await.expect("request")
}

/// Hidden fields of each `<form>` of a page, keyed by the form's `action` field.
pub fn forms(html: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in html.split("<form").skip(1) {
        let chunk = chunk.split("</form>").next().unwrap_or_default();
        let mut fields = HashMap::new();
        for input in chunk.split("<input").skip(1) {
            let attr = |name: &str| {
                let start = input.find(&format!("{name}=\""))? + name.len() + 2;
                let end = input[start..].find('"')? + start;
                Some(unescape(&input[start..end]))
            };
            if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                fields.insert(n, v);
            }
        }
        out.insert(fields.get("action").cloned().unwrap_or_default(), fields);
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn line_active(app: &TestApp, line: u64) -> bool {
    app.portal.line("ocgw", line).is_some_and(|l| l.active)
}

fn activate_calls(app: &TestApp) -> u32 {
    app.portal
        .line("ocgw", LINE)
        .map_or(0, |l| l.activate_calls)
}

async fn page_html(app: &TestApp, line: &str) -> String {
    let reply = open(app, &page_fields(app, line)).await;
    assert_eq!(reply.status(), 200);
    reply.text().await.unwrap()
}

#[tokio::test]
async fn the_page_shows_the_line_state_and_its_channel_with_safe_headers() {
    let app = spawn_app().await;
    let reply = open(&app, &page_fields(&app, "7")).await;
    assert_eq!(reply.status(), 200);
    let header = |name: &str| {
        reply
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("style-src 'unsafe-inline'"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(
        csp.contains(&format!("frame-ancestors {}", app.portal.url())),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    // `same-origin`, not `no-referrer`: the latter makes browsers send `Origin: null`.
    assert_eq!(header("referrer-policy"), "same-origin");
    let html = reply.text().await.unwrap();
    assert!(html.contains("Connected"), "{html}");
    assert!(html.contains("Open line <b>7</b>"));
    assert!(html.contains("<code>acme</code>"));
    assert!(!html.contains("<code>beta</code>"), "beta is on line 9");
    assert!(
        !html.contains("whsec_") && !html.contains("/hook"),
        "no secrets, no paths"
    );
    assert!(!html.contains("<script"), "works without JavaScript");
    let forms = forms(&html);
    assert_eq!(forms.len(), 1, "an active line offers Deactivate only");
    assert!(forms.contains_key("deactivate"));
    assert!(
        html.contains(&format!(r#"action="{}/bitrix/placement/action""#, app.base)),
        "forms post to public_url"
    );
    assert_eq!(calls_of(&app.portal, "app.info"), 1, "AUTH_ID checked once");
}

#[tokio::test]
async fn a_line_without_a_channel_says_so_and_offers_no_activation() {
    let app = spawn_app().await;
    let html = page_html(&app, "3").await;
    assert!(html.contains("No channel configured for line 3"), "{html}");
    assert!(html.contains("Inactive"));
    assert!(forms(&html).is_empty());
}

#[tokio::test]
async fn a_wrong_application_token_or_an_unknown_portal_is_401_and_nothing_is_asked() {
    let app = spawn_app().await;
    let before = app.portal.requests().len();
    let mut wrong_token = page_fields(&app, "7");
    wrong_token.insert("APPLICATION_TOKEN".into(), json!("0".repeat(32)));
    let mut unknown = page_fields(&app, "7");
    unknown.insert("member_id".into(), json!("b".repeat(32)));
    for fields in [wrong_token, unknown] {
        let (status, body) = status_json(open(&app, &fields).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_application_token");
    }
    assert_eq!(
        app.portal.requests().len(),
        before,
        "the portal was not called"
    );
}

#[tokio::test]
async fn the_page_is_served_with_or_without_application_token_and_carries_no_token() {
    let app = spawn_app().await;
    let captured = page_fields(&app, "7");
    let mut documented = page_fields(&app, "7");
    documented.insert(
        "APPLICATION_TOKEN".into(),
        json!(app.portal.application_token()),
    );
    let stored = app
        .store()
        .portal(&app.portal.member_id())
        .unwrap()
        .unwrap();
    for fields in [captured, documented] {
        let reply = open(&app, &fields).await;
        assert_eq!(reply.status(), 200);
        let html = reply.text().await.unwrap();
        assert!(html.contains("Connector on line 7"), "{html}");
        for secret in [
            fields["AUTH_ID"].as_str().unwrap(),
            fields["REFRESH_ID"].as_str().unwrap(),
            &app.portal.application_token(),
            &stored.access_token,
            &stored.refresh_token,
        ] {
            assert!(!html.contains(secret), "the page carries a token");
        }
    }
}

#[tokio::test]
async fn an_auth_id_the_portal_rejects_is_401() {
    let app = spawn_app().await;
    let statuses = calls_of(&app.portal, "imconnector.status");
    let refreshes = app.portal.refresh_count();
    let stale = page_fields(&app, "7");
    // Every token issued so far now answers expired_token (the gateway's own is refreshed).
    app.portal.expire_access_tokens();
    let mut unknown = page_fields(&app, "7");
    unknown.insert("AUTH_ID".into(), json!("not-a-token"));
    for fields in [stale, unknown] {
        let (status, body) = status_json(open(&app, &fields).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "auth_rejected");
    }
    assert_eq!(calls_of(&app.portal, "imconnector.status"), statuses);
    assert_eq!(
        app.portal.refresh_count(),
        refreshes,
        "a caller's token is never refreshed"
    );
}

#[tokio::test]
async fn another_placement_or_a_foreign_connector_is_400() {
    let app = spawn_app().await;
    let mut foreign = page_fields(&app, "7");
    foreign.insert(
        "PLACEMENT_OPTIONS".into(),
        json!(json!({"CONNECTOR": "telegrambot", "LINE": "7"}).to_string()),
    );
    let mut placement = page_fields(&app, "7");
    placement.insert("PLACEMENT".into(), json!("DEFAULT"));
    let mut garbage = page_fields(&app, "7");
    garbage.insert("PLACEMENT_OPTIONS".into(), json!("{not json"));
    let bad_line = page_fields(&app, "seven");
    for (fields, code) in [
        (foreign, "foreign_connector"),
        (placement, "wrong_placement"),
        (garbage, "invalid_field"),
        (bad_line, "invalid_field"),
    ] {
        let (status, body) = status_json(open(&app, &fields).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)));
    }
}

#[tokio::test]
async fn deactivate_then_activate_change_the_line_and_the_page() {
    let app = spawn_app().await;
    assert!(line_active(&app, LINE));
    let html = page_html(&app, "7").await;
    let reply = press(&app, &forms(&html)["deactivate"], Some(app.base.as_str())).await;
    assert_eq!(reply.status(), 200);
    let html = reply.text().await.unwrap();
    assert!(!line_active(&app, LINE));
    assert!(html.contains("now inactive on line 7"), "{html}");
    assert!(html.contains("Inactive"));
    // Without an Origin header (older browsers) the CSRF token alone is enough.
    let reply = press(&app, &forms(&html)["activate"], None).await;
    assert_eq!(reply.status(), 200);
    let html = reply.text().await.unwrap();
    assert!(line_active(&app, LINE));
    assert!(html.contains("now active on line 7") && html.contains("Connected"));
    assert!(line_active(&app, LINE_B), "the other line is untouched");
}

#[tokio::test]
async fn forged_mismatched_or_expired_csrf_tokens_change_nothing() {
    let app = spawn_app().await;
    let html = page_html(&app, "7").await;
    let good = forms(&html)["deactivate"].clone();
    let calls = activate_calls(&app);
    let with = |key: &str, value: &str| {
        let mut f = good.clone();
        f.insert(key.into(), value.into());
        f
    };
    let now = (openchannel_gateway::domain::now_ms() / 1000) as i64;
    let key = app.store().placement_key().unwrap();
    let member = app.portal.member_id();
    let signed = |expires: i64, key: &[u8]| {
        let claims = Claims {
            member_id: &member,
            line: LINE,
            action: Action::Deactivate,
            expires,
        };
        let token = csrf::sign(key, &claims);
        with("expires", &expires.to_string())
            .into_iter()
            .chain([("csrf".to_string(), token)])
            .collect::<HashMap<_, _>>()
    };
    let cases = [
        (with("csrf", "forged"), "csrf_invalid"),
        (with("csrf", ""), "csrf_invalid"),
        (with("line", "9"), "csrf_invalid"),
        (with("action", "activate"), "csrf_invalid"),
        (with("expires", &(now + 600).to_string()), "csrf_invalid"),
        (signed(now - 1, &key), "csrf_expired"),
        (signed(now + 86_400, &key), "csrf_invalid"),
        (signed(now + 600, &[7u8; 32]), "csrf_invalid"),
    ];
    for (fields, code) in cases {
        let (status, body) = status_json(press(&app, &fields, Some(app.base.as_str())).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some(code)));
    }
    assert!(line_active(&app, LINE));
    assert_eq!(activate_calls(&app), calls);
    // A correctly signed, unexpired token for the same claims is accepted.
    let reply = press(&app, &signed(now + 600, &key), None).await;
    assert_eq!(reply.status(), 200);
    assert!(!line_active(&app, LINE));
}

#[tokio::test]
async fn a_foreign_origin_is_refused() {
    let app = spawn_app().await;
    let html = page_html(&app, "7").await;
    let form = &forms(&html)["deactivate"];
    for origin in ["https://evil.example", "null", "http://127.0.0.1:2"] {
        let (status, body) = status_json(press(&app, form, Some(origin)).await).await;
        assert_eq!(status, 403, "{origin}: {body}");
        assert_eq!(body["error"]["code"], "origin_mismatch");
    }
    assert!(line_active(&app, LINE));
}

#[tokio::test]
async fn the_action_needs_an_installed_portal_and_no_token() {
    let app = spawn_app().await;
    let html = page_html(&app, "7").await;
    let good = forms(&html)["deactivate"].clone();
    assert!(
        !good.contains_key("AUTH_ID") && !good.contains_key("APPLICATION_TOKEN"),
        "{good:?}"
    );
    let requests = app.portal.requests().len();
    assert_eq!(app.portal.uninstall(false).await.status, Some(200));
    let (status, body) = status_json(press(&app, &good, None).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("not_installed"))
    );
    assert_eq!(app.portal.requests().len(), requests, "nothing was asked");
}

#[tokio::test]
async fn the_signing_key_survives_a_restart() {
    let app = spawn_app().await;
    let key = app.store().placement_key().unwrap();
    let html = page_html(&app, "7").await;
    let app = app.restart().await;
    assert_eq!(app.store().placement_key().unwrap(), key);
    let reply = press(&app, &forms(&html)["deactivate"], Some(app.base.as_str())).await;
    assert_eq!(reply.status(), 200);
    assert!(!line_active(&app, LINE));
}
