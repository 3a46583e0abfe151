use super::ingest::{IngestOutcome, IngestRequest, UNKNOWN_MESSAGE};
use super::ops::{OpOutcome, OpResult};
use super::*;
use crate::domain::{ChatRef, CustomerMessage, Event, MessageBody, UserRef};
use crate::ids::{ChannelId, MemberId, MessageId};

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    (dir, store)
}

pub(super) fn message(chat: &str, user: &str, id: &str) -> CustomerMessage {
    CustomerMessage {
        chat: ChatRef {
            id: chat.into(),
            name: None,
            url: None,
        },
        user: UserRef {
            id: user.into(),
            name: None,
            last_name: None,
            picture: None,
            url: None,
            email: None,
            phone: None,
        },
        message: MessageBody {
            id: id.into(),
            date: None,
            text: Some("hi".into()),
            files: vec![],
        },
    }
}

pub(super) fn request(webhook_id: &str, event: Event) -> IngestRequest {
    IngestRequest {
        channel: "acme".into(),
        webhook_id: webhook_id.into(),
        portal: "p1".into(),
        line: 7,
        event,
        deletion_id: None,
        reply: WebhookReply {
            status: 202,
            body: format!("{{\"id\":\"{webhook_id}\"}}"),
            at_ms: 1,
        },
        now_ms: 1000,
    }
}

/// A `message.deleted` request with the id the HTTP layer would have made.
pub(super) fn deletion_request(webhook_id: &str, deletion_id: &str, event: Event) -> IngestRequest {
    IngestRequest {
        deletion_id: Some(deletion_id.into()),
        ..request(webhook_id, event)
    }
}

pub(super) async fn ingest(store: &Store, req: IngestRequest) -> IngestOutcome {
    store.commit(move |d| d.ingest(&req)).await.expect("ingest")
}

/// The ops of a send of `message_id` in chat "c" by user "u", accepted under `webhook_id`.
pub(super) async fn accepted_send(store: &Store, webhook_id: &str, message_id: &str) -> Vec<Op> {
    let req = request(webhook_id, Event::Created(message("c", "u", message_id)));
    accepted_ops(store, ingest(store, req).await)
}

pub(super) fn accepted_ops(store: &Store, outcome: IngestOutcome) -> Vec<Op> {
    match outcome {
        IngestOutcome::Accepted { ops, .. } => ops
            .iter()
            .map(|r| {
                let event = store.event(r.seq).unwrap().unwrap();
                store.item_op(&event, r.item).unwrap().unwrap()
            })
            .collect(),
        IngestOutcome::Replayed(_) => panic!("expected a new acceptance"),
    }
}

#[tokio::test]
async fn a_repeated_webhook_id_replays_the_first_reply_and_queues_nothing() {
    let (_dir, store) = open();
    let first = accepted_send(&store, "w1", "m1").await;
    assert_eq!(first.len(), 1);
    match ingest(
        &store,
        request("w1", Event::Created(message("c", "u", "m2"))),
    )
    .await
    {
        IngestOutcome::Replayed(reply) => assert_eq!(reply.body, "{\"id\":\"w1\"}"),
        other => panic!("expected replay, got {other:?}"),
    }
    assert_eq!(store.pending_ops().unwrap().len(), 1);
}

#[tokio::test]
async fn a_second_created_event_for_a_known_message_id_is_not_sent_twice() {
    let (_dir, store) = open();
    accepted_send(&store, "w1", "m1").await;
    let again = accepted_send(&store, "w2", "m1").await;
    assert!(again.is_empty());
    assert_eq!(
        store.pending_ops().unwrap().len(),
        1,
        "only the first is pending"
    );
}

#[tokio::test]
async fn deletion_items_resolve_users_from_the_mapping_or_fail_at_once() {
    let (_dir, store) = open();
    accepted_ops(
        &store,
        ingest(
            &store,
            request("w1", Event::Created(message("c", "u9", "known"))),
        )
        .await,
    );
    let ops = accepted_ops(
        &store,
        ingest(
            &store,
            deletion_request(
                "w2",
                "d1",
                Event::Deleted {
                    chat_id: "c".into(),
                    user_id: None,
                    message_ids: vec!["known".into(), "unknown".into()],
                },
            ),
        )
        .await,
    );
    assert_eq!(ops.len(), 1);
    assert!(matches!(&ops[0].kind, OpKind::Delete { user_id, .. } if user_id == "u9"));
    let (record, items) = store.deletion(&"d1".into()).unwrap().expect("deletion");
    assert_eq!((record.total, record.pending), (2, 1));
    assert_eq!(items[0].success, None);
    assert_eq!(items[1].success, Some(false));
    assert_eq!(items[1].errors, vec![UNKNOWN_MESSAGE.to_string()]);
    assert!(store.pending_deliveries().unwrap().is_empty());
}

