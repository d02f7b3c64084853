//! The trip ledger: per trip and stop, what every bus did, recorded once per bus. It decides
//! when a trip is complete.
//!
//! A ledger entry is a set of counters one bus adds to its trip's totals. Two kinds of counter
//! decide completion: passengers *sent* into a queue (by the depot, by a lane, by a
//! continuation) and passengers that *arrived* from it (on buses a stop rode or
//! dead-lettered). A trip is complete when the depot has recorded its tickets and every queue
//! has had as many passengers arrive as were sent into it: nothing is in flight. Because each
//! bus is recorded once, under its deterministic id, a redelivered bus changes nothing.
//!
//! Passengers are counted as sent *before* they leave (a bus's record comes before its pooled
//! send; each early departure has a record before it leaves and one once it left), so a trip
//! never completes while something it sent travels uncounted. A bus dead-lettered after its
//! record may or may not have sent what that counted (its send failed, or its process died
//! after it): its dead letter counts that, and any departure not known to have left, as *in
//! doubt*, and a queue whose missing arrivals are all in doubt counts as balanced, so the trip
//! completes with failures.

mod completion;
mod entries;
mod memory;
mod totals;

pub use completion::{
    CollectedEvents, MANIFEST_NAME, Manifest, ManifestObject, TripBook, TripEvents, now_ms, rfc3339,
};
pub use entries::{
    cleared_dead_letter, dead_lettered_entry, departure_entry, departure_left_entry, depot_entry,
    replay_entry, ridden_entry,
};
pub use memory::MemoryLedger;
pub use totals::{Completion, Flow, StopTally, TripProgress, TripState, TripTotals};

use crate::config::{Vars, optional};
use crate::error::{ConfigError, PortError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What became of a recorded bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusOutcome {
    /// The stop handled it and everything it produced was accepted downstream.
    Ridden,
    /// It failed for good and is in the stop's dead-letter queue.
    DeadLettered,
}

/// One bus's record: the counters it adds to its trip's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The trip.
    pub trip: String,
    /// The stop that recorded it.
    pub stop: String,
    /// The bus's id (the depot records its trip start as bus [`DEPOT_BUS`]).
    pub bus: String,
    /// What became of the bus.
    pub outcome: BusOutcome,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What the bus adds to its trip's totals (see [`counter`] for the names).
    pub counters: BTreeMap<String, u64>,
}

impl LedgerEntry {
    /// What replacing `old` (a dead-lettered record of the same bus) by `self` adds to the
    /// totals: every counter of `self` less the same counter of `old`.
    pub fn replacing(&self, old: &LedgerEntry) -> BTreeMap<String, i64> {
        let mut deltas: BTreeMap<String, i64> = old
            .counters
            .iter()
            .map(|(name, value)| (name.clone(), -(*value as i64)))
            .collect();
        for (name, value) in &self.counters {
            *deltas.entry(name.clone()).or_default() += *value as i64;
        }
        deltas.retain(|_, delta| *delta != 0);
        deltas
    }

    /// The counters as deltas, for a first record.
    pub fn deltas(&self) -> BTreeMap<String, i64> {
        self.counters
            .iter()
            .map(|(name, value)| (name.clone(), *value as i64))
            .collect()
    }
}

/// `TRIP_LEDGER`: `on` (the default) or `off`; the error names the variable.
pub fn ledger_on(vars: &dyn Vars) -> Result<bool, ConfigError> {
    match optional(vars, "TRIP_LEDGER").as_deref() {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            var: "TRIP_LEDGER".into(),
            value: other.into(),
            reason: "must be on or off".into(),
        }),
    }
}

/// The bus id under which the depot records the start of a trip.
pub const DEPOT_BUS: &str = "trip-start";

/// Counter names. Flat names (no nesting), so every store can add to them atomically.
pub mod counter {
    /// Set to 1 by the depot's record: the trip's tickets have all been handed out.
    pub const STARTED: &str = "trip:started";

    /// Passengers replayed into the trip from its quarantine, once corrected.
    pub const REPLAYED: &str = "trip:replayed";

    /// Passengers sent into the queue named `queue`.
    pub fn sent(queue: &str) -> String {
        format!("sent:{queue}")
    }

    /// Passengers that arrived from the queue named `queue`, on buses ridden or dead-lettered.
    pub fn arrived(queue: &str) -> String {
        format!("arrived:{queue}")
    }

    /// Passengers counted as sent into the queue named `queue` by a bus since dead-lettered,
    /// which may never have left.
    pub fn in_doubt(queue: &str) -> String {
        format!("doubt:{queue}")
    }

    /// A stop's own count, `field` one of [`super::StopTally`]'s (`in`, `forwarded`, ...), or
    /// `lane:<lane>`.
    pub fn stop(stop: &str, field: &str) -> String {
        format!("stop:{stop}:{field}")
    }
}

/// The bus id under which bus `bus` records its early departure number `index` (counted from
/// 0): recorded before it leaves, and the same on every receive of the bus.
pub fn departure_bus(bus: &str, index: u32) -> String {
    format!("{bus}~departure~{index}")
}

