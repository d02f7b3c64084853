//! The ledger entry of one bus, from the stop's settings and what its outbox counted.

use super::{
    BusOutcome, DEPOT_BUS, LedgerEntry, counter, dead_letter_bus, departure_left,
    is_dead_letter_of, now_ms, queue_name,
};
use crate::config::StopConfig;
use crate::outbox::OutboxCounts;
use std::collections::{BTreeMap, HashSet};

/// The entry of a bus the stop rode, recorded before its buses leave: `passengers_in` arrived
/// from its queue, and what its outbox counted left on the lanes, went back to its own queue,
/// dropped off or was rejected, but for what its early departures (`departed`) recorded.
pub fn ridden_entry(
    config: &StopConfig,
    trip: &str,
    bus: &str,
    passengers_in: u64,
    counts: &OutboxCounts,
    departed: &OutboxCounts,
) -> LedgerEntry {
    let mut entry = Counters::new(config);
    entry.arrived(passengers_in);
    entry.outbox(&counts.without_departures(departed));
    entry.build(trip, bus, BusOutcome::Ridden)
}

/// The entry of early departure `departure` (see [`super::departure_bus`]) of stop `stop`:
/// `riders` passengers about to leave on `lane` (`None` for the stop's own queue, a
/// continuation) into the queue at `queue_url`.
pub fn departure_entry(
    stop: &str,
    trip: &str,
    departure: &str,
    lane: Option<&str>,
    queue_url: &str,
    riders: u64,
) -> LedgerEntry {
    let mut counters = BTreeMap::from([(counter::sent(queue_name(queue_url)), riders)]);
    match lane {
        Some(lane) => {
            counters.insert(counter::stop(stop, &format!("lane:{lane}")), riders);
            counters.insert(counter::stop(stop, "forwarded"), riders);
        }
        None => {
            counters.insert(counter::stop(stop, "continued"), riders);
        }
    }
    counters.retain(|_, value| *value > 0);
    LedgerEntry {
        trip: trip.to_owned(),
        stop: stop.to_owned(),
        bus: departure.to_owned(),
        outcome: BusOutcome::Ridden,
        at_ms: now_ms(),
        counters,
    }
}

/// The entry that says early departure `departure` left: nothing to count.
pub fn departure_left_entry(stop: &str, trip: &str, departure: &str) -> LedgerEntry {
    LedgerEntry {
        trip: trip.to_owned(),
        stop: stop.to_owned(),
        bus: departure_left(departure),
        outcome: BusOutcome::Ridden,
        at_ms: now_ms(),
        counters: BTreeMap::new(),
    }
}

/// The entry of a bus the stop dead-lettered, given the bus's records so far (`recorded`, from
/// [`super::Ledger::bus_entries`]). Its passengers arrived and are in the dead-letter queue;
/// what its own record and its departures not known to have left counted as sent is in doubt.
/// A bus ridden before gets a dead letter of its own ([`dead_letter_bus`]), which its redrive
/// clears; otherwise the bus's own entry is the dead letter, which its redrive replaces.
pub fn dead_lettered_entry(
    config: &StopConfig,
    trip: &str,
    bus: &str,
    passengers_in: u64,
    recorded: &[LedgerEntry],
) -> LedgerEntry {
    let mut entry = Counters::new(config);
    let ridden_before = recorded
        .iter()
        .any(|e| e.bus == bus && e.outcome == BusOutcome::Ridden);
    for (queue, value) in in_doubt(recorded, bus) {
        entry.add(counter::in_doubt(&queue), value);
    }
    entry.stop("dead_lettered", passengers_in);
    if !ridden_before {
        entry.arrived(passengers_in);
        return entry.build(trip, bus, BusOutcome::DeadLettered);
    }
    // An open dead letter is this one recorded before (its record is tried again).
    let dead = match open_dead_letter(recorded, bus) {
        Some(open) => open.bus.clone(),
        None => dead_letter_bus(bus, dead_letters(recorded, bus).count()),
    };
    entry.build(trip, &dead, BusOutcome::DeadLettered)
}

/// The entry that clears the open dead letter of a bus ridden again (a redrive), if it has one:
/// the same key, ridden, with nothing to count.
pub fn cleared_dead_letter(recorded: &[LedgerEntry], bus: &str) -> Option<LedgerEntry> {
    let open = open_dead_letter(recorded, bus)?;
    Some(LedgerEntry {
        outcome: BusOutcome::Ridden,
        at_ms: now_ms(),
        counters: BTreeMap::new(),
        ..open.clone()
    })
}

/// The dead letters of `bus` recorded as such ([`dead_letter_bus`] entries).
fn dead_letters<'e>(
    recorded: &'e [LedgerEntry],
    bus: &'e str,
) -> impl Iterator<Item = &'e LedgerEntry> {
    recorded
        .iter()
        .filter(move |e| is_dead_letter_of(&e.bus, bus))
}

/// The dead letter of `bus` not yet cleared by a redrive, if any.
fn open_dead_letter<'e>(recorded: &'e [LedgerEntry], bus: &'e str) -> Option<&'e LedgerEntry> {
    dead_letters(recorded, bus).find(|e| e.outcome == BusOutcome::DeadLettered)
}