#[tokio::test]
async fn results_are_recorded_once_and_complete_the_deletion_with_a_report() {
    let (_dir, store) = open();
    let send = accepted_send(&store, "w1", "m").await;
    let del = accepted_ops(
        &store,
        ingest(
            &store,
            deletion_request(
                "w2",
                "d1",
                Event::Deleted {
                    chat_id: "c".into(),
                    user_id: None,
                    message_ids: vec!["m".into()],
                },
            ),
        )
        .await,
    );
    let mut sent = send[0].clone();
    sent.attempts = 1;
    let results = vec![OpResult {
        op: sent,
        outcome: OpOutcome::Done {
            bitrix_user_id: Some("585".into()),
            session: Some(("1767".into(), "323".into())),
        },
    }];
    store
        .commit(move |d| d.apply_results(&results, 2000))
        .await
        .unwrap();
    assert_eq!(
        store.user_link("p1", "u").unwrap().unwrap().bitrix_user_id,
        "585"
    );
    assert_eq!(
        store
            .chat_link("p1", 7, "c")
            .unwrap()
            .unwrap()
            .bitrix_chat_id,
        "1767"
    );
    assert_eq!(
        store
            .message_record("p1", 7, "c", "m")
            .unwrap()
            .unwrap()
            .state,
        MessageState::Sent
    );

    let mut deleted = del[0].clone();
    deleted.attempts = 2;
    let done = OpResult {
        op: deleted.clone(),
        outcome: OpOutcome::Done {
            bitrix_user_id: None,
            session: None,
        },
    };
    let late_failure = OpResult {
        op: deleted,
        outcome: OpOutcome::Failed {
            errors: vec!["late".into()],
        },
    };
    let first = vec![done];
    store
        .commit(move |d| d.apply_results(&first, 3000))
        .await
        .unwrap();
    let second = vec![late_failure];
    store
        .commit(move |d| d.apply_results(&second, 4000))
        .await
        .unwrap();

    let (record, items) = store.deletion(&"d1".into()).unwrap().unwrap();
    assert!(
        store.pending_deletions.is_empty(),
        "a finished deletion leaves the pending index"
    );
    assert_eq!(record.pending, 0);
    assert_eq!(record.completed_at_ms, Some(3000));
    assert_eq!((items[0].success, items[0].state.attempts), (Some(true), 2));
    assert!(
        items[0].errors.is_empty(),
        "a recorded success is never overwritten"
    );
    assert!(store.pending_ops().unwrap().is_empty());
    let deliveries = store.pending_deliveries().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event_type, "deletion.completed");
    assert_eq!(
        store
            .message_record("p1", 7, "c", "m")
            .unwrap()
            .unwrap()
            .state,
        MessageState::Deleted
    );
}

#[tokio::test]
async fn a_retry_keeps_the_op_with_its_new_attempt_count() {
    let (_dir, store) = open();
    let ops = accepted_send(&store, "w1", "m").await;
    let mut op = ops[0].clone();
    op.attempts = 3;
    op.due_at_ms = 99_000;
    op.last_error = Some("QUERY_LIMIT_EXCEEDED".into());
    let results = vec![OpResult {
        op,
        outcome: OpOutcome::Retry,
    }];
    store
        .commit(move |d| d.apply_results(&results, 5000))
        .await
        .unwrap();
    let pending = store.pending_ops().unwrap();
    assert_eq!((pending[0].attempts, pending[0].due_at_ms), (3, 99_000));
}

#[tokio::test]
async fn an_attempt_is_counted_on_the_item_and_never_on_a_finished_one() {
    let (_dir, store) = open();
    let send = accepted_send(&store, "w1", "m1").await;
    let deletion = deletion_request(
        "w2",
        "d1",
        Event::Deleted {
            chat_id: "c".into(),
            user_id: Some("u".into()),
            message_ids: vec!["x1".into(), "x2".into()],
        },
    );
    let items = accepted_ops(&store, ingest(&store, deletion).await);
    // x1 is finished first; then an attempt of everything is recorded.
    done_at(&store, &items[0], 2000).await;
    let mut attempted: Vec<Op> = send.iter().chain(&items).cloned().collect();
    for op in &mut attempted {
        op.attempts = 1;
        op.due_at_ms = 7_000;
    }
    let syncs = store.commit_stats().flushes;
    store
        .commit_unsynced(move |d| d.record_attempts(&attempted))
        .await
        .unwrap();
    assert_eq!(store.commit_stats().flushes, syncs, "no sync of its own");
    let pending = store.pending_ops().unwrap();
    let counted: Vec<(&str, u32, u64)> = pending
        .iter()
        .map(|o| (o.message_id(), o.attempts, o.due_at_ms))
        .collect();
    assert_eq!(counted, vec![("m1", 1, 7_000), ("x2", 1, 7_000)]);
    let x1: DeletionItem = codec::decode(
        trees::SEQITEM_DELETIONITEM,
        &store
            .items
            .get(keys::seq_item(items[0].seq, 0))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (x1.success, x1.state.attempts),
        (Some(true), 0),
        "a finished item is left as it is"
    );
}

#[tokio::test]
async fn concurrent_commits_share_fsyncs() {
    let (_dir, store) = open();
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let req = request(
                &format!("w{i}"),
                Event::Created(message("c", "u", &format!("m{i}"))),
            );
            store.commit(move |d| d.ingest(&req)).await.expect("commit");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.commit_stats();
    assert_eq!(after.commits - before.commits, 200);
    assert!(
        after.flushes - before.flushes < 200,
        "{before:?} → {after:?}"
    );
    assert_eq!(store.pending_ops().unwrap().len(), 200);
}

#[tokio::test]
async fn committed_data_survives_reopening_and_a_foreign_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        accepted_ops(
            &store,
            ingest(
                &store,
                request("w1", Event::Created(message("c", "u", "m"))),
            )
            .await,
        );
    }
    {
        let store = Store::open(dir.path()).expect("reopen after drop");
        assert_eq!(store.pending_ops().unwrap().len(), 1);
        store
            .meta
            .insert("schema_version", &99u32.to_be_bytes())
            .unwrap();
        store.flush().await.unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::SchemaMismatch {
            found: 99,
            expected: trees::SCHEMA_VERSION
        })
    ));
}

