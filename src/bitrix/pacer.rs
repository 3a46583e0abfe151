//! Client-side copy of Bitrix24's leaky bucket (fact sheet §2.1), one per portal.
//!
//! Every HTTP request adds 1 to a level that drains at `rate` per second; Bitrix24 rejects a
//! request that would lift the level above `burst`. Taking a slot only when the local level
//! allows it means that, as the portal's only client, the gateway never provokes
//! `QUERY_LIMIT_EXCEEDED`. A margin absorbs the difference between when we send and when the
//! portal counts (network and scheduling jitter): one request of headroom below `burst`, and a
//! drain rate assumed 2% slower than the portal's.

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Fraction of the portal's drain rate we count on.
const RATE_MARGIN: f64 = 0.98;

/// A leaky bucket gate.
pub struct Pacer {
    rate: f64,
    capacity: f64,
    state: Mutex<State>,
}

struct State {
    level: f64,
    at: Instant,
    paused_until: Option<Instant>,
}

impl Pacer {
    /// A bucket draining `rate_per_second`, holding `burst`.
    pub fn new(rate_per_second: f64, burst: u32) -> Pacer {
        Pacer {
            rate: rate_per_second * RATE_MARGIN,
            // One request of headroom, unless the bucket holds a single request.
            capacity: f64::from(burst.saturating_sub(1).max(1)),
            state: Mutex::new(State {
                level: 0.0,
                at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Wait for a slot and take it.
    pub async fn acquire(&self) {
        while let Some(wait) = self.try_take(true) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Wait until a slot is free, without taking it.
    pub async fn ready(&self) {
        while let Some(wait) = self.try_take(false) {
            tokio::time::sleep(wait).await;
        }
    }

    /// The portal said `QUERY_LIMIT_EXCEEDED`: someone else shares its budget. Assume the
    /// bucket is full and send nothing before `pause` has passed.
    pub fn throttled(&self, pause: Duration) {
        let mut s = self.lock();
        let now = Instant::now();
        s.level = s.level.max(self.capacity);
        s.at = now;
        let until = now + pause;
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
    }

    /// None when a slot is free (taken if `take`), else how long to wait.
    fn try_take(&self, take: bool) -> Option<Duration> {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(until) = s.paused_until {
            if until > now {
                return Some(until - now);
            }
            s.paused_until = None;
        }
        let drained = now.saturating_duration_since(s.at).as_secs_f64() * self.rate;
        s.level = (s.level - drained).max(0.0);
        s.at = now;
        let room = self.capacity;
        if s.level + 1.0 <= room + 1e-9 {
            if take {
                s.level += 1.0;
            }
            None
        } else {
            let excess = s.level + 1.0 - room;
            Some(Duration::from_secs_f64(excess / self.rate).max(Duration::from_millis(1)))
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_burst_passes_at_once_then_requests_follow_the_drain_rate() {
        let pacer = Pacer::new(2.0, 50);
        let start = Instant::now();
        for _ in 0..49 {
            pacer.acquire().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "49 of the burst pass without waiting"
        );
        // One request of headroom stays free; the rest follow the drain rate (2/s counted 2%
        // slower): 11 more need about 5.6 s.
        for _ in 0..11 {
            pacer.acquire().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!((5.5..5.7).contains(&elapsed), "elapsed {elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_level_never_exceeds_the_burst_under_any_schedule() {
        // Model the portal's counter alongside and check it at every request.
        let (rate, burst) = (2.0, 5);
        let pacer = Pacer::new(rate, burst);
        let mut level = 0.0f64;
        let mut last = Instant::now();
        for i in 0..40u64 {
            pacer.acquire().await;
            let now = Instant::now();
            level = (level - now.duration_since(last).as_secs_f64() * rate).max(0.0);
            last = now;
            assert!(
                level + 1.0 <= f64::from(burst),
                "request {i} would be rejected"
            );
            level += 1.0;
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_pauses_and_assumes_a_full_bucket() {
        let pacer = Pacer::new(2.0, 50);
        let start = Instant::now();
        pacer.throttled(Duration::from_secs(3));
        pacer.ready().await;
        let waited = start.elapsed().as_secs_f64();
        assert!(waited >= 3.0, "waited {waited}");
    }
}
