//! Outbox: the durable path from accepted events to Bitrix24 calls.
//!
//! Design notes
//! - States: an op is *queued* in `seq_op` from the moment its event is acknowledged until its
//!   result is final; it is *in flight* only in memory. Recovery is therefore trivial: at start
//!   every queued op is loaded again (`Outbox::start`), and an op whose result was not recorded
//!   before a crash is sent again (at-least-once). An op whose result was recorded is gone from
//!   `seq_op` in the same transaction, so it is never sent again.
//! - One worker task per portal (`worker.rs`) owns that portal's queue (`queue.rs`) and sends
//!   one request at a time, paced by the portal's leaky bucket (in `BitrixClient`).
//! - New ops arrive through the router in commit order (the committer's post-commit hook), which
//!   keeps each chat's ops in the order the platform's events were accepted.

pub mod deliverer;
pub mod execute;
pub mod queue;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitrix::BitrixClient;
use crate::metrics::Metrics;
use crate::settings::{RetrySettings, Settings};
use crate::store::{Op, PortalStatus, Store};
use queue::{Limits, PortalQueue};
use worker::{PortalMsg, PortalWorker};

/// What the workers share.
pub struct Context {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub client: Arc<BitrixClient>,
    pub connector_id: String,
    pub limits: Limits,
    pub retry: RetrySettings,
    pub metrics: Arc<Metrics>,
    /// Woken whenever a deletion may have completed (a report to deliver).
    pub deliveries: Arc<Notify>,
    /// Bumped whenever results or deliveries are recorded (observability for tools and tests).
    pub progress: Arc<watch::Sender<u64>>,
    pub cancel: CancellationToken,
}

impl Context {
    /// Installed and set up (work may flow to it).
    fn is_ready(&self, portal: &str) -> bool {
        matches!(self.store.portal(portal), Ok(Some(p)) if p.is_ready())
    }
}

enum RouterMsg {
    Ops(Vec<Op>),
    /// Installed (again): set it up, then release its work.
    Installed(String),
    /// Setup finished.
    Ready(String),
}

/// Handle to the outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<RouterMsg>,
    deliveries: Arc<Notify>,
}

impl Outbox {
    /// Start the router with the ops recovered from storage.
    pub fn start(ctx: Arc<Context>, tracker: &TaskTracker, recovered: Vec<Op>) -> Outbox {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            deliveries: ctx.deliveries.clone(),
        };
        if !recovered.is_empty() {
            tracing::info!(ops = recovered.len(), "resuming queued Bitrix24 operations");
        }
        outbox.enqueue(recovered);
        // Installations whose setup never completed (e.g. a crash right after install).
        for portal in ctx.store.portals().unwrap_or_default() {
            if portal.status == PortalStatus::Installed && portal.setup_at_ms.is_none() {
                outbox.portal_installed(&portal.member_id);
            }
        }
        tracker.spawn(route(ctx, tracker.clone(), outbox.tx.clone(), rx));
        outbox
    }

    /// Hand durable ops to their portal's worker (call after they are committed, in commit order).
    pub fn enqueue(&self, ops: Vec<Op>) {
        if !ops.is_empty() {
            let _ = self.tx.send(RouterMsg::Ops(ops));
        }
    }

    /// Something may have been queued for the platform: let the deliverer look.
    pub fn deliveries_changed(&self) {
        self.deliveries.notify_one();
    }

    /// A portal installed the app: release what was held for it.
    pub fn portal_installed(&self, member_id: &str) {
        let _ = self.tx.send(RouterMsg::Installed(member_id.to_string()));
    }
}

async fn route(
    ctx: Arc<Context>,
    tracker: TaskTracker,
    me: mpsc::UnboundedSender<RouterMsg>,
    mut rx: mpsc::UnboundedReceiver<RouterMsg>,
) {
    let mut workers: HashMap<String, mpsc::UnboundedSender<PortalMsg>> = HashMap::new();
    let mut setting_up: HashSet<String> = HashSet::new();
    let mut worker_for = |portal: &str| {
        workers
            .entry(portal.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let worker = PortalWorker {
                    portal: portal.to_string(),
                    queue: PortalQueue::default(),
                    rx,
                    ctx: ctx.clone(),
                    installed: false,
                };
                tracker.spawn(worker.run());
                tx
            })
            .clone()
    };
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg { Some(m) => m, None => return },
            _ = ctx.cancel.cancelled() => return,
        };
        match msg {
            RouterMsg::Ops(ops) => {
                ctx.metrics.queued_ops.inc_by(ops.len() as i64);
                let mut by_portal: HashMap<String, Vec<Op>> = HashMap::new();
                for op in ops {
                    by_portal.entry(op.portal.clone()).or_default().push(op);
                }
                for (portal, ops) in by_portal {
                    let _ = worker_for(&portal).send(PortalMsg::Ops(ops));
                }
            }
            RouterMsg::Installed(portal) => {
                if setting_up.insert(portal.clone()) {
                    tracker.spawn(setup_portal(ctx.clone(), portal, me.clone()));
                }
            }
            RouterMsg::Ready(portal) => {
                setting_up.remove(&portal);
                let _ = worker_for(&portal).send(PortalMsg::Installed);
            }
        }
    }
}

/// Set a freshly installed portal up, retrying transient failures until it works; then record
/// it and release the portal's held work. A definitive refusal is logged and the work released
/// anyway, so that its items fail visibly instead of waiting forever.
async fn setup_portal(ctx: Arc<Context>, portal: String, router: mpsc::UnboundedSender<RouterMsg>) {
    let mut failures = 0;
    loop {
        let installed_at = match ctx.store.portal(&portal) {
            Ok(Some(p)) if p.status == PortalStatus::Installed => p.installed_at_ms,
            _ => return,
        };
        match crate::setup::run(&ctx.client, &ctx.settings, &portal).await {
            Ok(report) => {
                tracing::info!(portal, bound = ?report.bound, lines = report.lines.len(), "portal set up");
                let member = portal.clone();
                let marked = ctx
                    .store
                    .commit(move |d| d.mark_setup(&member, installed_at, crate::domain::now_ms()))
                    .await;
                if let Err(e) = marked {
                    tracing::error!(portal, error = %e, "cannot record the setup");
                }
                ctx.progress.send_modify(|n| *n += 1);
                break;
            }
            Err(e) if crate::bitrix::classify(&e) == crate::bitrix::Class::Final => {
                tracing::error!(portal, error = %e, "portal setup refused; releasing its queued work");
                break;
            }
            Err(e) => {
                failures += 1;
                let wait = crate::retry::backoff(
                    failures,
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(300),
                );
                tracing::warn!(portal, error = %e, ?wait, "portal setup failed; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.cancel.cancelled() => return,
                }
            }
        }
    }
    let _ = router.send(RouterMsg::Ready(portal));
}