#[tokio::test]
async fn a_failed_sync_poisons_the_store_and_what_it_covered_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut feed = store
        .subscribe()
        .expect("the first subscriber gets the feed");
    let first = request("w1", Event::Created(message("c", "u", "m1")));
    store.ingest(first).await.expect("durable");
    // Published before the reply, so it is already there.
    match feed.try_recv() {
        Ok(feed::Committed::Ops(ops)) => assert_eq!(ops.len(), 1),
        other => panic!("expected the accepted event's ops, got {other:?}"),
    }
    store.probe().await.expect("ready");
    assert_eq!(store.poisoned(), None);

    store.inject_sync_failure();
    let second = request("w2", Event::Created(message("c", "u", "m2")));
    let refused = store.ingest(second.clone()).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(
        feed.try_recv().is_err(),
        "what was not durable is never published"
    );
    assert!(store.poisoned().is_some_and(|r| r.contains("fdatasync")));
    // Every later write is refused, a retry of the same webhook-id included (no 200 replay
    // of a reply that was never given), and readiness fails; no sync is attempted.
    let syncs = store.commit_stats().flushes;
    let retry = store.ingest(second.clone()).await;
    assert!(
        matches!(retry, Err(StoreError::Unavailable(_))),
        "{retry:?}"
    );
    assert!(store.commit(|_| Ok(())).await.is_err());
    assert!(store.probe().await.is_err());
    assert_eq!(store.commit_stats().flushes, syncs);
    // What the refused event wrote is taken back from what reads see.
    assert_eq!(store.first_reply("acme", "w2").unwrap(), None);
    assert!(store.first_reply("acme", "w1").unwrap().is_some());
    drop(store);

    // After a restart the store is writable again; the acknowledged event is there.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.poisoned(), None);
    let pending = store.pending_ops().unwrap();
    assert!(pending.iter().any(|op| op.message_id() == "m1"));
    store.probe().await.expect("ready after restart");
}

#[tokio::test]
async fn readiness_forces_no_sync() {
    let (_dir, store) = open();
    let before = store.commit_stats().flushes;
    for _ in 0..3 {
        store.probe().await.expect("ready");
    }
    assert_eq!(store.commit_stats().flushes, before);
}

#[tokio::test]
async fn an_unsynced_write_waits_for_the_next_sync_and_is_durable_after_it() {
    let (dir, store) = open();
    let ops = accepted_send(&store, "w1", "m1").await;
    let mut op = ops[0].clone();
    op.attempts = 1;
    let before = store.commit_stats().flushes;
    let started = vec![OpResult {
        op,
        outcome: OpOutcome::Retry,
    }];
    store
        .commit_unsynced(move |d| d.apply_results(&started, 2_000))
        .await
        .unwrap();
    assert_eq!(store.commit_stats().flushes, before, "no sync of its own");
    // The next synced write covers it.
    ingest(
        &store,
        request("w2", Event::Created(message("c", "u", "m2"))),
    )
    .await;
    assert_eq!(store.commit_stats().flushes, before + 1);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let pending = store.pending_ops().unwrap();
    let m1 = pending.iter().find(|o| o.seq == ops[0].seq).unwrap();
    assert_eq!(m1.attempts, 1);
}

/// Bitrix24 accepted `op` (answered at `at_ms`, naming no ids).
pub(super) async fn done_at(store: &Store, op: &Op, at_ms: u64) {
    let done = vec![OpResult {
        op: op.clone(),
        outcome: OpOutcome::Done {
            bitrix_user_id: None,
            session: None,
        },
    }];
    store
        .commit(move |d| d.apply_results(&done, at_ms))
        .await
        .unwrap();
}

/// A send accepted and answered by Bitrix24 at `at_ms`: its reply and mapping are written then.
async fn sent_at(store: &Store, webhook_id: &str, message_id: &str, at_ms: u64) {
    let mut req = request(webhook_id, Event::Created(message("c", "u", message_id)));
    req.reply.at_ms = at_ms;
    req.now_ms = at_ms;
    let ops = accepted_ops(store, ingest(store, req).await);
    done_at(store, &ops[0], at_ms).await;
}

/// A send of `message_id` in chat "c" by user "u", answered at `at_ms` with Bitrix24's user,
/// chat and session ids.
async fn sent_with_links(store: &Store, message_id: &str, at_ms: u64, ids: (&str, &str, &str)) {
    let ops = accepted_send(store, &format!("w-{message_id}"), message_id).await;
    let done = vec![OpResult {
        op: ops[0].clone(),
        outcome: OpOutcome::Done {
            bitrix_user_id: Some(ids.0.into()),
            session: Some((ids.1.into(), ids.2.into())),
        },
    }];
    store
        .commit(move |d| d.apply_results(&done, at_ms))
        .await
        .unwrap();
}

/// User "u"'s Bitrix24 id and since when, chat "c"'s session and since when.
fn links(store: &Store) -> (String, u64, String, u64) {
    let user = store.user_link("p1", "u").unwrap().unwrap();
    let chat = store.chat_link("p1", 7, "c").unwrap().unwrap();
    (
        user.bitrix_user_id,
        user.updated_at_ms,
        chat.session_id,
        chat.updated_at_ms,
    )
}

