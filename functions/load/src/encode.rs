//! NDJSON and CSV bodies of a bus's records.

use busline_core::{Passenger, StopError};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// One JSON object per line, each passenger's record without the partition `fields`; values
/// a bus carried are copied as they came, not parsed.
pub(crate) fn ndjson(passengers: &[Passenger], fields: &[String]) -> Result<Vec<u8>, StopError> {
    let mut body = Vec::with_capacity(64 * 1024);
    for passenger in passengers {
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
