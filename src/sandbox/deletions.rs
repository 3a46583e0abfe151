//! The deletion burst: 300 messages created on two channels, then deleted in three
//! `message.deleted` events sent at once; shows how few Bitrix24 requests carried them and the
//! per-item results of the `deletion.completed` reports.

use std::cell::Cell;
use std::time::Instant;

use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use super::output::{DELETE_METHOD, Printer, Tally, calls_of, describe, human, requests_with};
use super::script::{WAIT, message, post};
use super::world::{CHANNELS, World};
use openchannel_sim::messenger::Delivery;
use openchannel_sim::portal::FakePortal;

/// Messages created, then deleted, per channel.
const PER_CHANNEL: usize = 150;
/// Concurrent requests while creating the messages.
const CONCURRENCY: usize = 16;
/// The one message the fake portal refuses to delete, to show a per-item error.
const REFUSED: &str = "bulk-shop-42";
/// Its error, as Bitrix24 words it for a message too old to delete.
const REFUSED_ERROR: &str = "Message is too old";

/// The messages of one channel: channel index, chat, message ids.
struct Bulk {
    channel: usize,
    chat: String,
    ids: Vec<String>,
}

/// Create, then delete, then report.
pub(super) async fn play(
    world: &World,
    out: &mut Printer,
    tally: &mut Tally,
) -> Result<(), String> {
    out.step(
        "A burst of deletions: messages created, then deleted in a few message.deleted events",
    );
    let bulk: Vec<Bulk> = CHANNELS
        .iter()
        .enumerate()
        .map(|(channel, (name, _))| Bulk {
            channel,
            chat: format!("chat-bulk-{name}"),
            ids: (0..PER_CHANNEL)
                .map(|n| format!("bulk-{name}-{n}"))
                .collect(),
        })
        .collect();
    create(world, out, tally, &bulk).await?;
    world.portal.fail_item(REFUSED, vec![REFUSED_ERROR.into()]);
    out.line(format!(
        "the fake portal will refuse to delete {REFUSED} ({REFUSED_ERROR:?}), to show a per-item error"
    ));
    // Three events: the shop's messages in two, the support's in one.
    let (shop, support) = (&bulk[0], &bulk[1]);
    let events = [
        (shop, &shop.ids[..100]),
        (shop, &shop.ids[100..]),
        (support, &support.ids[..]),
    ];
    let before = world.portal.requests().len();
    let started = Instant::now();
    let deletion_ids = delete(world, out, &events).await?;
    tally.deletion_events += deletion_ids.len();
    tally.deletion_items += events.iter().map(|(_, ids)| ids.len()).sum::<usize>();
    let reports = wait_reports(world, out, &deletion_ids).await?;
    out.line(format!(
        "all {} reports received {} after the events were posted",
        reports.len(),
        human(started.elapsed())
    ));
    let requests = world.portal.requests();
    let window = &requests[before..];
    tally.deletion_requests += requests_with(window, DELETE_METHOD);
    tally.deletion_calls += calls_of(window, DELETE_METHOD);
    out.line(format!(
        "Bitrix24 received the {} deletions in {} request(s) carrying {} {DELETE_METHOD} calls: {}",
        tally.deletion_items,
        tally.deletion_requests,
        tally.deletion_calls,
        describe(window)
    ));
    for report in &reports {
        print_report(out, tally, report);
    }
    let gone = world
        .portal
        .messages()
        .iter()
        .filter(|m| m.message_id.starts_with("bulk-") && m.deleted)
        .count();
    out.line(format!(
        "Bitrix24 now shows {gone} of the {} bulk messages deleted",
        tally.deletion_items
    ));
    out.done(format!(
        "{} messages created and deleted",
        tally.deletion_items
    ));
    Ok(())
}

