//! Parquet rows as JSON records, typed from the file's schema: integers and decimals keep their
//! digits, dates, times and timestamps become ISO 8601 text (`Z` where the column is adjusted
//! to UTC), binary becomes base64, JSON columns their documents, groups objects, lists arrays
//! and maps objects.

use base64::Engine as _;
use parquet::basic::{LogicalType, TimeUnit};
use parquet::data_type::Decimal;
use parquet::record::{Field, Row};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// The file's top-level primitive columns, by name: what tells a UTC timestamp from a local
/// one, and nanoseconds from a plain integer.
#[derive(Debug, Clone, Default)]
pub struct Columns(HashMap<String, ColumnDescPtr>);

impl Columns {
    /// The top-level columns of `schema`.
    pub fn of(schema: &SchemaDescriptor) -> Self {
        Columns(
            schema
                .columns()
                .iter()
                .filter(|column| column.path().parts().len() == 1)
                .map(|column| (column.name().to_owned(), column.clone()))
                .collect(),
        )
    }

    fn logical(&self, name: &str) -> Option<LogicalType> {
        self.0
            .get(name)
            .and_then(|column| column.logical_type_ref().cloned())
    }
}

/// Every row of a whole Parquet file in memory as a JSON record (for checks of what load
/// wrote; extract reads row group by row group instead).
pub fn parquet_records(file: bytes::Bytes) -> Result<Vec<Map<String, Value>>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(file).map_err(|err| err.to_string())?;
    let columns = Columns::of(reader.metadata().file_metadata().schema_descr());
    reader
        .get_row_iter(None)
        .map_err(|err| err.to_string())?
        .map(|row| row_to_record(&row.map_err(|err| err.to_string())?, &columns))
        .collect()
}

/// `row` as a JSON record, or why a value cannot be one (naming the field).
pub fn row_to_record(row: &Row, columns: &Columns) -> Result<Map<String, Value>, String> {
    let mut record = Map::with_capacity(row.len());
    for (name, field) in row.get_column_iter() {
        let value = field_to_json(field, columns.logical(name).as_ref())
            .map_err(|reason| format!("field `{name}`: {reason}"))?;
        record.insert(name.clone(), value);
    }
    Ok(record)
}

fn field_to_json(field: &Field, logical: Option<&LogicalType>) -> Result<Value, String> {
    Ok(match field {
        Field::Null => Value::Null,
        Field::Bool(flag) => Value::Bool(*flag),
        Field::Byte(n) => Value::from(*n),
        Field::Short(n) => Value::from(*n),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => match logical {
            Some(LogicalType::Timestamp(t)) => timestamp(*n, &t.unit, t.is_adjusted_to_u_t_c)?,
            Some(LogicalType::Time(t)) => time_of_day(*n, &t.unit)?,
            _ => Value::from(*n),
        },
        Field::UByte(n) => Value::from(*n),
        Field::UShort(n) => Value::from(*n),
        Field::UInt(n) => Value::from(*n),
        Field::ULong(n) => Value::from(*n),
        Field::Float16(n) => float(f64::from(f32::from(*n)))?,
        Field::Float(n) => float(f64::from(*n))?,
        Field::Double(n) => float(*n)?,
        Field::Decimal(decimal) => decimal_number(decimal)?,
        Field::Str(text) => match logical {
            Some(LogicalType::Json) => serde_json::from_str(text)
                .map_err(|err| format!("JSON column holds invalid JSON: {err}"))?,
            _ => Value::String(text.clone()),
        },
        Field::Bytes(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes.data()))
        }
        Field::Date(days) => {
            let date = chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
                .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        Field::TimeMillis(ms) => time_of_day(i64::from(*ms), &TimeUnit::MILLIS)?,
        Field::TimeMicros(us) => time_of_day(*us, &TimeUnit::MICROS)?,
        Field::TimestampMillis(ms) => timestamp(*ms, &TimeUnit::MILLIS, adjusted_to_utc(logical))?,
        Field::TimestampMicros(us) => timestamp(*us, &TimeUnit::MICROS, adjusted_to_utc(logical))?,
        Field::Group(row) => {
            let mut object = Map::with_capacity(row.len());
            for (name, field) in row.get_column_iter() {
                let value =
                    field_to_json(field, None).map_err(|reason| format!("`{name}`: {reason}"))?;
                object.insert(name.clone(), value);
            }
            Value::Object(object)
        }
        Field::ListInternal(list) => Value::Array(
            list.elements()
                .iter()
                .map(|element| field_to_json(element, None))
                .collect::<Result<_, _>>()?,
        ),
        Field::MapInternal(map) => {
            let mut object = Map::with_capacity(map.entries().len());
            for (key, value) in map.entries() {
                let key = match field_to_json(key, None)? {
                    Value::String(key) => key,
                    other => other.to_string(),
                };
                object.insert(key, field_to_json(value, None)?);
            }
            Value::Object(object)
        }
    })
}

/// Timestamps without a logical type (INT96, legacy converted types) are UTC instants.
fn adjusted_to_utc(logical: Option<&LogicalType>) -> bool {
    match logical {
        Some(LogicalType::Timestamp(t)) => t.is_adjusted_to_u_t_c,
        _ => true,
    }
}

fn float(value: f64) -> Result<Value, String> {
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| format!("{value} is not a JSON number"))
}

/// `ticks` of `unit` as (seconds, nanoseconds).
fn split(ticks: i64, unit: &TimeUnit) -> (i64, u32) {
    let per_second = match unit {
        TimeUnit::MILLIS => 1_000,
        TimeUnit::MICROS => 1_000_000,
        TimeUnit::NANOS => 1_000_000_000,
    };
    let nanos = ticks.rem_euclid(per_second) * (1_000_000_000 / per_second);
    (ticks.div_euclid(per_second), nanos as u32)
}

fn timestamp(ticks: i64, unit: &TimeUnit, utc: bool) -> Result<Value, String> {
    let (seconds, nanos) = split(ticks, unit);
    let instant = chrono::DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| format!("timestamp {ticks} is out of range"))?;
    Ok(Value::String(if utc {
        instant.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    } else {
        instant
            .naive_utc()
            .format("%Y-%m-%dT%H:%M:%S%.f")
            .to_string()
    }))
}

fn time_of_day(ticks: i64, unit: &TimeUnit) -> Result<Value, String> {
    let (seconds, nanos) = split(ticks, unit);
    let time = u32::try_from(seconds)
        .ok()
        .and_then(|s| chrono::NaiveTime::from_num_seconds_from_midnight_opt(s, nanos))
        .ok_or_else(|| format!("time of day {ticks} is out of range"))?;
    Ok(Value::String(time.format("%H:%M:%S%.f").to_string()))
}

/// A decimal's exact digits as a JSON number (`12.50` stays `12.50`).
fn decimal_number(decimal: &Decimal) -> Result<Value, String> {
    let bytes = decimal.data();
    if bytes.len() > 16 {
        return Err(format!(
            "a decimal of {} bytes is wider than 38 digits",
            bytes.len()
        ));
    }
    // Big-endian two's complement, sign-extended to 16 bytes.
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(wide);
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::try_from(decimal.scale()).unwrap_or(0);
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    let text = if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    };
    serde_json::from_str::<Number>(&text)
        .map(Value::Number)
        .map_err(|err| format!("decimal {text}: {err}"))
}