#[tokio::test]
async fn user_and_chat_links_are_rewritten_only_when_bitrix24_names_something_new() {
    let (_dir, store) = open();
    sent_with_links(&store, "m1", 5_000, ("585", "1767", "323")).await;
    sent_with_links(&store, "m2", 6_000, ("585", "1767", "323")).await;
    // Bitrix24 answered the same ids for m2: the links still date from m1.
    assert_eq!(links(&store), ("585".into(), 5_000, "323".into(), 5_000));

    // A new session (and, in principle, a new user id) is written.
    sent_with_links(&store, "m3", 7_000, ("586", "1767", "324")).await;
    assert_eq!(links(&store), ("586".into(), 7_000, "324".into(), 7_000));
}

#[tokio::test]
async fn retention_prunes_what_is_older_than_its_cutoff_through_the_time_index() {
    use retention::Retention;
    use std::time::Duration;
    let (_dir, store) = open();
    let day = 24 * 3600 * 1000;
    sent_at(&store, "w-old", "m-old", day).await;
    sent_at(&store, "w-new", "m-new", 9 * day).await;
    // A deletion of an unknown message completes at once: its report is written at acceptance.
    let mut deletion = deletion_request(
        "w-del",
        "d-old",
        Event::Deleted {
            chat_id: "c".into(),
            user_id: None,
            message_ids: vec!["unknown".into()],
        },
    );
    deletion.reply.at_ms = day;
    deletion.now_ms = day;
    ingest(&store, deletion).await;
    let message = |id: &str| store.message_record("p1", 7, "c", id).unwrap();
    let reply = |id: &str| store.webhooks.get(keys::webhook("acme", id)).unwrap();
    let five_days = Retention {
        replay: Some(Duration::from_secs(2 * 24 * 3600)),
        records: Some(Duration::from_secs(5 * 24 * 3600)),
    };

    // At day 10 with 5 days kept (2 for replay records): day 1's records go, day 9's stay.
    let removed = store.prune(10 * day, five_days).await.unwrap();
    assert_eq!(removed, 4, "reply, mapping, reply and report of day 1");
    assert!(message("m-old").is_none());
    assert!(reply("w-old").is_none() && reply("w-del").is_none());
    assert!(store.deletion(&"d-old".into()).unwrap().is_none());
    assert!(message("m-new").is_some());
    assert!(reply("w-new").is_some());
    assert_eq!(
        store.pending_deliveries().unwrap().len(),
        1,
        "a delivery still to make is never pruned"
    );

    // A pass reads only what is due: nothing is left before the cutoff.
    assert_eq!(store.prune(10 * day, five_days).await.unwrap(), 0);

    // A record written again later keeps the one entry it got when created; when that comes
    // due, the record's own time counts: it is kept and its entry moves to that time.
    let key = keys::message("p1", 7, "c", "m-new");
    let entries = store.retain.len();
    store
        .commit(move |d| {
            let mut m = d.message_record("p1", 7, "c", "m-new")?.unwrap();
            m.updated_at_ms = 20 * day;
            d.messages.insert(&key, codec::encode(&m))?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(store.retain.len(), entries, "a rewrite adds no entry");
    store.prune(16 * day, five_days).await.unwrap();
    assert!(message("m-new").is_some(), "its newer time counts");
    assert!(
        reply("w-new").is_some(),
        "a send's reply goes with its message"
    );
    assert_eq!(store.retain.len(), entries, "the entry moved");
    store.prune(19 * day, five_days).await.unwrap();
    assert!(
        message("m-new").is_some(),
        "moved to day 20, not due at day 19 + 5"
    );
    store.prune(26 * day, five_days).await.unwrap();
    assert!(message("m-new").is_none() && reply("w-new").is_none());
    assert_eq!(store.retain.len(), 0);

    // Other replies are replay records: they go sooner than the report of the same event.
    let mut deletion = deletion_request(
        "w-del9",
        "d-9",
        Event::Deleted {
            chat_id: "c".into(),
            user_id: None,
            message_ids: vec!["unknown".into()],
        },
    );
    deletion.reply.at_ms = 30 * day;
    deletion.now_ms = 30 * day;
    ingest(&store, deletion).await;
    store.prune(33 * day, five_days).await.unwrap();
    assert!(reply("w-del9").is_none(), "replay records go sooner");
    assert!(store.deletion(&"d-9".into()).unwrap().is_some());

    // retention_days = 0 keeps everything.
    sent_at(&store, "w-kept", "m-kept", day).await;
    let forever = Retention::from_days(0);
    assert_eq!(store.prune(1000 * day, forever).await.unwrap(), 0);
    assert!(message("m-kept").is_some());
}

/// Sends m0..m{n} accepted as w0..w{n} and answered by one call at `at_ms`.
async fn sent_in_one_call(store: &Store, n: usize, at_ms: u64) {
    let mut ops = Vec::new();
    for i in 0..n {
        ops.extend(accepted_send(store, &format!("w{i}"), &format!("m{i}")).await);
    }
    let done: Vec<OpResult> = ops
        .iter()
        .map(|op| OpResult {
            op: op.clone(),
            outcome: OpOutcome::Done {
                bitrix_user_id: None,
                session: None,
            },
        })
        .collect();
    store
        .commit(move |d| d.apply_results(&done, at_ms))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_call_list_kept_in_its_index_entry_by_an_earlier_build_is_pruned_the_same() {
    let (_dir, store) = open();
    let day = 24 * 3600 * 1000;
    sent_in_one_call(&store, 2, day).await;
    store
        .commit(|d| {
            let (ikey, list) = d.calls.pop_min()?.unwrap();
            d.retain.insert(ikey, list)?;
            Ok(())
        })
        .await
        .unwrap();
    let removed = store
        .prune(15 * day, retention::Retention::from_days(5))
        .await
        .unwrap();
    assert_eq!(removed, 4, "both messages and their replies");
    assert!(store.message_record("p1", 7, "c", "m0").unwrap().is_none());
    assert!(store.message_record("p1", 7, "c", "m1").unwrap().is_none());
}

#[tokio::test]
async fn the_sends_of_one_call_share_one_retention_entry_and_are_pruned_through_it() {
    use retention::Retention;
    let (_dir, store) = open();
    let day = 24 * 3600 * 1000;
    let before = store.retain.len();
    sent_in_one_call(&store, 3, day).await;
    assert_eq!(store.retain.len(), before + 1, "one entry for the call");
    assert_eq!(store.calls.len(), 1, "its list apart from the index");
    let (ikey, _) = store.calls.first().unwrap().unwrap();
    assert_eq!(store.retain.get(&ikey).unwrap().as_deref(), Some(&[][..]));
    assert!(store.pending_ops().unwrap().is_empty());

    // m1 is written again later (an edit's result): it is kept and indexed at that time.
    let mut m1 = store.message_record("p1", 7, "c", "m1").unwrap().unwrap();
    m1.updated_at_ms = 20 * day;
    let key = keys::message("p1", 7, "c", "m1");
    store.messages.insert(&key, codec::encode(&m1)).unwrap();

    let removed = store
        .prune(15 * day, Retention::from_days(5))
        .await
        .unwrap();
    assert_eq!(removed, 4, "m0 and m2 with their replies");
    assert!(store.calls.is_empty(), "the list goes with its entry");
    let kept = |m: &str| store.message_record("p1", 7, "c", m).unwrap().is_some();
    assert!(!kept("m0") && kept("m1") && !kept("m2"));
    let reply = |w: &str| {
        store
            .webhooks
            .contains_key(keys::webhook("acme", w))
            .unwrap()
    };
    assert!(!reply("w0") && reply("w1") && !reply("w2"));
    // m1 and its reply go once the later time is old enough.
    assert_eq!(
        store
            .prune(30 * day, Retention::from_days(5))
            .await
            .unwrap(),
        2
    );
    assert!(!kept("m1") && !reply("w1"));
    assert_eq!(store.retain.len(), before);
}

#[tokio::test]
async fn pending_work_beyond_the_in_memory_index_is_looked_up_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.pending().set_capacity(1);
    accepted_send(&store, "w0", "m0").await;
    assert!(
        store.inbox.replies.is_empty(),
        "the first is indexed in memory"
    );
    // The index is full: the reply for a retry and the queued message for a later deletion
    // are written into the inbox with the event.
    let ops = accepted_send(&store, "w1", "m1").await;
    assert!(
        store
            .inbox
            .replies
            .contains_key(keys::webhook("acme", "w1"))
            .unwrap()
    );
    let queued = store.message_record("p1", 7, "c", "m1").unwrap().unwrap();
    assert_eq!(queued.state, MessageState::Queued);
    assert_eq!(queued.user_id, "u");
    for id in ["w0", "w1"] {
        let replay = ingest(&store, request(id, Event::Created(message("c", "u", "m9")))).await;
        assert!(matches!(replay, IngestOutcome::Replayed(_)), "{replay:?}");
    }
    let again = request("w2", Event::Created(message("c", "u", "m1")));
    let again = ingest(&store, again).await;
    assert!(
        matches!(&again, IngestOutcome::Accepted { ops, .. } if ops.is_empty()),
        "a queued message is not sent twice: {again:?}"
    );
    let items = accepted_ops(&store, ingest(&store, delete_m1_without_user()).await);
    assert_eq!(
        items.len(),
        1,
        "the user is found on disk: sent, not failed"
    );
    // Its result makes the message sent, and indexes it and its reply for retention.
    let before = store.retain.len();
    done_at(&store, &ops[0], 9_000).await;
    let sent = store.message_record("p1", 7, "c", "m1").unwrap().unwrap();
    assert_eq!(sent.state, MessageState::Sent);
    assert_eq!(
        store.retain.len(),
        before + 1,
        "one entry for its message and its reply"
    );
}

/// A deletion of m1 in chat "c" that names no user (the gateway must know m1's).
fn delete_m1_without_user() -> IngestRequest {
    deletion_request(
        "w-del",
        "d1",
        Event::Deleted {
            chat_id: "c".into(),
            user_id: None,
            message_ids: vec!["m1".into()],
        },
    )
}

#[tokio::test]
async fn a_pending_event_is_indexed_again_at_open_even_without_its_disk_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.pending().set_capacity(0);
    accepted_send(&store, "w1", "m1").await;
    // A crash after the event record but before its reply and message: only the record.
    store.webhooks.remove(keys::webhook("acme", "w1")).unwrap();
    store
        .messages
        .remove(keys::message("p1", 7, "c", "m1"))
        .unwrap();
    store.sync().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert!(store.first_reply("acme", "w1").unwrap().is_some());
    let ops = accepted_ops(&store, ingest(&store, delete_m1_without_user()).await);
    assert_eq!(ops.len(), 1, "the item is sent, not failed as unknown");
}

#[tokio::test]
async fn with_retention_off_nothing_is_indexed_until_a_later_open_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let day = 24 * 3600 * 1000;
    let options = StoreOptions {
        indexed: false,
        ..StoreOptions::default()
    };
    let store = Store::open_configured(dir.path(), &options).unwrap();
    sent_at(&store, "w1", "m1", day).await;
    assert_eq!(store.retain.len(), 0, "no index entry is written");
    drop(store);

    // Opened again with retention on: the records written meanwhile are indexed first.
    let store = Store::open_with(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
    assert_eq!(store.retain.len(), 2, "the reply and the message");
    assert!(!store.meta.contains_key(trees::META_UNINDEXED).unwrap());
    let removed = store
        .prune(100 * day, retention::Retention::from_days(30))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(store.message_record("p1", 7, "c", "m1").unwrap().is_none());
    drop(store);
    let store = Store::open_with(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
    assert_eq!(store.retain.len(), 0, "indexed once, not at every open");
}

#[tokio::test]
async fn retention_runs_in_bounded_chunks_and_stops_at_the_cutoff() {
    let (_dir, store) = open();
    store
        .commit(|d| {
            for i in 0..7u64 {
                let at_ms: u64 = if i % 2 == 0 { 1_000 } else { 9_000 };
                let key = format!("digest-{i}");
                d.digests.insert(key.as_bytes(), &at_ms.to_be_bytes())?;
                d.index(retention::Kind::Digest, at_ms, key.as_bytes())?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let (mut removed, mut chunks) = (0, 0);
    loop {
        let (n, more) = store
            .commit(|d| d.prune_step(retention::Class::Replay, 5_000, 3))
            .await
            .unwrap();
        removed += n;
        chunks += 1;
        assert!(n <= 3, "a chunk visits at most its budget");
        if !more {
            break;
        }
    }
    assert_eq!((removed, chunks), (4, 2));
    assert_eq!(store.digests.len(), 3);
    assert_eq!(
        store.retain.len(),
        3,
        "entries after the cutoff are not visited"
    );
}

#[tokio::test]
async fn the_pending_deletion_index_is_reconciled_with_seq_event_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let req = deletion_request(
            "w1",
            "d1",
            Event::Deleted {
                chat_id: "c".into(),
                user_id: Some("u".into()),
                message_ids: vec!["m".into()],
            },
        );
        ingest(&store, req).await;
        assert!(store.pending_deletions.get(b"d1").unwrap().is_some());
        // As if a crash came between the index entry and its record; and an entry lost.
        store
            .commit(|d| {
                d.pending_deletions.insert(b"gone", &keys::u64_be(999))?;
                d.pending_deletions.remove(b"d1")?;
                Ok(())
            })
            .await
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.pending_deletions.get(b"gone").unwrap().is_none());
    let (record, _) = store.deletion(&"d1".into()).unwrap().expect("found again");
    assert_eq!(record.pending, 1);
}

#[tokio::test]
async fn a_result_of_one_deletion_item_rewrites_that_item_not_the_whole_deletion() {
    let (_dir, store) = open();
    let ids: Vec<MessageId> = (0..1000).map(|i| format!("m{i}").into()).collect();
    let outcome = ingest(
        &store,
        deletion_request(
            "w1",
            "big",
            Event::Deleted {
                chat_id: "c".into(),
                user_id: Some("u".into()),
                message_ids: ids,
            },
        ),
    )
    .await;
    let ops = accepted_ops(&store, outcome);
    assert_eq!(ops.len(), 1000);
    let seq = ops[0].seq;
    let header = store.events.get(keys::u64_be(seq)).unwrap().unwrap();
    assert!(
        header.len() < 1024,
        "the event record holds no items ({} bytes)",
        header.len()
    );
    let untouched = |store: &Store| store.items.get(keys::seq_item(seq, 999)).unwrap();
    let before = untouched(&store);

    // One item's result: that item's key and the small header change, nothing else.
    done_at(&store, &ops[500], 2000).await;
    assert_eq!(untouched(&store), before, "other items are not rewritten");
    let item = store.deletion_item(seq, 500).unwrap().unwrap();
    assert_eq!(item.success, Some(true));
    let event = store.event(seq).unwrap().unwrap();
    assert!(
        store.item_op(&event, 500).unwrap().is_none(),
        "a final item has no op"
    );
    assert_eq!(
        store.item_op(&event, 501).unwrap().unwrap().message_id(),
        "m501"
    );
    let (record, items) = store.deletion(&"big".into()).unwrap().unwrap();
    assert_eq!((record.pending, items.len()), (999, 1000));
    assert_eq!(store.pending_ops().unwrap().len(), 999);

    // The rest: the deletion completes, its items leave their keys for the report.
    let rest: Vec<OpResult> = ops
        .iter()
        .filter(|op| op.item != 500)
        .map(|op| OpResult {
            op: op.clone(),
            outcome: OpOutcome::Failed {
                errors: vec!["no".into()],
            },
        })
        .collect();
    store
        .commit(move |d| d.apply_results(&rest, 3000))
        .await
        .unwrap();
    assert!(
        store.items.is_empty(),
        "a finished deletion's items are gone"
    );
    let (record, items) = store.deletion(&"big".into()).unwrap().unwrap();
    assert_eq!((record.pending, items.len()), (0, 1000));
    assert_eq!(items[500].success, Some(true));
    assert_eq!(items[0].success, Some(false));
}

#[tokio::test]
async fn a_version_1_directory_gets_its_inline_deletion_items_moved_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let item = |id: &str| DeletionItem {
        message_id: id.into(),
        chat_id: "c".into(),
        user_id: Some("u".into()),
        success: None,
        errors: vec![],
        state: ItemState::default(),
    };
    let legacy = serde_json::json!({
        "seq": 5, "channel": "acme", "webhook_id": "w", "portal": "p1", "line": 7,
        "chat_id": "c", "accepted_at_ms": 1,
        "reply": {"status": 202, "body": "{}", "at_ms": 1},
        "work": {"op": "delete",
            "deletion": {"id": "d1", "channel": "acme", "created_at_ms": 1, "total": 2, "pending": 2},
            "items": [item("m1"), item("m2")]}
    });
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(trees::META)
            .unwrap()
            .insert("schema_version", &1u32.to_be_bytes())
            .unwrap();
        db.open_tree(trees::SEQ_EVENT)
            .unwrap()
            .insert(keys::u64_be(5), serde_json::to_vec(&legacy).unwrap())
            .unwrap();
        let delivery = serde_json::json!({
            "seq": 9, "channel": "acme", "webhook_id": "msg_x", "event_type": "t",
            "payload": {"kind": "inline", "data": {}}, "attempts": 0, "created_at_ms": 1,
            "due_at_ms": 4
        });
        db.open_tree(trees::SEQ_DELIVERY)
            .unwrap()
            .insert(keys::u64_be(9), serde_json::to_vec(&delivery).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).expect("a version 1 directory opens");
    let ops = store.pending_ops().unwrap();
    let ids: Vec<&str> = ops.iter().map(Op::message_id).collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(store.deletion_items(5).unwrap().len(), 2);
    assert_eq!(store.next_delivery("acme").unwrap(), Some((9, 4)));
    let header = store.events.get(keys::u64_be(5)).unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&header).contains("m1"));
    assert_eq!(
        store.meta.get("schema_version").unwrap().unwrap().as_ref(),
        trees::SCHEMA_VERSION.to_be_bytes()
    );
}

