//! The summary of a ride: a per-stop table for people, JSON for machines.

use busline_core::StopCounts;
use busline_core::envelope::Passenger;
use busline_core::ledger::TripTotals;
use busline_embedded::StopTally;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// A rejected passenger and the stop that rejected it: a line of a quarantine file.
pub use busline_core::quarantine::QuarantineLine as Quarantined;

/// A bus left on a stop's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The stop whose queue it failed on.
    pub stop: String,
    /// The SQS message id it had on that queue.
    pub message_id: String,
    /// Why it failed.
    pub reason: String,
    /// `retryable` or `permanent`, when the stop dead-lettered it.
    pub class: Option<String>,
    /// Receives before it was dead-lettered.
    pub receive_count: Option<u32>,
    /// Key of the parked bus, when the body is a claim check.
    pub claim_check: Option<String>,
    /// The body as it was.
    pub body: String,
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopReport {
    /// The stop.
    pub stop: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: StopCounts,
    /// Redeliveries of buses from its queue.
    pub retried: u64,
    /// Buses left on its dead-letter queue.
    pub dead_lettered: u64,
    /// Passengers handled per second of handler time.
    pub passengers_per_second: f64,
    /// True when in + picked up = forwarded + dropped off + rejected + failed (not checked for
    /// an invoked stop, whose own counts are in its logs).
    pub adds_up: bool,
    /// Reached through the Lambda Invoke API: only buses and passengers in, and failures, are
    /// seen from here.
    pub invoked: bool,
    /// True when the stop has no lane out: the route ends here.
    pub ends_route: bool,
    /// Faults injected into this stop by kind (`bus ride --chaos`), all survived when the ride
    /// ends with every passenger accounted for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<busline_chaos::FaultCounts>,
}

impl StopReport {
    /// A row from a stop's tally.
    pub fn new(
        stop: &str,
        tally: StopTally,
        retried: u64,
        dead_lettered: u64,
        invoked: bool,
    ) -> Self {
        let counts = tally.counts;
        let handled = (counts.passengers_in + counts.picked_up) as f64;
        let seconds = tally.busy.as_secs_f64();
        let adds_up = invoked || counts.adds_up();
        StopReport {
            stop: stop.to_owned(),
            counts,
            retried,
            dead_lettered,
            passengers_per_second: if seconds > 0.0 {
                handled / seconds
            } else {
                0.0
            },
            adds_up,
            invoked,
            ends_route: false,
            faults: None,
        }
    }
}

/// What a ride did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RideReport {
    /// The trip.
    pub trip_id: String,
    /// The route.
    pub route: String,
    /// The folder standing in for the bucket.
    pub output: PathBuf,
    /// Wall time of the ride.
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
    /// One row per stop, in riding order.
    pub stops: Vec<StopReport>,
    /// A stop ridden alone: the passengers it forwarded, by lane.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub forwarded: BTreeMap<String, Vec<Passenger>>,
    /// Rejected passengers with their reasons.
    pub quarantined: Vec<Quarantined>,
    /// Dead-lettered buses with their reasons.
    pub dead_letters: Vec<DeadLetter>,
    /// The trip's ledger totals, when the ride kept the ledger.
    pub trip: Option<TripTotals>,
    /// The trip's `_SUCCESS` manifest, when it completed.
    pub manifest: Option<PathBuf>,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

impl RideReport {
    /// True when any bus was dead-lettered.
    pub fn dead_lettered(&self) -> bool {
        !self.dead_letters.is_empty()
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let headers = [
            "stop",
            "buses in",
            "buses out",
            "in",
            "picked up",
            "forwarded",
            "dropped off",
            "rejected",
            "retried",
            "dead-lettered",
            "passengers/s",
        ];
        let rows: Vec<Vec<String>> = self
            .stops
            .iter()
            .map(|r| {
                let c = &r.counts;
                vec![
                    if r.invoked {
                        format!("{} (invoked)", r.stop)
                    } else {
                        r.stop.clone()
                    },
                    c.buses_in.to_string(),
                    c.buses_out.to_string(),
                    c.passengers_in.to_string(),
                    c.picked_up.to_string(),
                    c.forwarded.to_string(),
                    c.dropped_off.to_string(),
                    c.rejected.to_string(),
                    r.retried.to_string(),
                    r.dead_lettered.to_string(),
                    format!("{:.0}", r.passengers_per_second),
                ]
            })
            .collect();
        let mut out = crate::table::render(&headers, &rows);
        let ends: Vec<&StopReport> = self.stops.iter().filter(|r| r.ends_route).collect();
        let dropped: u64 = ends.iter().map(|r| r.counts.dropped_off).sum();
        let last = match ends.iter().map(|r| r.stop.as_str()).collect::<Vec<_>>() {
            names if names.is_empty() => "-".to_owned(),
            names => names.join(" and "),
        };
        let _ = writeln!(
            out,
            "\ntrip {} on route {}: {:.2}s, output in {}",
            self.trip_id,
            self.route,
            self.elapsed.as_secs_f64(),
            self.output.display()
        );
        let _ = writeln!(
            out,
            "{dropped} passengers dropped off at {last}, {} quarantined, {} buses dead-lettered",
            self.quarantined.len(),
            self.dead_letters.len()
        );
        if self.stops.iter().any(|r| r.invoked) {
            let _ = writeln!(
                out,
                "an invoked stop's row shows what the ride handed it; its own counts are in its logs"
            );
        }
        for row in &self.stops {
            let lanes = &row.counts.lanes;
            if lanes
                .keys()
                .any(|lane| lane != busline_core::config::NEXT_LANE)
            {
                let counts: Vec<String> = lanes
                    .iter()
                    .map(|(lane, count)| format!("{lane} {count}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "forwarded by lane at {}: {}",
                    row.stop,
                    counts.join(", ")
                );
            }
        }
        for row in &self.stops {
            let Some(faults) = &row.faults else { continue };
            let injected: Vec<String> = faults
                .iter()
                .filter(|(_, count)| **count > 0)
                .map(|(fault, count)| format!("{fault} {count}"))
                .collect();
            let _ = writeln!(
                out,
                "chaos at {}: {} faults injected{}{}",
                row.stop,
                faults.values().sum::<u64>(),
                if injected.is_empty() { "" } else { ": " },
                injected.join(", ")
            );
        }
        for row in self.stops.iter().filter(|r| !r.adds_up) {
            let _ = writeln!(
                out,
                "warning: stop {}: counts do not add up (a handler lost or invented passengers)",
                row.stop
            );
        }
        for letter in &self.dead_letters {
            let _ = writeln!(out, "dead-lettered at {}: {}", letter.stop, letter.reason);
        }
        if let Some(trip) = &self.trip {
            let places: Vec<(&str, String)> = self
                .manifest
                .iter()
                .map(|path| ("manifest", path.display().to_string()))
                .collect();
            out.push('\n');
            out.push_str(&crate::trip_view::trip_table(trip, &places));
        }
        out
    }
}
