//! The gateway's one clock: the system's by default, a manual one in tests. Cheap to clone; every
//! part that reads the time (the HTTP layer, the outbox, the deliverer, the retention task) gets
//! the one built in `startup.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of the current time, in the gateway's unit (milliseconds since the Unix epoch).
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that stands at `start_ms` until its [`ManualClock`] moves it.
    pub fn manual(start_ms: u64) -> (Clock, ManualClock) {
        let at = Arc::new(AtomicU64::new(start_ms));
        (Clock(Source::Manual(at.clone())), ManualClock(at))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System => crate::domain::now_ms(),
            Source::Manual(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Unix seconds.
    pub fn now_secs(&self) -> i64 {
        (self.now_ms() / 1000) as i64
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Manual(at) => write!(f, "Clock::manual({})", at.load(Ordering::SeqCst)),
        }
    }
}

/// The hand that moves a manual [`Clock`] (tests).
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Jump to `ms` (milliseconds since the Unix epoch).
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_every_clone_sees_it() {
        let (clock, hand) = Clock::manual(5_000);
        let copy = clock.clone();
        assert_eq!((clock.now_ms(), clock.now_secs()), (5_000, 5));
        hand.advance(Duration::from_secs(2));
        assert_eq!(copy.now_ms(), 7_000);
        hand.set_ms(1_000);
        assert_eq!(clock.now_secs(), 1);
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let before = crate::domain::now_ms();
        let now = Clock::system().now_ms();
        assert!(now >= before && now - before < 60_000, "{before} {now}");
    }
}
