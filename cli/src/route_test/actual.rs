//! What a case's ride produced: the records under each key prefix of the bucket (read back
//! from NDJSON, CSV or Parquet, compressed or not, partitions as fields), what a stop ridden
//! alone forwarded by lane, the rejected passengers, the dead letters and every stop's counts.

use super::TestError;
use super::case::{Case, Input};
use crate::ride::{Feed, RideOptions, ride};
use busline_core::envelope::Passenger;
use busline_core::{Extensions, Registry, StopCounts};
use busline_formats::Compression;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Key prefixes of the bucket that are not output: the ride's reports, its ledger and parked
/// buses.
const NOT_OUTPUT: [&str; 4] = ["quarantine", "dead-letter", "claim-check", "ledger"];

/// A rejected passenger or a dead letter as it came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The stop.
    pub stop: String,
    /// The reason it gave.
    pub reason: String,
    /// The passenger's data (null for a dead letter).
    pub data: Value,
}

/// What came out of a case.
#[derive(Debug, Clone, Default)]
pub struct Actual {
    /// Records under each key prefix.
    pub outputs: BTreeMap<String, Vec<Value>>,
    /// A stop ridden alone: what it forwarded on each lane.
    pub lanes: BTreeMap<String, Vec<Value>>,
    /// Rejected passengers.
    pub quarantine: Vec<Rejected>,
    /// Dead-lettered buses.
    pub dead_letters: Vec<Rejected>,
    /// Each stop's counts.
    pub counts: BTreeMap<String, StopCounts>,
}

/// Rides `case` on the embedded bus and collects what came out.
pub async fn ride_case(
    case: &Case,
    registry: &Registry,
    extensions: &Extensions,
) -> Result<Actual, TestError> {
    let parameters = case
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let route = busline_template::read_route(&case.template, &parameters)?;
    let scratch = tempfile::tempdir().map_err(|err| TestError::io(Path::new("temp"), err))?;
    let bucket = scratch.path().join("bucket");
    let (input, feed) = match &case.input {
        Input::Folder(folder) => (folder.clone(), None),
        Input::Objects(objects) => (write_objects(&scratch.path().join("input"), objects)?, None),
        Input::Passengers(records) => {
            let input = scratch.path().join("input");
            std::fs::create_dir_all(&input).map_err(|err| TestError::io(&input, err))?;
            let feed = Feed {
                stop: case.stop.clone().unwrap_or_default(),
                passengers: passengers(records),
            };
            (input, Some(feed))
        }
    };
    let options = RideOptions {
        route,
        registry: registry.clone(),
        input,
        output: bucket.clone(),
        trip_id: Some(case.trip.clone()),
        concurrency: 4,
        retry: Default::default(),
        invoke: Default::default(),
        chaos: None,
        feed,
        extensions: extensions.clone(),
    };
    let report = ride(options, |_| {}).await?;
    Ok(Actual {
        outputs: outputs(&bucket)?,
        lanes: report
            .forwarded
            .into_iter()
            .map(|(lane, riders)| {
                (
                    lane,
                    riders
                        .into_iter()
                        .map(|p| Value::Object(p.into_data()))
                        .collect(),
                )
            })
            .collect(),
        quarantine: report
            .quarantined
            .into_iter()
            .map(|q| Rejected {
                stop: q.stop,
                reason: q.rejection.reason,
                data: q.rejection.data,
            })
            .collect(),
        dead_letters: report
            .dead_letters
            .into_iter()
            .map(|d| Rejected {
                stop: d.stop,
                reason: d.reason,
                data: Value::Null,
            })
            .collect(),
        counts: report
            .stops
            .into_iter()
            .map(|s| (s.stop, s.counts))
            .collect(),
    })
}

/// A stop case's passengers: ids and sources from their place in `passengers.ndjson`.
fn passengers(records: &[Map<String, Value>]) -> Vec<Passenger> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let line = index + 1;
            Passenger::new(
                format!("case:{line}"),
                Some(format!("passengers.ndjson:{line}")),
                record.clone(),
            )
        })
        .collect()
}

