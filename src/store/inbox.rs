//! The inbox: a second sled database, in `<data directory>/queue`, for the records that live
//! only until Bitrix24 answers: the pending sends, updates and reactions (`seq_event`) and,
//! while the in-memory index of pending events is full, their replies and queued messages
//! (`webhookid_reply`, `message_state`, pending entries only). Deletions stay in the main
//! database with their items and reports.
//!
//! Why two: sled reuses a segment of its log only once every page written in it has been
//! written again elsewhere. An event record lives for a second, a mapping for months; in one
//! log, every segment of event records also holds a few mapping writes and is kept whole for
//! them, so the log grew by about everything ever written (1.7–2.3 KiB per message against
//! about 0.3 KiB of live keys and values). In a log of its own the inbox reuses its segments
//! as fast as events finish.
//!
//! The order that keeps a result recorded exactly once across the two: a finished event's
//! result is written to the main database with a marker (`seq_done`) as its last write (its
//! commit point, [`super::Data::in_order`]); the writer syncs; only then is the event removed
//! from the inbox ([`Data::after_sync`]), which reaches the disk with the inbox's next sync;
//! after that sync its marker is removed. A marked event counts as finished everywhere
//! ([`Data::event`]), and at open marked events are removed from the inbox before anything
//! reads it ([`Data::settle_inbox`]).

use std::path::Path;

use parking_lot::Mutex;
use sled::{IVec, Tree};

use super::codec::decode;
use super::files::SledFiles;
use super::{Data, EventRecord, StoreError, Work, keys, open_db, trees};

/// Events moved into the inbox per step at open (one sync pair each), so that the move of a
/// large backlog holds a bounded list of keys.
const MOVE_CHUNK: usize = 10_000;

/// The inbox database and its trees.
pub(crate) struct Inbox {
    pub(crate) events: Tree,
    /// Replies of pending events not indexed in memory (`pending.rs`).
    pub(crate) replies: Tree,
    /// Queued sends of pending events not indexed in memory.
    pub(crate) sends: Tree,
    /// Finished events to remove once the main database's sync covered their results.
    finished: Mutex<Vec<Finished>>,
    /// Events removed here since the last sync: their markers go after the next one.
    removed: Mutex<Vec<u64>>,
    files: SledFiles,
    db: sled::Db,
}

/// The keys of a finished inbox event.
pub(crate) struct Finished {
    seq: u64,
    reply: Vec<u8>,
    send: Option<Vec<u8>>,
}

impl Finished {
    pub(crate) fn of(record: &EventRecord) -> Finished {
        let send = match &record.work {
            Work::Send { message, .. } => Some(keys::message(
                &record.portal,
                record.line,
                &record.chat_id,
                &message.message.id,
            )),
            _ => None,
        };
        Finished {
            seq: record.seq,
            reply: keys::webhook(&record.channel, &record.webhook_id),
            send,
        }
    }
}

impl Inbox {
    /// Open (creating) the inbox in `dir` with a page cache of `cache_bytes` (before sled's
    /// share is taken, as for the main database).
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> Result<Inbox, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(e.into()))?;
        let db = open_db(dir, cache_bytes)?;
        let files = SledFiles::open(dir).map_err(|e| StoreError::Sled(e.into()))?;
        Ok(Inbox {
            events: db.open_tree(trees::SEQ_EVENT)?,
            replies: db.open_tree(trees::WEBHOOKID_REPLY)?,
            sends: db.open_tree(trees::MESSAGE_STATE)?,
            finished: Mutex::new(Vec::new()),
            removed: Mutex::new(Vec::new()),
            files,
            db,
        })
    }

    /// sled's flush and an `fdatasync` of the inbox's files.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.files.sync().map_err(|e| StoreError::Sled(e.into()))
    }

    /// [`SledFiles::drop_cache`] of the inbox's log.
    pub(crate) fn drop_cache(&self) -> std::io::Result<()> {
        self.files.drop_cache()
    }

    /// The last event seq here.
    pub(crate) fn last_seq(&self) -> Result<Option<u64>, StoreError> {
        self.events
            .last()?
            .map(|(key, _)| keys::parse_u64(trees::SEQ_EVENT, &key))
            .transpose()
    }

    fn remove(&self, f: &Finished) -> Result<(), StoreError> {
        self.events.remove(keys::u64_be(f.seq))?;
        self.replies.remove(&f.reply)?;
        if let Some(send) = &f.send {
            self.sends.remove(send)?;
        }
        Ok(())
    }
}

