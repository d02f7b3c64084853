//! A trip's totals and what they say: in progress, completed, completed with failures.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A trip's totals: the sum of its recorded buses' counters, and its completion if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripTotals {
    /// The trip.
    pub trip: String,
    /// Every counter (see [`super::counter`]).
    pub counters: BTreeMap<String, i64>,
    /// When its first bus was recorded (ms since the Unix epoch).
    pub first_at_ms: u64,
    /// When its last bus was recorded.
    pub last_at_ms: u64,
    /// Its last completion, when it has one.
    pub completion: Option<Completion>,
}

/// A claimed completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// `completed` or `completed_with_failures`.
    pub state: TripState,
    /// Passengers dead-lettered when it completed.
    pub dead_lettered: u64,
    /// Passengers replayed from quarantine when it completed.
    #[serde(default)]
    pub replayed: u64,
    /// The stop and bus whose record completed it (`load/<bus>`).
    pub by: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// True once its manifest is written and its event sent.
    pub announced: bool,
}

/// Where a trip stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripState {
    /// The depot has not recorded the trip's tickets yet.
    Starting,
    /// Passengers are in flight: some queue had more sent into it than arrived from it.
    InProgress,
    /// Everything arrived and nothing was dead-lettered.
    Completed,
    /// Everything arrived, but some buses are in a dead-letter queue.
    CompletedWithFailures,
}

impl std::fmt::Display for TripState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TripState::Starting => "starting",
            TripState::InProgress => "in progress",
            TripState::Completed => "completed",
            TripState::CompletedWithFailures => "completed with failures",
        })
    }
}

/// Passengers sent into one queue and arrived from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Sent into the queue.
    pub sent: i64,
    /// Arrived from it (ridden or dead-lettered).
    pub arrived: i64,
    /// Of those sent, counted by buses since dead-lettered, which may never have left.
    pub in_doubt: i64,
}

impl Flow {
    /// True when nothing more can arrive but what is in doubt: every passenger sent arrived,
    /// or is in doubt.
    pub fn is_balanced(&self) -> bool {
        self.arrived <= self.sent && self.sent <= self.arrived + self.in_doubt
    }
}

/// One stop's counts over a trip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTally {
    /// Buses recorded.
    pub buses: i64,
    /// Passengers on them.
    #[serde(rename = "in")]
    pub passengers_in: i64,
    /// New passengers from a source.
    pub picked_up: i64,
    /// Forwarded on every lane.
    pub forwarded: i64,
    /// Of `forwarded`, by lane.
    pub lanes: BTreeMap<String, i64>,
    /// Sent back to the stop's own queue.
    pub continued: i64,
    /// Left the bus here.
    pub dropped_off: i64,
    /// Quarantined.
    pub rejected: i64,
    /// On dead-lettered buses.
    pub dead_lettered: i64,
}

impl StopTally {
    fn add(&mut self, field: &str, value: i64) {
        match field {
            "buses" => self.buses += value,
            "in" => self.passengers_in += value,
            "picked_up" => self.picked_up += value,
            "forwarded" => self.forwarded += value,
            "continued" => self.continued += value,
            "dropped_off" => self.dropped_off += value,
            "rejected" => self.rejected += value,
            "dead_lettered" => self.dead_lettered += value,
            other => {
                if let Some(lane) = other.strip_prefix("lane:") {
                    *self.lanes.entry(lane.to_owned()).or_default() += value;
                }
            }
        }
    }
}

/// What a trip's totals say, counter by counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TripProgress {
    /// Where the trip stands.
    pub state: TripState,
    /// Per queue, sent and arrived.
    pub flows: BTreeMap<String, Flow>,
    /// Per stop, its counts.
    pub stops: BTreeMap<String, StopTally>,
    /// Passengers quarantined, over every stop.
    pub rejected: i64,
    /// Passengers on dead-lettered buses, over every stop.
    pub dead_lettered: i64,
    /// Passengers replayed from quarantine.
    pub replayed: i64,
}

impl TripTotals {
    /// Adds `deltas` to the counters and moves `last_at_ms` (and `first_at_ms` for a first
    /// record) to `at_ms`.
    pub fn add(&mut self, deltas: &BTreeMap<String, i64>, at_ms: u64) {
        for (name, delta) in deltas {
            *self.counters.entry(name.clone()).or_default() += delta;
        }
        if self.first_at_ms == 0 || at_ms < self.first_at_ms {
            self.first_at_ms = at_ms;
        }
        self.last_at_ms = self.last_at_ms.max(at_ms);
    }

