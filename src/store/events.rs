//! Pending event records: `seq_event` (a deletion's in the main database, any other in the
//! inbox), written when the event is accepted and finished by the write that records its last
//! item's result (a deletion's removal in that transaction; another's marker, `inbox.rs`); a
//! deletion's items in `seqitem_deletionitem`.
//! An item's op is built from its event header and (for deletions) its own record, in O(1).

use super::codec::decode;
use super::{Data, DeletionItem, EventRecord, Op, OpRef, StoreError, Work, keys, trees};

impl Data {
    /// The record of a pending event (a deletion's in the main database, any other in the
    /// inbox; None once finished, also while its removal from the inbox waits for a sync).
    pub fn event(&self, seq: u64) -> Result<Option<EventRecord>, StoreError> {
        let key = keys::u64_be(seq);
        let value = match self.inbox.events.get(key)? {
            Some(_) if self.is_done(seq)? => return Ok(None),
            Some(value) => value,
            None => match self.events.get(key)? {
                Some(value) => value,
                None => return Ok(None),
            },
        };
        decode(trees::SEQ_EVENT, &value).map(Some)
    }

    /// Every pending event, in seq order, read and decoded one at a time (a backlog can be
    /// large: nothing here holds more than one record).
    pub fn pending_events(&self) -> impl Iterator<Item = Result<EventRecord, StoreError>> + '_ {
        self.event_entries(0, None)
            .map(|entry| decode(trees::SEQ_EVENT, &entry?.1))
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

/// What one refill of a portal's in-memory queue found ([`Data::portal_refs`]).
#[derive(Debug, Default)]
pub struct Refill {
    pub refs: Vec<OpRef>,
    /// Where to go on (None: every durable event before `until` was read).
    pub next: Option<u64>,
    /// Events before this seq are covered by this refill (and earlier ones).
    pub until: u64,
}

impl Data {
    /// One past the highest event seq known durable: events before it are on disk for good.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The pending items of one portal's durable events from `from` on, in (seq, item) order:
    /// at most about `max_refs` of them (whole events), reading at most `max_scan` records.
    pub fn portal_refs(
        &self,
        portal: &str,
        from: u64,
        max_refs: usize,
        max_scan: usize,
    ) -> Result<Refill, StoreError> {
        let until = self.durable_seq();
        let mut refill = Refill {
            until,
            ..Refill::default()
        };
        if from >= until {
            return Ok(refill);
        }
        for (scanned, entry) in self.event_entries(from, Some(until)).enumerate() {
            let (key, value) = entry?;
            let seq = keys::parse_u64(trees::SEQ_EVENT, &key)?;
            if scanned == max_scan || refill.refs.len() >= max_refs {
                refill.next = Some(seq);
                refill.until = seq;
                return Ok(refill);
            }
            let record: EventRecord = decode(trees::SEQ_EVENT, &value)?;
            if record.portal == portal {
                refill.refs.extend(self.event_refs(&record)?);
            }
        }
        Ok(refill)
    }

    /// How many items are pending (read once at start, for the queue gauge).
    pub fn pending_item_count(&self) -> Result<usize, StoreError> {
        self.pending_events()
            .map(|record| {
                Ok(match record?.work {
                    Work::Delete { deletion, .. } => deletion.pending as usize,
                    _ => 1,
                })
            })
            .sum()
    }

    /// The portals with pending events (read once at start).
    pub fn pending_portals(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.pending_events()
            .map(|record| Ok(record?.portal.into_string()))
            .collect()
    }
}
