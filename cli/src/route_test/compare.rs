//! What came out against what must: records as sets (or in order), each missing, unexpected
//! or changed one named with the fields that differ; rejections and dead letters by stop and
//! reason (exact or a pattern); the counts a case lists.

use super::actual::{Actual, Rejected};
use super::case::{Case, ExpectedRejection};
use busline_core::StopCounts;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One field of a changed record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    /// The field.
    pub field: String,
    /// Its expected value (`None`: it must be absent).
    pub expected: Option<Value>,
    /// Its value (`None`: it is absent).
    pub found: Option<Value>,
}

/// One way a case failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// An expected record did not come out.
    Missing {
        /// Where (`output/`, `lane next`).
        place: String,
        /// The record.
        record: Value,
    },
    /// A record came out that no expectation has.
    Unexpected {
        /// Where.
        place: String,
        /// The record.
        record: Value,
    },
    /// A record came out with other values.
    Changed {
        /// Where.
        place: String,
        /// The record, or its key fields.
        record: Value,
        /// The fields that differ.
        fields: Vec<FieldDiff>,
    },
    /// An expected rejection or dead letter did not come out.
    MissingRejection {
        /// `quarantine` or `dead letters`.
        place: String,
        /// The stop, if expected.
        stop: Option<String>,
        /// The reason or pattern.
        reason: String,
    },
    /// A rejection or dead letter came out that no expectation has.
    UnexpectedRejection {
        /// `quarantine` or `dead letters`.
        place: String,
        /// The stop.
        stop: String,
        /// Its reason.
        reason: String,
    },
    /// A count differs.
    Count {
        /// The stop.
        stop: String,
        /// The count's name.
        field: String,
        /// Expected.
        expected: u64,
        /// Found (`None`: no such stop or count).
        found: Option<u64>,
    },
    /// The case could not run.
    Failed {
        /// Why, with its causes.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { place, record } => write!(f, "{place}: missing {record}"),
            Problem::Unexpected { place, record } => write!(f, "{place}: unexpected {record}"),
            Problem::Changed {
                place,
                record,
                fields,
            } => {
                let shown = |value: &Option<Value>| {
                    value
                        .as_ref()
                        .map_or("(absent)".to_owned(), Value::to_string)
                };
                let diffs: Vec<String> = fields
                    .iter()
                    .map(|d| {
                        format!(
                            "field `{}`: expected {}, found {}",
                            d.field,
                            shown(&d.expected),
                            shown(&d.found)
                        )
                    })
                    .collect();
                write!(f, "{place}: changed {record}: {}", diffs.join("; "))
            }
            Problem::MissingRejection {
                place,
                stop,
                reason,
            } => write!(
                f,
                "{place}: missing{} {reason}",
                stop.as_ref()
                    .map(|s| format!(" at {s}:"))
                    .unwrap_or_default()
            ),
            Problem::UnexpectedRejection {
                place,
                stop,
                reason,
            } => write!(f, "{place}: unexpected at {stop}: {reason}"),
            Problem::Count {
                stop,
                field,
                expected,
                found,
            } => match found {
                Some(found) => write!(
                    f,
                    "counts: {stop}.{field} expected {expected}, found {found}"
                ),
                None => write!(
                    f,
                    "counts: {stop}.{field} expected {expected}, but there is no such count"
                ),
            },
            Problem::Failed { reason } => write!(f, "the case did not run: {reason}"),
        }
    }
}

/// Everything in which `actual` differs from what `case` expects.
pub fn compare(case: &Case, actual: &Actual) -> Vec<Problem> {
    let mut problems = Vec::new();
    let empty = Vec::new();
    let places = |expected: &BTreeMap<String, Vec<Value>>, found: &BTreeMap<String, Vec<Value>>| {
        let mut names: Vec<String> = expected.keys().chain(found.keys()).cloned().collect();
        names.sort();
        names.dedup();
        names
    };
    for prefix in places(&case.expect.outputs, &actual.outputs) {
        problems.extend(records(
            &format!("{prefix}/"),
            case.expect.outputs.get(&prefix).unwrap_or(&empty),
            actual.outputs.get(&prefix).unwrap_or(&empty),
            case,
        ));
    }
    for lane in places(&case.expect.lanes, &actual.lanes) {
        problems.extend(records(
            &format!("lane {lane}"),
            case.expect.lanes.get(&lane).unwrap_or(&empty),
            actual.lanes.get(&lane).unwrap_or(&empty),
            case,
        ));
    }
    problems.extend(rejections(
        "quarantine",
        &case.expect.quarantine,
        &actual.quarantine,
    ));
    problems.extend(rejections(
        "dead letters",
        &case.expect.dead_letters,
        &actual.dead_letters,
    ));
    problems.extend(counts(&case.expect.counts, &actual.counts));
    problems
}

/// A record's JSON with its object keys sorted, so field order never makes records differ.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

