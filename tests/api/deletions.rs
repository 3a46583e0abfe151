//! The deletion pipeline: batching, per-item results, faults, reports and the callback.

use std::time::Duration;

use futures_util::future::join_all;
use openchannel_sim::messenger::{MessengerClient, Mode};
use openchannel_sim::portal::{FakePortalConfig, Fault, FaultRule};
use serde_json::{Value, json};

use crate::helpers::*;

/// Post `n` messages into `chat` through `client` and wait until Bitrix24 has them all.
async fn create_messages(app: &TestApp, client: &MessengerClient, chat: &str, ids: &[String]) {
    let posts = ids.iter().map(|id| {
        client.post_event(
            "message.created",
            created(chat, &format!("u-{chat}"), id, "hello"),
        )
    });
    for reply in join_all(posts).await {
        assert_eq!(reply.unwrap().status(), 202);
    }
    app.wait_for("messages sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn delete(
    client: &MessengerClient,
    chat: &str,
    ids: &[String],
    user: Option<&str>,
) -> String {
    let mut data = json!({"chat": {"id": chat}, "messages": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
    if let Some(user) = user {
        data["user"] = json!({"id": user});
    }
    let (status, body) =
        status_json(client.post_event("message.deleted", data).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["items"], json!(ids.len()));
    body["deletion_id"].as_str().unwrap().to_string()
}

/// Wait for the signed `deletion.completed` callback of a deletion and return its data.
async fn callback(app: &TestApp, deletion_id: &str) -> Value {
    let id = deletion_id.to_string();
    let seen = app
        .messenger
        .wait_for(
            |d| {
                d.iter().any(|d| {
                    d.acknowledged()
                        && d.event_type == "deletion.completed"
                        && d.data["deletion_id"] == id.as_str()
                })
            },
            WAIT,
        )
        .await
        .unwrap();
    seen.into_iter()
        .find(|d| d.acknowledged() && d.data["deletion_id"] == deletion_id)
        .unwrap()
        .data
}

fn successes(report: &Value) -> usize {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["success"] == json!(true))
        .count()
}

#[tokio::test]
async fn three_hundred_deletions_over_two_lines_use_few_calls_and_all_succeed() {
    let app = spawn_app().await;
    let (a, b) = (ids("a", 150), ids("b", 150));
    create_messages(&app, &app.client, "chat-a", &a).await;
    create_messages(&app, &app.beta, "chat-b", &b).await;
    let before_calls = calls_of(&app.portal, "imconnector.delete.messages");
    let before_requests = app.portal.requests().len();
    let (da, db) = tokio::join!(
        async {
            let first = delete(&app.client, "chat-a", &a[..100], None).await;
            let second = delete(&app.client, "chat-a", &a[100..], None).await;
            (first, second)
        },
        delete(&app.beta, "chat-b", &b, None)
    );
    for id in [&da.0, &da.1, &db] {
        let report = callback(&app, id).await;
        assert_eq!(report["status"], "completed");
        assert_eq!(
            successes(&report),
            report["items"].as_array().unwrap().len(),
            "{report}"
        );
    }
    let calls = calls_of(&app.portal, "imconnector.delete.messages") - before_calls;
    // ceil(150/50) + 2 per line.
    assert!(
        calls <= 10,
        "{calls} delete calls for 300 items over 2 lines"
    );
    let requests = app.portal.requests().len() - before_requests;
    assert!(requests <= 6, "{requests} HTTP requests");
    assert!(app.portal.messages().iter().all(|m| m.deleted));
}

#[tokio::test]
async fn per_item_results_are_reported_item_by_item() {
    let app = spawn_app().await;
    let msgs = ids("m", 4);
    create_messages(&app, &app.client, "c", &msgs).await;
    app.portal
        .fail_item("m-2", vec!["Message is too old".into()]);
    let mut targets = msgs.clone();
    targets.push("never-sent".into());
    let id = delete(&app.client, "c", &targets, None).await;
    let report = callback(&app, &id).await;
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["message_id"], targets[i].as_str());
        assert_eq!(item["chat_id"], "c");
    }
    assert_eq!(items[0]["success"], true);
    assert_eq!(items[0]["errors"], json!([]));
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[2]["success"], false);
    assert_eq!(items[2]["errors"], json!(["Message is too old"]));
    assert_eq!(items[4]["success"], false);
    assert!(
        items[4]["errors"][0]
            .as_str()
            .unwrap()
            .contains("unknown message"),
        "{}",
        items[4]
    );
    assert_eq!(
        items[4]["attempts"], 0,
        "no Bitrix24 call for an unknown message"
    );
}