    /// The flows, the stops' counts and the state the counters make.
    pub fn progress(&self) -> TripProgress {
        let mut flows: BTreeMap<String, Flow> = BTreeMap::new();
        let mut stops: BTreeMap<String, StopTally> = BTreeMap::new();
        for (name, value) in &self.counters {
            if let Some(queue) = name.strip_prefix("sent:") {
                flows.entry(queue.to_owned()).or_default().sent += value;
            } else if let Some(queue) = name.strip_prefix("arrived:") {
                flows.entry(queue.to_owned()).or_default().arrived += value;
            } else if let Some(queue) = name.strip_prefix("doubt:") {
                flows.entry(queue.to_owned()).or_default().in_doubt += value;
            } else if let Some((stop, field)) = name
                .strip_prefix("stop:")
                .and_then(|rest| rest.split_once(':'))
            {
                stops.entry(stop.to_owned()).or_default().add(field, *value);
            }
        }
        let rejected = stops.values().map(|s| s.rejected).sum();
        let dead_lettered = stops.values().map(|s| s.dead_lettered).sum();
        let counter = |name| self.counters.get(name).copied().unwrap_or_default();
        let started = counter(super::counter::STARTED) > 0;
        let balanced = flows.values().all(Flow::is_balanced);
        let state = match (started, balanced) {
            (false, _) => TripState::Starting,
            (true, false) => TripState::InProgress,
            (true, true) if dead_lettered > 0 => TripState::CompletedWithFailures,
            (true, true) => TripState::Completed,
        };
        TripProgress {
            state,
            flows,
            stops,
            rejected,
            dead_lettered,
            replayed: counter(super::counter::REPLAYED),
        }
    }
}

impl Completion {
    /// True when this completion is a new one after `last`: fewer passengers dead-lettered (a
    /// redrive) or more replayed (a replay). Anything else is `last` seen again.
    pub fn supersedes(&self, last: &Completion) -> bool {
        self.dead_lettered < last.dead_lettered || self.replayed > last.replayed
    }
}

impl TripProgress {
    /// True when the trip is complete, with or without failures.
    pub fn is_complete(&self) -> bool {
        matches!(
            self.state,
            TripState::Completed | TripState::CompletedWithFailures
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(counters: &[(&str, i64)]) -> TripTotals {
        let mut totals = TripTotals::default();
        for (name, value) in counters {
            totals.add(&BTreeMap::from([((*name).to_owned(), *value)]), 5);
        }
        totals
    }

    #[test]
    fn a_trip_completes_when_every_queue_had_all_its_passengers_arrive() {
        let started = [
            ("trip:started", 1),
            ("sent:extract", 2),
            ("arrived:extract", 2),
        ];
        assert_eq!(totals(&started[1..]).progress().state, TripState::Starting);
        let mut in_flight = started.to_vec();
        in_flight.extend([("sent:load", 10), ("arrived:load", 9)]);
        assert_eq!(totals(&in_flight).progress().state, TripState::InProgress);
        in_flight.push(("arrived:load", 1));
        assert_eq!(totals(&in_flight).progress().state, TripState::Completed);
        in_flight.push(("stop:load:dead_lettered", 3));
        let progress = totals(&in_flight).progress();
        assert_eq!(progress.state, TripState::CompletedWithFailures);
        assert_eq!(progress.dead_lettered, 3);
        assert_eq!(
            progress.flows["load"],
            Flow {
                sent: 10,
                arrived: 10,
                in_doubt: 0
            }
        );
    }

    #[test]
    fn missing_arrivals_all_in_doubt_balance_a_queue_and_arrivals_past_sent_do_not() {
        let mut counters = vec![
            ("trip:started", 1),
            ("sent:load", 10),
            ("arrived:load", 6),
            ("doubt:load", 3),
        ];
        assert_eq!(totals(&counters).progress().state, TripState::InProgress);
        counters.push(("doubt:load", 1));
        counters.push(("stop:transform:dead_lettered", 4));
        assert_eq!(
            totals(&counters).progress().state,
            TripState::CompletedWithFailures
        );
        counters.push(("arrived:load", 4));
        assert_eq!(
            totals(&counters).progress().state,
            TripState::CompletedWithFailures,
            "what was in doubt arrived after all"
        );
        counters.push(("arrived:load", 1));
        assert_eq!(totals(&counters).progress().state, TripState::InProgress);
    }

    #[test]
    fn a_stops_counters_are_read_into_its_tally() {
        let progress = totals(&[
            ("stop:transform:in", 10),
            ("stop:transform:lane:next", 7),
            ("stop:transform:lane:audit", 2),
            ("stop:transform:forwarded", 9),
            ("stop:transform:rejected", 1),
        ])
        .progress();
        let tally = &progress.stops["transform"];
        assert_eq!(tally.passengers_in, 10);
        assert_eq!(tally.forwarded, 9);
        assert_eq!(
            tally.lanes,
            BTreeMap::from([("audit".into(), 2), ("next".into(), 7)])
        );
        assert_eq!(progress.rejected, 1);
    }
}
