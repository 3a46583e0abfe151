//! Pending event records: `seq_event`, written when the event is accepted and removed in the
//! transaction that records its last item's result; a deletion's items in `seqitem_deletionitem`.
//! An item's op is built from its event header and (for deletions) its own record, in O(1).

use super::codec::decode;
use super::{Data, DeletionItem, EventRecord, Op, OpRef, StoreError, Work, keys, trees};

impl Data {
    /// The record of a pending event.
    pub fn event(&self, seq: u64) -> Result<Option<EventRecord>, StoreError> {
        self.events
            .get(keys::u64_be(seq))?
            .map(|v| decode(trees::SEQ_EVENT, &v))
            .transpose()
    }

    /// Every pending event, in seq order.
    pub fn pending_events(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.events
            .iter()
            .values()
            .map(|value| decode(trees::SEQ_EVENT, &value?))
            .collect()
    }
}

impl Data {
    /// One item of a pending deletion (`seqitem_deletionitem`).
    pub fn deletion_item(&self, seq: u64, item: u32) -> Result<Option<DeletionItem>, StoreError> {
        self.items
            .get(keys::seq_item(seq, item))?
            .map(|v| decode(trees::SEQITEM_DELETIONITEM, &v))
            .transpose()
    }

    /// Every item of a pending deletion, in item order.
    pub fn deletion_items(&self, seq: u64) -> Result<Vec<(u32, DeletionItem)>, StoreError> {
        self.items
            .scan_prefix(keys::u64_be(seq))
            .map(|entry| {
                let (key, value) = entry?;
                let (_, item) = keys::parse_seq_item(trees::SEQITEM_DELETIONITEM, &key)?;
                Ok((item, decode(trees::SEQITEM_DELETIONITEM, &value)?))
            })
            .collect()
    }

    /// The queue's view of the pending items of one event (reads a deletion's items).
    pub fn event_refs(&self, record: &EventRecord) -> Result<Vec<OpRef>, StoreError> {
        Ok(match &record.work {
            Work::Delete { .. } => self
                .deletion_items(record.seq)?
                .iter()
                .filter_map(|(index, item)| record.item_ref(*index, Some(item)))
                .collect(),
            _ => record.item_ref(0, None).into_iter().collect(),
        })
    }

    /// The full ops of the pending items of one event.
    pub fn event_ops(&self, record: &EventRecord) -> Result<Vec<Op>, StoreError> {
        Ok(match &record.work {
            Work::Delete { .. } => self
                .deletion_items(record.seq)?
                .iter()
                .filter_map(|(index, item)| record.op(*index, Some(item)))
                .collect(),
            _ => record.op(0, None).into_iter().collect(),
        })
    }

    /// The full op of one pending item, reading only that item (None once it is final).
    pub fn item_op(&self, record: &EventRecord, item: u32) -> Result<Option<Op>, StoreError> {
        Ok(match &record.work {
            Work::Delete { .. } => self
                .deletion_item(record.seq, item)?
                .and_then(|i| record.op(item, Some(&i))),
            _ => record.op(item, None),
        })
    }
}