#[tokio::test]
async fn each_channel_queue_shows_its_head_and_drops_done_and_failed_deliveries() {
    let (_dir, store) = open();
    let queued = store
        .commit(|d| {
            d.transaction(|tx| {
                let mut seqs = Vec::new();
                for (channel, at) in [("a", 10), ("b", 20), ("a", 30)] {
                    let payload = DeliveryPayload::Inline {
                        data: serde_json::json!({}),
                    };
                    let d = deliveries::tx_enqueue(tx, channel, "w".into(), "t", payload, at)?;
                    seqs.push(d.seq);
                }
                Ok(seqs)
            })
        })
        .await
        .unwrap();
    let (a1, b1, a2) = (queued[0], queued[1], queued[2]);
    assert_eq!(store.next_delivery("a").unwrap(), Some((a1, 10)));
    assert_eq!(store.next_delivery("b").unwrap(), Some((b1, 20)));
    assert_eq!(store.next_delivery("c").unwrap(), None);
    assert_eq!(store.delivery_channels().unwrap(), ["a", "b"]);

    // A retry moves the head's due time; a final failure takes it out of the queue (kept).
    let mut first = store.delivery(a1).unwrap().unwrap();
    first.due_at_ms = 99;
    let retried = first.clone();
    store
        .commit(move |d| d.delivery_update(&retried))
        .await
        .unwrap();
    assert_eq!(store.next_delivery("a").unwrap(), Some((a1, 99)));
    first.failed = Some("rejected".into());
    store
        .commit(move |d| d.delivery_update(&first))
        .await
        .unwrap();
    assert_eq!(store.next_delivery("a").unwrap(), Some((a2, 30)));
    assert!(store.delivery(a1).unwrap().unwrap().failed.is_some());

    store.commit(move |d| d.delivery_done(a2)).await.unwrap();
    assert_eq!(store.next_delivery("a").unwrap(), None);
    assert!(store.delivery(a2).unwrap().is_none());
    assert_eq!(store.delivery_channels().unwrap(), ["b"]);
}

