//! Pending work at open: bring what acceptance writes beside an event record (its reply, a
//! queued send's message, a deletion's `deletionid_seq` entry) in line with `seq_event`. A
//! crash between those writes, or a directory of an earlier build (which kept webhook-ids and
//! queued sends of pending events in memory), leaves a record without them. Nothing of pending
//! work is held in memory: this reads `seq_event` once, at open.

use super::codec::encode;
use super::{Data, EventRecord, StoreError, Work, keys};

impl Data {
    /// Complete what acceptance writes beside each pending event, and bring `deletionid_seq`
    /// in line with `seq_event` (an entry whose record is gone was left by a crash between
    /// the two writes).
    pub(crate) fn rebuild_pending(&self) -> Result<(), StoreError> {
        let mut events = self.pending_events()?;
        for rec in &mut events {
            self.move_inline_items(rec)?;
        }
        let mut deletions = std::collections::HashMap::new();
        for rec in &events {
            self.record_pending(rec)?;
            if let Work::Delete { deletion, .. } = &rec.work {
                deletions.insert(deletion.id.as_bytes(), rec.seq);
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
