//! `batch` over HTTP.

use serde_json::{Value, json};

use super::{CONNECTOR, Env, LINE};
use crate::form;
use crate::portal::{FakePortalConfig, Fault, FaultRule};

fn send_cmd(id: &str) -> String {
    let params = json!({"CONNECTOR": CONNECTOR, "LINE": LINE,
        "MESSAGES": [{"user": {"id": "u1"}, "message": {"id": id, "text": "hi"}, "chat": {"id": "c1"}}]});
    format!("imconnector.send.messages?{}", form::encode(&params))
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_success_and_errors() {
    let config = FakePortalConfig {
        batch_denied_methods: vec!["imconnector.list".into()],
        ..Default::default()
    };
    let env = Env::new(config).await;
    env.connector_ready().await;
    let (status, body) = env
        .call(
            "batch",
            json!({"halt": 0, "cmd": {
                "send": send_cmd("b1"),
                "info": "app.info",
                "bad": "no.such.method?x=1",
                "denied": "imconnector.list",
                "nested": "batch?cmd[0]=app.info",
                "status": format!("imconnector.status?CONNECTOR={CONNECTOR}&LINE={LINE}"),
            }}),
        )
        .await;
    assert_eq!(status, 200, "a batch answers 200 even when commands fail");
    let result = &body["result"];
    assert_eq!(result["result"]["send"]["SUCCESS"], true);
    assert_eq!(result["result"]["info"]["STATUS"], "L");
    assert_eq!(result["result"]["status"]["CONFIGURED"], true);
    assert_eq!(
        result["result_error"]["bad"]["error"],
        "ERROR_METHOD_NOT_FOUND"
    );
    assert_eq!(
        result["result_error"]["denied"]["error"],
        "ERROR_BATCH_METHOD_NOT_ALLOWED"
    );
    assert_eq!(
        result["result_error"]["nested"]["error"],
        "ERROR_BATCH_METHOD_NOT_ALLOWED"
    );
    assert_eq!(result["result_total"], json!([]), "empty members are []");
    assert_eq!(result["result_next"], json!([]));
    for key in [
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
    ] {
        assert!(
            result["result_time"]["send"].get(key).is_some(),
            "result_time.send.{key}"
        );
    }
    assert!(body["time"]["start"].is_f64());
    let record = env.portal.requests().pop().unwrap();
    assert_eq!(record.method, "batch");
    assert_eq!(
        record.commands,
        [
            "imconnector.send.messages",
            "app.info",
            "no.such.method",
            "imconnector.list",
            "batch",
            "imconnector.status"
        ]
    );
    assert_eq!(env.portal.messages().len(), 1);

    let (_, body) = env.call("batch", json!({"cmd": ["app.info"]})).await;
    assert_eq!(body["result"]["result_error"], json!([]));
    assert_eq!(body["result"]["result"]["0"]["STATUS"], "L");
}

#[tokio::test(flavor = "multi_thread")]
async fn halt_stops_at_first_failure_and_length_is_capped() {
    let env = Env::default().await;
    let (_, body) = env
        .call(
            "batch",
            json!({"halt": 1, "cmd": {"a": "app.info", "b": "nope", "c": "app.info"}}),
        )
        .await;
    let result = &body["result"];
    assert!(result["result"].get("a").is_some());
    assert!(result["result_error"].get("b").is_some());
    assert!(result["result"].get("c").is_none(), "halted");

    let cmd: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("c{i}"), json!("app.info")))
        .collect();
    let (status, body) = env.call("batch", json!({"cmd": cmd})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ERROR_BATCH_LENGTH_EXCEEDED"))
    );
    let fifty: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("c{i}"), json!("app.info")))
        .collect();
    assert_eq!(env.call("batch", json!({"cmd": fifty})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn result_references_and_form_encoded_batch() {
    let env = Env::default().await;
    env.call(
        "imbot.register",
        json!({"CODE": "b", "EVENT_HANDLER": "http://h.example/", "PROPERTIES": {"NAME": "B"}}),
    )
    .await;
    let bots = env.portal.bots();
    // Reference an earlier result inside a later command: the bot id from imbot.bot.list, a list index.
    let (status, body) = env
        .call_form("batch", json!({"cmd": {
            "events": "event.get",
            "bots": "imbot.bot.list",
            "msg": format!("imbot.message.add?BOT_ID=$result[bots][{}][ID]&DIALOG_ID=chat5&MESSAGE=from%20%24result[bots][{}][NAME]", bots[0].id, bots[0].id),
            "bind": "event.bind?event=ONAPPUNINSTALL&handler=http%3A%2F%2Fh.example%2Fu",
            "list": "event.get",
            "unbind": "event.unbind?event=$result[list][0][event]&handler=$result[list][0][handler]",
        }}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["result_error"], json!([]), "{body}");
    let message = &env.portal.bot_messages()[0];
    assert_eq!(
        (message.bot_id, message.text.as_str()),
        (bots[0].id, "from B")
    );
    assert_eq!(body["result"]["result"]["unbind"], json!({"count": 1}));
    assert_eq!(body["result"]["result_total"]["list"], 1);
    assert!(env.portal.bindings().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn method_faults_hit_commands() {
    let env = Env::default().await;
    env.portal
        .push_fault(FaultRule::on("event.get", Fault::Internal));
    env.portal
        .push_fault(FaultRule::on("app.info", Fault::ExpiredToken));
    let (status, body) = env
        .call(
            "batch",
            json!({"cmd": {"a": "app.info", "e": "event.get", "e2": "event.get"}}),
        )
        .await;
    assert_eq!(status, 200);
    let result = &body["result"];
    assert_eq!(result["result_error"]["a"]["error"], "expired_token");
    assert_eq!(
        result["result_error"]["e"]["error"],
        "INTERNAL_SERVER_ERROR"
    );
    assert_eq!(result["result"]["e2"], json!([]));
    // A rule for `batch` itself (or for any request) fails the whole request.
    env.portal
        .push_fault(FaultRule::on("batch", Fault::QueryLimit));
    assert_eq!(env.call("batch", json!({"cmd": ["app.info"]})).await.0, 503);
}
