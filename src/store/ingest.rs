//! Accepting a platform event. The common case is one sled write: the event record into the
//! inbox's `seq_event` (a deletion's, with its items, into the main database's; the webhook-id
//! check reads the index of pending events, `pending.rs`, and `webhookid_reply`); when the
//! in-memory part of that index is full, the event's reply and a send's queued message are
//! written into the inbox beside it. Acceptance runs on the writer thread,
//! so the check and the writes cannot interleave with another acceptance; what it added is
//! taken back if the group's sync fails (and the store is poisoned: nothing later is answered).

use super::codec::{decode, encode, tx_put};
use super::committer::Applied;
use super::feed::Committed;
use super::retention::{Kind, tx_index};
use super::{
    Data, DeletionItem, DeletionRecord, DeletionReport, EventRecord, ItemState, MessageRecord,
    MessageState, OpRef, StoreError, WebhookReply, Work, deliveries, keys, trees,
};
use crate::domain::Event;
use crate::ids::{ChannelId, ChatId, DeletionId, MemberId, MessageId, UserId};

/// An authenticated, validated platform event, ready to be stored.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub channel: ChannelId,
    pub webhook_id: String,
    pub portal: MemberId,
    pub line: u64,
    pub event: Event,
    /// The id of an [`Event::Deleted`], made by the HTTP layer, which replies with it (`None` for
    /// other events; a deletion without one gets a fresh id nobody was told).
    pub deletion_id: Option<DeletionId>,
    /// The reply to give now and to replay for a retry of the same webhook-id.
    pub reply: WebhookReply,
    pub now_ms: u64,
}

/// Result of [`Data::ingest`].
#[derive(Debug, Clone)]
pub enum IngestOutcome {
    /// Stored now; these items are new work.
    Accepted {
        reply: WebhookReply,
        ops: Vec<OpRef>,
    },
    /// The webhook-id was accepted before: nothing changed, here is the first reply.
    Replayed(WebhookReply),
}

/// Why an item of a deletion can never be sent.
pub const UNKNOWN_MESSAGE: &str =
    "unknown message: the gateway has no record of it and the event gave no user.id";

impl Data {
    /// Store an event (call on the writer thread: `Store::ingest` or `Store::commit`).
    pub fn ingest(&self, req: &IngestRequest) -> Result<IngestOutcome, StoreError> {
        self.ingest_undoable(req.clone())
            .map(|applied| applied.value)
    }

