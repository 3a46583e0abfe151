//! The per-portal leaky bucket that produces 503 `QUERY_LIMIT_EXCEEDED` (fact sheet §2.1).

use std::time::Instant;

use super::config::BucketConfig;

/// Leaky bucket state. Pure: the caller passes the clock.
#[derive(Debug, Clone)]
pub(crate) struct LeakyBucket {
    config: BucketConfig,
    level: f64,
    last: Instant,
}

impl LeakyBucket {
    pub(crate) fn new(config: BucketConfig, now: Instant) -> Self {
        LeakyBucket {
            config,
            level: 0.0,
            last: now,
        }
    }

    /// Account for one HTTP request arriving at `now`. `false` = reject (and the request is not added).
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        // Requests are handled concurrently, so `now` may be slightly older than `last`: never drain negatively.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level - self.config.rate_per_second * elapsed).max(0.0);
        self.last = self.last.max(now);
        if self.level + 1.0 > f64::from(self.config.burst) {
            return false;
        }
        self.level += 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_reject_then_drain() {
        let t0 = Instant::now();
        let mut bucket = LeakyBucket::new(
            BucketConfig {
                rate_per_second: 1.0,
                burst: 5,
            },
            t0,
        );
        for _ in 0..5 {
            assert!(bucket.try_take(t0));
        }
        assert!(!bucket.try_take(t0), "6th request in the same instant");
        assert!(
            !bucket.try_take(t0 + Duration::from_millis(500)),
            "only half a slot drained"
        );
        assert!(
            bucket.try_take(t0 + Duration::from_secs(1)),
            "one slot drained"
        );
        assert!(!bucket.try_take(t0 + Duration::from_secs(1)));
        // After a long pause the bucket is empty again (never negative).
        let later = t0 + Duration::from_secs(100);
        for _ in 0..5 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn out_of_order_arrivals_do_not_refill() {
        let t0 = Instant::now();
        let mut bucket = LeakyBucket::new(
            BucketConfig {
                rate_per_second: 1.0,
                burst: 1,
            },
            t0,
        );
        assert!(bucket.try_take(t0 + Duration::from_secs(2)));
        assert!(!bucket.try_take(t0));
    }
}
