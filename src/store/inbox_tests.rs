use super::super::tests::{accepted_send, done_at, message, open, request};
use super::super::{Store, Work, keys};
use crate::domain::Event;

fn reopen(dir: &std::path::Path) -> Store {
    Store::open(dir).expect("reopen")
}

/// Accept a deletion of m1 in chat "c" (its record goes into the main database).
async fn accept_deletion_of_m1(store: &Store, webhook_id: &str) {
    let deletion = super::super::tests::deletion_request(
        webhook_id,
        "d1",
        Event::Deleted {
            chat_id: "c".into(),
            user_id: Some("u".into()),
            message_ids: vec!["m1".into()],
        },
    );
    super::super::tests::ingest(store, deletion).await;
}

#[tokio::test]
async fn a_finished_send_leaves_the_inbox_after_its_sync_and_its_marker_after_the_next() {
    let (_dir, store) = open();
    let ops = accepted_send(&store, "w1", "m1").await;
    let key = keys::u64_be(ops[0].seq);
    assert!(store.inbox.events.contains_key(key).unwrap());
    assert!(
        store.events.is_empty(),
        "a send's record is in the inbox only"
    );
    done_at(&store, &ops[0], 2_000).await;
    assert!(store.event(ops[0].seq).unwrap().is_none());
    assert!(!store.inbox.events.contains_key(key).unwrap());
    assert!(
        store.done.contains_key(key).unwrap(),
        "the marker stays until the removal is synced"
    );
    store.flush().await.unwrap();
    assert!(store.done.is_empty());
    assert!(store.pending_ops().unwrap().is_empty());
}

#[tokio::test]
async fn a_marked_event_is_finished_at_once_and_removed_from_the_inbox_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let seq = {
        let store = Store::open(dir.path()).unwrap();
        let ops = accepted_send(&store, "w1", "m1").await;
        accepted_send(&store, "w2", "m2").await;
        // A crash after the result's sync, before the inbox's removal reached the disk: the
        // marker is there, the event too.
        let seq = ops[0].seq;
        store
            .commit(move |d| Ok(d.done.insert(keys::u64_be(seq), &[])?))
            .await
            .unwrap();
        assert!(store.event(seq).unwrap().is_none(), "marked: finished");
        assert_eq!(store.pending_ops().unwrap().len(), 1);
        seq
    };
    let store = reopen(dir.path());
    assert!(!store.inbox.events.contains_key(keys::u64_be(seq)).unwrap());
    assert!(store.done.is_empty());
    let pending = store.pending_ops().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message_id(), "m2");
}

#[tokio::test]
async fn a_send_an_earlier_build_kept_in_the_main_database_moves_to_the_inbox_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let seq = {
        let store = Store::open(dir.path()).unwrap();
        let ops = accepted_send(&store, "w1", "m1").await;
        let seq = ops[0].seq;
        store
            .commit(move |d| {
                let key = keys::u64_be(seq);
                let value = d.inbox.events.remove(key)?.unwrap();
                d.events.insert(key, value)?;
                Ok(())
            })
            .await
            .unwrap();
        seq
    };
    let store = reopen(dir.path());
    assert!(store.events.is_empty());
    let record = store.event(seq).unwrap().expect("still pending");
    assert!(matches!(record.work, Work::Send { .. }));
    assert!(store.inbox.events.contains_key(keys::u64_be(seq)).unwrap());
    // And it is finished as any other.
    let ops = store.pending_ops().unwrap();
    done_at(&store, &ops[0], 3_000).await;
    assert!(store.pending_ops().unwrap().is_empty());
}

#[tokio::test]
async fn pending_events_of_both_databases_are_read_in_seq_order() {
    let (_dir, store) = open();
    accepted_send(&store, "w1", "m1").await;
    accept_deletion_of_m1(&store, "w2").await;
    super::super::tests::ingest(
        &store,
        request("w3", Event::Created(message("c", "u", "m3"))),
    )
    .await;
    let seqs: Vec<u64> = store.pending_events().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(store.events.len(), 1, "the deletion in the main database");
    assert_eq!(store.inbox.events.len(), 2);
}

#[tokio::test]
async fn the_move_of_an_earlier_builds_events_goes_in_chunks_and_leaves_deletions() {
    let (_dir, store) = open();
    for (w, m) in [("w1", "m1"), ("w2", "m2"), ("w3", "m3")] {
        accepted_send(&store, w, m).await;
    }
    accept_deletion_of_m1(&store, "w4").await;
    // As an earlier build left them: every record in the main database.
    let (first, second, third) = store
        .commit(|d| {
            let all: Vec<_> = d.inbox.events.iter().collect::<Result<_, _>>()?;
            for (key, value) in all {
                d.inbox.events.remove(&key)?;
                d.events.insert(key, value)?;
            }
            let first = d.move_to_inbox(&[], 2)?;
            let start = first.clone().unwrap_or_default();
            let second = d.move_to_inbox(&start, 2)?;
            let third = d.move_to_inbox(&[], 2)?;
            Ok((first, second, third))
        })
        .await
        .unwrap();
    assert!(first.is_some(), "a full chunk: there may be more");
    assert_eq!(second, None);
    assert_eq!(third, None, "nothing left to move");
    assert_eq!(store.inbox.events.len(), 3);
    assert_eq!(store.events.len(), 1, "the deletion stays");
    assert_eq!(store.pending_events().count(), 4);
}

#[tokio::test]
async fn purging_a_portal_removes_its_pending_events_from_the_inbox_with_their_spilled_entries() {
    let (_dir, store) = open();
    store.pending().set_capacity(0);
    accepted_send(&store, "w1", "m1").await;
    accept_deletion_of_m1(&store, "w2").await;
    assert!(!store.inbox.replies.is_empty() && !store.inbox.sends.is_empty());
    store.purge_portal("p1", &["acme".into()]).await.unwrap();
    assert!(store.inbox.events.is_empty());
    assert!(store.inbox.replies.is_empty());
    assert!(store.inbox.sends.is_empty());
    assert!(store.events.is_empty(), "the deletion too");
    assert_eq!(store.pending_events().count(), 0);
}
