//! imbot v1 methods and v2 reactions.

use serde_json::{Value, json};

use super::{Env, LINE, Receiver, item};

async fn register(env: &Env, code: &str) -> u64 {
    let (status, body) = env
        .call(
            "imbot.register",
            json!({"CODE": code, "TYPE": "O", "EVENT_HANDLER": "https://gw.example/bot",
            "PROPERTIES": {"NAME": "Gateway bot", "COLOR": "AQUA"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["result"].as_u64().expect("BOT_ID is an int")
}

#[tokio::test(flavor = "multi_thread")]
async fn register_list_unregister() {
    let env = Env::default().await;
    let (_, body) = env.call("imbot.bot.list", json!({})).await;
    assert_eq!(body["result"], json!([]));
    let (status, body) = env
        .call(
            "imbot.register",
            json!({"EVENT_HANDLER": "https://x/", "PROPERTIES": {"NAME": "n"}}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("CODE_ERROR")));
    let (status, body) = env
        .call(
            "imbot.register",
            json!({"CODE": "c", "EVENT_HANDLER": "https://x/", "PROPERTIES": {}}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NAME_ERROR")));
    let (status, body) = env
        .call(
            "imbot.register",
            json!({"CODE": "c", "EVENT_MESSAGE_ADD": "https://x/", "PROPERTIES": {"NAME": "n"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("EVENT_WELCOME_MESSAGE_ERROR"))
    );

    let first = register(&env, "gw").await;
    assert_eq!(
        register(&env, "gw").await,
        first,
        "a repeated CODE returns the existing bot"
    );
    let second = register(&env, "gw2").await;
    let bots = env.portal.bots();
    assert_eq!(bots.len(), 2);
    assert!(bots[0].openline && bots[0].type_ == "O");
    assert_eq!(
        bots[0].handlers["EVENT_MESSAGE_UPDATE"],
        "https://gw.example/bot"
    );
    let (_, body) = env.call("imbot.bot.list", json!({})).await;
    assert_eq!(
        body["result"][first.to_string()],
        json!({"ID": first, "NAME": "Gateway bot", "CODE": "gw", "OPENLINE": "Y"})
    );
    let (_, body) = env
        .call("imbot.unregister", json!({"BOT_ID": second}))
        .await;
    assert_eq!(body["result"], true);
    let (status, body) = env
        .call("imbot.unregister", json!({"BOT_ID": second}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BOT_ID_ERROR"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bot_messages_are_forwarded_to_the_connector() {
    let env = Env::default().await;
    let mut receiver = Receiver::start().await;
    env.connector_ready().await;
    env.call(
        "event.bind",
        json!({"event": "OnImConnectorMessageAdd", "handler": receiver.url}),
    )
    .await;
    let bot = register(&env, "gw").await;
    let (_, sent) = env.send(json!([item("u1", "c1", "m1", "hello")])).await;
    let chat = sent["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
        .as_str()
        .unwrap()
        .to_owned();

    let add = |text: &str, skip: &str| {
        env.call("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{chat}"), "MESSAGE": text, "SKIP_CONNECTOR": skip}))
    };
    let (_, skipped) = add("internal note", "Y").await;
    let (_, forwarded) = add("  Hello from the bot  ", "N").await;
    let event = receiver.next().await.form();
    assert_eq!(event["event"], "ONIMCONNECTORMESSAGEADD");
    let message = &event["data"]["MESSAGES"][0];
    assert_eq!(
        message["im"],
        json!({"chat_id": chat, "message_id": forwarded["result"].to_string()}),
        "the skipped one never went out"
    );
    assert_eq!(
        message["message"],
        json!({"user_id": bot.to_string(), "text": "Hello from the bot"})
    );
    assert_eq!(message["chat"]["id"], "c1");
    let messages = env.portal.bot_messages();
    assert_eq!(messages[0].id, skipped["result"].as_u64().unwrap());
    assert!(messages[0].skip_connector && !messages[1].skip_connector);
    assert_eq!(messages[1].dialog_id, format!("chat{chat}"));

    let (status, body) = env
        .call(
            "imbot.message.add",
            json!({"BOT_ID": bot, "DIALOG_ID": "chat1", "MESSAGE": " "}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("MESSAGE_EMPTY"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_delete_and_age() {
    let env = Env::default().await;
    let bot = register(&env, "gw").await;
    let post = |text: &'static str| {
        env.call(
            "imbot.message.add",
            json!({"DIALOG_ID": "chat1", "MESSAGE": text}),
        )
    };
    let id = post("one").await.1["result"].as_u64().unwrap();
    let (_, body) = env
        .call(
            "imbot.message.update",
            json!({"BOT_ID": bot, "MESSAGE_ID": id, "MESSAGE": "uno"}),
        )
        .await;
    assert_eq!(body["result"], true);
    assert_eq!(env.portal.bot_messages()[0].text, "uno");
    let (status, body) = env
        .call(
            "imbot.message.update",
            json!({"MESSAGE_ID": 1, "MESSAGE": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("MESSAGE_ID_ERROR"))
    );

    env.portal.age_bot_message(id, 4);
    let (status, body) = env
        .call(
            "imbot.message.update",
            json!({"MESSAGE_ID": id, "MESSAGE": "late"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("CANT_EDIT_MESSAGE"))
    );

    let two = post("two").await.1["result"].as_u64().unwrap();
    env.call(
        "imbot.message.update",
        json!({"MESSAGE_ID": two, "MESSAGE": ""}),
    )
    .await;
    let three = post("three").await.1["result"].as_u64().unwrap();
    let (_, body) = env
        .call(
            "imbot.message.delete",
            json!({"MESSAGE_ID": three, "COMPLETE": "Y"}),
        )
        .await;
    assert_eq!(body["result"], true);
    let flags: Vec<(bool, bool)> = env
        .portal
        .bot_messages()
        .iter()
        .map(|m| (m.deleted, m.complete_delete))
        .collect();
    assert_eq!(flags, [(false, false), (true, false), (true, true)]);
}

async fn react(env: &Env, action: &str, bot: u64, message: u64, reaction: &str) -> (u16, Value) {
    env.call(
        &format!("imbot.v2.Chat.Message.Reaction.{action}"),
        json!({"botId": bot, "messageId": message, "reaction": reaction}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn reactions() {
    let env = Env::default().await;
    env.connector_ready().await;
    let bot = register(&env, "gw").await;
    let (_, sent) = env.send(json!([item("u1", "c1", "m1", "hello")])).await;
    let chat: u64 = sent["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let client_message = env.portal.messages()[0].internal_id;
    let operator_message = env
        .portal
        .operator_message(LINE, "c1", "hi")
        .await
        .im_message_id;

    let (status, body) = react(&env, "add", bot, client_message, "like").await;
    assert_eq!((status, &body["result"]), (200, &json!({"result": true})));
    let (status, body) = react(&env, "add", bot, client_message, "like").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("REACTION_ALREADY_SET"))
    );
    assert_eq!(
        react(&env, "add", bot, operator_message, "fire").await.0,
        200
    );
    let (status, body) = react(&env, "add", bot, client_message, "thumbsUp").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("REACTION_NOT_FOUND"))
    );
    let (status, body) = react(&env, "add", 4242, client_message, "like").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BOT_NOT_FOUND"))
    );
    assert_eq!(
        env.portal.reactions(),
        [
            (client_message, bot, "like".to_owned()),
            (operator_message, bot, "fire".to_owned())
        ]
    );

    let (status, _) = react(&env, "delete", bot, client_message, "like").await;
    assert_eq!(status, 200);
    let (status, body) = react(&env, "delete", bot, client_message, "like").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("REACTION_NOT_FOUND"))
    );

    env.portal.set_bot_in_chat(chat, false);
    let (status, body) = react(&env, "add", bot, client_message, "eyes").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("ACCESS_DENIED"))
    );
    env.portal.set_bot_in_chat(chat, true);
    assert_eq!(react(&env, "add", bot, client_message, "eyes").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_apps_bot_is_listed_and_returned_by_register_but_refuses_its_owners_calls() {
    let env = Env::default().await;
    let foreign = env.portal.add_foreign_bot("gw", "Someone else's bot");
    let (_, body) = env.call("imbot.bot.list", json!({})).await;
    assert_eq!(body["result"][foreign.to_string()]["CODE"], "gw");
    assert_eq!(register(&env, "gw").await, foreign, "the same CODE");
    for (method, params) in [
        (
            "imbot.update",
            json!({"BOT_ID": foreign, "FIELDS": {"CODE": "gw"}}),
        ),
        ("imbot.unregister", json!({"BOT_ID": foreign})),
        (
            "imbot.message.add",
            json!({"BOT_ID": foreign, "DIALOG_ID": "chat1", "MESSAGE": "x"}),
        ),
    ] {
        let (status, body) = env.call(method, params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("APP_ID_ERROR")),
            "{method}: {body}"
        );
    }
    let (status, body) = env
        .call(
            "imbot.v2.Chat.Message.Reaction.add",
            json!({"botId": foreign, "messageId": 1, "reaction": "like"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BOT_OWNERSHIP_ERROR"))
    );
    // Our own bot: updated with unchanged fields; empty fields are refused.
    let ours = register(&env, "mine").await;
    let (_, body) = env
        .call(
            "imbot.update",
            json!({"BOT_ID": ours, "FIELDS": {"CODE": "mine"}}),
        )
        .await;
    assert_eq!(body["result"], true);
    let (status, body) = env
        .call("imbot.update", json!({"BOT_ID": ours, "FIELDS": {}}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("WRONG_REQUEST"))
    );
    assert_eq!(env.portal.bots().len(), 2);
}
