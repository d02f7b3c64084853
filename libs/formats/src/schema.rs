//! The schema of a table load writes: columns with a type each, declared in settings
//! (`PARQUET_SCHEMA`) or inferred from passengers. A value that does not fit its column is
//! refused with the field and the reason, never coerced.

use crate::exact::{f64_keeps_digits, fits_decimal};
use serde_json::{Map, Value};

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text. JSON numbers and booleans are written as their JSON text (no digit changes).
    String,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit signed integer.
    Int32,
    /// IEEE double; a number whose digits a double cannot hold exactly is refused.
    Double,
    /// true or false.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339 (`2026-11-22T03:00:00Z`, an offset, or none for UTC), microseconds.
    Timestamp,
    /// A decimal with `precision` digits, `scale` of them after the point (precision 1..=38).
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// A JSON document (objects and arrays), as text.
    Json,
}

impl ColumnType {
    /// Reads `string`, `int64`, `int32`, `double`, `bool`, `date`, `timestamp`, `json` or
    /// `decimal(P,S)`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let simple = match lower.as_str() {
            "string" | "utf8" | "text" => Some(ColumnType::String),
            "int64" | "bigint" | "long" => Some(ColumnType::Int64),
            "int32" | "int" | "integer" => Some(ColumnType::Int32),
            "double" | "float64" => Some(ColumnType::Double),
            "bool" | "boolean" => Some(ColumnType::Bool),
            "date" => Some(ColumnType::Date),
            "timestamp" => Some(ColumnType::Timestamp),
            "json" => Some(ColumnType::Json),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        let decimal = lower
            .strip_prefix("decimal(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|inside| inside.split_once(','))
            .and_then(|(p, s)| Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<u8>().ok()?)));
        match decimal {
            Some((precision, scale)) if (1..=38).contains(&precision) && scale <= precision => {
                Ok(ColumnType::Decimal { precision, scale })
            }
            Some(_) => Err(format!(
                "{text}: a decimal's precision is 1 to 38 and its scale at most its precision"
            )),
            None => Err(format!(
                "unknown type {text:?}: expected string, int64, int32, double, bool, date, timestamp, json or decimal(P,S)"
            )),
        }
    }

    /// The type's name as [`ColumnType::parse`] reads it.
    pub fn name(&self) -> String {
        match self {
            ColumnType::String => "string".into(),
            ColumnType::Int64 => "int64".into(),
            ColumnType::Int32 => "int32".into(),
            ColumnType::Double => "double".into(),
            ColumnType::Bool => "bool".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Json => "json".into(),
            ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        }
    }

    /// The type a column takes from its first non-null JSON value.
    fn of(value: &Value) -> Self {
        match value {
            Value::Bool(_) => ColumnType::Bool,
            Value::Number(n) if n.as_i64().is_some() => ColumnType::Int64,
            Value::Number(_) => ColumnType::Double,
            Value::Object(_) | Value::Array(_) => ColumnType::Json,
            Value::String(_) | Value::Null => ColumnType::String,
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The field it holds.
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
    /// False when a null (or a missing field) is refused.
    pub nullable: bool,
}

/// A typed value ready for a column writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (int32 columns hold it in range), days for dates, microseconds for
    /// timestamps, the unscaled value of a decimal.
    Int(i128),
    /// A double.
    Double(f64),
    /// Text: strings and JSON documents.
    Text(String),
}

/// The columns of a table, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// The columns.
    pub columns: Vec<Column>,
}

