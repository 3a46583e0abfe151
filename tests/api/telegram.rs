//! The Telegram adapter through the real server, against a fake Bot API and a fake portal (both
//! real HTTP servers): the webhook, media links, operator deliveries, flood control, business
//! deletions, reactions and webhook registration.

use std::time::Duration;

use openchannel_sim::telegram::{FakeTelegram, updates};
use serde_json::{Value, json};

use crate::helpers::*;

const TOKEN: &str = "123456:TEST-bot_token-never-shown";
const WEBHOOK_SECRET: &str = "tg-secret_42";
const CHANNEL_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TG_LINE: u64 = 11;
const CONN: &str = "bc-1";
const CUSTOMER: i64 = 200;

async fn spawn_telegram(bot: bool) -> (TestApp, FakeTelegram) {
    let tg = FakeTelegram::start(TOKEN).await.expect("fake telegram");
    tg.add_business_connection(CONN, CUSTOMER, true);
    let extra_toml = format!(
        "[[channels]]\nid = \"tg\"\nplatform = \"telegram\"\nportal = \"{{member}}\"\nline = {TG_LINE}\n\
         secret = \"{CHANNEL_SECRET}\"\n[channels.telegram]\nbot_token = \"{TOKEN}\"\n\
         webhook_secret = \"{WEBHOOK_SECRET}\"\napi_url = \"{}\"\n",
        tg.url()
    );
    let app = spawn_with(TestOptions {
        extra_toml,
        bot,
        ..Default::default()
    })
    .await;
    tg.wait_for(|c| c.iter().any(|c| c.method == "setWebhook"), WAIT)
        .await
        .expect("the webhook is registered at start");
    (app, tg)
}

async fn post(tg: &FakeTelegram, update: Value) -> (u16, Value) {
    tg.post_update(&update).await.expect("posted")
}

