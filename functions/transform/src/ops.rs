//! The declarative operations: select, drop, rename, cast, filter, require, route.

use busline_core::config::NEXT_LANE;
use busline_core::{Passenger, Verdict};
use serde::Deserialize;
use serde_json::{Number, Value};
use std::collections::BTreeMap;

/// One operation, written in `TRANSFORM_OPS` as a one-key object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Op {
    /// `{"select": ["a", "b"]}`: keep only these fields, in this order.
    Select(Vec<String>),
    /// `{"drop": ["HEX"]}`: remove these fields.
    Drop(Vec<String>),
    /// `{"rename": {"old": "new"}}`: rename fields in place (all at once).
    Rename(BTreeMap<String, String>),
    /// `{"cast": {"age": "number"}}`: convert fields; an empty string becomes null.
    Cast(BTreeMap<String, CastTo>),
    /// `{"filter": {"field": "age", "op": "gte", "value": 18}}`: keep matching passengers;
    /// the others are dropped off.
    Filter(Condition),
    /// `{"require": ["Name"]}`: reject passengers missing any of these fields (or null).
    Require(Vec<String>),
    /// `{"route": {"when": [{"lane": "audit", "field": "age", "op": "lt", "value": 18}],
    /// "default": "next"}}`: sends the passenger on the lane of the first condition it meets,
    /// else on `default` (`next` when unset). Later operations still apply.
    Route(Routing),
}

/// Where a `route` operation sends passengers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Conditions tried in order: the first one met picks the lane.
    pub when: Vec<LaneCase>,
    /// The lane of a passenger that meets none (`next` when unset).
    #[serde(default = "next_lane")]
    pub default: String,
}

fn next_lane() -> String {
    NEXT_LANE.to_owned()
}

/// One case of a `route` operation: a lane and the condition that picks it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneCase {
    /// The lane taken when the condition holds.
    pub lane: String,
    /// The condition.
    #[serde(flatten)]
    pub condition: Condition,
}

/// Target type of a cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CastTo {
    /// Integer when it is one, else floating point.
    Number,
    /// true/false, yes/no, 1/0 (any case).
    Bool,
    /// Text; objects and arrays become their JSON.
    String,
}

/// A filter condition on one field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The field compared.
    pub field: String,
    /// The comparison.
    pub op: Comparison,
    /// The value compared with (not used by `exists` / `missing`).
    #[serde(default)]
    pub value: Value,
}

/// Comparisons a filter can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// Equal (numbers by value: 1 equals 1.0).
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// The field is present and not null.
    Exists,
    /// The field is absent or null.
    Missing,
}

impl Condition {
    /// Checks the comparison can be made.
    fn check(&self, what: &str) -> Result<(), String> {
        let ordered = matches!(
            self.op,
            Comparison::Gt | Comparison::Gte | Comparison::Lt | Comparison::Lte
        );
        if ordered && !(self.value.is_number() || self.value.is_string()) {
            return Err(format!(
                "{what} on `{}`: {:?} needs a number or string value",
                self.field, self.op
            ));
        }
        Ok(())
    }
}

impl Op {
    /// Checks an operation makes sense before any passenger meets it.
    pub fn check(&self) -> Result<(), String> {
        let empty = match self {
            Op::Select(fields) | Op::Drop(fields) | Op::Require(fields) => fields.is_empty(),
            Op::Rename(map) => map.is_empty(),
            Op::Cast(map) => map.is_empty(),
            Op::Filter(condition) => {
                condition.check("filter")?;
                false
            }
            Op::Route(routing) => {
                for case in &routing.when {
                    case.condition.check("route")?;
                }
                // No condition and the default lane would change nothing.
                routing.when.is_empty() && routing.default == NEXT_LANE
            }
        };
        if empty {
            Err("names no fields".into())
        } else {
            Ok(())
        }
    }

