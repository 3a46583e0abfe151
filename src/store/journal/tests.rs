use super::*;

fn payload(seq: u64) -> Vec<u8> {
    format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(40)).into_bytes()
}

fn seq_in(p: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(p).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

/// Open with every record live except `dead` ones; also returns the seqs found live.
fn reopen(dir: &Path, floor: u64, dead: &[u64]) -> (Journal, Vec<u64>) {
    let mut found = Vec::new();
    let journal = Journal::open(dir, floor, |p| {
        let seq = seq_in(p);
        let live = !dead.contains(&seq);
        if live {
            found.push(seq);
        }
        Ok(live.then_some(seq))
    })
    .expect("open journal");
    (journal, found)
}

fn sync(journal: &mut Journal) {
    if let Some(job) = journal.write_out().unwrap() {
        job.run().unwrap();
    }
}

fn segment_files(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir.join(DIR))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn synced_records_are_found_again_after_reopening_and_reads_see_unwritten_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, found) = reopen(dir.path(), 0, &[]);
    assert!(found.is_empty());
    journal.append(1, &payload(1));
    journal.append(2, &payload(2));
    // Not written yet: served from the buffer.
    assert_eq!(journal.read(2).unwrap(), Some(payload(2)));
    sync(&mut journal);
    journal.append(3, &payload(3));
    sync(&mut journal);
    assert_eq!(journal.read(1).unwrap(), Some(payload(1)));
    assert_eq!(journal.read(3).unwrap(), Some(payload(3)));
    assert_eq!(journal.read(9).unwrap(), None);
    drop(journal);
    let (journal, found) = reopen(dir.path(), 0, &[]);
    assert_eq!(found, vec![1, 2, 3]);
    assert_eq!(journal.seqs(), vec![1, 2, 3]);
    assert_eq!(journal.read(2).unwrap(), Some(payload(2)));
}

#[test]
fn an_unsynced_append_is_not_in_the_file_and_a_torn_tail_ends_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    journal.append(1, &payload(1));
    sync(&mut journal);
    journal.append(2, &payload(2)); // never written: lost with the process, never acknowledged
    let segment = segment_path(&dir.path().join(DIR), journal.current);
    drop(journal);
    // A crash in the middle of the next write: a length and CRC, then half a payload.
    let bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    let next = payload(3);
    let mut torn = (next.len() as u32).to_le_bytes().to_vec();
    torn.extend_from_slice(&crc32fast::hash(&next).to_le_bytes());
    torn.extend_from_slice(&next[..next.len() / 2]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .write_all_at(&torn, end as u64)
        .unwrap();
    let (journal, found) = reopen(dir.path(), 0, &[]);
    assert_eq!(found, vec![1]);
    assert_eq!(journal.read(1).unwrap(), Some(payload(1)));
}

#[test]
fn a_frame_with_a_wrong_crc_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    journal.append(1, &payload(1));
    journal.append(2, &payload(2));
    sync(&mut journal);
    let segment = segment_path(&dir.path().join(DIR), journal.current);
    drop(journal);
    // Flip one byte of the second payload.
    let mut bytes = std::fs::read(&segment).unwrap();
    let second = HEADER + payload(1).len() + HEADER + 3;
    bytes[second] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let (_, found) = reopen(dir.path(), 0, &[]);
    assert_eq!(found, vec![1]);
}

#[test]
fn segments_without_live_records_are_deleted_only_when_told_and_never_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    journal.append(1, &payload(1));
    journal.append(2, &payload(2));
    let first = journal.current;
    let next = journal.close_current().unwrap();
    assert_eq!(next, first + 1);
    sync(&mut journal);
    journal.append(3, &payload(3));
    journal.remove(1);
    assert!(journal.dead_segments().is_empty(), "2 is still live");
    journal.remove(2);
    journal.remove(3);
    assert_eq!(journal.dead_segments(), vec![first]);
    assert_eq!(segment_files(dir.path()), vec![first, next]);
    journal.delete(&[first, next]);
    assert_eq!(
        segment_files(dir.path()),
        vec![next],
        "the current segment stays"
    );
    assert_eq!(journal.read(2).unwrap(), None);
}

#[test]
fn reopening_drops_dead_records_their_empty_segments_and_segments_below_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    journal.append(1, &payload(1));
    let a = journal.close_current().unwrap() - 1;
    journal.append(2, &payload(2));
    journal.append(3, &payload(3));
    let b = journal.close_current().unwrap() - 1;
    journal.append(4, &payload(4));
    sync(&mut journal);
    let c = journal.current;
    drop(journal);
    assert_eq!(segment_files(dir.path()), vec![a, b, c]);
    // 2 and 3 left the journal (moved or finished): segment b goes; a is below the floor.
    let (journal, found) = reopen(dir.path(), b, &[2, 3]);
    assert_eq!(found, vec![4]);
    assert_eq!(journal.seqs(), vec![4]);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0], c);
    assert!(files[1] > c, "a new segment is started");
}

#[test]
fn a_segment_that_fills_up_is_closed_and_a_zero_filled_spare_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    let first = journal.current;
    let big = vec![b'y'; 1 << 20];
    let mut seq = 0;
    while journal.current == first {
        seq += 1;
        let mut p = format!("{{\"seq\":{seq},\"pad\":\"").into_bytes();
        p.extend_from_slice(&big);
        p.extend_from_slice(b"\"}");
        journal.append(seq, &p);
        sync(&mut journal);
    }
    assert_eq!(
        seq,
        SEGMENT_BYTES >> 20,
        "closed once it holds SEGMENT_BYTES"
    );
    let path = journal.request_spare().expect("the spare was used");
    assert!(journal.request_spare().is_none(), "already being prepared");
    journal.spare_prepared(path.clone(), prepare_spare(&path));
    assert!(journal.request_spare().is_none(), "one is ready");
    drop(journal);
    let (journal, found) = reopen(dir.path(), 0, &[]);
    assert_eq!(found.len() as u64, seq);
    assert_eq!(journal.len() as u64, seq);
    assert!(!path.exists(), "a leftover spare is removed at open");
}

/// Append one record (seq) and close its segment; returns that segment's id.
fn closed_segment_with(journal: &mut Journal, seq: u64) -> u64 {
    let id = journal.current;
    journal.append(seq, &payload(seq));
    journal.close_current().unwrap();
    sync(journal);
    id
}

#[test]
fn closed_segments_with_live_records_retire_once_older_than_the_retire_age() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    let first = closed_segment_with(&mut journal, 1);
    let second = closed_segment_with(&mut journal, 2);
    journal.append(3, &payload(3));
    let now = Instant::now();
    assert_eq!(journal.retire_below_at(now), None, "young segments stay");
    let later = now + RETIRE_AGE + Duration::from_secs(1);
    assert_eq!(
        journal.retire_below_at(later),
        Some(second + 1),
        "both closed segments, never the current one ({})",
        journal.current
    );
    assert!(first < second && second < journal.current);
}

#[test]
fn beyond_max_segments_the_oldest_closed_segments_retire_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = reopen(dir.path(), 0, &[]);
    let ids: Vec<u64> = (1..=MAX_SEGMENTS as u64 + 2)
        .map(|seq| closed_segment_with(&mut journal, seq))
        .collect();
    assert_eq!(
        journal.retire_below_at(Instant::now()),
        Some(ids[2]),
        "the two segments beyond MAX_SEGMENTS, oldest first"
    );
    // Closed segments whose records all left do not count, and MAX_SEGMENTS is allowed.
    journal.remove(1);
    journal.remove(2);
    assert_eq!(journal.retire_below_at(Instant::now()), None);
}
