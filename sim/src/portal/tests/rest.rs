//! Envelopes, auth, OAuth refresh, the leaky bucket and injected faults.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Env, read};
use crate::portal::{BucketConfig, FakePortalConfig, Fault, FaultRule};

fn is_iso_date(value: &Value) -> bool {
    let text = value.as_str().unwrap_or_default();
    // YYYY-MM-DDThh:mm:ss+00:00
    text.len() == 25 && text.as_bytes()[10] == b'T' && text.ends_with("+00:00")
}

#[tokio::test(flavor = "multi_thread")]
async fn success_and_error_envelopes() {
    let env = Env::default().await;
    let (status, body) = env.call("app.info", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["STATUS"], "L");
    assert_eq!(body["result"]["INSTALLED"], true);
    let time = body["time"].as_object().unwrap();
    let keys: Vec<&str> = time.keys().map(String::as_str).collect();
    for key in [
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
        "operating",
        "operating_reset_at",
    ] {
        assert!(keys.contains(&key), "missing time.{key}: {keys:?}");
    }
    for key in ["start", "finish", "duration", "processing", "operating"] {
        assert!(time[key].is_f64(), "time.{key} is a float: {}", time[key]);
    }
    assert!(time["operating_reset_at"].is_u64());
    assert!(
        is_iso_date(&time["date_start"]) && is_iso_date(&time["date_finish"]),
        "{time:?}"
    );
    assert!(time["finish"].as_f64() >= time["start"].as_f64());

    let (status, body) = env.call("no.such.method", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_form_and_case_insensitive_method_names() {
    let env = Env::default().await;
    let url = format!(
        "{}APP.INFO.json?auth={}",
        env.portal.client_endpoint(),
        env.token
    );
    let (status, body) = read(env.http.get(url).send().await.unwrap()).await;
    assert_eq!((status, &body["result"]["ID"]), (200, &json!(7)));
    let (status, body) = env
        .call_form("imconnector.register", super::register_params("Form_Conn"))
        .await;
    assert_eq!(
        (status, &body["result"]["result"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(env.portal.connectors()[0].id, "form_conn");
    let records = env.portal.requests();
    assert_eq!(records[0].method, "APP.INFO");
    assert_eq!(records[1].method, "imconnector.register");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unknown_token_is_no_auth_found() {
    let env = Env::default().await;
    let (status, body) = read(
        env.http
            .post(format!("{}app.info", env.portal.client_endpoint()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("NO_AUTH_FOUND"))
    );
    let (status, body) = env.call_as("bogus", "app.info", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("NO_AUTH_FOUND"))
    );
    let (status, body) = read(
        env.http
            .post(format!("{}app.info", env.portal.client_endpoint()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a[b=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("INVALID_REQUEST")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leaky_bucket_rejects_the_request_over_burst() {
    let bucket = BucketConfig {
        rate_per_second: 1.0,
        burst: 5,
    };
    let env = Env::new(FakePortalConfig {
        bucket: Some(bucket),
        ..Default::default()
    })
    .await;
    for i in 0..5 {
        let (status, body) = env.call("app.info", json!({})).await;
        assert_eq!(status, 200, "call {i}: {body}");
    }
    let (status, body) = env.call("app.info", json!({})).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "QUERY_LIMIT_EXCEEDED");
    let records = env.portal.requests();
    assert_eq!(records.len(), 6);
    assert_eq!(
        (records[5].status, records[5].error.as_deref()),
        (503, Some("QUERY_LIMIT_EXCEEDED"))
    );
}

async fn refresh(env: &Env, client_id: &str, refresh_token: &str) -> (u16, Value) {
    let url = format!(
        "{}?grant_type=refresh_token&client_id={client_id}&client_secret=secret.test&refresh_token={refresh_token}",
        env.portal.oauth_url()
    );
    read(env.http.get(url).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_then_refresh_then_success() {
    let env = Env::default().await;
    let tokens = env.portal.issue_tokens();
    env.portal.expire_access_tokens();
    let (status, body) = env
        .call_as(&tokens.access_token, "app.info", json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("expired_token"))
    );

    let (status, fresh) = refresh(&env, "app.test", &tokens.refresh_token).await;
    assert_eq!(status, 200, "{fresh}");
    for key in [
        "access_token",
        "refresh_token",
        "expires",
        "expires_in",
        "member_id",
        "scope",
        "server_endpoint",
        "status",
        "user_id",
    ] {
        assert!(fresh.get(key).is_some(), "missing {key}: {fresh}");
    }
    assert_eq!(fresh["domain"], "oauth.bitrix.info");
    assert_eq!(fresh["client_endpoint"], env.portal.client_endpoint());
    assert_eq!(fresh["member_id"], env.portal.member_id());
    assert_eq!(fresh["expires_in"], 3600);
    let (status, _) = env
        .call_as(
            fresh["access_token"].as_str().unwrap(),
            "app.info",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.portal.refresh_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_rotate() {
    let env = Env::default().await;
    let tokens = env.portal.issue_tokens();
    let (status, body) = refresh(&env, "someone.else", &tokens.refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, first) = refresh(&env, "app.test", &tokens.refresh_token).await;
    assert_eq!(status, 200);
    assert_ne!(first["refresh_token"], json!(tokens.refresh_token));
    let (status, body) = refresh(&env, "app.test", &tokens.refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the old refresh token died"
    );
    let (status, second) =
        refresh(&env, "app.test", first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // A POST form (undocumented) works the same way.
    let body = format!(
        "grant_type=refresh_token&client_id=app.test&client_secret=secret.test&refresh_token={}",
        second["refresh_token"].as_str().unwrap()
    );
    let response = env
        .http
        .post(env.portal.oauth_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(env.portal.refresh_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_faults_fire_the_given_number_of_times() {
    let env = Env::default().await;
    let error = Fault::Error {
        status: 403,
        code: "ACCESS_DENIED".into(),
        description: "nope".into(),
    };
    env.portal
        .push_fault(FaultRule::on("app.info", Fault::Internal).times(2));
    env.portal
        .push_fault(FaultRule::on("event.get", Fault::QueryLimit));
    env.portal
        .push_fault(FaultRule::on("event.get", Fault::ExpiredToken));
    env.portal
        .push_fault(FaultRule::on("imconnector.list", error));
    let expect = [
        ("app.info", 500, "INTERNAL_SERVER_ERROR"),
        ("app.info", 500, "INTERNAL_SERVER_ERROR"),
        ("app.info", 200, ""),
        ("event.get", 503, "QUERY_LIMIT_EXCEEDED"),
        ("event.get", 401, "expired_token"),
        ("event.get", 200, ""),
        ("imconnector.list", 403, "ACCESS_DENIED"),
        ("imconnector.list", 200, ""),
    ];
    for (method, status, code) in expect {
        let (got, body) = env.call(method, json!({})).await;
        assert_eq!(got, status, "{method}: {body}");
        assert_eq!(body["error"].as_str().unwrap_or_default(), code, "{method}");
    }
    // A rule without a method hits whatever comes next.
    env.portal.push_fault(FaultRule::any(Fault::Internal));
    assert_eq!(env.call("event.get", json!({})).await.0, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_gateway_is_html() {
    let env = Env::default().await;
    env.portal.push_fault(FaultRule::any(Fault::BadGateway));
    let response = env
        .http
        .post(format!("{}app.info", env.portal.client_endpoint()))
        .json(&json!({"auth": env.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(env.portal.requests()[0].status, 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn operation_limit_blocks_the_method_until_reset() {
    let env = Env::default().await;
    env.portal.push_fault(FaultRule::on(
        "event.get",
        Fault::OperationLimit {
            reset_in: Duration::from_secs(3600),
        },
    ));
    for _ in 0..2 {
        let (status, body) = env.call("event.get", json!({})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("OPERATION_TIME_LIMIT")),
            "{body}"
        );
    }
    assert_eq!(
        env.call("app.info", json!({})).await.0,
        200,
        "other methods are unaffected"
    );

    // A limit that is already over: one 429, then success announcing the reset moment.
    env.portal.push_fault(FaultRule::on(
        "imconnector.list",
        Fault::OperationLimit {
            reset_in: Duration::ZERO,
        },
    ));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(env.call("imconnector.list", json!({})).await.0, 429);
    let (status, body) = env.call("imconnector.list", json!({})).await;
    assert_eq!(status, 200);
    let reset_at = body["time"]["operating_reset_at"].as_u64().unwrap();
    assert!(
        reset_at <= before + 2,
        "reset_at {reset_at} is the injected reset, not now+600"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delay_answers_late_but_still_processes() {
    let env = Env::default().await;
    env.connector_ready().await;
    env.portal.push_fault(FaultRule::on(
        "imconnector.send.messages",
        Fault::Delay(Duration::from_millis(400)),
    ));
    let started = Instant::now();
    let (status, _) = env
        .send(json!([super::item("u1", "c1", "m1", "hello")]))
        .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));

    // A client that gives up still leaves the message behind: a retry would duplicate it.
    env.portal.push_fault(FaultRule::on(
        "imconnector.send.messages",
        Fault::Delay(Duration::from_secs(5)),
    ));
    let params = json!({"CONNECTOR": super::CONNECTOR, "LINE": super::LINE, "auth": env.token,
        "MESSAGES": [super::item("u1", "c1", "m2", "again")]});
    let sent = env
        .http
        .post(format!(
            "{}imconnector.send.messages",
            env.portal.client_endpoint()
        ))
        .timeout(Duration::from_millis(500))
        .json(&params)
        .send()
        .await;
    assert!(sent.unwrap_err().is_timeout());
    let ids: Vec<String> = env
        .portal
        .messages()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(ids, ["m1", "m2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_and_request_records() {
    let config = FakePortalConfig {
        latency: Duration::from_millis(150),
        ..Default::default()
    };
    let env = Env::new(config).await;
    let started = Instant::now();
    assert_eq!(env.call("app.info", json!({})).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let record = &env.portal.requests()[0];
    assert!(record.at >= started);
    assert_eq!(
        (
            record.method.as_str(),
            record.status,
            record.error.as_deref()
        ),
        ("app.info", 200, None)
    );
}