impl TableSchema {
    /// Reads a schema written as a JSON object of field to type, in column order:
    /// `{"Name": "string", "age": "int64 not null", "price": "decimal(10,2)"}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let declared: Map<String, Value> = serde_json::from_str(text).map_err(|err| {
            format!("{err} (expected e.g. {{\"Name\": \"string\", \"age\": \"int64 not null\"}})")
        })?;
        let mut columns = Vec::with_capacity(declared.len());
        for (name, kind) in declared {
            let Value::String(kind) = kind else {
                return Err(format!(
                    "column `{name}`: the type must be a string, found {kind}"
                ));
            };
            let (kind, nullable) = match kind.trim().strip_suffix("not null") {
                Some(kind) => (kind, false),
                None => (kind.as_str(), true),
            };
            let kind = ColumnType::parse(kind).map_err(|err| format!("column `{name}`: {err}"))?;
            columns.push(Column {
                name,
                kind,
                nullable,
            });
        }
        if columns.is_empty() {
            return Err("declares no columns".into());
        }
        Ok(TableSchema { columns })
    }

    /// The schema as [`TableSchema::parse`] reads it.
    pub fn to_text(&self) -> String {
        let declared: Map<String, Value> = self
            .columns
            .iter()
            .map(|column| {
                let not_null = if column.nullable { "" } else { " not null" };
                let kind = format!("{}{not_null}", column.kind.name());
                (column.name.clone(), Value::String(kind))
            })
            .collect();
        Value::Object(declared).to_string()
    }

    /// The schema of `records`: every field in first-seen order, typed by its first non-null
    /// value (a field that is always null is a string), every column nullable.
    pub fn infer<'r>(records: impl IntoIterator<Item = &'r Map<String, Value>>) -> Self {
        let mut columns: Vec<Column> = Vec::new();
        let mut typed: Vec<bool> = Vec::new();
        for record in records {
            for (name, value) in record {
                let index = match columns.iter().position(|c| &c.name == name) {
                    Some(index) => index,
                    None => {
                        columns.push(Column {
                            name: name.clone(),
                            kind: ColumnType::String,
                            nullable: true,
                        });
                        typed.push(false);
                        columns.len() - 1
                    }
                };
                if !typed[index] && !value.is_null() {
                    columns[index].kind = ColumnType::of(value);
                    typed[index] = true;
                }
            }
        }
        TableSchema { columns }
    }

    /// `record` as one cell per column, or why it does not fit (naming the field).
    pub fn cells(&self, record: &Map<String, Value>) -> Result<Vec<Cell>, String> {
        if let Some(extra) = record
            .keys()
            .find(|name| !self.columns.iter().any(|c| &c.name == *name))
        {
            return Err(format!(
                "field `{extra}` is not in the schema (columns: {})",
                self.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.columns
            .iter()
            .map(|column| {
                let value = record.get(&column.name).unwrap_or(&Value::Null);
                cell(column, value).map_err(|reason| format!("field `{}`: {reason}", column.name))
            })
            .collect()
    }
}

/// `value` as a cell of `column`.
fn cell(column: &Column, value: &Value) -> Result<Cell, String> {
    if value.is_null() {
        return if column.nullable {
            Ok(Cell::Null)
        } else {
            Err("is null, but the column is not null".into())
        };
    }
    let refuse = || format!("{value} does not fit a {} column", column.kind.name());
    // Text stands for a value in CSV input: it is read by the column's type.
    let text = match value {
        Value::String(text) => Some(text.trim()),
        _ => None,
    };
    match column.kind {
        ColumnType::String => match value {
            Value::String(text) => Ok(Cell::Text(text.clone())),
            Value::Number(_) | Value::Bool(_) => Ok(Cell::Text(value.to_string())),
            _ => Err(refuse()),
        },
        ColumnType::Json => match value {
            Value::Object(_) | Value::Array(_) => Ok(Cell::Text(value.to_string())),
            _ => Err(refuse()),
        },
        ColumnType::Bool => match (value, text) {
            (Value::Bool(flag), _) => Ok(Cell::Bool(*flag)),
            (_, Some("true")) => Ok(Cell::Bool(true)),
            (_, Some("false")) => Ok(Cell::Bool(false)),
            _ => Err(refuse()),
        },
        ColumnType::Int64 | ColumnType::Int32 => {
            let digits = number_text(value, text).ok_or_else(refuse)?;
            let int: i64 = digits.parse().map_err(|_| {
                format!(
                    "{value} is not a whole number in range of {}",
                    column.kind.name()
                )
            })?;
            if column.kind == ColumnType::Int32 && i32::try_from(int).is_err() {
                return Err(format!("{value} is out of range of int32"));
            }
            Ok(Cell::Int(i128::from(int)))
        }
        ColumnType::Double => {
            let digits = number_text(value, text).ok_or_else(refuse)?;
            let float: f64 = digits.parse().map_err(|_| refuse())?;
            if !f64_keeps_digits(&digits, float) {
                return Err(format!(
                    "{value} has more digits than a double holds; declare the column decimal(P,S)"
                ));
            }
            Ok(Cell::Double(float))
        }
        ColumnType::Decimal { precision, scale } => {
            let digits = number_text(value, text).ok_or_else(refuse)?;
            fits_decimal(&digits, precision, scale).map(Cell::Int)
        }
        ColumnType::Date => {
            let text = text.ok_or_else(refuse)?;
            let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|err| format!("{value} is not a date YYYY-MM-DD: {err}"))?;
            let days = date
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp()
                .div_euclid(86_400);
            Ok(Cell::Int(i128::from(days)))
        }
        ColumnType::Timestamp => {
            let text = text.ok_or_else(refuse)?;
            parse_timestamp(text)
                .map(|micros| Cell::Int(i128::from(micros)))
                .ok_or_else(|| {
                    format!("{value} is not an RFC 3339 timestamp (2026-11-22T03:00:00Z)")
                })
        }
    }
}

/// The decimal text of a JSON number, or of a string holding one.
fn number_text(value: &Value, text: Option<&str>) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        _ => text
            .filter(|t| serde_json::from_str::<serde_json::Number>(t).is_ok())
            .map(str::to_owned),
    }
}