    /// The lanes a `route` operation may send passengers on.
    pub fn lanes(&self) -> Vec<&str> {
        match self {
            Op::Route(routing) => routing
                .when
                .iter()
                .map(|case| case.lane.as_str())
                .chain([routing.default.as_str()])
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Applies `ops` in order to `passenger`. The lane the last `route` operation picked is where
/// it boards. Only the fields an operation compares or casts are parsed.
pub fn apply_all(ops: &[Op], passenger: &mut Passenger) -> Verdict {
    let mut lane: Option<&str> = None;
    for op in ops {
        if let Op::Route(routing) = op {
            match pick_lane(routing, passenger) {
                Ok(picked) => lane = Some(picked),
                Err(reason) => return Verdict::Reject(reason),
            }
            continue;
        }
        match apply(op, passenger) {
            Verdict::Board => {}
            other => return other,
        }
    }
    match lane {
        Some(lane) if lane != NEXT_LANE => Verdict::BoardTo(lane.to_owned()),
        _ => Verdict::Board,
    }
}

/// The lane of the first case `passenger` meets, else the default.
fn pick_lane<'r>(routing: &'r Routing, passenger: &Passenger) -> Result<&'r str, String> {
    for case in &routing.when {
        if matches(&case.condition, passenger)? {
            return Ok(&case.lane);
        }
    }
    Ok(&routing.default)
}

fn apply(op: &Op, passenger: &mut Passenger) -> Verdict {
    match op {
        Op::Select(fields) => passenger.select(fields),
        Op::Drop(fields) => passenger.remove_fields(fields),
        Op::Rename(names) => passenger.rename(names),
        Op::Cast(casts) => {
            for (field, to) in casts {
                let Some(value) = passenger.value(field) else {
                    continue;
                };
                match cast(&value, *to) {
                    Ok(cast) => passenger.set(field, cast),
                    Err(reason) => {
                        return Verdict::Reject(format!("field `{field}`: {reason}"));
                    }
                }
            }
        }
        Op::Filter(condition) => match matches(condition, passenger) {
            Ok(true) => {}
            Ok(false) => return Verdict::DropOff,
            Err(reason) => return Verdict::Reject(reason),
        },
        // Handled by apply_all, which keeps the lane.
        Op::Route(_) => {}
        Op::Require(fields) => {
            for field in fields {
                if passenger.value(field).is_none_or(|value| value.is_null()) {
                    return Verdict::Reject(format!("field `{field}` is required but missing"));
                }
            }
        }
    }
    Verdict::Board
}

fn cast(value: &Value, to: CastTo) -> Result<Value, String> {
    let fail = || format!("cannot cast {value} to {}", name(to));
    match (to, value) {
        (_, Value::Null) => Ok(Value::Null),
        (CastTo::Number, Value::Number(_))
        | (CastTo::Bool, Value::Bool(_))
        | (CastTo::String, Value::String(_)) => Ok(value.clone()),
        (CastTo::Number | CastTo::Bool, Value::String(text)) if text.trim().is_empty() => {
            Ok(Value::Null)
        }
        (CastTo::Number, Value::String(text)) => parse_number(text.trim()).ok_or_else(fail),
        (CastTo::Number, Value::Bool(flag)) => Ok(Value::from(u8::from(*flag))),
        (CastTo::Bool, Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(fail()),
        },
        (CastTo::Bool, Value::Number(n)) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
        (CastTo::Bool, Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
        (CastTo::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (CastTo::String, Value::Bool(flag)) => Ok(Value::String(flag.to_string())),
        (CastTo::String, other) => Ok(Value::String(other.to_string())),
        _ => Err(fail()),
    }
}

fn parse_number(text: &str) -> Option<Value> {
    // A JSON number keeps its digits exactly; other spellings (`+5`, `007`, `.5`) are read.
    if let Ok(number) = serde_json::from_str::<Number>(text) {
        return Some(Value::Number(number));
    }
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::from(int));
    }
    let float: f64 = text.parse().ok()?;
    Number::from_f64(float).map(Value::Number)
}

fn name(to: CastTo) -> &'static str {
    match to {
        CastTo::Number => "number",
        CastTo::Bool => "bool",
        CastTo::String => "string",
    }
}

