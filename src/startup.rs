//! `Application`: builds every part from `Settings`, binds the listener (port 0 allowed), and
//! runs until stopped. Tests and `main` go through the same path.
//!
//! Shutdown order: stop accepting requests and finish those in flight → cancel the background
//! tasks (a Bitrix24 request in flight is abandoned; its ops are still on disk) → wait for them →
//! close the store (last fsync) → return.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitrix::BitrixClient;
use crate::clock::Clock;
use crate::http::{self, AppState};
use crate::messenger::outbound::OutboundClient;
use crate::metrics::Metrics;
use crate::outbox::deliverer::{Deliverer, DeliveryWakes};
use crate::outbox::{Context, Outbox};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::retention::Retention;
use crate::telegram::api::BotApi;
use crate::telegram::webhook::Registrar;

/// How long shutdown waits for the last storage handle to go.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open storage at {path}: {source}")]
    Storage {
        path: String,
        source: crate::store::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Options that tests and tools change.
#[derive(Default)]
pub struct Options {
    /// The gateway's one clock (default: the system's); tests pass a manual one.
    pub clock: Option<Clock>,
    /// An already bound listener to serve on instead of binding `server.listen` (lets a caller
    /// know the port before building, e.g. to put it in `server.public_url`).
    pub listener: Option<TcpListener>,
    /// Items a portal's worker keeps in memory (default [`crate::outbox::MAX_QUEUED`]; tests
    /// make it small to exercise reading held work back from disk).
    pub max_queued: Option<usize>,
}

/// A built, not yet running gateway.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    tracker: TaskTracker,
    cancel: CancellationToken,
    store: Store,
    stopped: watch::Sender<bool>,
    progress: Arc<watch::Sender<u64>>,
}

/// Stops a running application and waits until it has released its storage.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    stopped: watch::Receiver<bool>,
}

impl Application {
    /// Build with default options.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Self::build_with(settings, Options::default()).await
    }

    /// Open storage, start the outbox and the deliverer, bind the listener.
    pub async fn build_with(
        settings: Settings,
        mut options: Options,
    ) -> Result<Application, StartError> {
        let settings = Arc::new(settings);
        let clock = options.clock.take().unwrap_or_default();
        crate::data_dir::secure(&settings.storage.path).map_err(|e| StartError::Storage {
            path: settings.storage.path.display().to_string(),
            source: crate::store::StoreError::Unavailable(format!(
                "cannot make the data directory private: {e}"
            )),
        })?;
        let store =
            Store::open_configured(&settings.storage.path, &settings.storage.store_options())
                .map_err(|source| StartError::Storage {
                    path: settings.storage.path.display().to_string(),
                    source,
                })?;
        let metrics = Arc::new(Metrics::default());
        let revoked = store
            .portals()
            .map(|portals| {
                portals
                    .iter()
                    .filter(|p| p.needs_reinstall.is_some())
                    .count()
            })
            .unwrap_or_default();
        metrics.portals_needing_reinstall.set(revoked as i64);
        if revoked > 0 {
            tracing::error!(
                portals = revoked,
                "portals whose authorization was revoked must reinstall the app; their work is held"
            );
        }
        let client = Arc::new(
            BitrixClient::new(settings.bitrix.clone(), store.clone(), metrics.clone())
                .map_err(|e| StartError::Client(e.to_string()))?
                .with_clock(clock.clone()),
        );
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let deliveries = Arc::new(DeliveryWakes::default());
        let progress = Arc::new(watch::channel(0u64).0);
        let feed = store.subscribe();
        let telegram = Arc::new(BotApi::new(metrics.clone()).map_err(StartError::Client)?);
        let registrar = Registrar::new(settings.clone(), store.clone(), telegram.clone());
        let ctx = Arc::new(Context {
            telegram: Some(registrar.clone()),
            deliveries: deliveries.clone(),
            progress: progress.clone(),
            cancel: cancel.clone(),
            max_queued: options
                .max_queued
                .unwrap_or(crate::outbox::MAX_QUEUED)
                .max(1),
            clock: clock.clone(),
            ..Context::new(
                settings.clone(),
                store.clone(),
                client.clone(),
                metrics.clone(),
            )
        });
        let outbox = Outbox::start(ctx, &tracker, feed);
        let deliverer = Deliverer {
            store: store.clone(),
            settings: settings.clone(),
            client: OutboundClient::new(telegram.clone())
                .map_err(StartError::Client)?
                .with_clock(clock.clone()),
            bitrix: client.clone(),
            metrics: metrics.clone(),
            wake: deliveries,
            progress: progress.clone(),
            cancel: cancel.clone(),
            clock: clock.clone(),
        };
        tracker.spawn(deliverer.run());
        tracker.spawn(registrar.run(cancel.clone()));
        tracker.spawn(prune_old_records(
            store.clone(),
            settings.storage.retention(),
            clock.clone(),
            cancel.clone(),
        ));
        tracker.spawn(crate::idle_refresh::run(
            store.clone(),
            client.clone(),
            clock.clone(),
            cancel.clone(),
        ));

        let state = web::Data::new(AppState {
            channels: AppState::channels_of(&settings),
            settings: settings.clone(),
            store: store.clone(),
            outbox,
            client,
            metrics,
            clock,
            telegram,
        });
        let addr = settings.server.listen.clone();
        let listener = match options.listener {
            Some(listener) => listener,
            None => settings
                .listen_addr()
                .and_then(TcpListener::bind)
                .map_err(|source| StartError::Listen {
                    addr: addr.clone(),
                    source,
                })?,
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(http::configure)
        })
        .disable_signals()
        .listen(listener)
        .map_err(|source| StartError::Listen { addr, source })?
        .run();
        tracing::info!(port, "listening");
        let (stopped, _) = watch::channel(false);
        Ok(Application {
            port,
            server,
            tracker,
            cancel,
            store,
            stopped,
            progress,
        })
    }

    /// A counter bumped whenever Bitrix24 results or platform deliveries are recorded.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application's storage (for tests and tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A handle that stops the application.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            stopped: self.stopped.subscribe(),
        }
    }

    /// Serve until stopped, then shut the background work down and close storage.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            tracker,
            cancel,
            store,
            stopped,
            ..
        } = self;
        let served = server.await;
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        let closed = store.on_close();
        drop(store);
        // HTTP worker threads release their handles a moment after the server reports stopped.
        if tokio::time::timeout(CLOSE_TIMEOUT, closed).await.is_err() {
            tracing::warn!("storage still referenced {CLOSE_TIMEOUT:?} after shutdown");
        }
        tracing::info!("stopped");
        let _ = stopped.send(true);
        served
    }
}

/// Hourly: prune what `storage.retention_days` no longer keeps (through the store's
/// time-ordered index, in bounded chunks).
async fn prune_old_records(
    store: Store,
    retention: Retention,
    clock: Clock,
    cancel: CancellationToken,
) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = hourly.tick() => {}
            _ = cancel.cancelled() => return,
        }
        match store.prune(clock.now_ms(), retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "records past retention pruned"),
            Err(e) => tracing::warn!(error = %e, "cannot prune old records"),
        }
    }
}

impl StopHandle {
    /// Stop gracefully and wait until storage is closed.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        let _ = self.stopped.wait_for(|s| *s).await;
    }
}
