//! The chat-bot: registration, reactions, delivery-failure notices, teardown.

use openchannel_gateway::store::OperatorState;
use openchannel_sim::messenger::Mode;
use openchannel_sim::portal::{Fault, FaultRule};
use serde_json::json;

use crate::helpers::*;

fn with_bot() -> TestOptions {
    TestOptions {
        bot: true,
        ..Default::default()
    }
}

/// A customer chat with one operator message the platform took as "ext-op-1".
async fn relayed_operator_message(app: &TestApp) -> u64 {
    open_chat(app, "c1").await;
    let emitted = app
        .portal
        .operator_message(LINE, "c1", "How can I help?")
        .await;
    assert_eq!(emitted.status, Some(200));
    let member = app.portal.member_id();
    app.wait_for("relayed", |s| {
        s.operator(&member, emitted.im_message_id)
            .unwrap()
            .is_some_and(|r| r.state == OperatorState::Delivered)
    })
    .await;
    emitted.im_message_id
}

/// An operator message the platform keeps refusing (503), once the bot has posted its notice.
async fn failing_operator_message(
    app: &TestApp,
    text: &str,
) -> openchannel_sim::portal::EmitResult {
    open_chat(app, "c1").await;
    app.messenger.set_mode(Mode::Fail(503));
    let emitted = app.portal.operator_message(LINE, "c1", text).await;
    app.portal
        .wait_until(WAIT, |p| !p.bot_messages().is_empty())
        .await
        .unwrap();
    emitted
}

async fn react(
    app: &TestApp,
    added: bool,
    message: &str,
    reaction: &str,
) -> (u16, serde_json::Value) {
    let kind = if added {
        "reaction.added"
    } else {
        "reaction.removed"
    };
    app.post_event(kind, json!({"chat": {"id": "c1"}, "user": {"id": "u"}, "message": {"id": message}, "reaction": reaction})).await
}

async fn metric(app: &TestApp, line: &str) -> bool {
    app.get("/metrics")
        .await
        .text()
        .await
        .unwrap()
        .contains(line)
}

#[tokio::test]
async fn setup_registers_the_bot_once_and_finds_it_again() {
    let app = spawn_with(with_bot()).await;
    let bots = app.portal.bots();
    assert_eq!(bots.len(), 1);
    assert_eq!(
        (
            bots[0].code.as_str(),
            bots[0].type_.as_str(),
            bots[0].openline
        ),
        ("ocgw_bot", "O", true)
    );
    assert_eq!(
        bots[0].handlers["EVENT_MESSAGE_ADD"],
        format!("{}/bitrix/bot", app.base)
    );
    let member = app.portal.member_id();
    assert_eq!(
        app.store().portal(&member).unwrap().unwrap().bot_id,
        Some(bots[0].id)
    );
    let again = app
        .http
        .post(format!("{}/v1/portals/{member}/setup", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(again).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["setup"]["bot_id"].as_u64(),
            body["setup"]["bot_registered"].as_bool()
        ),
        (Some(bots[0].id), Some(false))
    );
    assert_eq!(
        app.portal.bots().len(),
        1,
        "found through imbot.bot.list, not registered twice"
    );
    assert_eq!(calls_of(&app.portal, "imbot.register"), 1);
    // Its ownership was checked after registering it and again when it was found.
    assert_eq!(calls_of(&app.portal, "imbot.update"), 2);
}

#[tokio::test]
async fn a_bot_of_another_application_with_our_code_is_not_adopted_and_setup_says_so() {
    let app = spawn_with(TestOptions {
        install: false,
        ..with_bot()
    })
    .await;
    let foreign = app.portal.add_foreign_bot("ocgw_bot", "Another app's bot");
    let install = app
        .post_form("/bitrix/install", app.portal.install_event_body())
        .await;
    assert_eq!(install.status(), 200);
    // The install's own setup checks the bot and stops there; then run it again by hand, to
    // read its answer (running both at once would race on event.bind).
    app.portal
        .wait_until(WAIT, |p| calls_of(p, "imbot.update") == 1)
        .await
        .unwrap();
    let member = app.portal.member_id();
    let reply = app
        .http
        .post(format!("{}/v1/portals/{member}/setup", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(reply).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("bot.code") && message.contains("\"ocgw_bot\""),
        "{message}"
    );
    assert!(message.contains("another application"), "{message}");
    let bots = app.portal.bots();
    assert_eq!(bots.len(), 1, "nothing registered: {bots:?}");
    assert!(bots[0].foreign && bots[0].id == foreign);
    assert_eq!(app.store().portal(&member).unwrap().unwrap().bot_id, None);
}

#[tokio::test]
async fn with_the_bot_disabled_nothing_is_registered_and_reactions_are_refused() {
    let app = spawn_app().await;
    assert!(app.portal.bots().is_empty());
    let (status, body) = react(&app, true, "ext-op-1", "like").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bot_disabled"))
    );
    assert!(app.store().pending_ops().unwrap().is_empty());
}

