//! Pending Bitrix24 items and the one write that records what happened to them.
//!
//! Invariants: an item is pending as long as its event record is in `seq_event` without a
//! result for it (and, for an inbox event, without a marker in `seq_done`). The write that
//! records a result also writes what follows from it (mapping, the finished event's reply, the
//! deletion report and its callback), atomically (a deletion's, in a transaction) or with the
//! event's marker last (anything else, in order; the inbox drops the event after the sync), so
//! after a crash an item is either still pending (and is sent again) or its result is on disk
//! (and it is never sent again).

use std::collections::BTreeMap;

use super::codec::{Kv, decode, encode, tx_get, tx_put};
use super::retention::{Kind, encode_pairs, tx_index, tx_index_with};
use super::{
    ChatLink, Data, DeletionItem, DeletionReport, EventRecord, ItemState, MessageRecord,
    MessageState, Op, OpRef, StoreError, Tx, TxResult, UserLink, Work, deliveries, keys, trees,
};

/// What happened to one op in a call.
#[derive(Debug, Clone, PartialEq)]
pub enum OpOutcome {
    /// Bitrix24 accepted the item. For sends: the Bitrix24 user id and open-line session.
    Done {
        bitrix_user_id: Option<String>,
        session: Option<(String, String)>,
    },
    /// Final failure: Bitrix24 rejected the item, or the gateway gave up on it.
    Failed { errors: Vec<String> },
    /// Not final: the op's attempts, due time and last error are to be recorded (before a call,
    /// or after a transient failure).
    Retry,
}

/// An op (with its updated attempt count / due time) and its outcome.
#[derive(Debug, Clone)]
pub struct OpResult {
    pub op: Op,
    pub outcome: OpOutcome,
}

impl Data {
    /// Every pending item, in (seq, item) order: per chat, the order in which they take effect.
    /// Collects the whole backlog: for tests and inspection, never on a request path.
    pub fn pending_ops(&self) -> Result<Vec<Op>, StoreError> {
        let mut ops = Vec::new();
        for record in self.pending_events() {
            ops.extend(self.event_ops(&record?)?);
        }
        Ok(ops)
    }

    /// Every pending item as the outbox queues it, in (seq, item) order (collects the whole
    /// backlog, as [`Data::pending_ops`]).
    pub fn pending_refs(&self) -> Result<Vec<OpRef>, StoreError> {
        let mut refs = Vec::new();
        for record in self.pending_events() {
            refs.extend(self.event_refs(&record?)?);
        }
        Ok(refs)
    }

