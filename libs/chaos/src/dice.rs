//! Seeded draws: whether a call gets a fault, reproducible by seed and by what the call is.

use crate::spec::{ChaosSpec, Fault};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// What a message body says about itself for a draw: an envelope's header up to its `created`
/// time (its version, deterministic bus id, trip, route, sender and hop), which is the same in
/// every ride of the same trip while the time is not; any other body whole.
pub(crate) fn body_identity(body: &str) -> &[u8] {
    match body.find(r#""created":""#) {
        Some(at) => &body.as_bytes()[..at],
        None => body.as_bytes(),
    }
}

tokio::task_local! {
    /// The highest receive count of the batch the running invocation handles.
    static RECEIVE: u32;
}

/// Runs `work` (an invocation's handling of a batch whose buses were received up to
/// `receive_count` times) so that its draws depend on that count: a bus's next receive draws
/// anew even in a fresh process, whose attempt counts start again, as real faults do.
pub(crate) async fn on_receive<F: std::future::Future>(receive_count: u32, work: F) -> F::Output {
    RECEIVE.scope(receive_count, work).await
}

/// How many faults of each kind were injected.
pub type FaultCounts = BTreeMap<&'static str, u64>;

/// The chaos of one stop: its spec, seed, draws and counts. Cheap to clone (shared state).
#[derive(Clone)]
pub struct StopChaos {
    inner: Arc<Inner>,
}

struct Inner {
    spec: ChaosSpec,
    seed: u64,
    stop: String,
    /// How often each (fault, call) was drawn before: a retry of the same call draws anew.
    attempts: Mutex<HashMap<u64, u32>>,
    injected: [AtomicU64; Fault::ALL.len()],
}

impl StopChaos {
    /// Chaos for stop `stop` by `spec`, drawn from `seed`.
    pub fn new(spec: ChaosSpec, seed: u64, stop: impl Into<String>) -> Self {
        StopChaos {
            inner: Arc::new(Inner {
                spec,
                seed,
                stop: stop.into(),
                attempts: Mutex::new(HashMap::new()),
                injected: Default::default(),
            }),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &ChaosSpec {
        &self.inner.spec
    }

    /// The stop.
    pub fn stop(&self) -> &str {
        &self.inner.stop
    }

    /// Draws whether the call `call` (what it is about, e.g. a key or the bodies sent) gets
    /// `fault`, and counts it when it does.
    pub fn strikes(&self, fault: Fault, call: &[&[u8]]) -> bool {
        if self.draw(fault, call) < self.inner.spec.rate(fault) {
            self.count(fault);
            true
        } else {
            false
        }
    }

    /// A number in [0, 1) for `call`'s next attempt at `fault`.
    pub(crate) fn draw(&self, fault: Fault, call: &[&[u8]]) -> f64 {
        let mut key = fault.name().as_bytes().to_vec();
        for part in call {
            key.push(0);
            key.extend_from_slice(part);
        }
        let receive = RECEIVE.try_with(|receive| *receive).unwrap_or_default();
        key.extend_from_slice(&receive.to_le_bytes());
        let call_id = xxh3_64_with_seed(&key, self.inner.seed);
        let attempt = {
            let mut attempts = self
                .inner
                .attempts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let attempt = attempts.entry(call_id).or_default();
            *attempt += 1;
            *attempt
        };
        let draw = xxh3_64_with_seed(&attempt.to_le_bytes(), call_id);
        (draw >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Counts one injected `fault` (for faults decided later than drawn, such as an abort
    /// that fires only once work was sent).
    pub(crate) fn count(&self, fault: Fault) {
        self.inner.injected[fault.index()].fetch_add(1, Ordering::Relaxed);
        // One line per fault, so a deployed function's faults can be counted from its logs.
        tracing::info!(
            stop = self.inner.stop,
            fault = fault.name(),
            "chaos injected a fault"
        );
    }

    /// The faults injected so far, by name (every kind, zeros included).
    pub fn injected(&self) -> FaultCounts {
        Fault::ALL
            .into_iter()
            .map(|fault| {
                (
                    fault.name(),
                    self.inner.injected[fault.index()].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_strikes_the_same_calls_and_retries_draw_anew() {
        let spec: ChaosSpec = "send=30%".parse().expect("spec");
        let strikes = |seed| {
            let chaos = StopChaos::new(spec.clone(), seed, "s");
            (0..200)
                .map(|n: u32| chaos.strikes(Fault::Send, &[&n.to_le_bytes(), b"q"]))
                .collect::<Vec<_>>()
        };
        assert_eq!(strikes(7), strikes(7));
        assert_ne!(strikes(7), strikes(8));
        let hits = strikes(7).iter().filter(|hit| **hit).count();
        assert!((40..=80).contains(&hits), "{hits} of 200 at 30%");

        let chaos = StopChaos::new("send=50%".parse().expect("spec"), 1, "s");
        let retries: Vec<bool> = (0..40)
            .map(|_| chaos.strikes(Fault::Send, &[b"same"]))
            .collect();
        assert!(retries.contains(&true) && retries.contains(&false));
        assert_eq!(
            chaos.injected()["send"],
            retries.iter().filter(|hit| **hit).count() as u64
        );
    }

    #[tokio::test]
    async fn a_fresh_process_draws_anew_on_each_receive_of_a_bus() {
        let spec: ChaosSpec = "send=50%".parse().expect("spec");
        // One process per receive, as a cold Lambda: only the receive count differs.
        let first_draws = |receive| {
            let spec = spec.clone();
            on_receive(receive, async move {
                (0..64u32)
                    .map(|n| {
                        StopChaos::new(spec.clone(), 7, "s").draw(Fault::Send, &[&n.to_le_bytes()])
                    })
                    .collect::<Vec<f64>>()
            })
        };
        assert_eq!(first_draws(2).await, first_draws(2).await);
        assert_ne!(first_draws(1).await, first_draws(2).await);
    }
}
