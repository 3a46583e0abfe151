//! Accepting a platform event: one transaction that checks the webhook-id, records the mapping
//! and queues the Bitrix24 operations, so a 2xx always means "all of it is on disk".

use sled::transaction::ConflictableTransactionError;

use super::codec::{tx_get, tx_put};
use super::{
    Data, DeletionItem, DeletionRecord, MessageRecord, MessageState, Op, OpKind, StoreError,
    TxResult, WebhookReply, deliveries, keys, trees,
};
use crate::domain::CustomerMessage;

/// An authenticated, validated platform event, ready to be stored.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub channel: String,
    pub webhook_id: String,
    pub portal: String,
    pub line: u64,
    pub event: IngestEvent,
    /// The reply to give now and to replay for a retry of the same webhook-id.
    pub reply: WebhookReply,
    pub now_ms: u64,
}

/// The event kinds that queue Bitrix24 operations.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    Created(CustomerMessage),
    Updated(CustomerMessage),
    Deleted {
        deletion_id: String,
        chat_id: String,
        user_id: Option<String>,
        message_ids: Vec<String>,
    },
}

/// Result of [`Data::ingest`].
#[derive(Debug, Clone)]
pub enum IngestOutcome {
    /// Stored now; these ops are new.
    Accepted { reply: WebhookReply, ops: Vec<Op> },
    /// The webhook-id was accepted before: nothing changed, here is the first reply.
    Replayed(WebhookReply),
}

/// Why an item of a deletion can never be sent.
pub const UNKNOWN_MESSAGE: &str =
    "unknown message: the gateway has no record of it and the event gave no user.id";

impl Data {
    /// Store an event atomically (call inside `Store::commit`; `Store::ingest` groups them).
    pub fn ingest(&self, req: &IngestRequest) -> Result<IngestOutcome, StoreError> {
        self.transaction(|tx| ingest_one(tx, req))
    }

    /// Store several events in one transaction (each still all-or-nothing with the others); if
    /// that fails, each is tried alone so that one bad record cannot fail its neighbours.
    pub(crate) fn ingest_all(
        &self,
        reqs: &[&IngestRequest],
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        if reqs.len() > 1 {
            let together = self.transaction(|tx| {
                reqs.iter()
                    .map(|r| ingest_one(tx, r))
                    .collect::<TxResult<Vec<_>>>()
            });
            if let Ok(outcomes) = together {
                return outcomes.into_iter().map(Ok).collect();
            }
        }
        reqs.iter().map(|r| self.ingest(r)).collect()
    }
}

fn ingest_one(tx: &super::Tx<'_>, req: &IngestRequest) -> TxResult<IngestOutcome> {
    {
        {
            let wkey = keys::webhook(&req.channel, &req.webhook_id);
            if let Some(first) = tx_get::<WebhookReply>(tx.webhooks, trees::WEBHOOKID_REPLY, &wkey)?
            {
                return Ok(IngestOutcome::Replayed(first));
            }
            tx_put(tx.webhooks, &wkey, &req.reply)?;
            let ops = match &req.event {
                IngestEvent::Created(m) => created(tx, req, m)?,
                IngestEvent::Updated(m) => {
                    vec![new_op(
                        tx,
                        req,
                        &m.chat.id,
                        OpKind::Update { message: m.clone() },
                    )?]
                }
                IngestEvent::Deleted {
                    deletion_id,
                    chat_id,
                    user_id,
                    message_ids,
                } => deleted(
                    tx,
                    req,
                    deletion_id,
                    chat_id,
                    user_id.as_deref(),
                    message_ids,
                )?,
            };
            Ok(IngestOutcome::Accepted {
                reply: req.reply.clone(),
                ops,
            })
        }
    }
}

fn new_op(tx: &super::Tx<'_>, req: &IngestRequest, chat_id: &str, kind: OpKind) -> TxResult<Op> {
    let seq = tx.any.generate_id()?;
    let op = Op {
        seq,
        channel: req.channel.clone(),
        portal: req.portal.clone(),
        line: req.line,
        chat_id: chat_id.to_string(),
        kind,
        attempts: 0,
        accepted_at_ms: req.now_ms,
        due_at_ms: req.now_ms,
        last_error: None,
    };
    tx_put(tx.ops, &keys::u64_be(seq), &op)?;
    Ok(op)
}

/// A new message is recorded as queued; a message id seen before is not sent twice.
fn created(tx: &super::Tx<'_>, req: &IngestRequest, m: &CustomerMessage) -> TxResult<Vec<Op>> {
    let mkey = keys::message(&req.portal, req.line, &m.chat.id, &m.message.id);
    if tx.messages.get(&mkey)?.is_some() {
        tracing::info!(channel = %req.channel, message = %m.message.id, "message.created for a known message id: not sent again");
        return Ok(Vec::new());
    }
    let record = MessageRecord {
        channel: req.channel.clone(),
        user_id: m.user.id.clone(),
        state: MessageState::Queued,
        created_at_ms: req.now_ms,
        updated_at_ms: req.now_ms,
        error: None,
    };
    tx_put(tx.messages, &mkey, &record)?;
    Ok(vec![new_op(
        tx,
        req,
        &m.chat.id,
        OpKind::Send { message: m.clone() },
    )?])
}

/// One deletion record plus one item per message; items that can be resolved get an op, the
/// others are final at once.
fn deleted(
    tx: &super::Tx<'_>,
    req: &IngestRequest,
    deletion_id: &str,
    chat_id: &str,
    user_id: Option<&str>,
    message_ids: &[String],
) -> TxResult<Vec<Op>> {
    let total = u32::try_from(message_ids.len()).map_err(|_| {
        ConflictableTransactionError::Abort(StoreError::Unavailable("too many items".into()))
    })?;
    let mut ops = Vec::with_capacity(message_ids.len());
    for (index, message_id) in (0u32..).zip(message_ids) {
        let mkey = keys::message(&req.portal, req.line, chat_id, message_id);
        let known: Option<MessageRecord> = tx_get(tx.messages, trees::MESSAGE_STATE, &mkey)?;
        let user = user_id
            .map(str::to_string)
            .or_else(|| known.map(|r| r.user_id));
        let item = DeletionItem {
            message_id: message_id.clone(),
            chat_id: chat_id.to_string(),
            success: user.is_none().then_some(false),
            errors: if user.is_none() {
                vec![UNKNOWN_MESSAGE.to_string()]
            } else {
                Vec::new()
            },
            attempts: 0,
        };
        tx_put(
            tx.deletion_items,
            &keys::deletion_item(deletion_id, index),
            &item,
        )?;
        if let Some(user_id) = user {
            let kind = OpKind::Delete {
                deletion_id: deletion_id.to_string(),
                index,
                message_id: message_id.clone(),
                user_id,
            };
            ops.push(new_op(tx, req, chat_id, kind)?);
        }
    }
    let pending = ops.len() as u32;
    let record = DeletionRecord {
        id: deletion_id.to_string(),
        channel: req.channel.clone(),
        created_at_ms: req.now_ms,
        completed_at_ms: (pending == 0).then_some(req.now_ms),
        total,
        pending,
    };
    tx_put(tx.deletions, deletion_id.as_bytes(), &record)?;
    if pending == 0 {
        deliveries::tx_enqueue_report(tx, &record, req.now_ms)?;
    }
    Ok(ops)
}