/// Whether `passenger` meets `condition`; an error when the value cannot be compared.
fn matches(condition: &Condition, passenger: &Passenger) -> Result<bool, String> {
    let found = passenger.value(&condition.field);
    let present = found.as_deref().filter(|v| !v.is_null());
    let matched = match (condition.op, present) {
        (Comparison::Exists, found) => found.is_some(),
        (Comparison::Missing, found) => found.is_none(),
        (_, None) => false,
        (Comparison::Eq, Some(value)) => same(value, &condition.value),
        (Comparison::Ne, Some(value)) => !same(value, &condition.value),
        (op, Some(value)) => match order(value, &condition.value) {
            Some(ordering) => match op {
                Comparison::Gt => ordering.is_gt(),
                Comparison::Gte => ordering.is_ge(),
                Comparison::Lt => ordering.is_lt(),
                _ => ordering.is_le(),
            },
            None => {
                return Err(format!(
                    "field `{}`: cannot compare {value} with {} (cast it first)",
                    condition.field, condition.value
                ));
            }
        },
    };
    Ok(matched)
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use busline_core::envelope::{Envelope, decode_envelope};

    /// `value` as a stop builds it, and as a version 2 bus carries it.
    fn both(value: &Value) -> [Passenger; 2] {
        let data = value.as_object().cloned().unwrap_or_default();
        let names: Vec<&String> = data.keys().collect();
        let values: Vec<&Value> = data.values().collect();
        let body = format!(
            r#"{{"v":2,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["p:",null]],"shapes":[{}],"passengers":[[0,1,0,{}]]}}"#,
            json!(names),
            json!(values)
        );
        let mut bus: Envelope<Passenger> = decode_envelope(&body).expect("decodes");
        [Passenger::new("p:1", None, data), bus.passengers.remove(0)]
    }

    fn json_of(passenger: &Passenger) -> String {
        let mut out = Vec::new();
        passenger.write_json(&mut out).expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    /// The verdict of `ops` on `value` and the record after, the same built or carried.
    fn run(ops: &[Op], value: Value) -> (Verdict, String) {
        let [mut built, mut carried] = both(&value);
        let verdict = apply_all(ops, &mut built);
        assert_eq!(apply_all(ops, &mut carried), verdict, "carried verdict");
        assert_eq!(json_of(&carried), json_of(&built), "carried record");
        (verdict, json_of(&built))
    }

    fn verdict(ops: &[Op], value: Value) -> Verdict {
        run(ops, value).0
    }

    fn ops(text: &str) -> Vec<Op> {
        serde_json::from_str(text).expect("valid ops")
    }

    #[test]
    fn drop_rename_cast_keep_field_order() {
        let (verdict, record) = run(
            &ops(r#"[{"drop":["HEX"]},{"rename":{"Name":"name"}},{"cast":{"n":"number"}}]"#),
            json!({"Name": "Red", "HEX": "#FF0000", "RGB": "(255,0,0)", "n": "7"}),
        );
        assert_eq!(verdict, Verdict::Board);
        assert_eq!(record, r#"{"name":"Red","RGB":"(255,0,0)","n":7}"#);
    }

    #[test]
    fn select_keeps_listed_order() {
        let (_, record) = run(
            &ops(r#"[{"select":["c","a","zz"]}]"#),
            json!({"a": 1, "b": 2, "c": 3}),
        );
        assert_eq!(record, r#"{"c":3,"a":1}"#);
    }

    #[test]
    fn bad_cast_names_field_and_value() {
        assert_eq!(
            verdict(
                &ops(r#"[{"cast":{"age":"number"}}]"#),
                json!({"age": "old"})
            ),
            Verdict::Reject("field `age`: cannot cast \"old\" to number".into())
        );
    }

    #[test]
    fn casts_cover_each_type() {
        assert_eq!(cast(&json!("2.5"), CastTo::Number), Ok(json!(2.5)));
        assert_eq!(cast(&json!(""), CastTo::Number), Ok(Value::Null));
        assert_eq!(cast(&json!("Yes"), CastTo::Bool), Ok(json!(true)));
        assert_eq!(cast(&json!(0), CastTo::Bool), Ok(json!(false)));
        assert_eq!(cast(&json!(12), CastTo::String), Ok(json!("12")));
        assert_eq!(cast(&json!([1]), CastTo::String), Ok(json!("[1]")));
        assert!(cast(&json!("maybe"), CastTo::Bool).is_err());
    }

    #[test]
    fn filter_drops_non_matching_and_rejects_type_mismatch() {
        let gte = ops(r#"[{"filter":{"field":"age","op":"gte","value":18}}]"#);
        assert_eq!(verdict(&gte, json!({"age": 20})), Verdict::Board);
        assert_eq!(verdict(&gte, json!({"age": 3})), Verdict::DropOff);
        assert_eq!(verdict(&gte, json!({})), Verdict::DropOff);
        assert_eq!(
            verdict(&gte, json!({"age": "x"})),
            Verdict::Reject("field `age`: cannot compare \"x\" with 18 (cast it first)".into())
        );
        let eq = ops(r#"[{"filter":{"field":"n","op":"eq","value":1}}]"#);
        assert_eq!(verdict(&eq, json!({"n": 1.0})), Verdict::Board);
    }

    #[test]
    fn route_picks_the_first_lane_met_then_the_default_and_later_ops_still_apply() {
        let route = ops(
            r#"[{"route": {"when": [{"lane": "young", "field": "age", "op": "lt", "value": 18},
                                    {"lane": "unknown", "field": "age", "op": "missing"},
                                    {"lane": "never", "field": "age", "op": "lt", "value": 10}],
                           "default": "next"}},
                {"drop": ["secret"]}]"#,
        );
        assert_eq!(
            run(&route, json!({"age": 5, "secret": 1})),
            (Verdict::BoardTo("young".into()), r#"{"age":5}"#.to_owned())
        );
        assert_eq!(
            verdict(&route, json!({"age": null})),
            Verdict::BoardTo("unknown".into())
        );
        assert_eq!(verdict(&route, json!({"age": 40})), Verdict::Board);
        assert_eq!(
            verdict(&route, json!({"age": "x"})),
            Verdict::Reject("field `age`: cannot compare \"x\" with 18 (cast it first)".into())
        );
        assert_eq!(route[0].lanes(), ["young", "unknown", "never", "next"]);
        let custom_default = ops(
            r#"[{"route": {"when": [{"lane": "a", "field": "n", "op": "eq", "value": 1}], "default": "rest"}}]"#,
        );
        assert_eq!(
            verdict(&custom_default, json!({"n": 2})),
            Verdict::BoardTo("rest".into())
        );
    }

    #[test]
    fn require_rejects_missing_or_null() {
        let require = ops(r#"[{"require":["Name"]}]"#);
        assert_eq!(verdict(&require, json!({"Name": "x"})), Verdict::Board);
        assert_eq!(
            verdict(&require, json!({"Name": null})),
            Verdict::Reject("field `Name` is required but missing".into())
        );
    }
}