/// Post every `message.created` (a few at a time) and wait until Bitrix24 has them all.
async fn create(
    world: &World,
    out: &Printer,
    tally: &mut Tally,
    bulk: &[Bulk],
) -> Result<(), String> {
    let total: usize = bulk.iter().map(|b| b.ids.len()).sum();
    let before = world.portal.requests().len();
    let started = Instant::now();
    out.line(format!(
        "creating {total} messages ({PER_CHANNEL} per channel, one chat each) ..."
    ));
    let posts = bulk.iter().flat_map(|b| {
        b.ids.iter().map(move |id| {
            let data = message(&b.chat, "bulk-user", id, "bulk message");
            post(&world.clients[b.channel], "message.created", data, 202)
        })
    });
    let replies: Vec<_> = stream::iter(posts)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    replies.into_iter().collect::<Result<Vec<_>, _>>()?;
    tally.messages_sent += total;
    let shown = Cell::new(0);
    let delivered = |p: &FakePortal| {
        let n = p
            .messages()
            .iter()
            .filter(|m| m.message_id.starts_with("bulk-"))
            .count();
        if n != shown.replace(n) {
            out.line(format!("  delivered to Bitrix24: {n}/{total}"));
        }
        n >= total
    };
    world
        .wait_portal("the bulk messages reaching Bitrix24", WAIT, delivered)
        .await?;
    tally.messages_delivered += total;
    out.line(format!(
        "{total} messages delivered with {} requests in {}",
        world.portal.requests().len() - before,
        human(started.elapsed())
    ));
    Ok(())
}

/// Post the `message.deleted` events at once; returns their deletion ids, in order.
async fn delete(
    world: &World,
    out: &Printer,
    events: &[(&Bulk, &[String])],
) -> Result<Vec<String>, String> {
    let posted = join_all(events.iter().map(|(bulk, ids)| {
        let messages: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let data = json!({ "chat": { "id": bulk.chat }, "messages": messages });
        post(&world.clients[bulk.channel], "message.deleted", data, 202)
    }))
    .await;
    let mut deletion_ids = Vec::new();
    for ((bulk, ids), reply) in events.iter().zip(posted) {
        let reply = reply?;
        let id = reply["deletion_id"]
            .as_str()
            .ok_or_else(|| format!("message.deleted reply without deletion_id: {reply}"))?;
        out.line(format!(
            "-> {}/{}  message.deleted {} items  <- 202 {id}",
            CHANNELS[bulk.channel].0,
            bulk.chat,
            ids.len()
        ));
        deletion_ids.push(id.to_string());
    }
    Ok(deletion_ids)
}

/// Wait for the `deletion.completed` callback of every deletion; returns the reports.
async fn wait_reports(world: &World, out: &Printer, ids: &[String]) -> Result<Vec<Value>, String> {
    let shown = Cell::new(0);
    let all_in = |d: &[Delivery]| {
        let n = completed(d, ids).len();
        if n != shown.replace(n) {
            out.line(format!(
                "  deletion.completed callbacks received: {n}/{}",
                ids.len()
            ));
        }
        n == ids.len()
    };
    let seen = world
        .wait_platform("every deletion.completed report", WAIT, all_in)
        .await?;
    Ok(completed(&seen, ids))
}

/// The `deletion.completed` reports of `ids`, in the order of `ids`.
fn completed(deliveries: &[Delivery], ids: &[String]) -> Vec<Value> {
    ids.iter()
        .filter_map(|id| {
            deliveries
                .iter()
                .find(|d| {
                    d.acknowledged()
                        && d.event_type == "deletion.completed"
                        && d.data["deletion_id"] == id.as_str()
                })
                .map(|d| d.data.clone())
        })
        .collect()
}

/// One report: counts, then every failed item with its errors.
fn print_report(out: &Printer, tally: &mut Tally, report: &Value) {
    let items = report["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let ok = items.iter().filter(|i| i["success"] == json!(true)).count();
    let failed = items.len() - ok;
    tally.deletion_succeeded += ok;
    tally.deletion_failed += failed;
    out.line(format!(
        "{} ({}, {}): {} items, {ok} succeeded, {failed} failed",
        report["deletion_id"].as_str().unwrap_or("?"),
        report["channel"].as_str().unwrap_or("?"),
        report["status"].as_str().unwrap_or("?"),
        items.len(),
    ));
    for item in items.iter().filter(|i| i["success"] != json!(true)) {
        out.line(format!(
            "    {}: {}",
            item["message_id"].as_str().unwrap_or("?"),
            item["errors"]
        ));
    }
}
