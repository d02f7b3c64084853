//! `bus test --bless`: what a case's ride produced, written as its expected files once the user
//! has looked at it. Records are written sorted, so a blessed file diffs well in review.

use super::TestError;
use super::actual::{Actual, Rejected};
use super::case::ExpectedRejection;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Writes `actual` into the case's `expected/` folder: one `<prefix>.ndjson` per output prefix,
/// `lanes/<lane>.ndjson`, `quarantine.ndjson` and `dead-letters.ndjson` (each only when
/// something came out), and the counts the case's `counts.yaml` already lists. Files for
/// prefixes and lanes that no longer come out are removed.
pub fn bless(expected: &Path, actual: &Actual) -> Result<(), TestError> {
    std::fs::create_dir_all(expected).map_err(|err| TestError::io(expected, err))?;
    let mut kept = Vec::new();
    for (prefix, records) in &actual.outputs {
        kept.push(write_records(
            &expected.join(format!("{prefix}.ndjson")),
            records,
        )?);
    }
    for (lane, records) in &actual.lanes {
        let lanes = expected.join("lanes");
        std::fs::create_dir_all(&lanes).map_err(|err| TestError::io(&lanes, err))?;
        kept.push(write_records(
            &lanes.join(format!("{lane}.ndjson")),
            records,
        )?);
    }
    for (name, rejected) in [
        ("quarantine", &actual.quarantine),
        ("dead-letters", &actual.dead_letters),
    ] {
        let entries: Vec<Value> = rejected.iter().map(expected_entry).collect();
        if !entries.is_empty() {
            kept.push(write_records(
                &expected.join(format!("{name}.ndjson")),
                &entries,
            )?);
        }
    }
    remove_stale(expected, &kept)?;
    let counts = expected.join("counts.yaml");
    if counts.is_file() {
        bless_counts(&counts, actual)?;
    }
    Ok(())
}

fn expected_entry(rejected: &Rejected) -> Value {
    let entry = ExpectedRejection {
        stop: Some(rejected.stop.clone()),
        reason: rejected.reason.clone(),
        data: (!rejected.data.is_null()).then(|| rejected.data.clone()),
    };
    serde_json::to_value(entry).unwrap_or(Value::Null)
}

/// Writes `records` sorted by their text, one a line; the path written.
fn write_records(path: &Path, records: &[Value]) -> Result<std::path::PathBuf, TestError> {
    let mut lines: Vec<String> = records.iter().map(Value::to_string).collect();
    lines.sort();
    let text: String = lines.into_iter().map(|line| line + "\n").collect();
    std::fs::write(path, text).map_err(|err| TestError::io(path, err))?;
    Ok(path.to_owned())
}

/// Removes the `.ndjson` expectations under `expected` that were not just written.
fn remove_stale(expected: &Path, kept: &[std::path::PathBuf]) -> Result<(), TestError> {
    for folder in [expected.to_owned(), expected.join("lanes")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let stale = path.extension().is_some_and(|e| e == "ndjson") && !kept.contains(&path);
            if stale {
                std::fs::remove_file(&path).map_err(|err| TestError::io(&path, err))?;
            }
        }
    }
    Ok(())
}

/// Updates the counts `counts.yaml` lists to the ride's.
fn bless_counts(path: &Path, actual: &Actual) -> Result<(), TestError> {
    let text = std::fs::read_to_string(path).map_err(|err| TestError::io(path, err))?;
    let mut listed: BTreeMap<String, BTreeMap<String, u64>> = serde_yaml_ng::from_str(&text)
        .map_err(|err| TestError::Case {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
    for (stop, fields) in &mut listed {
        let found = actual
            .counts
            .get(stop)
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or(Value::Null);
        for (field, value) in fields.iter_mut() {
            *value = found.get(field).and_then(Value::as_u64).unwrap_or(0);
        }
    }
    let text = serde_yaml_ng::to_string(&listed).map_err(|err| TestError::Case {
        path: path.to_owned(),
        message: err.to_string(),
    })?;
    std::fs::write(path, text).map_err(|err| TestError::io(path, err))
}
