//! The acceptance journal inside the store: where a pending record lives, and that a record
//! comes back after a reopen exactly when it is still pending.

use super::ingest::IngestEvent;
use super::ops::{OpOutcome, OpResult};
use super::tests::{accepted_ops, message, request};
use super::*;

/// Accept through the acceptance path (journal append, journal sync).
async fn accept(store: &Store, webhook_id: &str, message_id: &str) -> Vec<Op> {
    let req = request(
        webhook_id,
        IngestEvent::Created(message("c", "u", message_id)),
    );
    let outcome = store.ingest(req, |_| {}).await.expect("ingest");
    accepted_ops(store, outcome)
}

fn in_seq_event(store: &Store, seq: u64) -> bool {
    store.events.contains_key(keys::u64_be(seq)).unwrap()
}

fn journal_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(journal::DIR))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

async fn record(store: &Store, op: Op, outcome: OpOutcome) {
    let results = vec![OpResult { op, outcome }];
    store
        .commit(move |d| d.apply_results(&results, 2000))
        .await
        .unwrap();
}

async fn finish(store: &Store, op: Op) {
    let done = OpOutcome::Done {
        bitrix_user_id: Some("585".into()),
        session: None,
    };
    record(store, op, done).await;
}

#[tokio::test]
async fn an_accepted_event_lives_in_the_journal_and_survives_reopening_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let seq = {
        let store = Store::open(dir.path()).unwrap();
        let ops = accept(&store, "w1", "m1").await;
        assert!(!in_seq_event(&store, ops[0].seq), "sled is not written");
        ops[0].seq
    };
    let store = Store::open(dir.path()).unwrap();
    let pending = store.pending_ops().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].seq, seq);
    assert!(!in_seq_event(&store, seq));
    // The replay check still finds the first reply.
    let again = request("w1", IngestEvent::Created(message("c", "u", "m1")));
    assert!(matches!(
        store.ingest(again, |_| {}).await.unwrap(),
        ingest::IngestOutcome::Replayed(_)
    ));
}

#[tokio::test]
async fn a_retry_moves_the_record_into_seq_event_and_a_finish_keeps_it_from_coming_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let retried = accept(&store, "w1", "m1").await.remove(0);
        let done = accept(&store, "w2", "m2").await.remove(0);
        let mut op = retried.clone();
        op.attempts = 2;
        record(&store, op, OpOutcome::Retry).await;
        assert!(
            in_seq_event(&store, retried.seq),
            "moved on its first result"
        );
        finish(&store, done.clone()).await;
        assert!(!in_seq_event(&store, done.seq));
        assert!(store.event(done.seq).unwrap().is_none());
    }
    let store = Store::open(dir.path()).unwrap();
    let pending = store.pending_ops().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        pending[0].attempts, 2,
        "the moved record, not the journal's copy"
    );
    assert_eq!(
        store
            .message_record("p1", 7, "c", "m2")
            .unwrap()
            .map(|m| m.user_id),
        Some("u".into())
    );
}

#[tokio::test]
async fn segments_whose_records_all_left_are_deleted_after_the_next_sled_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let op = accept(&store, "w1", "m1").await.remove(0);
    store.commit(|d| d.journal().close_current()).await.unwrap();
    assert_eq!(journal_files(dir.path()), 2);
    finish(&store, op).await;
    // The finish's own sync found the old segment dead before flushing sled, then deleted it.
    assert_eq!(journal_files(dir.path()), 1);
}

#[tokio::test]
async fn retiring_moves_records_into_seq_event_and_raises_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let seqs = {
        let store = Store::open(dir.path()).unwrap();
        let a = accept(&store, "w1", "m1").await.remove(0).seq;
        let b = accept(&store, "w2", "m2").await.remove(0).seq;
        let moved = store.commit(|d| d.retire_whole_journal()).await.unwrap();
        assert_eq!(moved, 2);
        assert!(in_seq_event(&store, a) && in_seq_event(&store, b));
        assert_eq!(store.pending_ops().unwrap().len(), 2, "each once");
        vec![a, b]
    };
    let store = Store::open(dir.path()).unwrap();
    let pending: Vec<u64> = store.pending_ops().unwrap().iter().map(|o| o.seq).collect();
    assert_eq!(pending, seqs);
    assert_eq!(journal_files(dir.path()), 1, "retired segments are gone");
}

#[tokio::test]
async fn a_purged_portals_journal_records_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        accept(&store, "w1", "m1").await;
        let removed = store
            .commit(|d| d.purge_portal("p1", &["acme".to_string()]))
            .await
            .unwrap();
        assert!(removed >= 1);
        assert!(store.pending_ops().unwrap().is_empty());
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.pending_ops().unwrap().is_empty());
}

#[tokio::test]
async fn a_record_caught_moving_is_listed_once_from_sled() {
    let (_dir, store) = super::tests::open();
    let op = accept(&store, "w1", "m1").await.remove(0);
    // The state between the sled transaction that moves it and the journal forgetting it.
    let mut moved = store.event(op.seq).unwrap().unwrap();
    if let Work::Send { state, .. } = &mut moved.work {
        state.attempts = 4;
    }
    store
        .events
        .insert(keys::u64_be(op.seq), codec::encode(&moved))
        .unwrap();
    let pending = store.pending_ops().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 4);
}
