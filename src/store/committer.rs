//! Group commit, pipelined: the *apply* thread runs write jobs in arrival order and hands each
//! group to the *flush* thread, which makes everything applied so far durable with one fsync and
//! then completes the groups in order. While one group is being fsynced the next is applied, so
//! a request waits for about one fsync, and under load the fsyncs per second stay bounded while
//! each request still waits for its own durability.
//!
//! Consecutive event acceptances of a group also share one sled transaction
//! (`Data::ingest_all`), which is most of their cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::ingest::{IngestOutcome, IngestRequest};
use super::{Data, StoreError};

/// Most jobs applied as one group.
const MAX_GROUP: usize = 4096;
const APPLY_THREAD: &str = "store-apply";
const FLUSH_THREAD: &str = "store-flush";

/// Runs once the group's fsync is done (Ok) or failed (Err with the reason).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

enum Job {
    /// Any write, run on its own.
    Apply(Box<dyn FnOnce(&Data) -> Completion + Send>),
    /// An event acceptance; consecutive ones share a transaction.
    Ingest(
        Box<IngestRequest>,
        Box<dyn FnOnce(Result<IngestOutcome, StoreError>) -> Completion + Send>,
    ),
}

/// Counters of the committer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Jobs committed.
    pub commits: u64,
    /// fsyncs issued (each covers one or more groups of jobs).
    pub flushes: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
}

pub(crate) struct Committer {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stats: Arc<Counters>,
}

impl Committer {
    pub(crate) fn start(data: Arc<Data>) -> Result<Committer, StoreError> {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (groups_tx, groups_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        let spawn_error =
            |e: std::io::Error| StoreError::Unavailable(format!("cannot start the committer: {e}"));
        let apply_data = data.clone();
        let apply_stats = stats.clone();
        let apply = std::thread::Builder::new()
            .name(APPLY_THREAD.into())
            .spawn(move || apply_loop(&apply_data, jobs_rx, groups_tx, &apply_stats))
            .map_err(spawn_error)?;
        let flush_stats = stats.clone();
        let flush = std::thread::Builder::new()
            .name(FLUSH_THREAD.into())
            .spawn(move || flush_loop(&data, groups_rx, &flush_stats))
            .map_err(spawn_error)?;
        Ok(Committer {
            jobs: Some(jobs_tx),
            threads: vec![apply, flush],
            stats,
        })
    }

    /// Run `apply`, make it durable, then `after` (in commit order) and return.
    pub(crate) async fn run<T, F, A>(&self, apply: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Apply(Box::new(move |data: &Data| {
            finisher(apply(data), after, reply)
        })))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Accept an event durably; `after` runs after the fsync, in commit order.
    pub(crate) async fn ingest<A>(
        &self,
        req: IngestRequest,
        after: A,
    ) -> Result<IngestOutcome, StoreError>
    where
        A: FnOnce(&IngestOutcome) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Ingest(
            Box::new(req),
            Box::new(move |applied| finisher(applied, after, reply)),
        ))?;
        answer.await.map_err(|_| stopped())?
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            flushes: self.stats.flushes.load(Ordering::Relaxed),
        }
    }
}

/// The completion of one job: its applied result and the fsync outcome decide the reply.
fn finisher<T: Send + 'static>(
    applied: Result<T, StoreError>,
    after: impl FnOnce(&T) + Send + 'static,
    reply: oneshot::Sender<Result<T, StoreError>>,
) -> Completion {
    Box::new(move |flushed| {
        let outcome = match (applied, flushed) {
            (Ok(value), Ok(())) => {
                after(&value);
                Ok(value)
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(StoreError::Unavailable(e)),
        };
        let _ = reply.send(outcome);
    })
}

fn stopped() -> StoreError {
    StoreError::Unavailable("committer stopped".into())
}

impl Drop for Committer {
    /// Close the queue and wait for both threads, so that once the last `Store` is gone the
    /// database is closed too (a restart in the same process can reopen it).
    fn drop(&mut self) {
        self.jobs.take();
        let current = std::thread::current();
        let own = matches!(current.name(), Some(APPLY_THREAD | FLUSH_THREAD));
        for thread in self.threads.drain(..) {
            if !own {
                let _ = thread.join();
            }
        }
    }
}

fn apply_loop(
    data: &Data,
    mut jobs_rx: mpsc::UnboundedReceiver<Job>,
    groups_tx: mpsc::UnboundedSender<Vec<Completion>>,
    stats: &Counters,
) {
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = jobs_rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_GROUP {
            match jobs_rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        stats
            .commits
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        if groups_tx.send(apply(data, jobs.drain(..))).is_err() {
            return;
        }
    }
}

fn flush_loop(
    data: &Data,
    mut groups_rx: mpsc::UnboundedReceiver<Vec<Completion>>,
    stats: &Counters,
) {
    let mut groups: Vec<Vec<Completion>> = Vec::new();
    while let Some(first) = groups_rx.blocking_recv() {
        groups.push(first);
        while let Ok(group) = groups_rx.try_recv() {
            groups.push(group);
        }
        // Every group taken here was fully applied before this fsync starts.
        let flushed = data.flush().map_err(|e| {
            tracing::error!(error = %e, "storage flush failed");
            format!("flush failed: {e}")
        });
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        for completion in groups.drain(..).flatten() {
            completion(flushed.clone());
        }
    }
}

/// Apply a group in arrival order; runs of acceptances go through one transaction.
fn apply(data: &Data, jobs: impl Iterator<Item = Job>) -> Vec<Completion> {
    type Pending = (
        Box<IngestRequest>,
        Box<dyn FnOnce(Result<IngestOutcome, StoreError>) -> Completion + Send>,
    );
    let mut completions: Vec<Completion> = Vec::new();
    let mut run: Vec<Pending> = Vec::new();
    let end_run = |run: &mut Vec<Pending>, completions: &mut Vec<Completion>| {
        if run.is_empty() {
            return;
        }
        let requests: Vec<&IngestRequest> = run.iter().map(|(r, _)| r.as_ref()).collect();
        let outcomes = data.ingest_all(&requests);
        for ((_, finish), outcome) in run.drain(..).zip(outcomes) {
            completions.push(finish(outcome));
        }
    };
    for job in jobs {
        match job {
            Job::Ingest(req, finish) => run.push((req, finish)),
            Job::Apply(f) => {
                end_run(&mut run, &mut completions);
                completions.push(f(data));
            }
        }
    }
    end_run(&mut run, &mut completions);
    completions
}