#[tokio::test]
async fn the_feed_publishes_what_each_group_committed_in_commit_order() {
    let (_dir, store) = open();
    let mut feed = store.subscribe().unwrap();
    assert!(store.subscribe().is_none(), "one subscriber");
    let writes: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let event = Event::Created(message("c", "u", &format!("m{i}")));
                store
                    .ingest(request(&format!("w{i}"), event))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for w in writes {
        w.await.unwrap();
    }
    // A deletion that completes at once queues its report: a delivery on its channel.
    let unknown = Event::Deleted {
        chat_id: "c".into(),
        user_id: None,
        message_ids: vec!["nope".into()],
    };
    store
        .ingest(deletion_request("wd", "d", unknown))
        .await
        .unwrap();

    let mut seqs = Vec::new();
    let mut deliveries = Vec::new();
    while let Ok(change) = feed.try_recv() {
        match change {
            feed::Committed::Ops(ops) => seqs.extend(ops.iter().map(|op| op.seq)),
            feed::Committed::Delivery { channel } => deliveries.push(channel),
        }
    }
    assert_eq!(seqs.len(), 200);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "published in the order the writer applied them"
    );
    assert_eq!(deliveries, ["acme"]);
}

#[test]
fn the_store_depends_on_no_other_boundary() {
    // The Bitrix24 client reads tokens through `bitrix::PortalTokens`; the store must not
    // depend back on `bitrix` (nor on the outbox that follows its feed).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for boundary in ["bitrix", "outbox", "http"].map(|b| format!("crate::{b}")) {
            assert!(
                !text.contains(boundary.as_str()),
                "{} uses {boundary}",
                path.display()
            );
        }
    }
}