/// The customer's first message in the business chat, so that the open-line chat exists.
async fn customer_writes(app: &TestApp, tg: &FakeTelegram, message_id: i64, business: bool) {
    let conn = business.then_some(CONN);
    let (status, body) = post(
        tg,
        updates::message(tg.next_update_id(), CUSTOMER, message_id, "hello", conn),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    app.wait_for("sent to Bitrix24", |s| s.pending_ops().unwrap().is_empty())
        .await;
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn a_telegram_message_reaches_bitrix24_once_and_the_secret_header_is_required() {
    let (app, tg) = spawn_telegram(false).await;
    let update = updates::message(tg.next_update_id(), CUSTOMER, 5, "Good afternoon", None);
    let (status, body) = tg
        .post_update_with_secret(&update, Some("wrong-secret"))
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_secret_token");
    let (status, _) = tg.post_update_with_secret(&update, None).await.unwrap();
    assert_eq!(status, 401);
    assert!(
        app.portal.messages().is_empty(),
        "nothing taken without the secret"
    );

    let (status, body) = post(&tg, update.clone()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let messages = app.portal.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        (
            m.line,
            m.chat_id.as_str(),
            m.user_id.as_str(),
            m.message_id.as_str()
        ),
        (TG_LINE, "200", "200", "200:5")
    );
    assert_eq!(m.text, "Good afternoon");

    // Telegram repeats the update (our 200 was lost): acknowledged, not sent again.
    let (status, body) = post(&tg, update).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("replayed")));
    let (status, body) = post(
        &tg,
        json!({"update_id": tg.next_update_id(), "poll": {"id": "p1", "question": "?"}}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    app.wait_for("nothing pending", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(app.portal.messages().len(), 1);
    assert_eq!(calls_of(&app.portal, "imconnector.send.messages"), 1);
    let text = metrics(&app).await;
    for line in [
        "gateway_telegram_updates_total{update=\"message\",outcome=\"accepted\"} 1",
        "gateway_telegram_updates_total{update=\"message\",outcome=\"replayed\"} 1",
        "gateway_telegram_updates_total{update=\"other\",outcome=\"ignored\"} 1",
        "gateway_telegram_updates_total{update=\"unknown\",outcome=\"invalid_secret_token\"} 2",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }

    // An unknown channel, or a generic one, has no Telegram webhook.
    let reply = app
        .http
        .post(format!("{}/v1/channels/acme/telegram", app.base))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .json(&json!({"update_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
}

#[tokio::test]
async fn a_customer_photo_reaches_bitrix24_as_a_signed_link_that_streams_the_file() {
    let (app, tg) = spawn_telegram(false).await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    tg.add_file("photo-big", "photos/file_7.jpg", bytes.clone());
    let (status, _) = post(
        &tg,
        updates::photo(
            tg.next_update_id(),
            CUSTOMER,
            9,
            "photo-big",
            "my order",
            Some(CONN),
        ),
    )
    .await;
    assert_eq!(status, 200);
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let messages = app.portal.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(
        (m.chat_id.as_str(), m.message_id.as_str(), m.text.as_str()),
        ("b:bc-1:200", "b:bc-1:200:9", "my order")
    );
    assert_eq!(m.files.len(), 1, "only the largest size: {:?}", m.files);
    let link = m.files[0]["url"].as_str().expect("a file url").to_string();
    assert!(link.starts_with(&format!("{}/media/", app.base)), "{link}");
    for request in app.portal.requests() {
        assert!(
            !format!("{request:?}").contains("TEST-bot_token"),
            "the bot token reached Bitrix24: {request:?}"
        );
    }
    assert!(
        !link.contains("TEST-bot_token") && !link.contains("/bot"),
        "{link}"
    );

    let reply = app.http.get(&link).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "image/jpeg");
    let disposition = reply.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.contains("photo_big1.jpg"), "{disposition}");
    assert_eq!(reply.bytes().await.unwrap().to_vec(), bytes);
    assert_eq!(tg.downloads(), ["photos/file_7.jpg"]);
    assert_eq!(tg.calls_of("getFile")[0].params["file_id"], "photo-big");

    // Tampered, truncated or made-up links are 404, and reach no one.
    let (payload, tag) = link.rsplit_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    for bad in [
        format!("{payload}.{flipped}{}", &tag[1..]),
        payload.to_string(),
        format!("{}/media/not-a-token", app.base),
    ] {
        let reply = app.http.get(&bad).send().await.unwrap();
        assert_eq!(reply.status(), 404, "{bad}");
    }
    assert_eq!(tg.calls_of("getFile").len(), 1);
}

#[tokio::test]
async fn an_operator_reply_reaches_the_business_chat_and_its_telegram_id_goes_back() {
    let (app, tg) = spawn_telegram(false).await;
    tg.set_echo_business_sends(false);
    customer_writes(&app, &tg, 7, true).await;
    let emitted = app
        .portal
        .operator_message(
            TG_LINE,
            "b:bc-1:200",
            "[b]Anna:[/b][br]Your order ships today",
        )
        .await;
    assert_eq!(emitted.status, Some(200));
    app.portal
        .wait_until(WAIT, |p| !p.delivery_reports().is_empty())
        .await
        .unwrap();
    let sent = tg.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].chat_id, CUSTOMER);
    assert_eq!(sent[0].business_connection_id.as_deref(), Some(CONN));
    assert_eq!(
        sent[0].text.as_deref(),
        Some("Anna:\nYour order ships today")
    );
    let report = &app.portal.delivery_reports()[0];
    assert_eq!(
        report["message"]["id"],
        json!([format!("b:bc-1:200:{}", sent[0].message_id)])
    );
    assert_eq!(report["im"]["message_id"], json!(emitted.im_message_id));

    // Telegram echoes the bot's send into the business chat: it is not a customer message.
    let mut echo = updates::message(
        tg.next_update_id(),
        CUSTOMER,
        sent[0].message_id,
        "Anna:\nYour order ships today",
        Some(CONN),
    );
    echo["business_message"]["from"] = json!({"id": 900, "is_bot": false, "first_name": "Shop"});
    echo["business_message"]["sender_business_bot"] =
        json!({"id": 42, "is_bot": true, "first_name": "Fake bot"});
    let (status, body) = post(&tg, echo).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    assert_eq!(app.portal.messages().len(), 1);

    // The operator deletes it: deleteBusinessMessages with the connection.
    app.portal.operator_delete(emitted.im_message_id).await;
    tg.wait_for(
        |c| c.iter().any(|c| c.method == "deleteBusinessMessages"),
        WAIT,
    )
    .await
    .unwrap();
    let call = &tg.calls_of("deleteBusinessMessages")[0];
    assert_eq!(
        call.params,
        json!({"business_connection_id": CONN, "message_ids": [sent[0].message_id]})
    );
    assert!(tg.calls_of("deleteMessage").is_empty());
}

#[tokio::test]
async fn edits_and_deletes_go_to_telegram_and_a_refused_edit_fails_without_blocking_the_chat() {
    let (app, tg) = spawn_telegram(false).await;
    customer_writes(&app, &tg, 3, false).await;
    let first = app.portal.operator_message(TG_LINE, "200", "first").await;
    tg.wait_for(|c| c.iter().any(|c| c.method == "sendMessage"), WAIT)
        .await
        .unwrap();
    app.portal
        .operator_edit(first.im_message_id, "first, edited")
        .await;
    tg.wait_for(
        |c| {
            c.iter()
                .any(|c| c.method == "editMessageText" && c.error_code == 0)
        },
        WAIT,
    )
    .await
    .unwrap();
    let sent = tg.sent();
    assert_eq!(sent[0].text.as_deref(), Some("first, edited"));
    let edit = &tg.calls_of("editMessageText")[0];
    assert_eq!(edit.params["chat_id"], CUSTOMER);
    assert_eq!(edit.params["message_id"], sent[0].message_id);
    assert!(edit.params.get("business_connection_id").is_none());

    // Telegram refuses the next edit for good: the delivery ends failed, and the chat goes on.
    tg.fail_next(
        "editMessageText",
        1,
        400,
        "Bad Request: message can't be edited",
        None,
    );
    app.portal
        .operator_edit(first.im_message_id, "too late")
        .await;
    app.portal.operator_message(TG_LINE, "200", "second").await;
    tg.wait_for(
        |c| c.iter().filter(|c| c.method == "sendMessage").count() == 2,
        WAIT,
    )
    .await
    .unwrap();
    app.wait_for("the refused edit is recorded as failed", |s| {
        s.pending_deliveries().unwrap().iter().any(|d| {
            d.event_type == "operator.message.updated"
                && d.failed
                    .as_deref()
                    .is_some_and(|f| f.contains("can't be edited"))
        })
    })
    .await;
    assert_eq!(tg.sent()[0].text.as_deref(), Some("first, edited"));
    assert!(metrics(&app).await.contains(
        "gateway_deliveries_total{type=\"operator.message.updated\",outcome=\"failed\"} 1"
    ));

    app.portal.operator_delete(first.im_message_id).await;
    tg.wait_for(|c| c.iter().any(|c| c.method == "deleteMessage"), WAIT)
        .await
        .unwrap();
    assert!(tg.sent()[0].deleted);
    assert!(!tg.sent()[1].deleted);
}

#[tokio::test]
async fn a_429_waits_its_retry_after() {
    let (app, tg) = spawn_telegram(false).await;
    customer_writes(&app, &tg, 3, false).await;
    tg.fail_next(
        "sendMessage",
        1,
        429,
        "Too Many Requests: retry after 1",
        Some(1),
    );
    app.portal.operator_message(TG_LINE, "200", "hello").await;
    app.portal
        .wait_until(WAIT, |p| !p.delivery_reports().is_empty())
        .await
        .unwrap();
    let calls = tg.calls_of("sendMessage");
    assert_eq!(
        calls.iter().map(|c| c.error_code).collect::<Vec<_>>(),
        [429, 0]
    );
    let waited = calls[1].at - calls[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(tg.sent().len(), 1);
    assert!(
        metrics(&app)
            .await
            .contains("gateway_telegram_api_total{method=\"sendMessage\",outcome=\"flood\"} 1")
    );
}

#[tokio::test]
async fn a_batch_of_business_deletions_reaches_bitrix24_in_one_call_with_a_per_item_report() {
    let (app, tg) = spawn_telegram(false).await;
    for id in [7, 8] {
        customer_writes(&app, &tg, id, true).await;
    }
    let deletes_before = calls_of(&app.portal, "imconnector.delete.messages");
    let (status, body) = post(
        &tg,
        updates::deleted_business(tg.next_update_id(), CONN, CUSTOMER, &[7, 8, 99]),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    assert_eq!(body["items"], 3);
    let deletion = body["deletion_id"]
        .as_str()
        .expect("deletion id")
        .to_string();
    app.wait_for("deletion completed", |s| {
        s.deletion(&deletion.as_str().into())
            .unwrap()
            .is_some_and(|(d, _)| d.pending == 0)
    })
    .await;
    assert_eq!(
        calls_of(&app.portal, "imconnector.delete.messages") - deletes_before,
        1,
        "one request for the batch"
    );
    let (status, report) =
        status_json(app.get_admin(&format!("/v1/deletions/{deletion}")).await).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "completed");
    assert_eq!(report["channel"], "tg");
    let items = report["items"].as_array().unwrap();
    let outcome: Vec<(&str, Value)> = items
        .iter()
        .map(|i| (i["message_id"].as_str().unwrap(), i["success"].clone()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("b:bc-1:200:7", json!(true)),
            ("b:bc-1:200:8", json!(true)),
            ("b:bc-1:200:99", json!(false)),
        ]
    );
    assert!(
        items[2]["errors"][0]
            .as_str()
            .unwrap()
            .contains("unknown message")
    );
    assert!(app.portal.messages().iter().all(|m| m.deleted));
}

#[tokio::test]
async fn reactions_on_an_operator_message_become_the_bots_reactions() {
    let (app, tg) = spawn_telegram(true).await;
    customer_writes(&app, &tg, 3, false).await;
    let emitted = app
        .portal
        .operator_message(TG_LINE, "200", "How was it?")
        .await;
    app.portal
        .wait_until(WAIT, |p| !p.delivery_reports().is_empty())
        .await
        .unwrap();
    let sent_id = tg.sent()[0].message_id;
    let (status, _) = post(
        &tg,
        updates::reaction(tg.next_update_id(), CUSTOMER, sent_id, &[], &["👍", "🐳"]),
    )
    .await;
    assert_eq!(status, 200);
    app.portal
        .wait_until(WAIT, |p| !p.reactions().is_empty())
        .await
        .unwrap();
    let reactions = app.portal.reactions();
    assert_eq!(reactions.len(), 1, "{reactions:?}");
    assert_eq!(
        (reactions[0].0, reactions[0].2.as_str()),
        (emitted.im_message_id, "like")
    );
    post(
        &tg,
        updates::reaction(
            tg.next_update_id(),
            CUSTOMER,
            sent_id,
            &["👍", "🐳"],
            &["❤"],
        ),
    )
    .await;
    app.portal
        .wait_until(WAIT, |p| {
            p.reactions()
                .iter()
                .map(|r| r.2.clone())
                .collect::<Vec<_>>()
                == ["redHeart"]
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_webhook_is_set_only_when_it_differs_and_a_failure_is_retried() {
    let (app, tg) = spawn_telegram(false).await;
    let (url, secret, updates) = tg.webhook();
    assert_eq!(url, format!("{}/v1/channels/tg/telegram", app.base));
    assert_eq!(secret.as_deref(), Some(WEBHOOK_SECRET));
    let mut updates = updates.expect("allowed_updates");
    updates.sort();
    assert_eq!(
        updates,
        [
            "business_message",
            "deleted_business_messages",
            "edited_business_message",
            "edited_message",
            "message",
            "message_reaction"
        ]
    );
    // The install's setup checked again and found nothing to change.
    tg.wait_for(
        |c| c.iter().filter(|c| c.method == "getWebhookInfo").count() >= 2,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(tg.calls_of("setWebhook").len(), 1);

    // Someone removed it, and Telegram fails once: the setup's check retries and sets it again.
    tg.clear_webhook();
    tg.fail_next("getWebhookInfo", 1, 500, "Internal Server Error", None);
    let member = app.portal.member_id();
    let reply = app
        .http
        .post(format!("{}/v1/portals/{member}/setup", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    tg.wait_for(
        |c| c.iter().filter(|c| c.method == "setWebhook").count() == 2,
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        tg.calls_of("getWebhookInfo")
            .iter()
            .any(|c| c.error_code == 500)
    );
    assert_eq!(tg.webhook().1.as_deref(), Some(WEBHOOK_SECRET));

    // A restart finds it registered with the same secret: no setWebhook. (Checks run one at a
    // time: once a setup's check has asked again, the start-up check is over.)
    let checks = tg.calls_of("getWebhookInfo").len();
    let app = app.restart().await;
    tg.wait_for(
        |c| c.iter().filter(|c| c.method == "getWebhookInfo").count() > checks,
        WAIT,
    )
    .await
    .unwrap();
    let reply = app
        .http
        .post(format!("{}/v1/portals/{member}/setup", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    tg.wait_for(
        |c| c.iter().filter(|c| c.method == "getWebhookInfo").count() > checks + 1,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(tg.calls_of("setWebhook").len(), 2);
}
