//! Hive-style partitions: a bus's passengers grouped by the values of the partition fields,
//! each group written under `field=value/` key parts, the fields left out of the records.

use busline_core::Passenger;
use serde_json::{Map, Value};

/// What Hive, Spark and Athena write for a null or empty partition value.
const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One partition's passengers: its key parts (`year=2026/month=11/`, empty without
/// partitions) and its records without the partition fields.
pub(crate) struct Partition {
    pub path: String,
    pub passengers: Vec<Passenger>,
}

/// `passengers` grouped by the values of `fields`, partitions in first-seen order.
pub(crate) fn group(fields: &[String], passengers: Vec<Passenger>) -> Vec<Partition> {
    if fields.is_empty() {
        return vec![Partition {
            path: String::new(),
            passengers,
        }];
    }
    let mut partitions: Vec<Partition> = Vec::new();
    for passenger in passengers {
        let path: String = fields
            .iter()
            .map(|field| format!("{field}={}/", part(passenger.value(field).as_deref())))
            .collect();
        match partitions.iter_mut().find(|p| p.path == path) {
            Some(partition) => partition.passengers.push(passenger),
            None => partitions.push(Partition {
                path,
                passengers: vec![passenger],
            }),
        }
    }
    partitions
}

/// A passenger's record without the partition fields.
pub(crate) fn record_of<'p>(
    passenger: &'p Passenger,
    fields: &[String],
) -> std::borrow::Cow<'p, Map<String, Value>> {
    if fields.is_empty() {
        return std::borrow::Cow::Borrowed(passenger.data());
    }
    let mut record = passenger.data().clone();
    for field in fields {
        record.shift_remove(field);
    }
    std::borrow::Cow::Owned(record)
}

/// A partition value as a key part, escaped as Hive escapes it.
fn part(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return DEFAULT_PARTITION.to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if text.is_empty() {
        return DEFAULT_PARTITION.to_owned();
    }
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        let special = c.is_ascii_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if special {
            escaped.push_str(&format!("%{:02X}", c as u32));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passenger(id: &str, data: Value) -> Passenger {
        Passenger::new(id, None, data.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn passengers_group_by_escaped_values_in_first_seen_order() {
        let fields = vec!["year".to_owned(), "kind".to_owned()];
        let partitions = group(
            &fields,
            vec![
                passenger("a", json!({"year": 2026, "kind": "a/b", "n": 1})),
                passenger("b", json!({"year": 2025, "kind": null, "n": 2})),
                passenger("c", json!({"year": 2026, "kind": "a/b", "n": 3})),
                passenger("d", json!({"n": 4, "kind": ""})),
            ],
        );
        let paths: Vec<(&str, Vec<&str>)> = partitions
            .iter()
            .map(|p| {
                (
                    p.path.as_str(),
                    p.passengers.iter().map(Passenger::id).collect(),
                )
            })
            .collect();
        assert_eq!(
            paths,
            [
                ("year=2026/kind=a%2Fb/", vec!["a", "c"]),
                ("year=2025/kind=__HIVE_DEFAULT_PARTITION__/", vec!["b"]),
                (
                    "year=__HIVE_DEFAULT_PARTITION__/kind=__HIVE_DEFAULT_PARTITION__/",
                    vec!["d"]
                ),
            ]
        );
        let record = record_of(&partitions[0].passengers[0], &fields);
        assert_eq!(Value::Object(record.into_owned()).to_string(), r#"{"n":1}"#);
    }
}
