//! Pending Bitrix24 items and the one transaction that records what happened to them.
//!
//! Invariants: an item is pending as long as its event record is in `seq_event` without a
//! result for it. The transaction that records a result also writes what follows from it
//! (mapping, the finished event's reply, the deletion report and its callback), so after a crash
//! an item is either still pending (and is sent again) or its result is on disk (and it is never
//! sent again).

use std::collections::BTreeMap;

use super::codec::{tx_get, tx_put};
use super::{
    ChatLink, Data, DeletionReport, EventRecord, ItemState, MessageRecord, MessageState, Op, OpRef,
    StoreError, Tx, TxResult, UserLink, Work, deliveries, keys, trees,
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
    pub fn pending_ops(&self) -> Result<Vec<Op>, StoreError> {
        Ok(self
            .pending_events()?
            .iter()
            .flat_map(EventRecord::pending_ops)
            .collect())
    }

    /// Every pending item as the outbox queues it, in (seq, item) order.
    pub fn pending_refs(&self) -> Result<Vec<OpRef>, StoreError> {
        Ok(self
            .pending_events()?
            .iter()
            .flat_map(EventRecord::pending_refs)
            .collect())
    }

    /// Record the outcomes of one call atomically (call inside `Store::commit`).
    pub fn apply_results(&self, results: &[OpResult], now_ms: u64) -> Result<(), StoreError> {
        let mut by_event: BTreeMap<u64, Vec<&OpResult>> = BTreeMap::new();
        for r in results {
            by_event.entry(r.op.seq).or_default().push(r);
        }
        let finished = self.transaction(|tx| {
            let mut finished = Vec::new();
            for (seq, results) in &by_event {
                let key = keys::u64_be(*seq);
                let stored = tx_get::<EventRecord>(tx.events, trees::SEQ_EVENT, &key)?;
                let Some(mut record) = stored else {
                    // Already finished: a recorded result is never overwritten.
                    continue;
                };
                if apply_to_event(tx, &mut record, results, now_ms)? {
                    tx.events.remove(&key)?;
                    tx_put(
                        tx.webhooks,
                        &keys::webhook(&record.channel, &record.webhook_id),
                        &record.reply,
                    )?;
                    if let Work::Delete { deletion, items } = &record.work {
                        let report = DeletionReport {
                            deletion: deletion.clone(),
                            items: items.clone(),
                        };
                        tx_put(tx.deletions, deletion.id.as_bytes(), &report)?;
                        deliveries::tx_enqueue_report(tx, deletion, now_ms)?;
                    }
                    finished.push(record);
                } else {
                    tx_put(tx.events, &key, &record)?;
                }
            }
            Ok(finished)
        })?;
        for rec in &finished {
            self.pending().remove(rec);
            if let Work::Delete { deletion, .. } = &rec.work {
                self.pending_deletions.remove(deletion.id.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Apply results to one event; true when every item of it is now final.
fn apply_to_event(
    tx: &Tx<'_>,
    record: &mut EventRecord,
    results: &[&OpResult],
    now_ms: u64,
) -> TxResult<bool> {
    let (portal, line, chat) = (record.portal.clone(), record.line, record.chat_id.clone());
    let mkey = |message: &str| keys::message(&portal, line, &chat, message);
    match &mut record.work {
        Work::Reaction { state, .. } => {
            let Some(r) = results.last() else {
                return Ok(false);
            };
            if r.outcome == OpOutcome::Retry {
                *state = retry_state(&r.op);
                return Ok(false);
            }
            Ok(true)
        }
        Work::Send { message, state } | Work::Update { message, state } => {
            let Some(r) = results.last() else {
                return Ok(false);
            };
            let (success, errors) = match &r.outcome {
                OpOutcome::Retry => {
                    *state = retry_state(&r.op);
                    return Ok(false);
                }
                OpOutcome::Done { .. } => (true, Vec::new()),
                OpOutcome::Failed { errors } => (false, errors.clone()),
            };
            let key = mkey(&message.message.id);
            let existing: Option<MessageRecord> = tx_get(tx.messages, trees::MESSAGE_STATE, &key)?;
            let is_send = matches!(r.op.kind, super::OpKind::Send { .. });
            let mut m = match (existing, is_send) {
                (Some(m), _) => m,
                (None, true) => MessageRecord {
                    channel: record.channel.clone(),
                    user_id: message.user.id.clone(),
                    state: MessageState::Sent,
                    created_at_ms: record.accepted_at_ms,
                    updated_at_ms: now_ms,
                    error: None,
                },
                // An update of a message the gateway never sent: nothing to record it on.
                (None, false) => return Ok(true),
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
            if let OpOutcome::Done {
                bitrix_user_id: Some(uid),
                session,
            } = &r.outcome
            {
                let user = UserLink {
                    bitrix_user_id: uid.clone(),
                    updated_at_ms: now_ms,
                };
                tx_put(tx.users, &keys::user(&portal, &message.user.id), &user)?;
                if let Some((chat_id, session_id)) = session {
                    let link = ChatLink {
                        bitrix_chat_id: chat_id.clone(),
                        session_id: session_id.clone(),
                        updated_at_ms: now_ms,
                    };
                    tx_put(tx.chats, &keys::chat(&portal, line, &chat), &link)?;
                }
            }
            Ok(true)
        }
        Work::Delete { deletion, items } => {
            for r in results {
                let Some(item) = items.get_mut(r.op.item as usize) else {
                    continue;
                };
                if item.success.is_some() {
                    continue;
                }
                item.state = retry_state(&r.op);
                let (success, errors) = match &r.outcome {
                    OpOutcome::Retry => continue,
                    OpOutcome::Done { .. } => (true, Vec::new()),
                    OpOutcome::Failed { errors } => (false, errors.clone()),
                };
                item.success = Some(success);
                item.errors = errors;
                deletion.pending = deletion.pending.saturating_sub(1);
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
                return Ok(true);
            }
            Ok(false)
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