fn write_objects(
    folder: &Path,
    objects: &BTreeMap<String, String>,
) -> Result<std::path::PathBuf, TestError> {
    for (key, text) in objects {
        let path = folder.join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| TestError::io(parent, err))?;
        }
        std::fs::write(&path, text).map_err(|err| TestError::io(&path, err))?;
    }
    std::fs::create_dir_all(folder).map_err(|err| TestError::io(folder, err))?;
    Ok(folder.to_owned())
}

/// The records of every output object under `bucket`, by the first segment of its key.
fn outputs(bucket: &Path) -> Result<BTreeMap<String, Vec<Value>>, TestError> {
    let mut outputs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    if !bucket.is_dir() {
        return Ok(outputs);
    }
    for entry in walkdir::WalkDir::new(bucket).sort_by_file_name() {
        let entry = entry.map_err(|err| TestError::io(bucket, err.into()))?;
        let Ok(key) = entry.path().strip_prefix(bucket) else {
            continue;
        };
        let segments: Vec<String> = key
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let (Some(prefix), Some(name)) = (segments.first(), segments.last()) else {
            continue;
        };
        let hidden = name.starts_with('_') || name.starts_with('.');
        if !entry.file_type().is_file() || hidden || NOT_OUTPUT.contains(&prefix.as_str()) {
            continue;
        }
        let partitions = &segments[1..segments.len() - 1];
        let records = object_records(entry.path())?;
        let list = outputs.entry(prefix.clone()).or_default();
        list.extend(records.into_iter().map(|mut record| {
            add_partitions(&mut record, partitions);
            Value::Object(record)
        }));
    }
    Ok(outputs)
}

/// A partitioned object's `field=value` key parts as fields of its records, as readers with
/// Hive partitioning see them (`trip=` is every object's and is left out).
fn add_partitions(record: &mut Map<String, Value>, partitions: &[String]) {
    for part in partitions {
        if let Some((field, value)) = part.split_once('=')
            && field != "trip"
        {
            record.insert(field.to_owned(), Value::String(unescape(value)));
        }
    }
}

/// A Hive-escaped key part (`a%2Fb`) as its value.
fn unescape(part: &str) -> String {
    let mut bytes = Vec::with_capacity(part.len());
    let raw = part.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                i += 3;
            }
            (byte, _) => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The records of one output object, by its extensions: NDJSON, CSV (fields as text) or
/// Parquet, each possibly gzip or zstd.
fn object_records(path: &Path) -> Result<Vec<Map<String, Value>>, TestError> {
    let unreadable = |message: String| TestError::Output {
        path: path.to_owned(),
        message,
    };
    let name = path.to_string_lossy();
    let (compression, stem) = Compression::from_key(&name);
    let raw = std::fs::read(path).map_err(|err| TestError::io(path, err))?;
    let bytes = match compression {
        Some(compression) => {
            let mut plain = Vec::new();
            compression
                .decoder(raw.as_slice())
                .and_then(|mut reader| reader.read_to_end(&mut plain))
                .map_err(|err| unreadable(err.to_string()))?;
            plain
        }
        None => raw,
    };
    match stem.rsplit_once('.').map(|(_, extension)| extension) {
        Some("ndjson" | "jsonl") => String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(record)) => Ok(record),
                Ok(other) => Err(unreadable(format!("a line is not a JSON object: {other}"))),
                Err(err) => Err(unreadable(err.to_string())),
            })
            .collect(),
        Some("csv") => {
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            let header = reader
                .headers()
                .map_err(|err| unreadable(err.to_string()))?
                .clone();
            reader
                .records()
                .map(|row| {
                    let row = row.map_err(|err| unreadable(err.to_string()))?;
                    Ok(header
                        .iter()
                        .zip(row.iter())
                        .map(|(name, field)| (name.to_owned(), Value::String(field.to_owned())))
                        .collect())
                })
                .collect()
        }
        Some("parquet") => busline_formats::parquet_records(bytes.into()).map_err(unreadable),
        _ => Err(unreadable(
            "not an output format bus test reads (NDJSON, CSV or Parquet, optionally .gz or .zst)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_become_fields_but_the_trip() {
        let mut record = Map::new();
        add_partitions(
            &mut record,
            &["trip=t".into(), "kind=a%2Fb".into(), "year=2026".into()],
        );
        assert_eq!(
            Value::Object(record).to_string(),
            r#"{"kind":"a/b","year":"2026"}"#
        );
    }
}
