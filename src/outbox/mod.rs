//! Outbox: the durable path from accepted events to Bitrix24 calls.
//!
//! Design notes
//! - States: an op is *queued* on disk (its event in `seq_event`, a deletion's item in
//!   `seqitem_deletionitem`) from the moment its event is acknowledged until its result is
//!   final; it is *in flight* only in memory. Recovery is therefore simple: at start a worker is
//!   started for every portal with pending work and reads it back (`Outbox::start`), and an op
//!   whose result was not recorded before a crash is sent again (at-least-once). An op whose
//!   result was recorded is gone in the same transaction, so it is never sent again.
//! - One worker task per portal (`worker.rs`) owns that portal's queue (`queue.rs`): at most
//!   `max_queued` ops in memory, the rest read back from disk in seq order as it drains. It
//!   sends one request at a time, paced by the portal's leaky bucket (in `BitrixClient`).
//! - New ops reach their portal's worker in commit order through the store's feed of committed
//!   changes (`store/feed.rs`, followed by `Outbox::follow`), which keeps each chat's ops in the
//!   order the platform's events were accepted; a queued delivery wakes the deliverer the same
//!   way. Nothing runs on the storage writer's thread on the outbox's behalf.

pub mod deliverer;
pub mod execute;
pub mod notices;
pub mod queue;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitrix::BitrixClient;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::settings::{RetrySettings, Settings};
use crate::store::feed::Committed;
use crate::store::{OpRef, PortalStatus, Store};
use queue::{Limits, PortalQueue};
use worker::{PortalMsg, PortalWorker};

/// Default of [`Context::max_queued`].
pub const MAX_QUEUED: usize = 10_000;

/// What the workers share.
pub struct Context {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub client: Arc<BitrixClient>,
    pub connector_id: String,
    pub limits: Limits,
    /// Items a portal's worker keeps in memory; beyond that they wait on disk (`seq_event`) and
    /// are read back in seq order as the queue drains, so a long outage costs bounded memory.
    pub max_queued: usize,
    pub retry: RetrySettings,
    pub metrics: Arc<Metrics>,
    /// Told which channel has a new delivery (a report, an operator's message).
    pub deliveries: Arc<deliverer::DeliveryWakes>,
    /// Bumped whenever results or deliveries are recorded (observability for tools and tests).
    pub progress: Arc<watch::Sender<u64>>,
    pub cancel: CancellationToken,
    /// Telegram webhook registration, asked again whenever a portal's setup runs.
    pub telegram: Option<Arc<crate::telegram::webhook::Registrar>>,
    /// The gateway's clock (due times, retry windows, what results are stamped with).
    pub clock: Clock,
}

impl Context {
    /// A context with its own (unconnected) notifications and cancellation.
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        client: Arc<BitrixClient>,
        metrics: Arc<Metrics>,
    ) -> Context {
        Context {
            connector_id: settings.connector.id.clone(),
            limits: Limits {
                max_batch: settings.deletions.max_batch,
                linger_ms: settings.deletions.linger_ms,
                max_calls: crate::bitrix::MAX_BATCH_COMMANDS,
                // Filled per request from the portal's cost model (worker.rs `limits`).
                budget_ms: Limits::UNBUDGETED.1,
                item_ms: Limits::UNBUDGETED.0,
            },
            retry: settings.retry.clone(),
            max_queued: MAX_QUEUED,
            settings,
            store,
            client,
            metrics,
            deliveries: Arc::default(),
            progress: Arc::new(watch::channel(0).0),
            cancel: CancellationToken::new(),
            telegram: None,
            clock: Clock::system(),
        }
    }

    /// Installed and set up (work may flow to it).
    fn is_ready(&self, portal: &str) -> bool {
        matches!(self.store.portal(portal), Ok(Some(p)) if p.is_ready())
    }

    /// Lines of a portal where a channel's connector is recorded as off.
    fn closed_lines(&self, portal: &str) -> HashSet<u64> {
        self.settings
            .channels
            .iter()
            .filter(|c| c.portal == portal)
            .filter(|c| matches!(self.store.channel_state(&c.id), Ok(Some(s)) if !s.active))
            .map(|c| c.line)
            .collect()
    }
}