    /// [`Data::ingest`], with what takes its in-memory index entries back if it never becomes
    /// durable.
    pub(crate) fn ingest_undoable(
        &self,
        req: IngestRequest,
    ) -> Result<Applied<IngestOutcome>, StoreError> {
        if let Some(first) = self.first_reply(&req.channel, &req.webhook_id)? {
            return Ok(IngestOutcome::Replayed(first).into());
        }
        let seq = self.generate_id()?;
        self.applied_seq
            .fetch_max(seq + 1, std::sync::atomic::Ordering::SeqCst);
        if let Event::Created(m) = &req.event
            && self
                .known_user(&req.portal, req.line, &m.chat.id, &m.message.id)?
                .is_some()
        {
            tracing::info!(channel = %req.channel, message = %m.message.id, "message.created for a known message id: not sent again");
            self.finish_without_work(&req)?;
            return Ok(accepted(&req, Vec::new()).into());
        }
        let state = due(req.now_ms);
        let reply = req.reply.clone();
        let mut items = Vec::new();
        let (chat_id, work) = match req.event {
            Event::Created(message) => (message.chat.id.clone(), Work::Send { message, state }),
            Event::Updated(message) => (message.chat.id.clone(), Work::Update { message, state }),
            Event::Reaction {
                added,
                chat_id,
                message_id,
                reaction,
                ..
            } => {
                let work = Work::Reaction {
                    added,
                    message_id,
                    reaction,
                    state,
                };
                (chat_id, work)
            }
            Event::Deleted {
                chat_id,
                user_id,
                message_ids,
            } => {
                let target = Target {
                    channel: &req.channel,
                    portal: &req.portal,
                    line: req.line,
                    chat_id: &chat_id,
                    now_ms: req.now_ms,
                };
                // The HTTP layer always names it (its reply carries it); one made here could not
                // be reported to anyone.
                let deletion_id = req.deletion_id.clone().unwrap_or_else(DeletionId::generate);
                let (work, all) = self.deletion_work(&target, deletion_id, user_id, message_ids)?;
                items = all;
                (chat_id, work)
            }
        };
        let record = EventRecord {
            seq,
            channel: req.channel,
            webhook_id: req.webhook_id,
            reply: req.reply,
            portal: req.portal,
            line: req.line,
            chat_id,
            accepted_at_ms: req.now_ms,
            work,
        };
        if let Work::Delete { deletion, .. } = &record.work
            && deletion.pending == 0
        {
            self.finish_deletion_now(&record, deletion, &items)?;
            return Ok(IngestOutcome::Accepted {
                reply,
                ops: Vec::new(),
            }
            .into());
        }
        let ops: Vec<OpRef> = if let Work::Delete { deletion, .. } = &record.work {
            self.pending_deletions
                .insert(deletion.id.as_bytes(), &keys::u64_be(seq))?;
            // The header and every item in one transaction: after a crash, all or none.
            let header = encode(&record);
            self.transaction(|tx| {
                for (index, item) in (0u32..).zip(&items) {
                    tx.items.insert(&keys::seq_item(seq, index), encode(item))?;
                }
                tx.events.insert(&keys::u64_be(seq), header.clone())?;
                Ok(())
            })?;
            (0u32..)
                .zip(&items)
                .filter_map(|(index, item)| record.item_ref(index, Some(item)))
                .collect()
        } else {
            self.inbox
                .events
                .insert(keys::u64_be(seq), encode(&record))?;
            record.item_ref(0, None).into_iter().collect()
        };
        // Indexed in memory while that index has room, else on disk: after the record, so a
        // crash between the writes leaves a record without them, which `rebuild_pending`
        // completes at open (never a reply without its work).
        let in_memory = self.pending().add(&record);
        if !in_memory {
            self.record_pending(&record, false)?;
        }
        self.stage(Committed::Ops(ops.clone()));
        Ok(Applied {
            value: IngestOutcome::Accepted { reply, ops },
            undo: Some(Box::new(move |data: &Data| {
                data.pending().remove(&record);
                // Best effort: the store is poisoned, this only hides it from reads.
                let _ = data.forget_pending(&record, !in_memory);
            })),
        })
    }

    /// The reply of a pending event and, for a send, its message as queued, for an event the
    /// in-memory index has no room for (`missing_only`: only what is not there yet, at open;
    /// acceptance has just found neither). Both are indexed for retention when the event
    /// finishes (`ops.rs`).
    pub(crate) fn record_pending(
        &self,
        record: &EventRecord,
        missing_only: bool,
    ) -> Result<(), StoreError> {
        let reply_key = keys::webhook(&record.channel, &record.webhook_id);
        if !missing_only || !self.inbox.replies.contains_key(&reply_key)? {
            self.inbox
                .replies
                .insert(&reply_key, encode(&record.reply))?;
        }
        if let Work::Send { message, .. } = &record.work {
            let key = keys::message(
                &record.portal,
                record.line,
                &record.chat_id,
                &message.message.id,
            );
            if !missing_only || !self.inbox.sends.contains_key(&key)? {
                let queued = MessageRecord {
                    user_id: message.user.id.clone(),
                    state: MessageState::Queued,
                    created_at_ms: record.accepted_at_ms,
                    updated_at_ms: record.accepted_at_ms,
                    error: None,
                };
                self.inbox.sends.insert(&key, encode(&queued))?;
            }
        }
        Ok(())
    }

    /// Take back what acceptance wrote beside an event that never became durable
    /// (`spilled`: what [`Data::record_pending`] wrote too).
    fn forget_pending(&self, record: &EventRecord, spilled: bool) -> Result<(), StoreError> {
        if spilled {
            self.inbox
                .replies
                .remove(keys::webhook(&record.channel, &record.webhook_id))?;
        }
        match &record.work {
            Work::Send { message, .. } if spilled => {
                let key = keys::message(
                    &record.portal,
                    record.line,
                    &record.chat_id,
                    &message.message.id,
                );
                self.inbox.sends.remove(key)?;
            }
            Work::Delete { deletion, .. } => {
                self.pending_deletions.remove(deletion.id.as_bytes())?;
            }
            Work::Send { .. } | Work::Update { .. } | Work::Reaction { .. } => {}
        }
        Ok(())
    }

