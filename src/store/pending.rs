//! What is pending (in `seq_event`), for the webhook-id check and for finding a queued send's
//! user: the first `storage.pending_in_memory` ([`IN_MEMORY`] by default) pending events are
//! indexed in memory (acceptance then writes only the event record); beyond that, while
//! Bitrix24 is away, acceptance also writes the event's reply into the inbox's
//! `webhookid_reply` and a send's message into its `message_state` as queued
//! (`Data::record_pending`), and lookups read the disk. The index is rebuilt from `seq_event`
//! at open (spilling again what does not fit); it is changed only on the writer thread
//! (acceptance adds, and takes its entry back if its sync fails; the transaction that finishes
//! an event removes after it commits).

use foldhash::HashMap;
use parking_lot::MutexGuard;

use super::codec::encode;
use super::{Data, EventRecord, StoreError, Work, keys};
use crate::ids::UserId;

/// Pending events indexed in memory at most, by default (`storage.pending_in_memory`; about
/// 200 bytes each).
pub const IN_MEMORY: usize = 100_000;

/// The in-memory part of the index.
#[derive(Debug)]
pub(crate) struct Pending {
    /// channel → webhook-id → seq (nested, so that a lookup borrows its keys).
    webhooks: HashMap<String, HashMap<String, u64>>,
    /// `message_state` key of a queued send → its external user id.
    sends: HashMap<Vec<u8>, UserId>,
    /// Events indexed here.
    len: usize,
    /// Events indexed here at most ([`IN_MEMORY`]).
    capacity: usize,
}

impl Pending {
    /// An empty index for at most `capacity` events.
    pub(crate) fn with_capacity(capacity: usize) -> Pending {
        Pending {
            webhooks: HashMap::default(),
            sends: HashMap::default(),
            len: 0,
            capacity,
        }
    }
}

impl Pending {
    /// The seq of a pending event by its webhook-id, if indexed here.
    pub(crate) fn webhook(&self, channel: &str, webhook_id: &str) -> Option<u64> {
        self.webhooks.get(channel)?.get(webhook_id).copied()
    }

    /// The user of a queued send, if indexed here.
    pub(crate) fn send(&self, message_key: &[u8]) -> Option<&UserId> {
        self.sends.get(message_key)
    }

    /// Index `rec` here, unless the index is full; false if not indexed.
    pub(crate) fn add(&mut self, rec: &EventRecord) -> bool {
        if self.len >= self.capacity {
            return false;
        }
        // Look the channel up first: cloning its name is needed only for its first event.
        if !self.webhooks.contains_key(rec.channel.as_str()) {
            self.webhooks
                .insert(rec.channel.to_string(), HashMap::default());
        }
        if let Some(ids) = self.webhooks.get_mut(rec.channel.as_str()) {
            ids.insert(rec.webhook_id.clone(), rec.seq);
        }
        if let Work::Send { message, .. } = &rec.work {
            let key = keys::message(&rec.portal, rec.line, &rec.chat_id, &message.message.id);
            self.sends.insert(key, message.user.id.clone());
        }
        self.len += 1;
        true
    }

    /// Drop `rec` if it is indexed here.
    pub(crate) fn remove(&mut self, rec: &EventRecord) {
        let Some(ids) = self.webhooks.get_mut(rec.channel.as_str()) else {
            return;
        };
        if ids.get(&rec.webhook_id) != Some(&rec.seq) {
            return;
        }
        ids.remove(&rec.webhook_id);
        if ids.is_empty() {
            self.webhooks.remove(rec.channel.as_str());
        }
        if let Work::Send { message, .. } = &rec.work {
            let key = keys::message(&rec.portal, rec.line, &rec.chat_id, &message.message.id);
            self.sends.remove(&key);
        }
        self.len -= 1;
    }

    /// Index at most `capacity` events here from now on (tests: the disk path with few).
    #[cfg(test)]
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }
}

impl Data {
    pub(crate) fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock()
    }

    /// Rebuild the index from `seq_event` (spilling to disk what does not fit), and bring
    /// `deletionid_seq` in line with it (an entry whose record is gone was left by a crash
    /// between the two writes).
    pub(crate) fn rebuild_pending(&self) -> Result<(), StoreError> {
        let capacity = self.pending().capacity;
        *self.pending() = Pending::with_capacity(capacity);
        // One record at a time: a backlog of any size costs one record of memory here.
        let mut deletions = std::collections::HashMap::new();
        for rec in self.pending_events() {
            let mut rec = rec?;
            self.move_inline_items(&mut rec)?;
            let indexed = self.pending().add(&rec);
            if !indexed {
                self.record_pending(&rec, true)?;
            }
            if let Work::Delete { deletion, .. } = &rec.work {
                deletions.insert(deletion.id.as_bytes().to_vec(), rec.seq);
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