/// Handle to the outbox; cheap to clone. Ops go straight to their portal's worker.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Context>,
    tracker: TaskTracker,
    /// Workers are spawned from whatever thread enqueues (often the storage flush thread).
    runtime: tokio::runtime::Handle,
    workers: Mutex<HashMap<String, mpsc::UnboundedSender<PortalMsg>>>,
    setting_up: Mutex<HashSet<String>>,
}

impl Outbox {
    /// Start a worker for every portal with pending work (each reads its items back from disk,
    /// a bounded window at a time), then follow the store's feed of committed changes (call
    /// inside the runtime that runs the workers; subscribe before starting, so nothing
    /// committed in between is missed).
    pub fn start(
        ctx: Arc<Context>,
        tracker: &TaskTracker,
        feed: Option<mpsc::UnboundedReceiver<Committed>>,
    ) -> Outbox {
        let outbox = Outbox {
            inner: Arc::new(Inner {
                ctx,
                tracker: tracker.clone(),
                runtime: tokio::runtime::Handle::current(),
                workers: Mutex::new(HashMap::new()),
                setting_up: Mutex::new(HashSet::new()),
            }),
        };
        let pending = outbox
            .inner
            .ctx
            .store
            .pending_portals()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read pending work");
                Default::default()
            });
        let items = outbox.inner.ctx.store.pending_item_count().unwrap_or(0);
        outbox.inner.ctx.metrics.queued_ops.inc_by(items as i64);
        for portal in pending {
            tracing::info!(portal, items, "resuming queued Bitrix24 operations");
            outbox.spawn_worker(&portal, Some(0));
        }
        if let Some(feed) = feed {
            tracker.spawn(outbox.clone().follow(feed));
        }
        // Installations whose setup never completed (e.g. a crash right after install).
        for portal in outbox.inner.ctx.store.portals().unwrap_or_default() {
            if portal.status == PortalStatus::Installed && portal.setup_at_ms.is_none() {
                outbox.portal_installed(&portal.member_id);
            }
        }
        outbox
    }

    /// Act on what the store committed, in commit order, until cancelled.
    async fn follow(self, mut feed: mpsc::UnboundedReceiver<Committed>) {
        let cancel = self.inner.ctx.cancel.clone();
        loop {
            let change = tokio::select! {
                change = feed.recv() => change,
                _ = cancel.cancelled() => return,
            };
            match change {
                None => return,
                Some(Committed::Ops(ops)) => self.enqueue(ops),
                Some(Committed::Delivery { channel }) => self.inner.ctx.deliveries.wake(channel),
            }
        }
    }

    /// Hand durable ops to their portal's worker (call after they are committed, in commit order).
    pub fn enqueue(&self, ops: Vec<OpRef>) {
        let Some(first) = ops.first() else { return };
        self.inner.ctx.metrics.queued_ops.inc_by(ops.len() as i64);
        // The ops of one event share a portal; recovered ones may not.
        if ops.iter().all(|op| op.portal == first.portal) {
            let portal = first.portal.clone();
            self.send(&portal, PortalMsg::Ops(ops));
            return;
        }
        let mut by_portal: HashMap<std::sync::Arc<str>, Vec<OpRef>> = HashMap::new();
        for op in ops {
            by_portal.entry(op.portal.clone()).or_default().push(op);
        }
        for (portal, ops) in by_portal {
            self.send(&portal, PortalMsg::Ops(ops));
        }
    }

    /// A portal installed the app: set it up, then release what was held for it.
    pub fn portal_installed(&self, member_id: &str) {
        if self.inner.setting_up.lock().insert(member_id.to_string()) {
            let (ctx, outbox) = (self.inner.ctx.clone(), self.clone());
            self.inner.tracker.spawn_on(
                setup_portal(ctx, member_id.to_string(), outbox),
                &self.inner.runtime,
            );
        }
    }

    /// Set a portal up now (admin API): see [`setup_now`].
    pub async fn setup(
        &self,
        member_id: &str,
    ) -> Result<crate::setup::SetupReport, crate::bitrix::BitrixError> {
        setup_now(&self.inner.ctx, Some(self), member_id).await
    }

    /// Tear a portal down (admin API): see [`crate::teardown`]. Its held work is dropped with
    /// its data.
    pub async fn teardown(
        &self,
        member_id: &str,
    ) -> Result<crate::teardown::Report, crate::bitrix::BitrixError> {
        let ctx = &self.inner.ctx;
        let report =
            crate::teardown::run(&ctx.client, &ctx.settings, &ctx.store, member_id).await?;
        if report.completed {
            self.portal_uninstalled(member_id);
        }
        Ok(report)
    }

    /// A portal uninstalled the app: hold its work.
    pub fn portal_uninstalled(&self, member_id: &str) {
        self.send(member_id, PortalMsg::Uninstalled);
    }

    /// The connector was switched on or off on a line of a portal.
    pub fn line_active(&self, member_id: &str, line: u64, active: bool) {
        self.send(member_id, PortalMsg::Line { line, open: active });
    }

    fn ready(&self, member_id: &str) {
        self.inner.setting_up.lock().remove(member_id);
        self.send(member_id, PortalMsg::Installed);
    }

    fn send(&self, portal: &str, msg: PortalMsg) {
        if let Some(worker) = self.inner.workers.lock().get(portal) {
            let _ = worker.send(msg);
            return;
        }
        self.spawn_worker(portal, None);
        if let Some(worker) = self.inner.workers.lock().get(portal) {
            let _ = worker.send(msg);
        }
    }

    /// Start a portal's worker (unless it runs); `spilled`: its items from this seq on are
    /// on disk only, to be read back.
    fn spawn_worker(&self, portal: &str, spilled: Option<u64>) {
        let mut workers = self.inner.workers.lock();
        if workers.contains_key(portal) {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = PortalWorker {
            portal: portal.to_string(),
            queue: PortalQueue::default(),
            rx,
            ctx: self.inner.ctx.clone(),
            installed: false,
            closed_lines: HashSet::new(),
            spilled,
            loaded_until: 0,
        };
        self.inner
            .tracker
            .spawn_on(worker.run(), &self.inner.runtime);
        workers.insert(portal.to_string(), tx);
    }
}