fn records(place: &str, expected: &[Value], found: &[Value], case: &Case) -> Vec<Problem> {
    if case.ordered {
        return in_order(place, expected, found, &case.key);
    }
    // Records equal as they are match first; only the rest are paired or named.
    let mut left: HashMap<String, usize> = HashMap::new();
    for record in found {
        *left.entry(canonical(record)).or_default() += 1;
    }
    let mut missing = Vec::new();
    for record in expected {
        match left.get_mut(&canonical(record)) {
            Some(n) if *n > 0 => *n -= 1,
            _ => missing.push(record),
        }
    }
    let mut unexpected: Vec<&Value> = Vec::new();
    for record in found {
        if let Some(n) = left.get_mut(&canonical(record))
            && *n > 0
        {
            *n -= 1;
            unexpected.push(record);
        }
    }
    let mut problems = Vec::new();
    for record in missing {
        match partner(record, &unexpected, &case.key) {
            Some(index) => {
                let other = unexpected.remove(index);
                problems.push(changed(place, record, other, &case.key));
            }
            None => problems.push(Problem::Missing {
                place: place.to_owned(),
                record: record.clone(),
            }),
        }
    }
    problems.extend(unexpected.into_iter().map(|record| Problem::Unexpected {
        place: place.to_owned(),
        record: record.clone(),
    }));
    problems
}

fn in_order(place: &str, expected: &[Value], found: &[Value], key: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for index in 0..expected.len().max(found.len()) {
        match (expected.get(index), found.get(index)) {
            (Some(e), Some(f)) if canonical(e) != canonical(f) => {
                problems.push(changed(&format!("{place} record {}", index + 1), e, f, key))
            }
            (Some(e), None) => problems.push(Problem::Missing {
                place: place.to_owned(),
                record: e.clone(),
            }),
            (None, Some(f)) => problems.push(Problem::Unexpected {
                place: place.to_owned(),
                record: f.clone(),
            }),
            _ => {}
        }
    }
    problems
}

/// The unmatched record `expected` is most likely a changed version of: the one with the same
/// key fields, or without a key the one sharing the most field values (at least one).
fn partner(expected: &Value, candidates: &[&Value], key: &[String]) -> Option<usize> {
    let fields = |value: &Value| value.as_object().cloned().unwrap_or_default();
    let wanted = fields(expected);
    if !key.is_empty() {
        return candidates.iter().position(|c| {
            let c = fields(c);
            key.iter().all(|k| wanted.get(k) == c.get(k))
        });
    }
    candidates
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let c = fields(c);
            let shared = wanted.iter().filter(|(k, v)| c.get(*k) == Some(v)).count();
            (shared, index)
        })
        .filter(|(shared, _)| *shared > 0)
        .max_by_key(|(shared, index)| (*shared, std::cmp::Reverse(*index)))
        .map(|(_, index)| index)
}

fn changed(place: &str, expected: &Value, found: &Value, key: &[String]) -> Problem {
    let empty = Map::new();
    let e = expected.as_object().unwrap_or(&empty);
    let f = found.as_object().unwrap_or(&empty);
    let names = e.keys().chain(f.keys());
    let mut seen = std::collections::HashSet::new();
    let fields = names
        .into_iter()
        .filter(|name| seen.insert(*name))
        .filter(|name| e.get(*name) != f.get(*name))
        .map(|name| FieldDiff {
            field: name.clone(),
            expected: e.get(name).cloned(),
            found: f.get(name).cloned(),
        })
        .collect();
    let record = if key.is_empty() {
        expected.clone()
    } else {
        Value::Object(
            key.iter()
                .filter_map(|k| Some((k.clone(), e.get(k)?.clone())))
                .collect(),
        )
    };
    Problem::Changed {
        place: place.to_owned(),
        record,
        fields,
    }
}

/// Whether `reason` meets `expected`: the same text, or a match of `/pattern/`.
fn reason_matches(expected: &str, reason: &str) -> Result<bool, String> {
    match expected.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
        Some(pattern) if expected.len() > 1 => regex::Regex::new(pattern)
            .map(|re| re.is_match(reason))
            .map_err(|err| format!("the pattern {expected} is not a regular expression: {err}")),
        _ => Ok(expected == reason),
    }
}

fn rejections(place: &str, expected: &[ExpectedRejection], found: &[Rejected]) -> Vec<Problem> {
    let mut left: Vec<&Rejected> = found.iter().collect();
    let mut problems = Vec::new();
    for want in expected {
        let mut matched = None;
        for (index, got) in left.iter().enumerate() {
            let stop_ok = want.stop.as_ref().is_none_or(|s| *s == got.stop);
            let data_ok = want
                .data
                .as_ref()
                .is_none_or(|d| canonical(d) == canonical(&got.data));
            match reason_matches(&want.reason, &got.reason) {
                Ok(true) if stop_ok && data_ok => {
                    matched = Some(index);
                    break;
                }
                Ok(_) => {}
                Err(reason) => {
                    return vec![Problem::Failed { reason }];
                }
            }
        }
        match matched {
            Some(index) => {
                left.remove(index);
            }
            None => problems.push(Problem::MissingRejection {
                place: place.to_owned(),
                stop: want.stop.clone(),
                reason: want.reason.clone(),
            }),
        }
    }
    problems.extend(left.into_iter().map(|got| Problem::UnexpectedRejection {
        place: place.to_owned(),
        stop: got.stop.clone(),
        reason: got.reason.clone(),
    }));
    problems
}

