//! In-memory index of what is pending (in `seq_event`): webhook-ids, deletion ids and queued
//! sends. Rebuilt from `seq_event` when the store opens; changed only on the writer thread
//! (acceptance adds, and takes its entry back if its sync fails; the transaction that finishes
//! an event removes after it commits).

use parking_lot::MutexGuard;

use foldhash::HashMap;

use super::codec::encode;
use super::{Data, EventRecord, StoreError, Work, keys};
use crate::ids::UserId;

/// The index.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// channel → webhook-id → seq (nested, so that a lookup borrows its keys).
    webhooks: HashMap<String, HashMap<String, u64>>,
    /// `message_state` key of a queued send → its external user id.
    pub sends: HashMap<Vec<u8>, UserId>,
}

impl Pending {
    /// The seq of a pending event by its webhook-id.
    pub(crate) fn webhook(&self, channel: &str, webhook_id: &str) -> Option<u64> {
        self.webhooks.get(channel)?.get(webhook_id).copied()
    }

    pub(crate) fn add(&mut self, rec: &EventRecord) {
        // Look the channel up first: cloning its name is needed only for its first event.
        if !self.webhooks.contains_key(rec.channel.as_str()) {
            self.webhooks
                .insert(rec.channel.to_string(), HashMap::default());
        }
        if let Some(ids) = self.webhooks.get_mut(rec.channel.as_str()) {
            ids.insert(rec.webhook_id.clone(), rec.seq);
        }
        match &rec.work {
            Work::Send { message, .. } => {
                let key = keys::message(&rec.portal, rec.line, &rec.chat_id, &message.message.id);
                self.sends.insert(key, message.user.id.clone());
            }
            Work::Delete { .. } | Work::Update { .. } | Work::Reaction { .. } => {}
        }
    }

    pub(crate) fn remove(&mut self, rec: &EventRecord) {
        if let Some(ids) = self.webhooks.get_mut(rec.channel.as_str()) {
            ids.remove(&rec.webhook_id);
            if ids.is_empty() {
                self.webhooks.remove(rec.channel.as_str());
            }
        }
        match &rec.work {
            Work::Send { message, .. } => {
                let key = keys::message(&rec.portal, rec.line, &rec.chat_id, &message.message.id);
                self.sends.remove(&key);
            }
            Work::Delete { .. } | Work::Update { .. } | Work::Reaction { .. } => {}
        }
    }
}

impl Data {
    pub(crate) fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock()
    }

    /// Rebuild the index from `seq_event`, and bring `deletionid_seq` in line with it (an
    /// entry whose record is gone was left by a crash between the two writes).
    pub(crate) fn rebuild_pending(&self) -> Result<(), StoreError> {
        let mut events = self.pending_events()?;
        for rec in &mut events {
            self.move_inline_items(rec)?;
        }
        let mut deletions = std::collections::HashMap::new();
        {
            let mut pending = self.pending();
            *pending = Pending::default();
            for rec in &events {
                pending.add(rec);
                if let Work::Delete { deletion, .. } = &rec.work {
                    deletions.insert(deletion.id.as_bytes(), rec.seq);
                }
            }
        }
        for key in self.pending_deletions.iter().keys() {
            let key = key?;
            if !deletions.contains_key(key.as_ref()) {
                self.pending_deletions.remove(key)?;
            }
        }
        for (id, seq) in deletions {
            self.pending_deletions.insert(id, &keys::u64_be(seq))?;
        }
        Ok(())
    }
}

impl Data {
    /// A deletion record of an earlier build carries its items inline: move them to their own
    /// keys (`seqitem_deletionitem`), in one transaction with the record's rewrite.
    fn move_inline_items(&self, rec: &mut EventRecord) -> Result<(), StoreError> {
        let Work::Delete { items, .. } = &mut rec.work else {
            return Ok(());
        };
        if items.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(items);
        let (seq, header) = (rec.seq, encode(&*rec));
        self.transaction(|tx| {
            for (index, item) in (0u32..).zip(&items) {
                tx.items.insert(&keys::seq_item(seq, index), encode(item))?;
            }
            tx.events.insert(&keys::u64_be(seq), header.clone())?;
            Ok(())
        })
    }
}