/// Set a portal up now and record it: the setup itself (idempotent), the channels' states, the
/// installation marked as set up, and its held work released. Used after an install and by the
/// admin API / `setup` command.
pub async fn setup_now(
    ctx: &Context,
    outbox: Option<&Outbox>,
    portal: &str,
) -> Result<crate::setup::SetupReport, crate::bitrix::BitrixError> {
    let installed_at = match ctx.store.portal(portal)? {
        Some(p) if p.status == PortalStatus::Installed => p.installed_at_ms,
        _ => return Err(crate::bitrix::BitrixError::NotInstalled(portal.to_string())),
    };
    let report = crate::setup::run(&ctx.client, &ctx.settings, portal).await?;
    let (member, lines, bot_id) = (portal.to_string(), report.lines.clone(), report.bot_id);
    let clock = ctx.clock.clone();
    ctx.store
        .commit(move |d| {
            let now = clock.now_ms();
            d.set_bot(&member, bot_id)?;
            for line in &lines {
                let state = crate::store::ChannelState {
                    active: true,
                    reason: None,
                    status: Some(line.status.clone()),
                    updated_at_ms: now,
                };
                d.set_channel_state(&line.channel, &state)?;
            }
            d.mark_setup(&member, installed_at, now)
        })
        .await?;
    if let Some(outbox) = outbox {
        for line in &report.lines {
            outbox.line_active(portal, line.line, true);
        }
        outbox.ready(portal);
    }
    if let Some(telegram) = &ctx.telegram {
        telegram.request_portal(portal);
    }
    ctx.progress.send_modify(|n| *n += 1);
    tracing::info!(portal, bound = ?report.bound, lines = report.lines.len(), "portal set up");
    Ok(report)
}

/// Set a freshly installed portal up, retrying until it works (a refusal every 5 minutes, so an
/// administrator who fixes the portal sees it set up soon after). Its held work waits for it.
async fn setup_portal(ctx: Arc<Context>, portal: String, outbox: Outbox) {
    let mut failures = 0;
    loop {
        match setup_now(&ctx, Some(&outbox), &portal).await {
            Ok(_) => return,
            Err(e) if e.holds_portal() => {
                // Uninstalled meanwhile, or its authorization was revoked: nothing to set up;
                // a later (verified) install starts again.
                outbox.inner.setting_up.lock().remove(&portal);
                return;
            }
            Err(e) => {
                // Held work is released only after a successful setup (contract §5): a refusal
                // is retried on the slow schedule, a transient failure sooner.
                if crate::bitrix::classify(&e) == crate::bitrix::Class::Final {
                    failures = failures.max(20);
                }
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
}
