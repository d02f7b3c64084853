//! NDJSON and CSV bodies of a bus's records.

use busline_core::StopError;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// One JSON object per line.
pub(crate) fn ndjson<'r>(
    records: impl Iterator<Item = Cow<'r, Map<String, Value>>>,
) -> Result<Vec<u8>, StopError> {
    let mut body = Vec::with_capacity(64 * 1024);
    for record in records {
        serde_json::to_writer(&mut body, record.as_ref())
            .map_err(|err| StopError::permanent(format!("writing NDJSON: {err}")))?;
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
