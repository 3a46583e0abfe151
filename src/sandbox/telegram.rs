//! The Telegram chapter: a customer writes to a shop's Telegram business account, whose bot is
//! the gateway's channel `tg-shop`. Her photo reaches Bitrix24 as a media link (fetched here as
//! Bitrix24 would), an operator's reply reaches Telegram in the business chat, and her batch of
//! deletions (`deleted_business_messages`) reaches Bitrix24 in one request, with its per-item
//! report.

use std::time::Duration;

use serde_json::Value;

use super::output::{DELETE_METHOD, Printer, Tally, calls_of, quote, requests_with};
use super::world::{TELEGRAM_CHANNEL, World};
use openchannel_sim::telegram::updates;

/// How long each Telegram step may take (Bitrix24's real rate limit applies).
const WAIT: Duration = Duration::from_secs(60);
const CONNECTION: &str = "bc-sandbox";
const CUSTOMER: i64 = 5_550_001;
const CHAT: &str = "b:bc-sandbox:5550001";

/// Play the chapter.
pub(super) async fn play(
    world: &World,
    out: &mut Printer,
    tally: &mut Tally,
) -> Result<(), String> {
    let tg = &world.telegram;
    let (channel, line) = TELEGRAM_CHANNEL;
    out.step("Telegram business chat: a photo, an operator reply, a batch of deletions");
    tg.wait_for(|c| c.iter().any(|c| c.method == "setWebhook"), WAIT)
        .await
        .map_err(|e| format!("the gateway did not register its Telegram webhook: {e}"))?;
    let (url, _, allowed) = tg.webhook();
    out.line(format!(
        "the gateway registered its webhook with Telegram: setWebhook {url} (allowed_updates: {})",
        allowed.unwrap_or_default().join(", ")
    ));
    tg.add_business_connection(CONNECTION, CUSTOMER, true);
    out.line(format!(
        "a Premium user connected the bot to her business account (connection {CONNECTION})"
    ));

    // 1. A photo.
    let photo: Vec<u8> = (0..48_000u32).map(|i| (i * 7 % 256) as u8).collect();
    tg.add_file("AgACAgsandbox-photo", "photos/file_42.jpg", photo.clone());
    let before = world.portal.requests().len();
    let (status, _) = post(
        world,
        updates::photo(
            tg.next_update_id(),
            CUSTOMER,
            101,
            "AgACAgsandbox-photo",
            "Is this one in stock?",
            Some(CONNECTION),
        ),
    )
    .await?;
    out.line(format!(
        "Telegram -> gateway  business_message 101 with a photo and a caption  <- {status}"
    ));
    world
        .wait_portal("the photo reaching Bitrix24", WAIT, |p| {
            p.messages().iter().any(|m| m.chat_id == CHAT)
        })
        .await?;
    let message = world
        .portal
        .messages()
        .into_iter()
        .find(|m| m.chat_id == CHAT)
        .ok_or("the photo message is missing")?;
    let link = message
        .files
        .first()
        .and_then(|f| f["url"].as_str())
        .ok_or("the photo reached Bitrix24 without a file link")?
        .to_string();
    let requests = world.portal.requests();
    out.line(format!(
        "gateway -> Bitrix24  imconnector.send.messages ({} call) in chat {CHAT}, message {}, text {}",
        calls_of(&requests[before..], "imconnector.send.messages"),
        message.message_id,
        quote(&message.text)
    ));
    out.line(format!(
        "  file link (signed, expiring; no bot token in it): {}",
        shorten(&link)
    ));
    let reply = world
        .http
        .get(&link)
        .send()
        .await
        .map_err(|e| format!("the media link could not be fetched: {e}"))?;
    let status = reply.status().as_u16();
    let kind = header(&reply, "content-type");
    let disposition = header(&reply, "content-disposition");
    let name = disposition
        .split_once("filename=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(disposition.as_str(), |(name, _)| name)
        .to_string();
    let body = reply.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 || body.as_ref() != photo.as_slice() {
        return Err(format!(
            "the media link answered {status} with {} bytes",
            body.len()
        ));
    }
    out.line(format!(
        "  Bitrix24 fetches it: GET /media/…  <- {status}, {} bytes, {kind}, named {name} (the gateway called getFile, then streamed the download)",
        body.len()
    ));

    // 2. An operator's reply.
    let text = "Yes, in stock in size M. Shall I reserve it?";
    let emitted = world.portal.operator_message(line, CHAT, text).await;
    if !emitted.status.is_some_and(|s| (200..300).contains(&s)) {
        return Err(format!(
            "the operator's event was answered {:?}: {}",
            emitted.status, emitted.body
        ));
    }
    out.line(format!("operator in {CHAT}: {}", quote(text)));
    tg.wait_for(
        |c| {
            c.iter()
                .any(|c| c.method == "sendMessage" && c.error_code == 0)
        },
        WAIT,
    )
    .await
    .map_err(|e| format!("the reply did not reach Telegram: {e}"))?;
    let sent = tg.sent().into_iter().next().ok_or("nothing was sent")?;
    out.line(format!(
        "  gateway -> Telegram  sendMessage chat_id {} business_connection_id {} -> message_id {}",
        sent.chat_id,
        sent.business_connection_id.as_deref().unwrap_or("-"),
        sent.message_id
    ));
    world
        .wait_portal("the delivery report", WAIT, |p| {
            p.delivery_reports()
                .iter()
                .any(|r| r["im"]["message_id"] == emitted.im_message_id)
        })
        .await?;
    out.line(format!(
        "  gateway -> Bitrix24  imconnector.send.status.delivery: Telegram's id {CHAT}:{}",
        sent.message_id
    ));

    // 3. Two more messages, then she deletes three messages at once.
    for (id, text) in [(102, "Actually, maybe size L"), (103, "Sorry, never mind")] {
        post(
            world,
            updates::message(tg.next_update_id(), CUSTOMER, id, text, Some(CONNECTION)),
        )
        .await?;
    }
    world
        .wait_portal("her two messages reaching Bitrix24", WAIT, |p| {
            p.messages().iter().filter(|m| m.chat_id == CHAT).count() == 3
        })
        .await?;
    out.line("Telegram -> gateway  business_message 102, 103 (two more lines) -> Bitrix24");
    let before = world.portal.requests().len();
    let (status, body) = post(
        world,
        updates::deleted_business(
            tg.next_update_id(),
            CONNECTION,
            CUSTOMER,
            &[101, 102, 103, 99],
        ),
    )
    .await?;
    let deletion = body["deletion_id"]
        .as_str()
        .ok_or("no deletion id")?
        .to_string();
    out.line(format!(
        "Telegram -> gateway  deleted_business_messages [101, 102, 103, 99] (one update; 99 was written before the bot was connected)  <- {status}, deletion {deletion}"
    ));
    let store_done = |s: &crate::store::Store| matches!(s.deletion(&deletion.as_str().into()), Ok(Some((d, _))) if d.pending == 0);
    world
        .wait_store("the deletion report", WAIT, store_done)
        .await?;
    let requests = world.portal.requests();
    let carried = requests_with(&requests[before..], DELETE_METHOD);
    let calls = calls_of(&requests[before..], DELETE_METHOD);
    out.line(format!(
        "gateway -> Bitrix24  {carried} request, {calls} {DELETE_METHOD} call for the 3 messages it knows; the per-item report:"
    ));
    let (record, items) = world
        .store_deletion(&deletion)
        .ok_or("the deletion report is missing")?;
    let mut ok = 0;
    for item in &items {
        let outcome = match item.success {
            Some(true) => {
                ok += 1;
                "deleted".to_string()
            }
            Some(false) => format!("failed: {:?}", item.errors),
            None => "pending".to_string(),
        };
        out.line(format!("  {:<28} {outcome}", item.message_id));
    }
    let shown = world
        .portal
        .messages()
        .iter()
        .filter(|m| m.chat_id == CHAT && m.deleted)
        .count();
    out.line(format!(
        "Bitrix24 now shows {shown} of her 3 messages deleted (report of channel {channel}: {} items)",
        record.total
    ));
    let summary = format!(
        "photo via a media link, 1 operator reply (Telegram id reported), {ok}/{} deletions in {carried} request",
        items.len()
    );
    out.done(&summary);
    tally.telegram = Some(summary);
    Ok(())
}

async fn post(world: &World, update: Value) -> Result<(u16, Value), String> {
    let (status, body) = world
        .telegram
        .post_update(&update)
        .await
        .map_err(|e| format!("the update could not be posted: {e}"))?;
    if status != 200 {
        return Err(format!(
            "the gateway answered the update with {status}: {body}"
        ));
    }
    Ok((status, body))
}

fn header(reply: &reqwest::Response, name: &str) -> String {
    reply
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// A long link as `start…end`.
fn shorten(link: &str) -> String {
    if link.len() <= 80 {
        return link.to_string();
    }
    format!("{}…{}", &link[..60], &link[link.len() - 12..])
}
