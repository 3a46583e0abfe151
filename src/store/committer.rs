//! Group commit. Writes are applied in a single order (under the apply lock) and each one then
//! queues its completion for the *flush* thread, which makes everything applied so far durable
//! (one fdatasync of the acceptance journal, plus one sled flush if a completion in the group
//! wrote to sled) and completes what it covered, in order. While one sync runs, later writes are
//! applied, so a request waits for about one sync, and under load the syncs per second stay
//! bounded while each request still waits for its own durability.
//!
//! Event acceptances are small and apply on the caller's thread (no hand-off); other writes
//! (results of a Bitrix24 call may touch thousands of keys) run on the *apply* thread so that
//! they never block an async worker. The flush thread also asks the apply thread to retire old
//! journal segments into sled (`journal.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::ingest::{IngestOutcome, IngestRequest};
use super::journal;
use super::{Data, StoreError};

const APPLY_THREAD: &str = "store-apply";
const FLUSH_THREAD: &str = "store-flush";
const SPARE_THREAD: &str = "store-spare";

/// What to do once the sync that covers a write is done (Ok) or failed (Err with the reason),
/// and whether that write touched sled (then the sync includes a sled flush).
struct Completion {
    run: Box<dyn FnOnce(Result<(), String>) + Send>,
    store: bool,
}
type Job = Box<dyn FnOnce(&Data) -> Completion + Send>;

/// Counters of the committer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Writes committed.
    pub commits: u64,
    /// Syncs issued (each covers one or more writes: a journal fdatasync, a sled flush or both).
    pub flushes: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
}

pub(crate) struct Committer {
    data: Arc<Data>,
    /// Serialises applying a write with queueing its completion, so that completions (and the
    /// hooks they run) follow the order in which writes were applied.
    apply_lock: Arc<Mutex<()>>,
    jobs: Option<mpsc::UnboundedSender<Job>>,
    completions: Option<std::sync::mpsc::Sender<Completion>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stats: Arc<Counters>,
}

impl Committer {
    pub(crate) fn start(data: Arc<Data>) -> Result<Committer, StoreError> {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (completions_tx, completions_rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Counters::default());
        let apply_lock = Arc::new(Mutex::new(()));
        let spawn_error =
            |e: std::io::Error| StoreError::Unavailable(format!("cannot start the committer: {e}"));
        let applier = Applier {
            data: data.clone(),
            lock: apply_lock.clone(),
            completions: completions_tx.clone(),
            stats: stats.clone(),
        };
        let apply = std::thread::Builder::new()
            .name(APPLY_THREAD.into())
            .spawn(move || applier.run(jobs_rx))
            .map_err(spawn_error)?;
        let flush_data = data.clone();
        let flush_stats = stats.clone();
        let retire = Retire {
            jobs: jobs_tx.downgrade(),
            busy: Arc::new(AtomicBool::new(false)),
        };
        let (spares_tx, spares_rx) = std::sync::mpsc::channel();
        let spare_data = data.clone();
        let spare = std::thread::Builder::new()
            .name(SPARE_THREAD.into())
            .spawn(move || spare_loop(&spare_data, spares_rx))
            .map_err(spawn_error)?;
        let flush = std::thread::Builder::new()
            .name(FLUSH_THREAD.into())
            .spawn(move || {
                flush_loop(
                    &flush_data,
                    completions_rx,
                    &flush_stats,
                    &retire,
                    spares_tx,
                )
            })
            .map_err(spawn_error)?;
        Ok(Committer {
            data,
            apply_lock,
            jobs: Some(jobs_tx),
            completions: Some(completions_tx),
            threads: vec![apply, flush, spare],
            stats,
        })
    }

    /// Run `apply` on the apply thread, make it durable, then `after` (in commit order), return.
    pub(crate) async fn run<T, F, A>(&self, apply: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&mut T) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |data: &Data| finisher(apply(data), after, reply, true));
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Accept an event durably; `after` runs after the fsync, in commit order.
    pub(crate) async fn ingest<A>(
        &self,
        req: IngestRequest,
        after: A,
    ) -> Result<IngestOutcome, StoreError>
    where
        A: FnOnce(&mut IngestOutcome) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        {
            let _ordered = lock(&self.apply_lock);
            let (applied, store) = match self.data.ingest_journaled(req) {
                Ok((outcome, store)) => (Ok(outcome), store),
                Err(e) => (Err(e), false),
            };
            let completion = finisher(applied, after, reply, store);
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.completions
                .as_ref()
                .ok_or_else(stopped)?
                .send(completion)
                .map_err(|_| stopped())?;
        }
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            flushes: self.stats.flushes.load(Ordering::Relaxed),
        }
    }
}