impl Data {
    /// Remove `record` from the inbox after the coming sync (its result and marker are
    /// written; writer thread).
    pub(crate) fn finish_in_inbox(&self, record: &EventRecord) {
        self.inbox.finished.lock().push(Finished::of(record));
    }

    /// After each successful sync (writer thread): drop the markers of the events whose
    /// removal that sync covered, then remove the events finished since the last one (both
    /// written without a sync of their own: they reach the disk with the next).
    pub(crate) fn after_sync(&self) -> Result<(), StoreError> {
        let synced = std::mem::take(&mut *self.inbox.removed.lock());
        for seq in synced {
            self.done.remove(keys::u64_be(seq))?;
        }
        let finished = std::mem::take(&mut *self.inbox.finished.lock());
        for f in &finished {
            self.inbox.remove(f)?;
        }
        self.inbox
            .removed
            .lock()
            .extend(finished.iter().map(|f| f.seq));
        Ok(())
    }

    /// Whether an inbox event's result is recorded (its marker is on disk here).
    pub(crate) fn is_done(&self, seq: u64) -> Result<bool, StoreError> {
        Ok(self.done.contains_key(keys::u64_be(seq))?)
    }

    /// At open, before anything reads pending events: move the sends, updates and reactions an
    /// earlier build kept in the main database into the inbox, and remove from the inbox the
    /// events whose results were recorded before a crash (marked in `seq_done`). Each step's
    /// writes are synced before the step that relies on them (a crash midway repeats the move,
    /// which rewrites the same records); nothing is written if nothing needs it.
    pub(crate) fn settle_inbox(&self) -> Result<(), StoreError> {
        let mut from = Some(Vec::new());
        while let Some(start) = from {
            from = self.move_to_inbox(&start, MOVE_CHUNK)?;
        }
        let mut marked: Vec<IVec> = Vec::new();
        for key in self.done.iter().keys() {
            let key = key?;
            if let Some(value) = self.inbox.events.get(&key)? {
                let record: EventRecord = decode(trees::SEQ_EVENT, &value)?;
                self.inbox.remove(&Finished::of(&record))?;
            }
            marked.push(key);
        }
        if marked.is_empty() {
            return Ok(());
        }
        self.sync()?;
        for key in marked {
            self.done.remove(key)?;
        }
        self.sync()
    }

    /// Move up to `chunk` events other than deletions, from key `from` on, from the main
    /// database into the inbox: copy, sync, remove, sync. Returns where to go on, if there may
    /// be more.
    fn move_to_inbox(&self, from: &[u8], chunk: usize) -> Result<Option<Vec<u8>>, StoreError> {
        let mut moved: Vec<IVec> = Vec::new();
        for entry in self.events.range(from..) {
            let (key, value) = entry?;
            let record: EventRecord = decode(trees::SEQ_EVENT, &value)?;
            if !matches!(record.work, Work::Delete { .. }) {
                self.inbox.events.insert(&key, value)?;
                moved.push(key);
                if moved.len() == chunk {
                    break;
                }
            }
        }
        let Some(last) = moved.last() else {
            return Ok(None);
        };
        let next = (moved.len() == chunk).then(|| last.to_vec());
        self.sync()?;
        for key in moved {
            self.events.remove(key)?;
        }
        self.sync()?;
        Ok(next)
    }

    /// Pending event records of both databases, in seq order, without the finished (marked)
    /// ones, from `from` on (up to `until`, exclusive, when given).
    pub(crate) fn event_entries(
        &self,
        from: u64,
        until: Option<u64>,
    ) -> impl Iterator<Item = Result<(IVec, IVec), StoreError>> + '_ {
        let range = |tree: &Tree| match until {
            Some(until) => tree.range(keys::u64_be(from)..keys::u64_be(until)),
            None => tree.range(keys::u64_be(from)..),
        };
        Merged {
            a: range(&self.events).peekable(),
            b: range(&self.inbox.events).peekable(),
        }
        .filter_map(move |entry| match entry {
            Ok((key, value)) => match self.done.contains_key(&key) {
                Ok(true) => None,
                Ok(false) => Some(Ok((key, value))),
                Err(e) => Some(Err(e.into())),
            },
            Err(e) => Some(Err(e.into())),
        })
    }
}

/// Two key-ordered iterators as one (their keys are disjoint: seqs are unique).
struct Merged {
    a: std::iter::Peekable<sled::Iter>,
    b: std::iter::Peekable<sled::Iter>,
}

impl Iterator for Merged {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => true,
            (None, Some(_)) | (_, Some(Err(_))) => false,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka <= kb,
        };
        if take_a { self.a.next() } else { self.b.next() }
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