/// The bus id under which early departure `departure` ([`departure_bus`]) records that it left.
pub fn departure_left(departure: &str) -> String {
    format!("{departure}{LEFT_MARK}")
}

/// What follows a departure's id in the id of its record that it left.
const LEFT_MARK: &str = "~left";

/// The bus id under which bus `bus`, ridden and recorded before, records its dead letter
/// number `index` (a redrive clears it; dead-lettered again, it records the next).
pub fn dead_letter_bus(bus: &str, index: usize) -> String {
    format!("{bus}{DEAD_LETTER_MARK}{index}")
}

/// What follows a bus's id in the ids of its dead letters.
const DEAD_LETTER_MARK: &str = "~dead~";

/// True when `recorded` is one of `bus`'s dead letters ([`dead_letter_bus`]).
fn is_dead_letter_of(recorded: &str, bus: &str) -> bool {
    recorded
        .strip_prefix(bus)
        .is_some_and(|rest| rest.starts_with(DEAD_LETTER_MARK))
}

/// The queue's name in a queue URL (its last path segment): the ledger's name for a queue, the
/// same whichever endpoint the URL names.
pub fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// True when `recorded` is `bus` itself or one of its departures or dead letters.
pub(crate) fn is_of_bus(recorded: &str, bus: &str) -> bool {
    recorded
        .strip_prefix(bus)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('~'))
}

/// What [`Ledger::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A first record of the bus: its counters were added.
    New,
    /// The bus was dead-lettered before and has now been ridden (a redrive): its old counters
    /// were replaced by these.
    Replaced,
    /// The bus was recorded before (a redelivery): nothing changed.
    AlreadyRecorded,
}

/// Where a host keeps the ledger: a DynamoDB table on AWS, memory or a file in the embedded
/// bus. Each write is atomic with its totals update, so concurrent stops never lose a count.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Records `entry` once and adds its counters to the trip's totals in the same write. A
    /// ridden entry replaces a dead-lettered record of the same bus ([`Recorded::Replaced`]);
    /// anything else already recorded is left as it is.
    async fn record(&self, entry: &LedgerEntry) -> Result<Recorded, PortError>;

    /// The trip's totals as of now (a strongly consistent read), or `None` for a trip never
    /// recorded.
    async fn totals(&self, trip: &str) -> Result<Option<TripTotals>, PortError>;

    /// Claims the trip's completion for `claim`: true for exactly one caller per completion,
    /// even when several try at once. A claim succeeds when the trip has none yet, or when
    /// `claim` [supersedes](Completion::supersedes) its last one (a redrive or a replay
    /// completed it again).
    async fn claim_completion(&self, trip: &str, claim: &Completion) -> Result<bool, PortError>;

    /// Gives up `claim` (its manifest or event could not be written), so the next caller claims
    /// the completion again; a completion claimed or announced since is left alone.
    async fn release_claim(&self, trip: &str, claim: &Completion) -> Result<(), PortError>;

    /// Marks the trip's completion `claim` as announced (manifest written, event sent), so a
    /// redelivered bus does not announce it again; a completion claimed since is left alone.
    async fn mark_announced(&self, trip: &str, claim: &Completion) -> Result<(), PortError>;

    /// The most recently updated trips, newest first, at most `limit`.
    async fn recent_trips(&self, limit: usize) -> Result<Vec<TripTotals>, PortError>;

    /// The trip's bus records, in stop and bus order.
    async fn entries(&self, trip: &str) -> Result<Vec<LedgerEntry>, PortError>;

    /// The records of bus `bus` of stop `stop`: its own, and those of its early departures
    /// and dead letters ([`departure_bus`], [`dead_letter_bus`]), in bus order.
    async fn bus_entries(
        &self,
        trip: &str,
        stop: &str,
        bus: &str,
    ) -> Result<Vec<LedgerEntry>, PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: BusOutcome, counters: &[(&str, u64)]) -> LedgerEntry {
        LedgerEntry {
            trip: "t".into(),
            stop: "s".into(),
            bus: "b".into(),
            outcome,
            at_ms: 1,
            counters: counters.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
        }
    }

    #[test]
    fn a_redriven_bus_replaces_its_dead_lettered_counters() {
        let dead = entry(
            BusOutcome::DeadLettered,
            &[("arrived:q", 5), ("stop:s:dead_lettered", 5)],
        );
        let ridden = entry(
            BusOutcome::Ridden,
            &[("arrived:q", 5), ("sent:r", 4), ("stop:s:rejected", 1)],
        );
        assert_eq!(
            ridden.replacing(&dead),
            BTreeMap::from([
                ("sent:r".to_owned(), 4),
                ("stop:s:dead_lettered".to_owned(), -5),
                ("stop:s:rejected".to_owned(), 1),
            ])
        );
    }

    #[test]
    fn a_queue_is_named_by_its_url_whatever_the_endpoint() {
        assert_eq!(
            queue_name("https://sqs.us-east-1.amazonaws.com/123/route-load"),
            "route-load"
        );
        assert_eq!(
            queue_name("http://localhost:4566/000000000000/route-load/"),
            "route-load"
        );
        assert_eq!(queue_name("LoadQueue"), "LoadQueue");
    }
}
