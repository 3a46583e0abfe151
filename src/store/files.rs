//! Power-loss durability of sled's files. sled 0.34 writes its log with `pwrite` and waits for
//! it with `sync_file_range`, which neither forces the disk's volatile write cache nor covers
//! the file's metadata; its only real `fsync` is the periodic flusher, which the store turns off
//! (group commit decides when to sync). So after each sled flush the writer also calls
//! `fdatasync` here on what sled wrote:
//!
//! - `<dir>/db`, the log and page store (every tree's data, written in place in 512 KiB
//!   segments): one `fdatasync` per group;
//! - `<dir>/blobs/<lsn>`, one file per page too big for a log segment (a value or node over
//!   about 128 KiB, such as a 1,000-item deletion), written by sled without any sync: each new
//!   one is synced, then the `blobs` directory;
//! - `<dir>` itself when its entries change (`conf` at creation; `snap.<lsn>` snapshots, which
//!   sled syncs itself but renames into place without syncing the directory).

use parking_lot::Mutex;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// sled's file of the log and pages, inside its directory.
const DB_FILE: &str = "db";
const BLOBS_DIR: &str = "blobs";

pub(crate) struct SledFiles {
    dir: PathBuf,
    db: File,
    /// Entries already made durable; locked only by whoever syncs (the writer, or the close).
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    top: HashSet<OsString>,
    blobs: HashSet<OsString>,
}

impl SledFiles {
    /// Open sled's files in `dir` (after sled opened it) and make everything there durable,
    /// the directory entry of `dir` in its parent included.
    pub(crate) fn open(dir: &Path) -> io::Result<SledFiles> {
        let db = File::open(dir.join(DB_FILE))?;
        let files = SledFiles {
            dir: dir.to_path_buf(),
            db,
            seen: Mutex::new(Seen::default()),
        };
        files.sync()?;
        if let Ok(conf) = File::open(dir.join("conf")) {
            conf.sync_all()?;
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(files)
    }

    /// `fdatasync` sled's files after a sled flush (see the module notes).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.db.sync_data()?;
        let mut seen = self.seen.lock();
        let blobs_dir = self.dir.join(BLOBS_DIR);
        let blobs = list(&blobs_dir)?;
        if blobs != seen.blobs {
            for name in blobs.difference(&seen.blobs) {
                match File::open(blobs_dir.join(name)) {
                    Ok(blob) => blob.sync_data()?,
                    // Collected by sled meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            sync_dir(&blobs_dir)?;
            seen.blobs = blobs;
        }
        let top = list(&self.dir)?;
        if top != seen.top {
            sync_dir(&self.dir)?;
            seen.top = top;
        }
        Ok(())
    }
}

impl SledFiles {
    /// Drop the kernel's cached pages of sled's log file (once open, all clean). Recovery reads
    /// the log with readahead, which caches it in large folios (up to hundreds of KiB on recent
    /// kernels); a later small write into one dirties, and the next sync writes, the whole
    /// folio: measured, 32–168 KiB per event after a restart instead of 4 KiB. Pages cached
    /// afresh by small writes are small.
    pub(crate) fn drop_cache(&self) -> io::Result<()> {
        rustix::fs::fadvise(&self.db, 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    }
}

fn list(dir: &Path) -> io::Result<HashSet<OsString>> {
    std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect()
}

/// fsync a directory, so that the entries created or renamed in it survive a power loss.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
