//! The ledger entry of one bus, from the stop's settings and what its outbox counted.

use super::{BusOutcome, DEPOT_BUS, LedgerEntry, counter, now_ms, queue_name};
use crate::config::StopConfig;
use crate::outbox::OutboxCounts;
use std::collections::BTreeMap;

/// The entry of a bus the stop rode: `passengers_in` arrived from its queue, and what its
/// outbox counted left on the lanes, went back to its own queue, dropped off or was rejected.
pub fn ridden_entry(
    config: &StopConfig,
    trip: &str,
    bus: &str,
    passengers_in: u64,
    counts: &OutboxCounts,
) -> LedgerEntry {
    let mut entry = Counters::new(config);
    entry.arrived(passengers_in);
    entry.outbox(counts);
    entry.build(trip, bus, BusOutcome::Ridden)
}

/// The entry of a bus the stop dead-lettered: its passengers arrived and are now in the
/// dead-letter queue, and the buses it sent before it failed (`departed`) are on their way.
pub fn dead_lettered_entry(
    config: &StopConfig,
    trip: &str,
    bus: &str,
    passengers_in: u64,
    departed: &OutboxCounts,
) -> LedgerEntry {
    let mut entry = Counters::new(config);
    entry.arrived(passengers_in);
    entry.outbox(departed);
    entry.stop("dead_lettered", passengers_in);
    entry.build(trip, bus, BusOutcome::DeadLettered)
}

/// The depot's entry: the trip's tickets, all handed out.
pub fn depot_entry(config: &StopConfig, trip: &str, counts: &OutboxCounts) -> LedgerEntry {
    let mut entry = Counters::new(config);
    entry.counters.insert(counter::STARTED.to_owned(), 1);
    entry.outbox(counts);
    entry.build(trip, DEPOT_BUS, BusOutcome::Ridden)
}

/// The entry of a quarantine replay (recorded as bus `bus` of its own stop): the corrected
/// passengers it sent, which also count as replayed for the trip, so its completion is claimed
/// again.
pub fn replay_entry(
    config: &StopConfig,
    trip: &str,
    bus: &str,
    counts: &OutboxCounts,
) -> LedgerEntry {
    let mut entry = Counters::new(config);
    entry.outbox(counts);
    entry.add(counter::REPLAYED.to_owned(), counts.forwarded);
    entry.build(trip, bus, BusOutcome::Ridden)
}

/// Counters being collected for one entry (zeros are left out).
struct Counters<'c> {
    config: &'c StopConfig,
    counters: BTreeMap<String, u64>,
}

impl<'c> Counters<'c> {
    fn new(config: &'c StopConfig) -> Self {
        Counters {
            config,
            counters: BTreeMap::new(),
        }
    }

    fn add(&mut self, name: String, value: u64) {
        if value > 0 {
            *self.counters.entry(name).or_default() += value;
        }
    }

    fn stop(&mut self, field: &str, value: u64) {
        self.add(counter::stop(&self.config.stop, field), value);
    }

    fn arrived(&mut self, passengers_in: u64) {
        self.stop("buses", 1);
        self.stop("in", passengers_in);
        if let Some(url) = &self.config.queue_url {
            self.add(counter::arrived(queue_name(url)), passengers_in);
        }
    }

    fn outbox(&mut self, counts: &OutboxCounts) {
        let config = self.config;
        for (lane, passengers) in &counts.lanes {
            self.stop(&format!("lane:{lane}"), *passengers);
            if let Some(url) = config.lane_url(lane) {
                self.add(counter::sent(queue_name(url)), *passengers);
            }
        }
        if let Some(url) = &config.queue_url {
            self.add(counter::sent(queue_name(url)), counts.continued);
        }
        self.stop("picked_up", counts.picked_up);
        self.stop("forwarded", counts.forwarded);
        self.stop("continued", counts.continued);
        self.stop("dropped_off", counts.dropped_off);
        self.stop("rejected", counts.rejected);
    }

    fn build(self, trip: &str, bus: &str, outcome: BusOutcome) -> LedgerEntry {
        LedgerEntry {
            trip: trip.to_owned(),
            stop: self.config.stop.clone(),
            bus: bus.to_owned(),
            outcome,
            at_ms: now_ms(),
            counters: self.counters,
        }
    }
}