fn counts(
    expected: &BTreeMap<String, BTreeMap<String, u64>>,
    found: &BTreeMap<String, StopCounts>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (stop, fields) in expected {
        let counts = found
            .get(stop)
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or(Value::Null);
        for (field, want) in fields {
            let got = counts.get(field).and_then(Value::as_u64);
            if got != Some(*want) {
                problems.push(Problem::Count {
                    stop: stop.clone(),
                    field: field.clone(),
                    expected: *want,
                    found: got,
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route_test::case::{Expectations, Input};
    use serde_json::json;

    fn case(key: &[&str], ordered: bool) -> Case {
        Case {
            name: "c".into(),
            path: "c".into(),
            description: None,
            template: "t".into(),
            parameters: BTreeMap::new(),
            trip: "test".into(),
            stop: None,
            key: key.iter().map(|k| k.to_string()).collect(),
            ordered,
            input: Input::Objects(BTreeMap::new()),
            expect: Expectations::default(),
            expected_dir: None,
        }
    }

    fn lines(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn records_match_as_sets_whatever_their_order_and_field_order() {
        let expected = [json!({"a": 1, "b": 2}), json!({"a": 3, "b": 4})];
        let found = [json!({"b": 4, "a": 3}), json!({"b": 2, "a": 1})];
        assert!(records("output/", &expected, &found, &case(&[], false)).is_empty());
        // Duplicates count: two expected copies need two found.
        let twice = [json!({"a": 1}), json!({"a": 1})];
        assert_eq!(
            lines(&records("output/", &twice, &twice[..1], &case(&[], false))),
            [r#"output/: missing {"a":1}"#]
        );
    }

    #[test]
    fn a_changed_record_pairs_by_key_or_by_most_shared_values() {
        let expected = [
            json!({"id": 1, "name": "Red", "n": 5}),
            json!({"id": 2, "name": "Blue", "n": 6}),
        ];
        let found = [
            json!({"id": 2, "name": "Blue", "n": 7}),
            json!({"id": 9, "name": "Lime"}),
        ];
        assert_eq!(
            lines(&records("output/", &expected, &found, &case(&[], false))),
            [
                r#"output/: missing {"id":1,"name":"Red","n":5}"#,
                r#"output/: changed {"id":2,"name":"Blue","n":6}: field `n`: expected 6, found 7"#,
                r#"output/: unexpected {"id":9,"name":"Lime"}"#,
            ]
        );
        let by_key = records(
            "output/",
            &expected[1..],
            &found[..1],
            &case(&["id"], false),
        );
        assert_eq!(
            lines(&by_key),
            [r#"output/: changed {"id":2}: field `n`: expected 6, found 7"#]
        );
        let absent = records(
            "output/",
            &[json!({"id": 2, "x": 1})],
            &[json!({"id": 2})],
            &case(&["id"], false),
        );
        assert_eq!(
            lines(&absent),
            [r#"output/: changed {"id":2}: field `x`: expected 1, found (absent)"#]
        );
    }

    #[test]
    fn ordered_cases_compare_position_by_position() {
        let expected = [json!({"a": 1}), json!({"a": 2})];
        let found = [json!({"a": 2}), json!({"a": 1})];
        assert_eq!(
            lines(&records("output/", &expected, &found, &case(&[], true))),
            [
                "output/ record 1: changed {\"a\":1}: field `a`: expected 1, found 2",
                "output/ record 2: changed {\"a\":2}: field `a`: expected 2, found 1",
            ]
        );
    }

    #[test]
    fn rejections_match_by_stop_and_exact_or_patterned_reason() {
        let found = [Rejected {
            stop: "cleaner".into(),
            reason: "in/a.csv:3: field `age`: cannot cast \"old\" to number".into(),
            data: json!({"age": "old"}),
        }];
        let want = |stop: Option<&str>, reason: &str| ExpectedRejection {
            stop: stop.map(str::to_owned),
            reason: reason.into(),
            data: None,
        };
        assert!(
            rejections(
                "quarantine",
                &[want(Some("cleaner"), "/cannot cast .* to number$/")],
                &found
            )
            .is_empty()
        );
        assert!(
            rejections(
                "quarantine",
                &[want(
                    None,
                    "in/a.csv:3: field `age`: cannot cast \"old\" to number"
                )],
                &found
            )
            .is_empty()
        );
        assert_eq!(
            lines(&rejections(
                "quarantine",
                &[want(Some("writer"), "/cannot cast/")],
                &found
            )),
            [
                "quarantine: missing at writer: /cannot cast/",
                "quarantine: unexpected at cleaner: in/a.csv:3: field `age`: cannot cast \"old\" to number",
            ]
        );
        assert_eq!(
            lines(&rejections("quarantine", &[want(None, "/(/")], &found))[0]
                .split(':')
                .next(),
            Some("the case did not run")
        );
    }
}
