//! A metrics sink that adds up each stop's counts in memory, for the ride summary.

use busline_core::ports::MetricsSink;
use busline_core::{InvocationMetrics, StopCounts};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// What one stop did over a ride.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopTally {
    /// Counts added up over every invocation.
    pub counts: StopCounts,
    /// Invocations (batches) handled.
    pub invocations: u64,
    /// Time spent handling batches (summed over concurrent batches).
    pub busy: Duration,
}

/// Every stop's tally, by stop name.
#[derive(Debug, Default)]
pub struct MetricsBoard {
    tallies: Mutex<BTreeMap<String, StopTally>>,
}

impl MetricsBoard {
    /// A copy of every stop's tally.
    pub fn snapshot(&self) -> BTreeMap<String, StopTally> {
        self.tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
impl MetricsSink for MetricsBoard {
    async fn record(&self, metrics: &InvocationMetrics) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let tally = tallies.entry(metrics.stop.clone()).or_default();
        tally.counts += metrics.counts.clone();
        tally.invocations += 1;
        tally.busy += metrics.duration;
    }
}
