//! Durable quarantine: the passengers a stop rejects are written to the data bucket as NDJSON,
//! `<QUARANTINE_PREFIX>trip=<trip>/<stop>/<file>.ndjson`, one rejection per line with the stop
//! that refused it. Objects do not expire as a queue's messages do; a redelivered bus writes
//! the same files again under the same keys.

use crate::envelope::Rejection;
use crate::error::{PortError, StopError};
use crate::id::stable_id;
use crate::ports::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

/// The content type of a quarantine file.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// One line of a quarantine file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineLine {
    /// The stop that rejected the passenger.
    pub stop: String,
    /// The passenger's id, the reason and its data.
    #[serde(flatten)]
    pub rejection: Rejection,
}

/// The folder of a trip's quarantine files: `<prefix>trip=<trip>/`.
pub fn trip_folder(prefix: &str, trip: &str) -> String {
    format!("{prefix}trip={trip}/")
}

/// The key of the `part`-th quarantine file of bus `bus` at `stop`.
pub fn file_key(prefix: &str, trip: &str, stop: &str, bus: &str, part: u32) -> String {
    let name = stable_id(&[bus, &part.to_string()]);
    format!("{}{stop}/{name}.ndjson", trip_folder(prefix, trip))
}

/// Every line of the quarantine files under `folder` (a trip's, or one stop's of it), in key
/// order, at most `limit`; the error names the key (and line) at fault.
pub async fn read_files(
    objects: &dyn ObjectStore,
    folder: &str,
    limit: usize,
) -> Result<Vec<QuarantineLine>, PortError> {
    let mut lines = Vec::new();
    for file in objects.list(folder).await? {
        if lines.len() >= limit {
            break;
        }
        let mut text = String::new();
        objects
            .get(&file.key)
            .await?
            .read_to_string(&mut text)
            .await
            .map_err(|err| PortError::retryable(file.key.clone(), err))?;
        lines.extend(
            parse_file(&file.key, &text)
                .map_err(|err| PortError::permanent(file.key.clone(), err))?,
        );
    }
    lines.truncate(limit);
    Ok(lines)
}

/// Reads a quarantine file; the error names the key and line at fault.
pub fn parse_file(key: &str, text: &str) -> Result<Vec<QuarantineLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|err| format!("{key}:{}: {err}", i + 1))
        })
        .collect()
}

/// The rejections of one bus, written in files of at most about `budget` bytes each.
pub(crate) struct QuarantineFile {
    prefix: String,
    trip: String,
    stop: String,
    bus: String,
    budget: usize,
    buffer: Vec<u8>,
    lines: u64,
    parts: u32,
}

impl QuarantineFile {
    /// The rejections of bus `bus` of `trip` at `stop`, under `prefix`.
    pub(crate) fn new(prefix: &str, trip: &str, stop: &str, bus: &str, budget: usize) -> Self {
        QuarantineFile {
            prefix: prefix.to_owned(),
            trip: trip.to_owned(),
            stop: stop.to_owned(),
            bus: bus.to_owned(),
            budget,
            buffer: Vec::new(),
            lines: 0,
            parts: 0,
        }
    }

    /// Adds `rejection`; true when the file is full and should be written.
    pub(crate) fn push(&mut self, rejection: &Rejection) -> Result<bool, StopError> {
        // A borrowed line: the same JSON as a [`QuarantineLine`], without copying the data.
        #[derive(Serialize)]
        struct Line<'a> {
            stop: &'a str,
            #[serde(flatten)]
            rejection: &'a Rejection,
        }
        let line = Line {
            stop: &self.stop,
            rejection,
        };
        serde_json::to_writer(&mut self.buffer, &line)
            .map_err(|err| StopError::permanent(format!("passenger {}: {err}", rejection.id)))?;
        self.buffer.push(b'\n');
        self.lines += 1;
        Ok(self.buffer.len() >= self.budget)
    }

    /// Writes what was added since the last write, if anything, as the next file; the
    /// rejections it wrote.
    pub(crate) async fn write(&mut self, objects: &dyn ObjectStore) -> Result<u64, StopError> {
        if self.lines == 0 {
            return Ok(0);
        }
        let key = file_key(&self.prefix, &self.trip, &self.stop, &self.bus, self.parts);
        objects
            .put(&key, std::mem::take(&mut self.buffer), CONTENT_TYPE)
            .await?;
        self.parts += 1;
        Ok(std::mem::take(&mut self.lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_and_a_bad_line_is_named() {
        let line = r#"{"stop":"extract","id":"p1","reason":"bad","data":{"raw":["x"]}}"#;
        let text = format!("{line}\n\n{{oops\n");
        let err = parse_file("quarantine/trip=t/extract/a.ndjson", &text).expect_err("bad line");
        assert!(
            err.starts_with("quarantine/trip=t/extract/a.ndjson:3: "),
            "{err}"
        );
        let lines = parse_file("k", &format!("{line}\n")).expect("one line");
        assert_eq!(lines[0].stop, "extract");
        assert_eq!(lines[0].rejection.id, "p1");
    }

    #[test]
    fn keys_are_per_trip_stop_and_bus_part() {
        let a = file_key("quarantine/", "t1", "load", "bus-1", 0);
        assert!(
            a.starts_with("quarantine/trip=t1/load/") && a.ends_with(".ndjson"),
            "{a}"
        );
        assert_ne!(a, file_key("quarantine/", "t1", "load", "bus-1", 1));
        assert_eq!(a, file_key("quarantine/", "t1", "load", "bus-1", 0));
    }
}