#[tokio::test]
async fn platform_reactions_become_the_bots_reactions_on_the_operator_message() {
    let app = spawn_with(with_bot()).await;
    let im = relayed_operator_message(&app).await;
    let bot = app.portal.bots()[0].id;
    assert_eq!(react(&app, true, "ext-op-1", "like").await.0, 202);
    app.portal
        .wait_until(WAIT, |p| p.reactions().contains(&(im, bot, "like".into())))
        .await
        .unwrap();
    assert_eq!(react(&app, false, "ext-op-1", "like").await.0, 202);
    app.portal
        .wait_until(WAIT, |p| p.reactions().is_empty())
        .await
        .unwrap();
    app.wait_for("done", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert!(
        metric(
            &app,
            "gateway_items_total{op=\"reaction_add\",result=\"success\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &app,
            "gateway_items_total{op=\"reaction_delete\",result=\"success\"} 1"
        )
        .await
    );
}

#[tokio::test]
async fn an_unknown_reaction_code_is_400_and_changes_nothing() {
    let app = spawn_with(with_bot()).await;
    let (status, body) = react(&app, true, "ext-op-1", "thumbsup").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_reaction"))
    );
    assert!(app.store().pending_ops().unwrap().is_empty());
}

#[tokio::test]
async fn an_already_set_reaction_and_a_missing_one_count_as_done() {
    let app = spawn_with(with_bot()).await;
    relayed_operator_message(&app).await;
    assert_eq!(react(&app, true, "ext-op-1", "fire").await.0, 202);
    assert_eq!(react(&app, true, "ext-op-1", "fire").await.0, 202);
    assert_eq!(react(&app, false, "ext-op-1", "eyes").await.0, 202);
    app.wait_for("done", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let errors: Vec<_> = app
        .portal
        .requests()
        .into_iter()
        .filter_map(|r| r.error)
        .collect();
    assert!(
        errors.iter().any(|e| e == "REACTION_ALREADY_SET"),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e == "REACTION_NOT_FOUND"),
        "{errors:?}"
    );
    assert!(
        metric(
            &app,
            "gateway_items_total{op=\"reaction_add\",result=\"success\"} 2"
        )
        .await
    );
    assert!(
        metric(
            &app,
            "gateway_items_total{op=\"reaction_delete\",result=\"success\"} 1"
        )
        .await
    );
}

#[tokio::test]
async fn a_bot_outside_the_chat_or_an_unknown_message_is_a_recorded_failure() {
    let app = spawn_with(with_bot()).await;
    let im = relayed_operator_message(&app).await;
    let member = app.portal.member_id();
    let chat = app
        .store()
        .operator(&member, im)
        .unwrap()
        .unwrap()
        .im_chat_id;
    app.portal.set_bot_in_chat(chat, false);
    assert_eq!(react(&app, true, "ext-op-1", "like").await.0, 202);
    assert_eq!(react(&app, true, "never-relayed", "like").await.0, 202);
    app.wait_for("final", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert!(
        metric(
            &app,
            "gateway_items_total{op=\"reaction_add\",result=\"failed\"} 2"
        )
        .await
    );
    assert!(
        app.portal
            .requests()
            .iter()
            .any(|r| r.error.as_deref() == Some("ACCESS_DENIED"))
    );
    assert!(app.portal.reactions().is_empty());
}

#[tokio::test]
async fn a_failing_delivery_gets_a_notice_only_operators_see_removed_once_delivered() {
    let app = spawn_with(with_bot()).await;
    let emitted = failing_operator_message(&app, "Your refund is on its way").await;
    let notice = app.portal.bot_messages()[0].clone();
    let member = app.portal.member_id();
    let record = app
        .store()
        .operator(&member, emitted.im_message_id)
        .unwrap()
        .unwrap();
    assert_eq!(notice.dialog_id, format!("chat{}", record.im_chat_id));
    assert!(notice.skip_connector, "the customer never sees it");
    assert!(
        notice.text.contains("Not delivered yet") && notice.text.contains("Your refund"),
        "{}",
        notice.text
    );
    assert_eq!(app.messenger.events().len(), 0);
    app.messenger.set_mode(Mode::Accept);
    app.portal
        .wait_until(WAIT, |p| {
            p.bot_messages()
                .iter()
                .all(|m| m.deleted && m.complete_delete)
        })
        .await
        .unwrap();
    app.wait_for("notice forgotten", |s| {
        s.operator(&member, emitted.im_message_id)
            .unwrap()
            .unwrap()
            .notice
            .is_none()
    })
    .await;
}

#[tokio::test]
async fn a_notice_says_when_delivery_finally_failed_and_goes_when_the_operator_deletes_the_message()
{
    let app = spawn_with(with_bot()).await;
    let emitted = failing_operator_message(&app, "Please confirm your address").await;
    app.messenger.set_mode(Mode::Fail(410));
    let member = app.portal.member_id();
    app.wait_for("final", |s| {
        s.operator(&member, emitted.im_message_id)
            .unwrap()
            .unwrap()
            .notice
            .is_some_and(|n| n.final_failure)
    })
    .await;
    let notices = app.portal.bot_messages();
    assert_eq!(notices.len(), 1, "the same notice, updated");
    assert!(
        notices[0].text.starts_with("[b]Not delivered.[/b]"),
        "{}",
        notices[0].text
    );
    assert_eq!(
        app.portal
            .operator_delete(emitted.im_message_id)
            .await
            .status,
        Some(200)
    );
    app.portal
        .wait_until(WAIT, |p| p.bot_messages()[0].deleted)
        .await
        .unwrap();
    let deleted_relays = app
        .messenger
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "operator.message.deleted")
        .count();
    assert_eq!(
        deleted_relays, 0,
        "the platform never had it, so it is not told of its deletion"
    );
}

