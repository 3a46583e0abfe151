//! Deletion reports: pending ones are read from their event record (`seq_event`) and items
//! (`seqitem_deletionitem`), finished ones from
//! `deletionid_deletion`.

use super::codec::decode;
use super::{Data, DeletionItem, DeletionRecord, DeletionReport, StoreError, Work, keys, trees};
use crate::ids::DeletionId;

impl Data {
    /// A deletion and its items in index order.
    pub fn deletion(
        &self,
        deletion_id: &DeletionId,
    ) -> Result<Option<(DeletionRecord, Vec<DeletionItem>)>, StoreError> {
        // Lock-free for the caller (an HTTP worker): sled reads, no index shared with the writer.
        let pending = self
            .pending_deletions
            .get(deletion_id.as_bytes())?
            .map(|v| keys::parse_u64(trees::DELETIONID_SEQ, &v))
            .transpose()?;
        if let Some(seq) = pending
            && let Some(record) = self.event(seq)?
            && let Work::Delete { deletion, .. } = record.work
        {
            let items = self.deletion_items(seq)?.into_iter().map(|(_, i)| i);
            return Ok(Some((deletion, items.collect())));
        }
        // Finished (or finished between the two reads: the same transaction that removed the
        // event wrote the report).
        Ok(self
            .deletions
            .get(deletion_id.as_bytes())?
            .map(|v| decode::<DeletionReport>(trees::DELETIONID_DELETION, &v))
            .transpose()?
            .map(|r| (r.deletion, r.items)))
    }
}