/// Per queue, what the records of `bus` counted as sent without knowing it left: its own
/// record's (its pooled send may have failed), and its early departures' that did not record
/// they left.
fn in_doubt(recorded: &[LedgerEntry], bus: &str) -> BTreeMap<String, u64> {
    let ids: HashSet<&str> = recorded.iter().map(|e| e.bus.as_str()).collect();
    let mut doubt: BTreeMap<String, u64> = BTreeMap::new();
    let unsure = recorded.iter().filter(|e| {
        e.outcome == BusOutcome::Ridden
            && (e.bus == bus || !ids.contains(&departure_left(&e.bus).as_str()))
    });
    for entry in unsure {
        for (name, value) in &entry.counters {
            if let Some(queue) = name.strip_prefix("sent:") {
                *doubt.entry(queue.to_owned()).or_default() += value;
            }
        }
    }
    doubt
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vars_of;
    use crate::ledger::departure_bus;

    fn config() -> StopConfig {
        StopConfig::from_vars(&vars_of(&[
            ("STOP_NAME", "extract"),
            ("ROUTE_NAME", "r"),
            ("QUEUE_URL", "http://q/extract"),
            ("NEXT_QUEUE_URL", "http://q/transform"),
        ]))
        .expect("valid")
    }

    fn departure(index: u32, riders: u64) -> LedgerEntry {
        let bus = departure_bus("b", index);
        departure_entry(
            "extract",
            "t",
            &bus,
            Some("next"),
            "http://q/transform",
            riders,
        )
    }

    fn counters(entry: &LedgerEntry) -> Vec<(&str, u64)> {
        entry
            .counters
            .iter()
            .map(|(name, value)| (name.as_str(), *value))
            .collect()
    }

    #[test]
    fn a_dead_letter_doubts_only_what_its_bus_did_not_record_as_left() {
        let left = departure_left_entry("extract", "t", &departure_bus("b", 0));
        let recorded = [departure(0, 10), left, departure(1, 7)];
        let dead = dead_lettered_entry(&config(), "t", "b", 1, &recorded);
        assert_eq!(
            (dead.bus.as_str(), dead.outcome),
            ("b", BusOutcome::DeadLettered)
        );
        assert_eq!(
            counters(&dead),
            [
                ("arrived:extract", 1),
                ("doubt:transform", 7),
                ("stop:extract:buses", 1),
                ("stop:extract:dead_lettered", 1),
                ("stop:extract:in", 1),
            ]
        );
    }

    #[test]
    fn a_bus_ridden_before_gets_a_dead_letter_of_its_own_which_a_redrive_clears() {
        let config = config();
        let counts = OutboxCounts {
            forwarded: 4,
            lanes: BTreeMap::from([("next".to_owned(), 4)]),
            ..OutboxCounts::default()
        };
        let ridden = ridden_entry(&config, "t", "b", 4, &counts, &OutboxCounts::default());
        let mut recorded = vec![ridden];
        assert_eq!(cleared_dead_letter(&recorded, "b"), None);

        let dead = dead_lettered_entry(&config, "t", "b", 4, &recorded);
        assert_eq!(dead.bus, "b~dead~0");
        assert_eq!(
            counters(&dead),
            [("doubt:transform", 4), ("stop:extract:dead_lettered", 4)]
        );
        recorded.push(dead.clone());
        let again = dead_lettered_entry(&config, "t", "b", 4, &recorded);
        assert_eq!(again.bus, "b~dead~0", "its record tried again");

        let cleared = cleared_dead_letter(&recorded, "b").expect("an open dead letter");
        assert_eq!(
            (cleared.bus.as_str(), cleared.outcome),
            ("b~dead~0", BusOutcome::Ridden)
        );
        assert!(cleared.counters.is_empty());
        recorded[1] = cleared;
        assert_eq!(cleared_dead_letter(&recorded, "b"), None);
        let later = dead_lettered_entry(&config, "t", "b", 4, &recorded);
        assert_eq!(
            later.bus, "b~dead~1",
            "dead-lettered again after its redrive"
        );
    }

    #[test]
    fn a_ridden_record_leaves_out_what_its_early_departures_counted() {
        let counts = OutboxCounts {
            forwarded: 12,
            continued: 3,
            dropped_off: 1,
            lanes: BTreeMap::from([("next".to_owned(), 12)]),
            ..OutboxCounts::default()
        };
        let departed = OutboxCounts {
            forwarded: 10,
            continued: 3,
            lanes: BTreeMap::from([("next".to_owned(), 10)]),
            ..OutboxCounts::default()
        };
        let ridden = ridden_entry(&config(), "t", "b", 16, &counts, &departed);
        assert_eq!(
            counters(&ridden),
            [
                ("arrived:extract", 16),
                ("sent:transform", 2),
                ("stop:extract:buses", 1),
                ("stop:extract:dropped_off", 1),
                ("stop:extract:forwarded", 2),
                ("stop:extract:in", 16),
                ("stop:extract:lane:next", 2),
            ]
        );
    }
}
