//! The acceptance journal: where an accepted event record lives until the outbox first records
//! a result for it (then it moves into `seq_event`, in the same sled transaction as the result)
//! or the journal retires it into `seq_event`.
//!
//! Accepting an event appends one frame to an in-memory buffer; the flush thread writes the
//! buffer and `fdatasync`s the segment file, once for every request that arrived meanwhile. This
//! keeps sled (its B-tree writes, node splits and log flushes) off the acceptance path.
//!
//! Layout: `<data dir>/journal/<segment id, 20 digits>.log`, each a sequence of frames
//! `[payload length u32 LE][CRC-32 of payload u32 LE][payload]`, the payload an `EventRecord` as
//! JSON. Only the newest segment is appended to. A frame that is cut short or fails its CRC ends
//! its segment (the tail of a write a crash interrupted; it was never acknowledged).
//!
//! A record in a segment is *live* while it is pending and only the journal has it. At open, a
//! record is dead if `seq_event` has its seq (it moved) or `webhookid_reply` has its webhook-id
//! (it finished). A segment without live records is deleted after a sled flush that covers the
//! deaths. Segments below `meta.journal_floor` were retired (their live records copied into
//! `seq_event` by the same sled transaction that raised the floor) and are deleted at open.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::StoreError;

/// Name of the journal's directory inside the data directory.
pub(crate) const DIR: &str = "journal";
/// A segment is closed (a new one started) once it holds this many bytes...
const SEGMENT_BYTES: u64 = 8 << 20;
/// ...or once it is this old and not empty, so that a quiet gateway's segments die too.
const SEGMENT_AGE: Duration = Duration::from_secs(60);
/// Segments older than this, or beyond [`MAX_SEGMENTS`], are retired into `seq_event`: the
/// journal holds short-lived work, sled the long-lived backlog of an outage.
pub(crate) const RETIRE_AGE: Duration = Duration::from_secs(600);
pub(crate) const MAX_SEGMENTS: usize = 64;
const HEADER: usize = 8;
/// Name of the zero-filled file that becomes the next segment.
const SPARE: &str = "spare.tmp";

/// Where a live record's payload is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u64,
    offset: u64,
    len: u32,
}

struct Segment {
    file: Arc<File>,
    /// Bytes in the file (written).
    written: u64,
    /// Bytes appended, written or still in the buffer (current segment only).
    appended: u64,
    live: usize,
    opened: Instant,
}

/// The journal's state; guarded by a mutex in `Data`.
pub(crate) struct Journal {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    current: u64,
    /// Frames appended to the current segment and not yet written.
    buffer: Vec<u8>,
    /// A zero-filled file ready to become the next segment (see [`prepare_spare`]).
    spare: Option<PathBuf>,
    /// When preparing a spare last failed (no retry for a while: the disk may be full).
    spare_failed: Option<Instant>,
    /// A spare is being prepared.
    spare_requested: bool,
    /// Closed segments whose last writes still need an fdatasync.
    unsynced: Vec<Arc<File>>,
    index: HashMap<u64, Entry>,
}

/// What the flush thread has to make durable.
pub(crate) struct SyncJob {
    files: Vec<Arc<File>>,
}

impl SyncJob {
    /// fdatasync every file written since the last sync.
    pub(crate) fn run(self) -> std::io::Result<()> {
        self.files.iter().try_for_each(|f| f.sync_data())
    }
}

fn io(context: &str, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("journal: {context}: {e}"))
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.log"))
}