/// The completion of one write: its applied result and the fsync outcome decide the reply.
fn finisher<T: Send + 'static>(
    applied: Result<T, StoreError>,
    after: impl FnOnce(&mut T) + Send + 'static,
    reply: oneshot::Sender<Result<T, StoreError>>,
    store: bool,
) -> Completion {
    let run = Box::new(move |flushed| {
        let outcome = match (applied, flushed) {
            (Ok(mut value), Ok(())) => {
                after(&mut value);
                Ok(value)
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(StoreError::Unavailable(e)),
        };
        let _ = reply.send(outcome);
    });
    Completion { run, store }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("committer stopped".into())
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Committer {
    /// Close the queues and wait for both threads, so that once the last `Store` is gone the
    /// database is closed too (a restart in the same process can reopen it).
    fn drop(&mut self) {
        self.jobs.take();
        self.completions.take();
        let current = std::thread::current();
        let own = matches!(
            current.name(),
            Some(APPLY_THREAD | FLUSH_THREAD | SPARE_THREAD)
        );
        for thread in self.threads.drain(..) {
            if !own {
                let _ = thread.join();
            }
        }
    }
}

/// The apply thread: runs queued jobs one by one under the apply lock.
struct Applier {
    data: Arc<Data>,
    lock: Arc<Mutex<()>>,
    completions: std::sync::mpsc::Sender<Completion>,
    stats: Arc<Counters>,
}

impl Applier {
    fn run(self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = jobs.blocking_recv() {
            let _ordered = lock(&self.lock);
            let completion = job(&self.data);
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            if self.completions.send(completion).is_err() {
                return;
            }
        }
    }
}

/// Asks the apply thread, at most once at a time, to retire journal segments into sled.
struct Retire {
    /// Weak, so that dropping the committer still closes the job queue.
    jobs: mpsc::WeakUnboundedSender<Job>,
    busy: Arc<AtomicBool>,
}

impl Retire {
    fn request(&self, below: u64) {
        let Some(jobs) = self.jobs.upgrade() else {
            return;
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let busy = self.busy.clone();
        let job: Job = Box::new(move |data: &Data| {
            match data.retire_journal(below) {
                Ok(moved) => tracing::info!(moved, below, "retired journal segments into sled"),
                Err(e) => tracing::error!(error = %e, "cannot retire journal segments"),
            }
            let run = Box::new(move |_| busy.store(false, Ordering::Release));
            Completion { run, store: true }
        });
        if jobs.send(job).is_err() {
            self.busy.store(false, Ordering::Release);
        }
    }
}

/// The spare thread: zero-fills the journal's next segment, off the flush thread (it takes
/// milliseconds, more on a busy disk, and the flush thread's syncs must not wait for it).
fn spare_loop(data: &Data, rx: std::sync::mpsc::Receiver<std::path::PathBuf>) {
    batch_scheduling();
    while let Ok(path) = rx.recv() {
        let outcome = journal::prepare_spare(&path);
        data.journal().spare_prepared(path, outcome);
    }
}

fn flush_loop(
    data: &Data,
    rx: std::sync::mpsc::Receiver<Completion>,
    stats: &Counters,
    retire: &Retire,
    spares: std::sync::mpsc::Sender<std::path::PathBuf>,
) {
    batch_scheduling();
    let mut group: Vec<Completion> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        group.extend(rx.try_iter());
        // Every write whose completion was taken here was applied before this sync starts.
        let store = group.iter().any(|c| c.store);
        let flushed = data.sync(store).map_err(|e| {
            tracing::error!(error = %e, "storage sync failed");
            format!("sync failed: {e}")
        });
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        for completion in group.drain(..) {
            (completion.run)(flushed.clone());
        }
        let (below, spare) = {
            let mut journal = data.journal();
            (journal.retire_below(), journal.request_spare())
        };
        if let Some(below) = below {
            retire.request(below);
        }
        if let Some(path) = spare
            && let Err(std::sync::mpsc::SendError(path)) = spares.send(path)
        {
            data.journal()
                .spare_prepared(path, Err(std::io::Error::other("spare thread gone")));
        }
    }
}

/// Mark the calling thread as a batch thread (Linux `SCHED_BATCH`, allowed without privileges):
/// when it wakes, the scheduler does not preempt a running thread for it. While the CPUs are
/// busy, the flush thread then waits for its turn instead of interrupting request handling,
/// and each sync covers more writes: fewer syncs, and so less CPU, for the same durability
/// (measured: about 11 writes per sync instead of 7.5 under the ingest benchmark). An idle
/// CPU still runs it at once, so at light load nothing changes. Best effort.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain syscall on the calling thread (pid 0) with a valid parameter.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            tracing::debug!(%error, "cannot set SCHED_BATCH; keeping the default policy");
        }
    }
}
