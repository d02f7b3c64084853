//! NDJSON and CSV bodies of a bus's records.

use busline_core::{Passenger, StopError};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// One JSON object per line, each passenger's record without the partition `fields`; values
/// a bus carried are copied as they came, not parsed.
pub(crate) fn ndjson(passengers: &[Passenger], fields: &[String]) -> Result<Vec<u8>, StopError> {
    let mut body = Vec::with_capacity(64 * 1024);
    for (written_so_far, passenger) in passengers.iter().enumerate() {
        if written_so_far == SAMPLE {
            body.reserve(expected_rest(body.len(), SAMPLE, passengers.len()));
        }
        let written = if fields.is_empty() {
            passenger.write_json(&mut body)
        } else {
            let mut record = passenger.clone();
            record.remove_fields(fields);
            record.write_json(&mut body)
        };
        written.map_err(|err| StopError::permanent(format!("writing NDJSON: {err}")))?;
        body.push(b'\n');
    }
    Ok(body)
}

/// Records written before the body is sized for the rest.
const SAMPLE: usize = 32;

/// Room for the `total - written` records still to come, when `written` took `bytes`, with an
/// eighth to spare: a body that grows by doubling holds up to twice what it needs, and a bus's
/// body is the largest thing a load holds.
fn expected_rest(bytes: usize, written: usize, total: usize) -> usize {
    let rest = bytes / written * (total - written);
    rest + rest / 8
}

/// CSV with a header of every field in first-seen order; a missing field or a null is empty,
/// text as it is, other values as their JSON.
pub(crate) fn csv<'r>(
    records: impl Iterator<Item = Cow<'r, Map<String, Value>>>,
) -> Result<Vec<u8>, StopError> {
    let records: Vec<Cow<'r, Map<String, Value>>> = records.collect();
    let mut header: Vec<&str> = Vec::new();
    for record in &records {
        for key in record.keys() {
            if !header.contains(&key.as_str()) {
                header.push(key);
            }
        }
    }
    let failed = |err: csv::Error| StopError::permanent(format!("writing CSV: {err}"));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).map_err(failed)?;
    for record in &records {
        let row = header.iter().map(|name| match record.get(*name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        });
        writer.write_record(row).map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|err| StopError::permanent(format!("writing CSV: {err}")))
}

#[cfg(test)]
mod tests {
    use super::ndjson;
    use busline_core::Passenger;
    use serde_json::json;

    #[test]
    fn an_ndjson_body_is_sized_for_its_records_not_doubled_past_them() {
        // 1,400 lines of 100 bytes: a body doubling from 64 KiB would reach 256 KiB for 140 KB.
        let passengers: Vec<Passenger> = (0..1400)
            .map(|n| {
                let id = format!("t:{n:04}");
                let record = json!({"n": n % 10, "text": "x".repeat(82)});
                Passenger::new(id, None, record.as_object().expect("an object").clone())
            })
            .collect();
        let body = ndjson(&passengers, &[]).expect("writes");
        let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 1401);
        assert_eq!(lines[0].len(), 99);
        assert_eq!(body.len(), 140_000);
        assert!(
            body.capacity() <= body.len() * 5 / 4,
            "{} bytes held for {}",
            body.capacity(),
            body.len()
        );
    }
}
