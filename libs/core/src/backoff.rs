//! Per-message backoff: how long a bus that failed with a retryable error stays hidden before
//! its next receive, so a throttled sink is retried within seconds at first and less often later.

use crate::id::stable_id;
use std::time::Duration;

/// Exponential backoff on the receive count, with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first receive fails (before jitter).
    pub base: Duration,
    /// The longest delay: the queue's visibility timeout.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(181),
        }
    }
}

impl Backoff {
    /// The visibility timeout for a message that failed on its `receive_count`th receive:
    /// `base · 2^(receive_count − 1)`, capped, of which the upper half is jitter drawn from
    /// `jitter_key` (the message id), so retries of many buses spread out and a replay of the
    /// same failure waits the same. Whole seconds (SQS's unit), at least one.
    pub fn delay(&self, receive_count: u32, jitter_key: &str) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(31);
        let full = self
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.cap)
            .as_millis() as u64;
        let draw = stable_id(&[jitter_key, &receive_count.to_string()]);
        let fraction =
            u64::from_str_radix(&draw[..8], 16).unwrap_or_default() as f64 / f64::from(u32::MAX);
        let millis = full / 2 + ((full / 2) as f64 * fraction) as u64;
        Duration::from_secs(millis.div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_receive_within_the_jitter_band_and_stops_at_the_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(20),
        };
        for key in ["a", "b", "c", "message-7"] {
            let delays: Vec<u64> = (1..=6).map(|n| backoff.delay(n, key).as_secs()).collect();
            for (n, (delay, full)) in delays.iter().zip([2, 4, 8, 16, 20, 20]).enumerate() {
                assert!(
                    (full / 2..=full).contains(delay),
                    "receive {}: {delay}s outside {}..={full}s ({key})",
                    n + 1,
                    full / 2
                );
            }
        }
        assert_eq!(backoff.delay(3, "a"), backoff.delay(3, "a"));
    }
}
