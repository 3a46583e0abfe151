//! The queue of pending Bitrix24 operations and the one transaction that records their results.
//!
//! Invariants: an op exists in `seq_op` until its result is final; the transaction that removes
//! it also records that result (mapping, deletion item), so after a crash an op is either still
//! queued (and will be sent again) or its result is on disk (and it is never sent again).

use super::codec::{decode, tx_get, tx_put};
use super::deletions::{ItemUpdate, tx_update_item};
use super::{
    ChatLink, Data, MessageRecord, MessageState, Op, OpKind, StoreError, Tx, TxResult, UserLink,
    keys, trees,
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
    /// Transient failure: try again at `op.due_at_ms` (attempts and error already on `op`).
    Retry,
}

/// An op (with its updated attempt count / due time) and its outcome.
#[derive(Debug, Clone)]
pub struct OpResult {
    pub op: Op,
    pub outcome: OpOutcome,
}

impl Data {
    /// Every queued op in seq order (the order in which they take effect per chat).
    pub fn pending_ops(&self) -> Result<Vec<Op>, StoreError> {
        self.ops
            .iter()
            .values()
            .map(|v| decode(trees::SEQ_OP, &v?))
            .collect()
    }

    /// Record the outcomes of one call atomically (call inside `Store::commit`).
    pub fn apply_results(&self, results: &[OpResult], now_ms: u64) -> Result<(), StoreError> {
        self.transaction(|tx| {
            for r in results {
                apply_one(tx, r, now_ms)?;
            }
            Ok(())
        })
    }
}

fn apply_one(tx: &Tx<'_>, r: &OpResult, now_ms: u64) -> TxResult<()> {
    let op = &r.op;
    let op_key = keys::u64_be(op.seq);
    if tx.ops.get(op_key)?.is_none() {
        // Already final (recorded by an earlier call): never overwrite a recorded result.
        return Ok(());
    }
    match &r.outcome {
        OpOutcome::Retry => {
            tx_put(tx.ops, &op_key, op)?;
            if let OpKind::Delete {
                deletion_id, index, ..
            } = &op.kind
            {
                tx_update_item(
                    tx,
                    deletion_id,
                    *index,
                    op.attempts,
                    ItemUpdate::Attempted,
                    now_ms,
                )?;
            }
            return Ok(());
        }
        OpOutcome::Done { .. } | OpOutcome::Failed { .. } => {
            tx.ops.remove(&op_key)?;
        }
    }
    let (success, errors): (bool, &[String]) = match &r.outcome {
        OpOutcome::Failed { errors } => (false, errors),
        _ => (true, &[]),
    };
    let mkey = keys::message(&op.portal, op.line, &op.chat_id, op.message_id());
    let mut record: Option<MessageRecord> = tx_get(tx.messages, trees::MESSAGE_STATE, &mkey)?;
    match &op.kind {
        OpKind::Send { message } => {
            let record = record.get_or_insert_with(|| MessageRecord {
                channel: op.channel.clone(),
                user_id: message.user.id.clone(),
                state: MessageState::Queued,
                created_at_ms: op.accepted_at_ms,
                updated_at_ms: now_ms,
                error: None,
            });
            // A delete that already took effect wins over a late send result.
            if record.state != MessageState::Deleted {
                record.state = if success {
                    MessageState::Sent
                } else {
                    MessageState::Failed
                };
            }
            if let OpOutcome::Done {
                bitrix_user_id,
                session,
            } = &r.outcome
            {
                if let Some(uid) = bitrix_user_id {
                    let link = UserLink {
                        bitrix_user_id: uid.clone(),
                        updated_at_ms: now_ms,
                    };
                    tx_put(tx.users, &keys::user(&op.portal, &message.user.id), &link)?;
                }
                if let Some((chat, session)) = session {
                    let link = ChatLink {
                        bitrix_chat_id: chat.clone(),
                        session_id: session.clone(),
                        updated_at_ms: now_ms,
                    };
                    tx_put(
                        tx.chats,
                        &keys::chat(&op.portal, op.line, &op.chat_id),
                        &link,
                    )?;
                }
            }
        }
        OpKind::Update { .. } => {}
        OpKind::Delete {
            deletion_id, index, ..
        } => {
            tx_update_item(
                tx,
                deletion_id,
                *index,
                op.attempts,
                ItemUpdate::Final { success, errors },
                now_ms,
            )?;
            if let (true, Some(record)) = (success, record.as_mut()) {
                record.state = MessageState::Deleted;
            }
        }
    }
    if let Some(record) = record.as_mut() {
        record.updated_at_ms = now_ms;
        record.error = (!success).then(|| errors.join("; "));
        tx_put(tx.messages, &mkey, record)?;
    }
    Ok(())
}
