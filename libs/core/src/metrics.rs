//! Counts every stop keeps, so that
//! `in + picked up = forwarded + continued + dropped off + rejected + failed`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::time::Duration;

/// Passenger and bus counts of one stop over one or more batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StopCounts {
    /// Buses (SQS messages) received.
    pub buses_in: u64,
    /// Passengers on the buses received (unknown for undecodable buses, counted as 0).
    pub passengers_in: u64,
    /// New passengers taken from a source (extract rows, depot tickets).
    pub picked_up: u64,
    /// Passengers sent on to the next stops, on every lane.
    pub forwarded: u64,
    /// Of `forwarded`, how many took each lane (`next` and the named lanes).
    pub lanes: BTreeMap<String, u64>,
    /// Passengers sent back to this stop's own queue to be continued by a later invocation
    /// (a continuation ticket for a source read up to a checkpoint).
    pub continued: u64,
    /// Passengers that left the bus here: written to a destination, consumed, or filtered out.
    pub dropped_off: u64,
    /// Passengers sent to quarantine with a reason.
    pub rejected: u64,
    /// Buses not completed: reported failed for SQS to retry, or dead-lettered.
    pub buses_failed: u64,
    /// Passengers on those buses.
    pub passengers_failed: u64,
    /// Of the failed buses, those this stop sent to its dead-letter queue with a reason.
    pub buses_dead_lettered: u64,
    /// Buses handed back unstarted because the invocation's deadline was near (not in
    /// `buses_in`: the next invocation takes them).
    pub buses_handed_back: u64,
    /// Buses sent to the next stop.
    pub buses_out: u64,
    /// Bytes of bus bodies sent to the next stop.
    pub bytes_out: u64,
}

impl StopCounts {
    /// True when every passenger that arrived or was picked up is accounted for.
    pub fn adds_up(&self) -> bool {
        self.passengers_in + self.picked_up
            == self.forwarded
                + self.continued
                + self.dropped_off
                + self.rejected
                + self.passengers_failed
    }
}

impl AddAssign for StopCounts {
    fn add_assign(&mut self, o: Self) {
        self.buses_in += o.buses_in;
        self.passengers_in += o.passengers_in;
        self.picked_up += o.picked_up;
        self.forwarded += o.forwarded;
        for (lane, count) in o.lanes {
            *self.lanes.entry(lane).or_default() += count;
        }
        self.continued += o.continued;
        self.dropped_off += o.dropped_off;
        self.rejected += o.rejected;
        self.buses_failed += o.buses_failed;
        self.passengers_failed += o.passengers_failed;
        self.buses_dead_lettered += o.buses_dead_lettered;
        self.buses_handed_back += o.buses_handed_back;
        self.buses_out += o.buses_out;
        self.bytes_out += o.bytes_out;
    }
}

/// What one invocation of a stop reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvocationMetrics {
    /// The stop's name.
    pub stop: String,
    /// The route's name.
    pub route: String,
    /// Counts of this invocation.
    pub counts: StopCounts,
    /// Wall time of the invocation.
    pub duration: Duration,
    /// Age of the oldest message in the batch (from SQS's SentTimestamp), if known.
    pub oldest_message_age: Option<Duration>,
}
