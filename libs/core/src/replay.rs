//! Replaying quarantined passengers once they are fixed: a file of corrected passengers is
//! boarded onto buses for a stop's queue under the trip they belong to, and recorded in the
//! trip's ledger, so the trip completes again with them and its manifest counts them.
//!
//! The replay is recorded as the stop [`REPLAY_STOP`] under a bus id derived from the trip, the
//! queue and the passengers: replaying the same file again sends the same buses (which the
//! stops write to the same keys) and changes no count.

use crate::config::StopConfig;
use crate::envelope::Passenger;
use crate::error::{PortError, StopError};
use crate::forwarder::Forwarder;
use crate::id::stable_id;
use crate::ledger::{Recorded, TripState, replay_entry};
use crate::outbox::Outbox;
use crate::runtime::Ports;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// The stop name a replay is recorded under in the ledger and sends its buses from.
pub const REPLAY_STOP: &str = "quarantine-replay";

/// Why a replay did not happen, or stopped part way (run it again: it sends the same buses).
#[derive(Debug, Error)]
pub enum ReplayError {
    /// The stop replayed into reads no queue.
    #[error(
        "stop {stop} reads no queue, so nothing can be replayed into it (a depot starts trips; replay into the stop after the one that rejected the passengers)"
    )]
    NoQueue {
        /// The stop.
        stop: String,
    },
    /// The ledger has no such trip: a replay joins a trip that ran.
    #[error(
        "trip {trip} is not in the trip ledger; check --trip (bus trips lists the recent ones)"
    )]
    UnknownTrip {
        /// The trip.
        trip: String,
    },
    /// Sending the buses failed.
    #[error("replay into {queue}: {source}")]
    Send {
        /// The queue.
        queue: String,
        /// What failed.
        source: StopError,
    },
    /// Reading or writing the ledger failed.
    #[error(transparent)]
    Ledger(#[from] PortError),
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// The trip.
    pub trip: String,
    /// The stop replayed into.
    pub stop: String,
    /// Its queue.
    pub queue: String,
    /// The replay's id in the ledger (the same for the same passengers).
    pub replay: String,
    /// Passengers sent.
    pub passengers: u64,
    /// Buses they went on.
    pub buses: u64,
    /// `new` when the ledger counted them, `already_recorded` when this replay was recorded
    /// before (its buses were sent again), none without a ledger.
    pub recorded: Option<&'static str>,
    /// Where the trip stands after the replay was recorded, with a ledger.
    pub state: Option<TripState>,
}

/// A passenger in a replay file: a quarantine line, or a line of `bus quarantine show --json`,
/// with its data corrected. Other fields (`stop`, `reason`) are ignored.
#[derive(Deserialize)]
struct ReplayLine {
    id: Option<String>,
    data: Option<Value>,
}

/// The passengers of a replay file named `name`: NDJSON (a quarantine file) or a JSON array
/// (`bus quarantine show --json`), each with the `id` and `data` of a quarantine line. The
/// error names the file, the line (or array item) and the field at fault.
pub fn read_passengers(name: &str, text: &str) -> Result<Vec<Passenger>, String> {
    let items: Vec<(usize, Value)> = if text.trim_start().starts_with('[') {
        let array: Vec<Value> =
            serde_json::from_str(text).map_err(|err| format!("{name}: {err}"))?;
        array
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map(|value| (i + 1, value))
                    .map_err(|err| format!("{name}:{}: {err}", i + 1))
            })
            .collect::<Result<_, _>>()?
    };
    items
        .into_iter()
        .map(|(at, value)| passenger(name, at, value))
        .collect()
}

fn passenger(name: &str, at: usize, value: Value) -> Result<Passenger, String> {
    let line: ReplayLine =
        serde_json::from_value(value).map_err(|err| format!("{name}:{at}: {err}"))?;
    let Some(id) = line.id else {
        return Err(format!(
            "{name}:{at}: no field id (keep the id of the passenger's quarantine line, so its output replaces nothing else)"
        ));
    };
    let data: Map<String, Value> = match line.data {
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(format!(
                "{name}:{at}: field data must be an object of the passenger's fields, not {other}"
            ));
        }
        None => return Err(format!("{name}:{at}: no field data")),
    };
    Ok(Passenger::new(id, Some(format!("{name}:{at}")), data))
}

