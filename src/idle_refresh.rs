//! Idle portals keep their authorization: a refresh token lives 180 days and each refresh
//! issues a new one (fact sheet §3.1), but the gateway refreshes only on `expired_token`, so a
//! portal with no traffic for half a year would lose its grant. Every few hours, each installed
//! portal whose tokens were last renewed more than [`REFRESH_AFTER`] ago is refreshed once,
//! through the client's coalesced refresh (a day-long timer is not "refresh before every call").

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bitrix::BitrixClient;
use crate::store::{PortalStatus, Store};

/// Tokens older than this are renewed (well inside the refresh token's 180 days).
pub const REFRESH_AFTER: Duration = Duration::from_secs(30 * 86_400);
/// How often the portals are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Portals whose tokens were renewed before `now_ms - REFRESH_AFTER` (installed, not revoked).
pub fn due(store: &Store, now_ms: u64) -> Vec<String> {
    let cutoff = now_ms.saturating_sub(REFRESH_AFTER.as_millis() as u64);
    match store.portals() {
        Ok(portals) => portals
            .into_iter()
            .filter(|p| {
                p.status == PortalStatus::Installed
                    && p.needs_reinstall.is_none()
                    && p.updated_at_ms < cutoff
            })
            .map(|p| p.member_id.into_string())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list portals for the idle refresh");
            Vec::new()
        }
    }
}

/// Run until cancelled: check at start, then every [`CHECK_EVERY`].
pub async fn run(
    store: Store,
    client: Arc<BitrixClient>,
    clock: crate::clock::Clock,
    cancel: CancellationToken,
) {
    let mut timer = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = cancel.cancelled() => return,
        }
        for portal in due(&store, clock.now_ms()) {
            match client.refresh_now(&portal).await {
                Ok(()) => tracing::info!(portal, "idle portal's tokens renewed"),
                Err(e) => tracing::warn!(portal, error = %e, "idle portal's tokens not renewed"),
            }
        }
    }
}
