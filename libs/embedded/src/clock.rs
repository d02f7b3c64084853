//! Time for the embedded queues. The embedded bus uses a manual clock that it moves forward
//! only when every queue is idle, so visibility timeouts keep their meaning (order, receive
//! counts) without a ride waiting for them in real time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock the queues read.
pub trait Clock: Send + Sync {
    /// Time since the clock started.
    fn now(&self) -> Duration;
    /// Milliseconds since the Unix epoch (for SentTimestamp).
    fn epoch_millis(&self) -> u64;
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    start_epoch_ms: u64,
    now_ms: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        let start_epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        ManualClock {
            start_epoch_ms,
            now_ms: AtomicU64::new(0),
        }
    }
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Moves the clock forward to `to` (never backwards).
    pub fn advance_to(&self, to: Duration) {
        self.now_ms
            .fetch_max(to.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.now_ms.load(Ordering::SeqCst))
    }

    fn epoch_millis(&self) -> u64 {
        self.start_epoch_ms + self.now_ms.load(Ordering::SeqCst)
    }
}