/// Sends `passengers` to the queue of the stop `target` describes (its settings as deployed),
/// under `trip`, and records them in the ledger when `ports` has one; the trip completes again
/// once they have arrived.
pub async fn replay(
    ports: &Ports,
    target: &StopConfig,
    trip: &str,
    passengers: &[Passenger],
) -> Result<ReplayReport, ReplayError> {
    let Some(queue) = target.queue_url.clone() else {
        return Err(ReplayError::NoQueue {
            stop: target.stop.clone(),
        });
    };
    if let Some(book) = &ports.trips
        && book.ledger.totals(trip).await?.is_none()
    {
        return Err(ReplayError::UnknownTrip { trip: trip.into() });
    }
    let config = StopConfig {
        stop: REPLAY_STOP.into(),
        next_queue_url: Some(queue.clone()),
        lanes: Default::default(),
        queue_url: None,
        ..target.clone()
    };
    let replay = replay_id(trip, &queue, passengers);
    let send_error = |source| ReplayError::Send {
        queue: queue.clone(),
        source,
    };
    let forwarder = Forwarder::new(ports.queues.clone(), ports.retry);
    let mut outbox = Outbox::new(
        &config,
        trip,
        &replay,
        1,
        0,
        forwarder,
        ports.objects.clone(),
    );
    outbox.pick_up(passengers.len() as u64);
    for passenger in passengers {
        outbox.board(passenger).await.map_err(send_error)?;
    }
    let counts = outbox.close().await.map_err(send_error)?;
    let mut report = ReplayReport {
        trip: trip.into(),
        stop: target.stop.clone(),
        queue: queue.clone(),
        replay: replay.clone(),
        passengers: counts.forwarded,
        buses: counts.buses_out,
        recorded: None,
        state: None,
    };
    if let Some(book) = &ports.trips {
        let entry = replay_entry(&config, trip, &replay, &counts);
        for recorded in book
            .record(&[entry], &config.route, ports.objects.as_ref())
            .await
        {
            report.recorded = Some(match recorded? {
                Recorded::AlreadyRecorded => "already_recorded",
                Recorded::New | Recorded::Replaced => "new",
            });
        }
        let totals = book.ledger.totals(trip).await?;
        report.state = totals.map(|totals| totals.progress().state);
    }
    Ok(report)
}

/// The replay's bus id: the same for the same trip, queue and passengers.
fn replay_id(trip: &str, queue: &str, passengers: &[Passenger]) -> String {
    let mut parts = vec![trip.to_owned(), queue.to_owned()];
    for passenger in passengers {
        parts.push(passenger.id().to_owned());
        parts.push(Value::Object(passenger.data().clone()).to_string());
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("replay-{}", stable_id(&parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_quarantine_file_and_a_shown_array_alike() {
        let ndjson = "{\"stop\":\"extract\",\"id\":\"t:3\",\"reason\":\"bad\",\"data\":{\"name\":\"Green\"}}\n\n{\"id\":\"t:9\",\"data\":{}}\n";
        let array = r#"[{"stop":"extract","id":"t:3","reason":"bad","data":{"name":"Green"}},{"id":"t:9","data":{}}]"#;
        for (name, text, second) in [("fix.ndjson", ndjson, 3), ("fix.json", array, 2)] {
            let passengers = read_passengers(name, text).expect("valid");
            let ids: Vec<&str> = passengers.iter().map(Passenger::id).collect();
            assert_eq!(ids, ["t:3", "t:9"]);
            assert_eq!(passengers[0].get_str("name"), Some("Green"));
            assert_eq!(
                passengers[1].source(),
                Some(format!("{name}:{second}").as_str())
            );
        }
    }

    #[test]
    fn a_bad_line_is_named_with_its_field() {
        let cases = [
            (
                "{\"id\":\"a\",\"data\":{}}\n{\"data\":{}}",
                "fix:2: no field id",
            ),
            ("{\"id\":\"a\"}", "fix:1: no field data"),
            (
                "{\"id\":\"a\",\"data\":[1]}",
                "fix:1: field data must be an object of the passenger's fields, not [1]",
            ),
            ("{\"id\":\"a\",\n", "fix:1: EOF while parsing"),
            (
                "[{\"id\":\"a\",\"data\":{}},{\"id\":\"b\",\"data\":\"x\"}]",
                "fix:2: field data must be an object",
            ),
        ];
        for (text, expected) in cases {
            let err = read_passengers("fix", text).err().unwrap_or_default();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_same_passengers_make_the_same_replay() {
        let a = read_passengers("a", "{\"id\":\"1\",\"data\":{\"x\":1}}").expect("valid");
        let b = read_passengers("b", "{\"id\":\"1\",\"data\":{\"x\":2}}").expect("valid");
        assert_eq!(replay_id("t", "q", &a), replay_id("t", "q", &a));
        assert_ne!(replay_id("t", "q", &a), replay_id("t", "q", &b));
        assert_ne!(replay_id("t", "q", &a), replay_id("t", "r", &a));
    }
}