    /// The reply given to this webhook-id before, pending or finished.
    pub(crate) fn first_reply(
        &self,
        channel: &str,
        webhook_id: &str,
    ) -> Result<Option<WebhookReply>, StoreError> {
        let pending = self.pending().webhook(channel, webhook_id);
        if let Some(seq) = pending
            && let Some(record) = self.event(seq)?
        {
            return Ok(Some(record.reply));
        }
        let key = keys::webhook(channel, webhook_id);
        let stored = match self.inbox.replies.get(&key)? {
            Some(value) => Some(value),
            None => self.webhooks.get(&key)?,
        };
        stored
            .map(|v| decode(trees::WEBHOOKID_REPLY, &v))
            .transpose()
    }

    /// The external user of a message the gateway knows: queued, or answered by Bitrix24.
    fn known_user(
        &self,
        portal: &str,
        line: u64,
        chat: &str,
        message: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let key = keys::message(portal, line, chat, message);
        if let Some(user) = self.pending().send(&key) {
            return Ok(Some(user.clone()));
        }
        Ok(self
            .message_record(portal, line, chat, message)?
            .map(|m| m.user_id))
    }

    fn deletion_work(
        &self,
        target: &Target<'_>,
        deletion_id: DeletionId,
        user_id: Option<UserId>,
        message_ids: Vec<MessageId>,
    ) -> Result<(Work, Vec<DeletionItem>), StoreError> {
        let mut items = Vec::with_capacity(message_ids.len());
        for message_id in message_ids {
            let user = match &user_id {
                Some(u) => Some(u.clone()),
                None => self.known_user(target.portal, target.line, target.chat_id, &message_id)?,
            };
            let unknown = user.is_none();
            items.push(DeletionItem {
                message_id,
                chat_id: target.chat_id.clone(),
                user_id: user,
                success: unknown.then_some(false),
                errors: if unknown {
                    vec![UNKNOWN_MESSAGE.to_string()]
                } else {
                    Vec::new()
                },
                state: due(target.now_ms),
            });
        }
        let pending = items.iter().filter(|i| i.success.is_none()).count() as u32;
        let work = Work::Delete {
            deletion: DeletionRecord {
                id: deletion_id,
                channel: target.channel.to_string(),
                created_at_ms: target.now_ms,
                completed_at_ms: (pending == 0).then_some(target.now_ms),
                total: items.len() as u32,
                pending,
            },
            items: Vec::new(),
        };
        Ok((work, items))
    }

    /// An event with nothing to send: only its reply needs keeping.
    fn finish_without_work(&self, req: &IngestRequest) -> Result<(), StoreError> {
        let key = keys::webhook(&req.channel, &req.webhook_id);
        self.webhooks.insert(&key, encode(&req.reply))?;
        self.index(Kind::Reply, req.reply.at_ms, &key)
    }

    /// A deletion none of whose items can be sent is complete at once: report and callback.
    fn finish_deletion_now(
        &self,
        req: &EventRecord,
        deletion: &DeletionRecord,
        items: &[DeletionItem],
    ) -> Result<(), StoreError> {
        let report = DeletionReport {
            deletion: deletion.clone(),
            items: items.to_vec(),
        };
        self.transaction(|tx| {
            let reply_key = keys::webhook(&req.channel, &req.webhook_id);
            tx_put(tx.webhooks, &reply_key, &req.reply)?;
            tx_index(tx, Kind::Reply, req.reply.at_ms, &reply_key)?;
            tx_put(tx.deletions, deletion.id.as_bytes(), &report)?;
            tx_index(tx, Kind::Report, req.accepted_at_ms, deletion.id.as_bytes())?;
            deliveries::tx_enqueue_report(tx, deletion, req.accepted_at_ms)
        })
    }
}

/// Where a deletion's items belong.
struct Target<'a> {
    channel: &'a str,
    portal: &'a str,
    line: u64,
    chat_id: &'a ChatId,
    now_ms: u64,
}

fn due(now_ms: u64) -> ItemState {
    ItemState {
        attempts: 0,
        due_at_ms: now_ms,
        last_error: None,
    }
}

fn accepted(req: &IngestRequest, ops: Vec<OpRef>) -> IngestOutcome {
    IngestOutcome::Accepted {
        reply: req.reply.clone(),
        ops,
    }
}