    /// Record that these ops are being attempted (their attempt counts and due times) with
    /// plain writes, not a transaction: a transaction makes sled write out its buffer twice,
    /// and each write of the log's last page costs a page of disk writes. Nothing here needs
    /// atomicity: each key is an item's (or a send's) own state, and after a crash an attempt
    /// that did not reach the disk is simply not counted (call inside `Store::commit_unsynced`).
    pub fn record_attempts(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut by_event: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
        for op in ops {
            by_event.entry(op.seq).or_default().push(op);
        }
        for (seq, ops) in by_event {
            let Some(mut record) = self.event(seq)? else {
                // Finished meanwhile: nothing to count.
                continue;
            };
            match &mut record.work {
                Work::Delete { .. } => {
                    for op in ops {
                        let ikey = keys::seq_item(seq, op.item);
                        let Some(value) = self.items.get(ikey)? else {
                            continue;
                        };
                        let mut item: DeletionItem = decode(trees::SEQITEM_DELETIONITEM, &value)?;
                        if item.success.is_none() {
                            item.state = retry_state(op);
                            self.items.insert(ikey, encode(&item))?;
                        }
                    }
                }
                Work::Send { state, .. }
                | Work::Update { state, .. }
                | Work::Reaction { state, .. } => {
                    if let Some(op) = ops.last() {
                        *state = retry_state(op);
                        self.inbox
                            .events
                            .insert(keys::u64_be(seq), encode(&record))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Record the outcomes of one call (call inside `Store::commit`). A deletion's items, its
    /// pending count and its report change together, in one transaction of the main database.
    /// Any other result is one record's: its writes go in order ([`Data::in_order`]), its
    /// marker in `seq_done` last, and the event leaves the inbox after the sync (`inbox.rs`), so
    /// after a crash either the marker and everything it follows are on disk, or the event is
    /// still pending (its partial writes are rewritten when it is sent again, as they are after
    /// a lost transaction).
    pub fn apply_results(&self, results: &[OpResult], now_ms: u64) -> Result<(), StoreError> {
        let mut deletions: BTreeMap<u64, Vec<&OpResult>> = BTreeMap::new();
        let mut others: BTreeMap<u64, Vec<&OpResult>> = BTreeMap::new();
        for r in results {
            let into = match r.op.kind {
                super::OpKind::Delete { .. } => &mut deletions,
                _ => &mut others,
            };
            into.entry(r.op.seq).or_default().push(r);
        }
        let mut finished = Vec::new();
        if !deletions.is_empty() {
            let events = self.events_of(deletions)?;
            finished.extend(
                self.transaction(|tx| record_results(tx, events.clone(), Place::Main, now_ms))?,
            );
        }
        if !others.is_empty() {
            let events = self.events_of(others)?;
            finished.extend(self.in_order(|tx| record_results(tx, events, Place::Inbox, now_ms))?);
        }
        for rec in &finished {
            self.pending().remove(rec);
            match &rec.work {
                Work::Delete { deletion, .. } => {
                    self.pending_deletions.remove(deletion.id.as_bytes())?;
                }
                _ => self.finish_in_inbox(rec),
            }
        }
        Ok(())
    }

    /// The pending records of these events with their results (a finished one is left out:
    /// a recorded result is never overwritten).
    fn events_of<'r>(
        &self,
        by_event: BTreeMap<u64, Vec<&'r OpResult>>,
    ) -> Result<Vec<(EventRecord, Vec<&'r OpResult>)>, StoreError> {
        let mut events = Vec::with_capacity(by_event.len());
        for (seq, results) in by_event {
            if let Some(record) = self.event(seq)? {
                events.push((record, results));
            }
        }
        Ok(events)
    }
}

/// Where an event's record lives: a deletion's in the main database (changed in the
/// transaction), any other in the inbox (rewritten there; finished through its marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Main,
    Inbox,
}

/// Write the results of each event; returns the events they finished. Their commit points come
/// last, after the retention entry of the messages sent for the first time (one for the whole
/// call: [`Kind::Sent`]): a deletion's removal from `seq_event`, another event's marker.
fn record_results<K: Kv>(
    tx: &Tx<'_, K>,
    events: Vec<(EventRecord, Vec<&OpResult>)>,
    place: Place,
    now_ms: u64,
) -> TxResult<Vec<EventRecord>> {
    let mut finished = Vec::new();
    let mut sent = Vec::new();
    for (mut record, results) in events {
        let key = keys::u64_be(record.seq);
        let change = apply_to_event(tx, &mut record, &results, now_ms, &mut sent)?;
        if let Change::Finished { reply_indexed } = change {
            let reply_key = keys::webhook(&record.channel, &record.webhook_id);
            tx_put(tx.webhooks, &reply_key, &record.reply)?;
            if !reply_indexed {
                tx_index(tx, Kind::Reply, record.reply.at_ms, &reply_key)?;
            }
            if let Work::Delete { deletion, .. } = &record.work {
                // Read (and drop) every item once, when the deletion is complete.
                let mut items = Vec::with_capacity(deletion.total as usize);
                for index in 0..deletion.total {
                    let key = keys::seq_item(record.seq, index);
                    if let Some(item) = tx_get(tx.items, trees::SEQITEM_DELETIONITEM, &key)? {
                        items.push(item);
                    }
                    tx.items.delete(&key)?;
                }
                let report = DeletionReport {
                    deletion: deletion.clone(),
                    items,
                };
                tx_put(tx.deletions, deletion.id.as_bytes(), &report)?;
                tx_index(tx, Kind::Report, now_ms, deletion.id.as_bytes())?;
                deliveries::tx_enqueue_report(tx, deletion, now_ms)?;
            }
            finished.push(record);
        } else if change == Change::Header {
            match place {
                Place::Main => tx_put(tx.events, &key, &record)?,
                // A retry's state: the inbox's own write, synced with this group.
                Place::Inbox => tx_put(&tx.data.inbox.events, &key, &record)?,
            }
        }
    }
    match sent.as_slice() {
        [] => {}
        [(message, reply)] => tx_index_with(tx, Kind::MessageReply, now_ms, message, reply)?,
        [(first, _), ..] => tx_index_with(tx, Kind::Sent, now_ms, first, &encode_pairs(&sent))?,
    }
    // The commit points: these events are no longer pending.
    for record in &finished {
        let key = keys::u64_be(record.seq);
        match place {
            Place::Main => tx.events.delete(&key)?,
            Place::Inbox => tx.done.write(&key, Vec::new())?,
        }
    }
    Ok(finished)
}

/// What applying results changed in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Only item keys (or nothing): the event's own record stays as it is.
    Items,
    /// The event's record changed (a retry state, a deletion's pending count).
    Header,
    /// Every item is final: the event is finished (`reply_indexed`: its reply is indexed for
    /// retention already, with its message).
    Finished { reply_indexed: bool },
}

/// Apply results to one event. A deletion's items are read and written under their own keys:
/// the cost is proportional to the results, not to the deletion's size.
/// A send's first result adds its (message key, reply key) to `sent`, to be indexed for
/// retention with the call's others.
fn apply_to_event<K: Kv>(
    tx: &Tx<'_, K>,
    record: &mut EventRecord,
    results: &[&OpResult],
    now_ms: u64,
    sent: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> TxResult<Change> {
    let seq = record.seq;
    let (portal, line, chat) = (record.portal.clone(), record.line, record.chat_id.clone());
    let mkey = |message: &str| keys::message(&portal, line, &chat, message);
    match &mut record.work {
        Work::Reaction { state, .. } => {
            let Some(r) = results.last() else {
                return Ok(Change::Items);
            };
            if r.outcome == OpOutcome::Retry {
                *state = retry_state(&r.op);
                return Ok(Change::Header);
            }
            Ok(Change::Finished {
                reply_indexed: false,
            })
        }
        Work::Send { message, state } | Work::Update { message, state } => {
            let Some(r) = results.last() else {
                return Ok(Change::Items);
            };
            let (success, errors) = match &r.outcome {
                OpOutcome::Retry => {
                    *state = retry_state(&r.op);
                    return Ok(Change::Header);
                }
                OpOutcome::Done { .. } => (true, Vec::new()),
                OpOutcome::Failed { errors } => (false, errors.clone()),
            };
            let key = mkey(&message.message.id);
            let existing: Option<MessageRecord> = tx_get(tx.messages, trees::MESSAGE_STATE, &key)?;
            let is_send = matches!(r.op.kind, super::OpKind::Send { .. });
            // Indexed for retention by its send's result (it was queued until then, or made
            // now); a later rewrite is found through that entry.
            let first = existing
                .as_ref()
                .is_none_or(|m| m.state == MessageState::Queued);
            let mut m = match (existing, is_send) {
                (Some(m), _) => m,
                (None, true) => MessageRecord {
                    user_id: message.user.id.clone(),
                    state: MessageState::Sent,
                    created_at_ms: record.accepted_at_ms,
                    updated_at_ms: now_ms,
                    error: None,
                },
                // An update of a message the gateway never sent: nothing to record it on.
                (None, false) => {
                    return Ok(Change::Finished {
                        reply_indexed: false,
                    });
                }
            };
            if is_send && m.state != MessageState::Deleted {
                m.state = if success {
                    MessageState::Sent
                } else {
                    MessageState::Failed
                };
            }
            m.updated_at_ms = now_ms;
            m.error = (!success).then(|| errors.join("; "));
            tx_put(tx.messages, &key, &m)?;
            // A send's first result indexes its message and its reply together.
            let reply_indexed = first && is_send;
            if reply_indexed {
                let reply_key = keys::webhook(&record.channel, &record.webhook_id);
                sent.push((key.clone(), reply_key));
            }
            if let OpOutcome::Done {
                bitrix_user_id: Some(uid),
                session,
            } = &r.outcome
            {
                // Links are rewritten only when Bitrix24 names something new: most messages of
                // a chat repeat what is stored, and a write per message would cost disk.
                let ukey = keys::user(&portal, &message.user.id);
                let known: Option<UserLink> = tx_get(tx.users, trees::USER_LINK, &ukey)?;
                if known.is_none_or(|u| u.bitrix_user_id != *uid) {
                    let user = UserLink {
                        bitrix_user_id: uid.clone(),
                        updated_at_ms: now_ms,
                    };
                    tx_put(tx.users, &ukey, &user)?;
                }
                if let Some((chat_id, session_id)) = session {
                    let ckey = keys::chat(&portal, line, &chat);
                    let known: Option<ChatLink> = tx_get(tx.chats, trees::CHAT_LINK, &ckey)?;
                    if known
                        .is_none_or(|c| c.bitrix_chat_id != *chat_id || c.session_id != *session_id)
                    {
                        let link = ChatLink {
                            bitrix_chat_id: chat_id.clone(),
                            session_id: session_id.clone(),
                            updated_at_ms: now_ms,
                        };
                        tx_put(tx.chats, &ckey, &link)?;
                    }
                }
            }
            Ok(Change::Finished { reply_indexed })
        }
        Work::Delete { deletion, .. } => {
            let mut change = Change::Items;
            for r in results {
                let ikey = keys::seq_item(seq, r.op.item);
                let Some(mut item) =
                    tx_get::<DeletionItem>(tx.items, trees::SEQITEM_DELETIONITEM, &ikey)?
                else {
                    continue;
                };
                if item.success.is_some() {
                    continue;
                }
                item.state = retry_state(&r.op);
                let (success, errors) = match &r.outcome {
                    OpOutcome::Retry => {
                        tx_put(tx.items, &ikey, &item)?;
                        continue;
                    }
                    OpOutcome::Done { .. } => (true, Vec::new()),
                    OpOutcome::Failed { errors } => (false, errors.clone()),
                };
                item.success = Some(success);
                item.errors = errors;
                tx_put(tx.items, &ikey, &item)?;
                deletion.pending = deletion.pending.saturating_sub(1);
                change = Change::Header;
                let key = mkey(&item.message_id);
                if success
                    && let Some(mut m) =
                        tx_get::<MessageRecord>(tx.messages, trees::MESSAGE_STATE, &key)?
                {
                    m.state = MessageState::Deleted;
                    m.updated_at_ms = now_ms;
                    tx_put(tx.messages, &key, &m)?;
                }
            }
            if deletion.pending == 0 {
                deletion.completed_at_ms = Some(now_ms);
                return Ok(Change::Finished {
                    reply_indexed: false,
                });
            }
            Ok(change)
        }
    }
}

fn retry_state(op: &Op) -> ItemState {
    ItemState {
        attempts: op.attempts,
        due_at_ms: op.due_at_ms,
        last_error: op.last_error.clone(),
    }
}
