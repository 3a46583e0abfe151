//! One-way import of the acceptance journal that earlier builds kept beside sled
//! (`<data dir>/journal/`). An event accepted by such a build may still be pending only there:
//! at open, every such record is copied into `seq_event`, made durable, and the journal's
//! directory is removed. Nothing writes a journal any more.
//!
//! Its layout: segments `<20-digit id>.log` of frames `[payload length u32 LE][CRC-32 of
//! payload u32 LE][payload]` (an `EventRecord` as JSON), zero-filled after the last frame; a
//! frame cut short or failing its CRC ends the segment (a write a crash interrupted, never
//! acknowledged). Segments below `meta["journal_floor"]` were already copied into sled.

use std::path::Path;

use super::codec::decode;
use super::files::SledFiles;
use super::{EventRecord, StoreError, keys, trees};

const DIR: &str = "journal";
const FLOOR_KEY: &str = "journal_floor";
const HEADER: usize = 8;

/// Copy the pending records of a legacy journal into `seq_event`, then remove it.
pub(super) fn import(
    data_dir: &Path,
    meta: &sled::Tree,
    events: &sled::Tree,
    webhooks: &sled::Tree,
    db: &sled::Db,
    files: &SledFiles,
) -> Result<(), StoreError> {
    let dir = data_dir.join(DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    let io = |e: std::io::Error| StoreError::Sled(e.into());
    let floor = match meta.get(FLOOR_KEY)? {
        Some(v) => keys::parse_u64(trees::META, &v)?,
        None => 0,
    };
    let mut imported = 0;
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if id < floor {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io)?;
        for payload in frames(&bytes) {
            let record: EventRecord = decode(DIR, payload)?;
            let key = keys::u64_be(record.seq);
            let finished =
                webhooks.contains_key(keys::webhook(&record.channel, &record.webhook_id))?;
            if !finished && !events.contains_key(key)? {
                events.insert(key, payload)?;
                imported += 1;
            }
        }
    }
    meta.remove(FLOOR_KEY)?;
    db.flush()?;
    files.sync().map_err(io)?;
    std::fs::remove_dir_all(&dir).map_err(io)?;
    files.sync().map_err(io)?;
    tracing::info!(
        imported,
        "moved the pending records of the acceptance journal of an earlier build into sled"
    );
    Ok(())
}

/// The payloads of a segment's valid frames.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
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
        out.push(payload);
        at = start + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::tests::{message, request};
    use super::*;
    use crate::domain::Event;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend(crc32fast::hash(payload).to_le_bytes());
        out.extend(payload);
        out
    }

    fn record(seq: u64, webhook_id: &str, message_id: &str) -> Vec<u8> {
        let req = request(webhook_id, Event::Created(message("c", "u", message_id)));
        let Event::Created(m) = req.event else {
            unreachable!()
        };
        super::super::codec::encode(&EventRecord {
            seq,
            channel: req.channel,
            webhook_id: req.webhook_id,
            reply: req.reply,
            portal: req.portal,
            line: req.line,
            chat_id: "c".into(),
            accepted_at_ms: req.now_ms,
            work: super::super::Work::Send {
                message: m,
                state: super::super::ItemState {
                    attempts: 0,
                    due_at_ms: 1000,
                    last_error: None,
                },
            },
        })
    }

    #[tokio::test]
    async fn pending_records_of_a_legacy_journal_move_into_sled_and_the_journal_goes() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let journal = dir.path().join(DIR);
        std::fs::create_dir(&journal).unwrap();
        let mut segment = frame(&record(10, "w10", "m10"));
        segment.extend(frame(&record(11, "w11", "m11")));
        // A torn last frame (its CRC does not match): never acknowledged, ignored.
        let mut torn = frame(&record(12, "w12", "m12"));
        let last = torn.len() - 1;
        torn[last] ^= 0xFF;
        segment.extend(torn);
        segment.extend([0u8; 64]);
        std::fs::write(journal.join(format!("{:020}.log", 3)), segment).unwrap();
        std::fs::write(journal.join("spare.tmp"), [0u8; 16]).unwrap();

        let store = Store::open(dir.path()).expect("open with a legacy journal");
        let seqs: Vec<u64> = store.pending_events().map(|e| e.unwrap().seq).collect();
        assert_eq!(seqs, vec![10, 11]);
        assert!(!journal.exists());
        let replay = request("w10", Event::Created(message("c", "u", "m10")));
        assert!(matches!(
            store.commit(move |d| d.ingest(&replay)).await.unwrap(),
            super::super::ingest::IngestOutcome::Replayed(_)
        ));
    }
}
