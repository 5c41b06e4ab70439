//! The clock every decision about stored time reads: when a job is due, when a lease or a
//! link expires, what timestamp a row gets.
//!
//! Production runs on [`Clock::system`]. Tests build the app with a [`TestClock`], which is
//! the real clock plus an offset that only moves forward: time keeps flowing (so polling
//! loops still finish), and a test that needs an hour to pass calls
//! [`TestClock::advance`] instead of sleeping or rewriting timestamps in tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The wall clock, as seen by one app. Cheap to clone; clones of a test clock share its
/// offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the real clock; `None` for the system clock.
    offset_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The real clock.
    pub fn system() -> Clock {
        Clock { offset_ms: None }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.offset_ms {
            None => now,
            Some(offset) => now + chrono::Duration::milliseconds(offset.load(Ordering::Relaxed)),
        }
    }

    /// Now, in stored form (UTC milliseconds since the epoch).
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// A clock for tests: the real clock plus an offset that [`TestClock::advance`] moves
/// forward. It never goes backwards.
#[derive(Clone, Debug)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    /// Starts at the real time.
    pub fn new() -> TestClock {
        TestClock {
            offset_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// The [`Clock`] to hand to the app; it follows every later [`TestClock::advance`].
    pub fn clock(&self) -> Clock {
        Clock {
            offset_ms: Some(self.offset_ms.clone()),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_forward_with_every_clone() {
        let test = TestClock::new();
        let clock = test.clock();
        let copy = clock.clone();
        let before = clock.now_ms();
        test.advance(Duration::from_secs(3_600));
        assert!(copy.now_ms() >= before + 3_600_000);
        assert!(clock.now_ms() < before + 3_600_000 + 60_000);
    }

    #[test]
    fn the_system_clock_is_the_real_time() {
        let drift = (Clock::system().now() - Utc::now())
            .num_milliseconds()
            .abs();
        assert!(drift < 1_000);
    }
}