impl Journal {
    /// Open the journal in `data_dir`: drop segments below `floor`, read the others and index
    /// the records that `live` gives a seq for, delete segments with none, and start a new
    /// segment.
    pub(crate) fn open(
        data_dir: &Path,
        floor: u64,
        mut live: impl FnMut(&[u8]) -> Result<Option<u64>, StoreError>,
    ) -> Result<Journal, StoreError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io("create directory", e))?;
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io("list", e))? {
            let name = entry.map_err(|e| io("list", e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(".log")
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        // A spare left by the previous run may be only partly zero-filled.
        let _ = std::fs::remove_file(dir.join(SPARE));
        let mut journal = Journal {
            dir,
            segments: BTreeMap::new(),
            current: 0,
            buffer: Vec::new(),
            spare: None,
            spare_failed: None,
            spare_requested: false,
            unsynced: Vec::new(),
            index: HashMap::new(),
        };
        let mut next = floor;
        for id in ids {
            next = next.max(id + 1);
            let path = segment_path(&journal.dir, id);
            if id < floor {
                std::fs::remove_file(&path).map_err(|e| io("remove retired segment", e))?;
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| io("read segment", e))?;
            let (frames, valid) = frames(&bytes);
            if bytes[valid..].iter().any(|b| *b != 0) {
                tracing::warn!(
                    segment = id,
                    ignored_bytes = bytes.len() - valid,
                    "journal segment ends in a partial or damaged record (a write cut short by a \
                     crash is never acknowledged); the rest of the segment is ignored"
                );
            }
            let mut segment_live = 0;
            for (offset, payload) in frames {
                let Some(seq) = live(payload)? else {
                    continue;
                };
                journal.index.insert(
                    seq,
                    Entry {
                        segment: id,
                        offset: offset as u64,
                        len: payload.len() as u32,
                    },
                );
                segment_live += 1;
            }
            if segment_live == 0 {
                std::fs::remove_file(&path).map_err(|e| io("remove dead segment", e))?;
                continue;
            }
            let file = File::open(&path).map_err(|e| io("open segment", e))?;
            journal.segments.insert(
                id,
                Segment {
                    file: Arc::new(file),
                    written: valid as u64,
                    appended: valid as u64,
                    live: segment_live,
                    opened: Instant::now(),
                },
            );
        }
        let spare = journal.dir.join(SPARE);
        if prepare_spare(&spare).is_ok() {
            journal.spare = Some(spare);
        }
        journal.start_segment(next)?;
        Ok(journal)
    }

    /// Create segment `id` (and make its name durable) and append to it from now on.
    fn start_segment(&mut self, id: u64) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, id);
        if let Some(spare) = self.spare.take() {
            std::fs::rename(&spare, &path).map_err(|e| io("use spare segment", e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&path)
            .map_err(|e| io("create segment", e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync directory", e))?;
        self.segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                written: 0,
                appended: 0,
                live: 0,
                opened: Instant::now(),
            },
        );
        self.current = id;
        Ok(())
    }

    /// Append a record (the JSON of an `EventRecord` with this seq).
    pub(crate) fn append(&mut self, seq: u64, payload: &[u8]) {
        let segment = self
            .segments
            .get_mut(&self.current)
            .expect("the current segment exists");
        self.buffer
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buffer
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buffer.extend_from_slice(payload);
        let offset = segment.appended + HEADER as u64;
        segment.appended += (HEADER + payload.len()) as u64;
        segment.live += 1;
        self.index.insert(
            seq,
            Entry {
                segment: self.current,
                offset,
                len: payload.len() as u32,
            },
        );
    }

    /// The payload of a live record.
    pub(crate) fn read(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(e) = self.index.get(&seq) else {
            return Ok(None);
        };
        let segment = &self.segments[&e.segment];
        let len = e.len as usize;
        if e.segment == self.current && e.offset >= segment.written {
            let start = (e.offset - segment.written) as usize;
            return Ok(Some(self.buffer[start..start + len].to_vec()));
        }
        let mut bytes = vec![0; len];
        segment
            .file
            .read_exact_at(&mut bytes, e.offset)
            .map_err(|e| io("read record", e))?;
        Ok(Some(bytes))
    }

    /// Seqs of every live record, in seq order.
    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.seqs_below(u64::MAX)
    }

    /// Seqs of live records in segments below `segment`.
    pub(crate) fn seqs_below(&self, segment: u64) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .index
            .iter()
            .filter(|(_, e)| e.segment < segment)
            .map(|(s, _)| *s)
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// Forget a record: it moved into `seq_event` or finished (in a sled write that the next
    /// sled flush makes durable; only then is its segment deleted).
    pub(crate) fn remove(&mut self, seq: u64) {
        if let Some(e) = self.index.remove(&seq)
            && let Some(segment) = self.segments.get_mut(&e.segment)
        {
            segment.live -= 1;
        }
    }

    /// Write what was appended (under the lock, so that reads find every record either in the
    /// buffer or in the file), close the segment if it is full or old, and return what the
    /// caller must fdatasync outside the lock. None when nothing was appended since last time.
    pub(crate) fn write_out(&mut self) -> Result<Option<SyncJob>, StoreError> {
        let mut files = std::mem::take(&mut self.unsynced);
        if !self.buffer.is_empty() {
            let segment = self
                .segments
                .get_mut(&self.current)
                .expect("current segment");
            segment
                .file
                .write_all_at(&self.buffer, segment.written)
                .map_err(|e| io("write", e))?;
            segment.written += self.buffer.len() as u64;
            self.buffer.clear();
            files.push(segment.file.clone());
            let full = segment.appended >= SEGMENT_BYTES || segment.opened.elapsed() >= SEGMENT_AGE;
            if full {
                self.start_segment(self.current + 1)?;
            }
        }
        Ok((!files.is_empty()).then_some(SyncJob { files }))
    }

    /// Close the current segment now (if it has records), so that every record so far is in a
    /// segment below the returned id.
    pub(crate) fn close_current(&mut self) -> Result<u64, StoreError> {
        if self.segments[&self.current].appended > 0 {
            if let Some(job) = self.write_out()? {
                self.unsynced.extend(job.files);
            }
            if self.segments[&self.current].appended > 0 {
                self.start_segment(self.current + 1)?;
            }
        }
        Ok(self.current)
    }

    /// Closed segments without live records (deletable once the sled flush that follows this
    /// call is done).
    pub(crate) fn dead_segments(&self) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|(id, s)| **id != self.current && s.live == 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Delete these segments (found dead by [`Journal::dead_segments`] before a sled flush that
    /// has since completed).
    pub(crate) fn delete(&mut self, ids: &[u64]) {
        for id in ids {
            if *id != self.current && self.segments.get(id).is_some_and(|s| s.live == 0) {
                self.segments.remove(id);
                if let Err(e) = std::fs::remove_file(segment_path(&self.dir, *id)) {
                    tracing::warn!(segment = id, error = %e, "cannot delete a dead journal segment");
                }
            }
        }
    }

    /// The segment id below which records should be retired into `seq_event` now (too old, or
    /// too many segments), if any.
    pub(crate) fn retire_below(&self) -> Option<u64> {
        self.retire_below_at(Instant::now())
    }

    /// [`Journal::retire_below`] as of `now`.
    fn retire_below_at(&self, now: Instant) -> Option<u64> {
        let closed: Vec<(&u64, &Segment)> = self
            .segments
            .iter()
            .filter(|(id, s)| **id != self.current && s.live > 0)
            .collect();
        let by_count = closed
            .len()
            .checked_sub(MAX_SEGMENTS)
            .filter(|&extra| extra > 0)
            .map(|extra| *closed[extra].0);
        let by_age = closed
            .iter()
            .take_while(|(_, s)| now.saturating_duration_since(s.opened) >= RETIRE_AGE)
            .last()
            .map(|(id, _)| **id + 1);
        by_count.max(by_age)
    }

    /// Where to prepare a spare segment, if none is ready or being prepared (the caller then
    /// prepares it and reports with [`Journal::spare_prepared`]).
    pub(crate) fn request_spare(&mut self) -> Option<PathBuf> {
        let failed_lately = self
            .spare_failed
            .is_some_and(|at| at.elapsed() < SEGMENT_AGE);
        if self.spare.is_some() || self.spare_requested || failed_lately {
            return None;
        }
        self.spare_requested = true;
        Some(self.dir.join(SPARE))
    }

    /// The outcome of [`prepare_spare`] at `path`.
    pub(crate) fn spare_prepared(&mut self, path: PathBuf, outcome: std::io::Result<()>) {
        self.spare_requested = false;
        match outcome {
            Ok(()) => self.spare = Some(path),
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare a spare journal segment");
                self.spare_failed = Some(Instant::now());
            }
        }
    }

    /// Number of live records (pending events only the journal has).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

/// Write a zero-filled file of a segment's size at `path` and make it durable (call without the
/// journal's lock; it takes milliseconds). A segment that starts from it has its blocks
/// allocated, so an fdatasync of an append needs no file-system metadata commit (measured on
/// ext4: about a third of the wall time and CPU of appending to a growing file).
pub(crate) fn prepare_spare(path: &Path) -> std::io::Result<()> {
    let file = File::create(path)?;
    let zeros = vec![0u8; 1 << 20];
    for i in 0..(SEGMENT_BYTES >> 20) + 1 {
        file.write_all_at(&zeros, i << 20)?;
    }
    file.sync_all()
}

/// The valid frames of a segment (payload offset, payload) and the length they cover.
fn frames(bytes: &[u8]) -> (Vec<(usize, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + HEADER;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        out.push((start, payload));
        at = start + len;
    }
    (out, at)
}

#[cfg(test)]
mod tests;