#[test]
fn records_holding_typed_ids_keep_their_stored_bytes() {
    // As written before the ids were typed: the bytes read back and are written again unchanged.
    let stored = br#"{"id":"del_1","channel":"acme","created_at_ms":5,"total":2,"pending":1}"#;
    let record: DeletionRecord = super::codec::decode("test", stored).unwrap();
    assert_eq!(record.id, "del_1");
    assert_eq!(super::codec::encode(&record), stored.to_vec());
    let stored = br#"{"kind":"deletion_report","deletion_id":"del_1"}"#;
    let payload: DeliveryPayload = super::codec::decode("test", stored).unwrap();
    assert_eq!(
        payload,
        DeliveryPayload::DeletionReport {
            deletion_id: "del_1".into()
        }
    );
    assert_eq!(super::codec::encode(&payload), stored.to_vec());
}

#[test]
fn the_common_reply_is_stored_as_its_time_and_older_full_records_still_read() {
    let common = WebhookReply {
        status: 202,
        body: ACCEPTED_BODY.into(),
        at_ms: 5,
    };
    assert_eq!(super::codec::encode(&common), br#"{"at_ms":5}"#.to_vec());
    let full = br#"{"status":202,"body":"{\"status\":\"accepted\"}","at_ms":5}"#;
    assert_eq!(
        super::codec::decode::<WebhookReply>("test", full).unwrap(),
        common
    );
    let other = WebhookReply {
        status: 202,
        body: r#"{"status":"accepted","deletion_id":"del_1"}"#.into(),
        at_ms: 6,
    };
    let stored = super::codec::encode(&other);
    assert_eq!(
        stored,
        br#"{"body":"{\"status\":\"accepted\",\"deletion_id\":\"del_1\"}","at_ms":6}"#.to_vec()
    );
    assert_eq!(
        super::codec::decode::<WebhookReply>("test", &stored).unwrap(),
        other
    );
    let telegram = WebhookReply {
        status: 200,
        body: "{}".into(),
        at_ms: 7,
    };
    let stored = super::codec::encode(&telegram);
    assert_eq!(
        super::codec::decode::<WebhookReply>("test", &stored).unwrap(),
        telegram
    );
}

#[test]
fn records_holding_typed_external_ids_keep_their_stored_bytes() {
    // As written before the chat, user and message ids were typed (with the reply in the form
    // written since it omits a 202 status): read back and written again unchanged.
    fn same<T: serde::Serialize + serde::de::DeserializeOwned>(stored: &[u8]) -> T {
        let record: T = super::codec::decode("test", stored).unwrap();
        assert_eq!(
            String::from_utf8(super::codec::encode(&record)).unwrap(),
            String::from_utf8(stored.to_vec()).unwrap()
        );
        record
    }
    let send: EventRecord = same(
        br#"{"seq":7,"channel":"acme","webhook_id":"w1","reply":{"body":"{}","at_ms":5},"portal":"p1","line":3,"chat_id":"b:conn:42","accepted_at_ms":5,"work":{"op":"send","message":{"chat":{"id":"b:conn:42","name":"Ann"},"user":{"id":"42"},"message":{"id":"b:conn:42:9","date":1,"text":"hi"}},"state":{"attempts":0,"due_at_ms":5}}}"#,
    );
    assert_eq!(send.chat_id, "b:conn:42");
    let (channel, portal): (&ChannelId, &MemberId) = (&send.channel, &send.portal);
    assert_eq!((channel.as_str(), portal.as_str()), ("acme", "p1"));
    let Work::Send { message, .. } = &send.work else {
        panic!("{:?}", send.work)
    };
    assert_eq!(message.chat.id, send.chat_id);
    assert_eq!(
        (message.user.id.as_str(), message.message.id.as_str()),
        ("42", "b:conn:42:9")
    );
    let reaction: EventRecord = same(
        br#"{"seq":8,"channel":"acme","webhook_id":"w2","reply":{"body":"{}","at_ms":5},"portal":"p1","line":3,"chat_id":"c1","accepted_at_ms":5,"work":{"op":"reaction","added":true,"message_id":"m1","reaction":"like","state":{"attempts":1,"due_at_ms":9,"last_error":"x"}}}"#,
    );
    assert!(matches!(&reaction.work, Work::Reaction { message_id, .. } if message_id == "m1"));
    let item: DeletionItem = same(
        br#"{"message_id":"m1","chat_id":"c1","user_id":"u1","success":null,"errors":[],"attempts":0,"due_at_ms":5}"#,
    );
    assert_eq!((item.message_id, item.chat_id), ("m1".into(), "c1".into()));
    assert_eq!(item.user_id.as_deref(), Some("u1"));
    let message: MessageRecord = same(br#"{"user_id":"u1","created_at_ms":1,"updated_at_ms":2}"#);
    assert_eq!(
        (message.user_id.as_str(), message.state),
        ("u1", MessageState::Sent)
    );
    let failed: MessageRecord = same(
        br#"{"user_id":"u1","state":"failed","created_at_ms":1,"updated_at_ms":2,"error":"e"}"#,
    );
    assert_eq!(failed.state, MessageState::Failed);
    // As written by earlier builds (with the channel, and the state always): read the same.
    let earlier: MessageRecord = super::codec::decode(
        "test",
        br#"{"channel":"acme","user_id":"u1","state":"sent","created_at_ms":1,"updated_at_ms":2}"#,
    )
    .unwrap();
    assert_eq!(earlier, message);
}