#[tokio::test]
async fn a_message_unknown_to_the_gateway_but_given_a_user_is_asked_of_bitrix24() {
    let app = spawn_app().await;
    let id = delete(&app.client, "c", &["ghost".to_string()], Some("u-c")).await;
    let report = callback(&app, &id).await;
    assert_eq!(report["items"][0]["success"], false);
    assert_eq!(report["items"][0]["errors"], json!(["Message not found"]));
    assert_eq!(report["items"][0]["attempts"], 1);
}

#[tokio::test]
async fn a_delete_waits_for_its_queued_create() {
    let app = spawn_with(TestOptions {
        install: false,
        ..Default::default()
    })
    .await;
    // Both are held (no install yet): the delete has no user.id and relies on the queued create.
    assert_eq!(
        app.post_event("message.created", created("c", "u", "m", "soon gone"))
            .await
            .0,
        202
    );
    let id = delete(&app.client, "c", &["m".to_string()], None).await;
    let mut app = app;
    app.install().await;
    let report = callback(&app, &id).await;
    assert_eq!(report["items"][0]["success"], true, "{report}");
    let m = &app.portal.messages()[0];
    assert!(m.deleted && m.delete_requests == 1);
}

#[tokio::test]
async fn transient_faults_retry_only_pending_items_and_end_in_success() {
    let delete_method = "imconnector.delete.messages";
    let rules = [
        FaultRule::any(Fault::Internal),
        FaultRule::any(Fault::QueryLimit),
        FaultRule::any(Fault::BadGateway),
        FaultRule::any(Fault::ExpiredToken),
        // Inside `batch` a method fault becomes that command's `result_error`.
        FaultRule::on(delete_method, Fault::Internal),
        FaultRule::on(delete_method, Fault::QueryLimit),
        FaultRule::on(
            delete_method,
            Fault::OperationLimit {
                reset_in: Duration::from_millis(300),
            },
        ),
    ];
    for rule in rules {
        let app = spawn_with(TestOptions {
            max_attempts: 50,
            ..Default::default()
        })
        .await;
        let msgs = ids("m", 60);
        create_messages(&app, &app.client, "c", &msgs).await;
        app.portal.push_fault(rule.clone().times(2));
        let id = delete(&app.client, "c", &msgs, None).await;
        let report = callback(&app, &id).await;
        assert_eq!(successes(&report), 60, "{rule:?}: {report}");
        let attempts = report["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["attempts"].as_u64().unwrap());
        assert!(attempts.max().unwrap() >= 2, "{rule:?}: retried");
        // A failed call deleted nothing, so each message was deleted by exactly one item.
        assert!(app.portal.messages().iter().all(|m| m.deleted), "{rule:?}");
    }
}

#[tokio::test]
async fn a_token_expiring_mid_run_is_refreshed_once_and_nothing_is_lost() {
    let app = spawn_app().await;
    let msgs = ids("m", 120);
    create_messages(&app, &app.client, "c", &msgs).await;
    // The install's verification was one exchange already.
    let before = app.portal.refresh_count();
    app.portal.expire_access_tokens();
    let first = delete(&app.client, "c", &msgs[..60], None).await;
    let second = delete(&app.client, "c", &msgs[60..], None).await;
    assert_eq!(successes(&callback(&app, &first).await), 60);
    assert_eq!(successes(&callback(&app, &second).await), 60);
    assert_eq!(app.portal.refresh_count(), before + 1);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let app = spawn_with(TestOptions {
        request_timeout_ms: 300,
        max_attempts: 20,
        ..Default::default()
    })
    .await;
    let msgs = ids("m", 10);
    create_messages(&app, &app.client, "c", &msgs).await;
    app.portal.push_fault(
        FaultRule::on(
            "imconnector.delete.messages",
            Fault::Delay(Duration::from_millis(1200)),
        )
        .times(1),
    );
    let id = delete(&app.client, "c", &msgs, None).await;
    let report = callback(&app, &id).await;
    // The timed-out call was executed by the portal; the retry then finds nothing to delete.
    // Either way every item is final and every message is gone.
    assert_eq!(report["status"], "completed");
    assert!(app.portal.messages().iter().all(|m| m.deleted));
}

#[tokio::test]
async fn items_bitrix24_rejects_as_a_call_are_final() {
    let app = spawn_app().await;
    let msgs = ids("m", 3);
    create_messages(&app, &app.client, "c", &msgs).await;
    app.portal.push_fault(FaultRule::on(
        "imconnector.delete.messages",
        Fault::Error {
            status: 400,
            code: "ERROR_ARGUMENT".into(),
            description: "Argument 'MESSAGES' is null or empty".into(),
        },
    ));
    let id = delete(&app.client, "c", &msgs, None).await;
    let report = callback(&app, &id).await;
    for item in report["items"].as_array().unwrap() {
        assert_eq!(item["success"], false);
        assert!(
            item["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("ERROR_ARGUMENT")
        );
    }
}

#[tokio::test]
async fn an_item_failing_transiently_too_often_ends_failed_with_its_last_error() {
    let app = spawn_with(TestOptions {
        max_attempts: 3,
        ..Default::default()
    })
    .await;
    let msgs = ids("m", 2);
    create_messages(&app, &app.client, "c", &msgs).await;
    app.portal
        .push_fault(FaultRule::on("imconnector.delete.messages", Fault::Internal).times(100));
    let id = delete(&app.client, "c", &msgs, None).await;
    let report = callback(&app, &id).await;
    for item in report["items"].as_array().unwrap() {
        assert_eq!(item["success"], false);
        assert_eq!(item["attempts"], 3);
        assert_eq!(
            item["errors"],
            json!(["gave up after 3 attempts: INTERNAL_SERVER_ERROR: Internal server error"])
        );
    }
}

#[tokio::test]
async fn results_are_matched_by_message_id_when_the_portal_reorders_them() {
    let app = spawn_with(TestOptions {
        portal: FakePortalConfig {
            reverse_results: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let msgs = ids("m", 5);
    create_messages(&app, &app.client, "c", &msgs).await;
    app.portal.fail_item("m-0", vec!["first one fails".into()]);
    let id = delete(&app.client, "c", &msgs, None).await;
    let report = callback(&app, &id).await;
    assert_eq!(report["items"][0]["errors"], json!(["first one fails"]));
    assert_eq!(successes(&report), 4);
}

#[tokio::test]
async fn a_portal_refusing_batch_gets_direct_calls() {
    let portal = FakePortalConfig {
        batch_denied_methods: vec!["imconnector.delete.messages".into()],
        ..Default::default()
    };
    let app = spawn_with(TestOptions {
        portal,
        ..Default::default()
    })
    .await;
    let (a, b) = (ids("a", 5), ids("b", 5));
    create_messages(&app, &app.client, "ca", &a).await;
    create_messages(&app, &app.beta, "cb", &b).await;
    let (da, db) = tokio::join!(
        delete(&app.client, "ca", &a, None),
        delete(&app.beta, "cb", &b, None)
    );
    assert_eq!(successes(&callback(&app, &da).await), 5);
    assert_eq!(successes(&callback(&app, &db).await), 5);
    assert!(
        app.portal
            .requests()
            .iter()
            .any(|r| r.method == "imconnector.delete.messages"),
        "direct calls were made"
    );
}

#[tokio::test]
async fn an_outage_across_a_restart_loses_nothing_and_resends_nothing_already_recorded() {
    let app = spawn_with(TestOptions {
        max_attempts: 1000,
        ..Default::default()
    })
    .await;
    let msgs = ids("m", 80);
    create_messages(&app, &app.client, "c", &msgs).await;
    let first = delete(&app.client, "c", &msgs[..40], None).await;
    assert_eq!(successes(&callback(&app, &first).await), 40);
    app.portal
        .push_fault(FaultRule::any(Fault::Internal).times(100_000));
    let second = delete(&app.client, "c", &msgs[40..], None).await;
    app.portal
        .wait_until(WAIT, |p| p.requests().iter().any(|r| r.status == 500))
        .await
        .unwrap();
    let app = app.restart().await;
    app.portal.clear_faults();
    let report = callback(&app, &second).await;
    assert_eq!(successes(&report), 40);
    assert!(
        app.portal
            .messages()
            .iter()
            .all(|m| m.deleted && m.delete_requests == 1)
    );
}

#[tokio::test]
async fn the_report_api_needs_the_admin_token_and_knows_its_deletions() {
    let app = spawn_app().await;
    let id = delete(&app.client, "c", &["x".to_string()], None).await;
    let unauthenticated = app.get(&format!("/v1/deletions/{id}")).await;
    assert_eq!(unauthenticated.status(), 401);
    let wrong = app
        .http
        .get(format!("{}/v1/deletions/{id}", app.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, body) = status_json(app.get_admin("/v1/deletions/del_unknown").await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_deletion"))
    );
    let (status, report) = status_json(app.get_admin(&format!("/v1/deletions/{id}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(report["deletion_id"], id.as_str());
    assert_eq!(report["channel"], "acme");
    assert_eq!(report["status"], "completed");
    assert!(report["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(report["completed_at"].is_string());
    assert_eq!(report["items"][0]["success"], false);
}

#[tokio::test]
async fn a_pending_deletion_reports_null_success() {
    let app = spawn_with(TestOptions {
        install: false,
        ..Default::default()
    })
    .await;
    let id = delete(&app.client, "c", &["m1".to_string()], Some("u")).await;
    let (status, report) = status_json(app.get_admin(&format!("/v1/deletions/{id}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(report["status"], "pending");
    assert_eq!(report["completed_at"], Value::Null);
    assert_eq!(report["items"][0]["success"], Value::Null);
}

#[tokio::test]
async fn the_callback_is_signed_retried_with_a_stable_webhook_id_and_equals_the_report() {
    let app = spawn_app().await;
    app.messenger.set_mode(Mode::FailNext(2, 503));
    let id = delete(&app.client, "c", &["x".to_string()], None).await;
    let data = callback(&app, &id).await;
    let attempts: Vec<_> = app
        .messenger
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "deletion.completed")
        .collect();
    assert_eq!(attempts.len(), 3, "two failures then success");
    assert!(
        attempts
            .iter()
            .all(|d| d.signature_ok && d.webhook_id == attempts[0].webhook_id)
    );
    let (_, report) = status_json(app.get_admin(&format!("/v1/deletions/{id}")).await).await;
    assert_eq!(data, report);
}

#[tokio::test]
async fn when_one_command_of_a_batch_fails_only_its_items_are_sent_again() {
    let app = spawn_app().await;
    let msgs = ids("m", 60);
    create_messages(&app, &app.client, "c", &msgs).await;
    app.portal
        .push_fault(FaultRule::on("imconnector.delete.messages", Fault::Internal).times(1));
    let id = delete(&app.client, "c", &msgs, None).await;
    let report = callback(&app, &id).await;
    assert_eq!(successes(&report), 60);
    let mut attempts: Vec<u64> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["attempts"].as_u64().unwrap())
        .collect();
    attempts.sort();
    let retried = attempts.iter().filter(|&&a| a == 2).count();
    assert!(
        retried == 50 || retried == 10,
        "one command's items were retried: {attempts:?}"
    );
    assert_eq!(attempts.iter().filter(|&&a| a == 1).count(), 60 - retried);
    assert!(
        app.portal
            .messages()
            .iter()
            .all(|m| m.deleted && m.delete_requests == 1)
    );
}
