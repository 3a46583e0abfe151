//! Pending event records, wherever they are: in the acceptance journal (accepted, not yet
//! touched by the outbox) or in `seq_event` (touched, or retired from the journal). A record is
//! never in both: it leaves the journal in the sled transaction that puts it in `seq_event` or
//! finishes it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::MutexGuard;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::codec::decode;
use super::journal::Journal;
use super::{Data, EventRecord, StoreError, keys, trees};

/// Open the journal of `dir`, keeping the records that are still pending and only there.
pub(super) fn open_journal(
    dir: &Path,
    meta: &sled::Tree,
    events: &sled::Tree,
    webhooks: &sled::Tree,
) -> Result<Journal, StoreError> {
    let floor = match meta.get(trees::META_JOURNAL_FLOOR)? {
        Some(v) => keys::parse_u64(trees::META, &v)?,
        None => 0,
    };
    Journal::open(dir, floor, |payload| {
        let record: EventRecord = decode(super::journal::DIR, payload)?;
        let moved = events.contains_key(keys::u64_be(record.seq))?;
        let finished = webhooks.contains_key(keys::webhook(&record.channel, &record.webhook_id))?;
        Ok((!moved && !finished).then_some(record.seq))
    })
}

impl Data {
    pub(crate) fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record of a pending event.
    pub fn event(&self, seq: u64) -> Result<Option<EventRecord>, StoreError> {
        if let Some(bytes) = self.journal().read(seq)? {
            return decode(super::journal::DIR, &bytes).map(Some);
        }
        self.events
            .get(keys::u64_be(seq))?
            .map(|v| decode(trees::SEQ_EVENT, &v))
            .transpose()
    }

    /// Every pending event, in seq order.
    pub fn pending_events(&self) -> Result<Vec<EventRecord>, StoreError> {
        // The journal first: a record leaves it only after the sled write that holds it (or
        // finishes it) is applied, so reading in this order cannot miss a record that moves
        // meanwhile; one seen in both places is taken from sled, the newer.
        let seqs = self.journal().seqs();
        let mut events = self.journaled_events(seqs)?;
        for value in self.events.iter().values() {
            let record: EventRecord = decode(trees::SEQ_EVENT, &value?)?;
            events.insert(record.seq, record);
        }
        let mut events: Vec<EventRecord> = events.into_values().collect();
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// Those of these events that only the journal has.
    pub(crate) fn journaled_events(
        &self,
        seqs: impl IntoIterator<Item = u64>,
    ) -> Result<HashMap<u64, EventRecord>, StoreError> {
        let journal = self.journal();
        let mut out = HashMap::new();
        for seq in seqs {
            if let Some(bytes) = journal.read(seq)? {
                out.insert(seq, decode(super::journal::DIR, &bytes)?);
            }
        }
        Ok(out)
    }

    /// These records left the journal (moved into `seq_event` or finished, in a sled write
    /// already applied).
    pub(crate) fn forget_journaled(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut journal = self.journal();
        seqs.into_iter().for_each(|seq| journal.remove(seq));
    }

    /// Copy the pending records of journal segments below `below` into `seq_event` and raise
    /// the journal's floor to `below`, in one sled transaction (call under the apply lock).
    /// Returns how many records moved.
    pub(crate) fn retire_journal(&self, below: u64) -> Result<usize, StoreError> {
        let records: Vec<(u64, Vec<u8>)> = {
            let journal = self.journal();
            journal
                .seqs_below(below)
                .into_iter()
                .filter_map(|seq| journal.read(seq).transpose().map(|r| r.map(|b| (seq, b))))
                .collect::<Result<_, _>>()?
        };
        (&self.events, &self.meta)
            .transaction(|(events, meta)| {
                for (seq, bytes) in &records {
                    events.insert(&keys::u64_be(*seq), bytes.as_slice())?;
                }
                meta.insert(trees::META_JOURNAL_FLOOR, &below.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(super::tx_error)?;
        self.forget_journaled(records.iter().map(|(seq, _)| *seq));
        Ok(records.len())
    }

    /// Retire every record the journal has (before a purge walks `seq_event`).
    pub(crate) fn retire_whole_journal(&self) -> Result<usize, StoreError> {
        let below = self.journal().close_current()?;
        self.retire_journal(below)
    }

    /// Make every write applied so far durable: the journal's appends always, sled's writes
    /// when `store` (then also delete journal segments whose records all left before it).
    pub(crate) fn sync(&self, store: bool) -> Result<(), StoreError> {
        let job = self.journal().write_out()?;
        if let Some(job) = job {
            job.run()
                .map_err(|e| StoreError::Unavailable(format!("journal: fdatasync: {e}")))?;
        }
        if store {
            let dead = self.journal().dead_segments();
            self.db.flush()?;
            self.journal().delete(&dead);
        }
        Ok(())
    }
}