#[tokio::test]
async fn a_notice_too_old_to_edit_is_left_alone_without_a_retry_loop() {
    let app = spawn_with(with_bot()).await;
    let emitted = failing_operator_message(&app, "An old one").await;
    app.portal
        .age_bot_message(app.portal.bot_messages()[0].id, 4);
    app.messenger.set_mode(Mode::Fail(400));
    let member = app.portal.member_id();
    app.wait_for("failed", |s| {
        matches!(
            s.operator(&member, emitted.im_message_id)
                .unwrap()
                .unwrap()
                .state,
            OperatorState::Failed { .. }
        )
    })
    .await;
    app.portal
        .wait_until(WAIT, |p| {
            p.requests()
                .iter()
                .any(|r| r.error.as_deref() == Some("CANT_EDIT_MESSAGE"))
        })
        .await
        .unwrap();
    // The channel goes on: a later operator message is delivered normally.
    app.messenger.set_mode(Mode::Accept);
    let next = app.portal.operator_message(LINE, "c1", "A new one").await;
    app.wait_for("delivered", |s| {
        s.operator(&member, next.im_message_id)
            .unwrap()
            .unwrap()
            .state
            == OperatorState::Delivered
    })
    .await;
    let edits = app
        .portal
        .requests()
        .iter()
        .filter(|r| r.method == "imbot.message.update")
        .count();
    assert_eq!(edits, 1, "one attempt, no loop");
}

#[tokio::test]
async fn teardown_undoes_the_setup_and_is_safe_to_run_again_after_a_partial_failure() {
    let app = spawn_with(with_bot()).await;
    relayed_operator_message(&app).await;
    let member = app.portal.member_id();
    let url = format!("{}/v1/portals/{member}/teardown", app.base);
    app.portal
        .push_fault(FaultRule::on("imconnector.unregister", Fault::Internal).times(5));
    let (status, partial) = status_json(
        app.http
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502, "{partial}");
    assert_eq!(partial["teardown"]["completed"], false);
    assert!(
        app.store().portal(&member).unwrap().is_some(),
        "nothing purged after a failed step"
    );
    assert!(app.portal.bots().is_empty(), "the bot step did its part");
    app.portal.clear_faults();
    let (status, report) = status_json(
        app.http
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let steps = report["teardown"]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{report}");
    assert!(
        steps[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("already done"),
        "{}",
        steps[0]
    );
    assert!(app.portal.connectors().is_empty());
    assert!(
        app.portal
            .bindings()
            .iter()
            .all(|b| !b.handler.ends_with("/bitrix/events"))
    );
    assert!(app.store().portal(&member).unwrap().is_none(), "purged");
    assert!(app.store().user_link(&member, "u").unwrap().is_none());
    let (status, _) = status_json(
        app.http
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "nothing left to tear down");
}
