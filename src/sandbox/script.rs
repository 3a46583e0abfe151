//! The scripted conversation: customer messages, an edit, a burst of deletions and operator
//! replies, each step printed with what was sent and what the fake Bitrix24 portal received.

use std::time::Duration;

use serde_json::{Value, json};

use super::output::{Printer, Tally, describe, quote};
use super::world::{CHANNELS, World};
use openchannel_sim::messenger::{Delivery, MessengerClient};

/// How long any one wait may take before the step fails.
pub(super) const WAIT: Duration = Duration::from_secs(60);
/// How long an operator reply may take to reach the platform before it counts as not relayed.
const RELAY_WAIT: Duration = Duration::from_secs(10);

/// One customer message of the script: (channel index, chat, user, message id, text).
type Line = (
    usize,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const CONVERSATION: [Line; 3] = [
    (
        0,
        "chat-anna",
        "anna",
        "m-1",
        "Hi! Has my order #1042 shipped yet?",
    ),
    (
        1,
        "chat-boris",
        "boris",
        "m-2",
        "Hello, the app crashes when I open Settings.",
    ),
    (0, "chat-anna", "anna", "m-3", "It was the blue backpack."),
];
const EDIT: (usize, &str, &str, &str, &str) = (
    0,
    "chat-anna",
    "anna",
    "m-3",
    "It was the green backpack, sorry!",
);
const OPERATOR_REPLIES: [(usize, &str, &str); 2] = [
    (
        0,
        "chat-anna",
        "Hi Anna, it shipped this morning. Tracking: 1Z999AA10123456784.",
    ),
    (
        1,
        "chat-boris",
        "Thanks Boris, a fix is coming in version 2.4.1.",
    ),
];

/// A `message.created` / `message.updated` payload.
pub(super) fn message(chat: &str, user: &str, id: &str, text: &str) -> Value {
    json!({
        "chat": {"id": chat, "name": format!("Chat with {user}")},
        "user": {"id": user, "name": user},
        "message": {"id": id, "text": text},
    })
}

/// Post an event and return (status, JSON body); anything but `expected` fails the step.
pub(super) async fn post(
    client: &MessengerClient,
    event_type: &str,
    data: Value,
    expected: u16,
) -> Result<Value, String> {
    let reply = client
        .post_event(event_type, data)
        .await
        .map_err(|e| format!("{event_type} could not be posted: {e}"))?;
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap_or_default();
    if status != expected {
        return Err(format!(
            "{event_type} answered {status} instead of {expected}: {text}"
        ));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Play every step after installation.
pub(super) async fn play(
    world: &World,
    out: &mut Printer,
    tally: &mut Tally,
) -> Result<(), String> {
    customer_messages(world, out, tally).await?;
    edit(world, out, tally).await?;
    super::deletions::play(world, out, tally).await?;
    operator_replies(world, out, tally).await?;
    super::telegram::play(world, out, tally).await
}

async fn customer_messages(
    world: &World,
    out: &mut Printer,
    tally: &mut Tally,
) -> Result<(), String> {
    out.step("Customer messages: the platform posts signed message.created events");
    let before = world.portal.requests().len();
    for (channel, chat, user, id, text) in CONVERSATION {
        post(
            &world.clients[channel],
            "message.created",
            message(chat, user, id, text),
            202,
        )
        .await?;
        tally.messages_sent += 1;
        out.line(format!(
            "-> {}/{chat}  message.created {id} {}  <- 202",
            CHANNELS[channel].0,
            quote(text)
        ));
    }
    let ids: Vec<&str> = CONVERSATION.iter().map(|c| c.3).collect();
    world
        .wait_portal("the customer messages reaching Bitrix24", WAIT, |p| {
            ids.iter()
                .all(|id| p.messages().iter().any(|m| m.message_id == *id))
        })
        .await?;
    tally.messages_delivered += ids.len();
    let requests = world.portal.requests();
    out.line("Bitrix24 received:");
    for m in world
        .portal
        .messages()
        .iter()
        .filter(|m| ids.contains(&m.message_id.as_str()))
    {
        out.line(format!(
            "  line {}  {}  message #{}  {}",
            m.line,
            m.chat_id,
            m.internal_id,
            quote(&m.text)
        ));
    }
    out.done(format!(
        "{} messages delivered with {} requests: {}",
        ids.len(),
        requests.len() - before,
        describe(&requests[before..])
    ));
    Ok(())
}

async fn edit(world: &World, out: &mut Printer, tally: &mut Tally) -> Result<(), String> {
    out.step("An edit: the customer corrects a message (message.updated)");
    let (channel, chat, user, id, text) = EDIT;
    let before = world.portal.requests().len();
    post(
        &world.clients[channel],
        "message.updated",
        message(chat, user, id, text),
        202,
    )
    .await?;
    tally.edits_sent += 1;
    out.line(format!(
        "-> {}/{chat}  message.updated {id} {}  <- 202",
        CHANNELS[channel].0,
        quote(text)
    ));
    let edited = |p: &openchannel_sim::portal::FakePortal| {
        p.messages()
            .iter()
            .any(|m| m.message_id == id && m.update_count > 0 && m.text == text)
    };
    world
        .wait_portal("the edit reaching Bitrix24", WAIT, edited)
        .await?;
    tally.edits_applied += 1;
    let requests = world.portal.requests();
    if let Some(m) = world.portal.messages().iter().find(|m| m.message_id == id) {
        out.line(format!(
            "Bitrix24 now shows message #{}: {}",
            m.internal_id,
            quote(&m.text)
        ));
    }
    out.done(format!(
        "edit applied with {} request: {}",
        requests.len() - before,
        describe(&requests[before..])
    ));
    Ok(())
}

async fn operator_replies(
    world: &World,
    out: &mut Printer,
    tally: &mut Tally,
) -> Result<(), String> {
    out.step("Operator replies: an operator answers in Bitrix24 (ONIMCONNECTORMESSAGEADD)");
    for (channel, chat, text) in OPERATOR_REPLIES {
        let line = CHANNELS[channel].1;
        tally.operator_sent += 1;
        out.line(format!("operator in {chat} (line {line}): {}", quote(text)));
        let emitted = world.portal.operator_message(line, chat, text).await;
        let answer = emitted.status.map_or_else(
            || format!("not delivered: {}", emitted.body),
            |s| s.to_string(),
        );
        out.line(format!(
            "  Bitrix24 -> gateway  ONIMCONNECTORMESSAGEADD  <- {answer}"
        ));
        if !emitted.status.is_some_and(|s| (200..300).contains(&s)) {
            return Err(format!(
                "the gateway answered the operator's event with {answer}"
            ));
        }
        let relayed = |d: &[Delivery]| d.iter().any(|d| is_relay(d, chat));
        let seen = world
            .wait_platform(
                "the operator reply reaching the platform",
                RELAY_WAIT,
                relayed,
            )
            .await?;
        tally.operator_relayed += 1;
        let d = seen
            .iter()
            .find(|d| is_relay(d, chat))
            .map(|d| d.data.clone())
            .unwrap_or_default();
        out.line(format!(
            "  gateway -> platform  operator.message.created  chat {}, bitrix_id {}, operator {}, text {}",
            d["chat"]["id"], d["message"]["bitrix_id"], d["operator"]["id"], d["message"]["text"]
        ));
    }
    out.done(format!(
        "{}/{} operator replies relayed to the platform",
        tally.operator_relayed, tally.operator_sent
    ));
    Ok(())
}

/// An acknowledged `operator.message.created` for `chat`.
fn is_relay(d: &Delivery, chat: &str) -> bool {
    d.acknowledged() && d.event_type == "operator.message.created" && d.data["chat"]["id"] == chat
}