/// Microseconds since the epoch of an RFC 3339 instant, or of a date and time with no offset
/// (read as UTC, as Athena and Spark read them).
fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(instant) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(instant.timestamp_micros());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_declared_schema_reads_back_as_written() {
        let text = r#"{"Name":"string not null","age":"int64","price":"decimal(10,2)","at":"timestamp","day":"date","ok":"bool","x":"double","doc":"json","n":"int32"}"#;
        let schema = TableSchema::parse(text).expect("valid");
        assert_eq!(schema.to_text(), text);
        assert_eq!(
            TableSchema::parse(r#"{"a": "decimal(40,2)"}"#).unwrap_err(),
            "column `a`: decimal(40,2): a decimal's precision is 1 to 38 and its scale at most its precision"
        );
        assert!(
            TableSchema::parse(r#"{"a": "varchar"}"#)
                .unwrap_err()
                .starts_with("column `a`: unknown type \"varchar\"")
        );
    }

    #[test]
    fn cells_convert_exactly_or_name_the_field_and_reason() {
        let schema = TableSchema::parse(
            r#"{"Name":"string not null","age":"int64","price":"decimal(10,2)","at":"timestamp","day":"date","ok":"bool","x":"double"}"#,
        )
        .expect("valid");
        let cells = schema
            .cells(&record(json!({"Name": "Red", "age": "42", "price": "12.5", "at": "2026-11-22T03:00:00+01:00", "day": "1970-01-02", "ok": true, "x": 0.1})))
            .expect("fits");
        assert_eq!(
            cells,
            vec![
                Cell::Text("Red".into()),
                Cell::Int(42),
                Cell::Int(1250),
                Cell::Int(1_795_312_800_000_000),
                Cell::Int(1),
                Cell::Bool(true),
                Cell::Double(0.1),
            ]
        );
        let fails = |value: Value| schema.cells(&record(value)).unwrap_err();
        assert_eq!(
            fails(json!({"Name": null})),
            "field `Name`: is null, but the column is not null"
        );
        assert_eq!(
            fails(json!({"Name": "a", "age": "4.5"})),
            "field `age`: \"4.5\" is not a whole number in range of int64"
        );
        assert_eq!(
            fails(json!({"Name": "a", "age": "NA"})),
            "field `age`: \"NA\" does not fit a int64 column"
        );
        assert_eq!(
            fails(json!({"Name": "a", "price": "1.234"})),
            "field `price`: 1.234 has more than 2 digits after the point"
        );
        assert_eq!(
            fails(
                json!({"Name": "a", "x": serde_json::from_str::<Value>("0.12345678901234567890123").unwrap()})
            ),
            "field `x`: 0.12345678901234567890123 has more digits than a double holds; declare the column decimal(P,S)"
        );
        assert_eq!(
            fails(json!({"Name": "a", "extra": 1})),
            "field `extra` is not in the schema (columns: Name, age, price, at, day, ok, x)"
        );
    }

    #[test]
    fn inference_types_each_field_by_its_first_value() {
        let a = record(json!({"s": "x", "n": null, "i": 1}));
        let b = record(json!({"n": 2.5, "i": 3, "o": {"k": 1}, "z": null}));
        let schema = TableSchema::infer([&a, &b]);
        assert_eq!(
            schema.to_text(),
            r#"{"s":"string","n":"double","i":"int64","o":"json","z":"string"}"#
        );
    }
}
