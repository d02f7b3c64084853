//! Writes rows of cells as one Parquet file in memory (one row group: a bus is at most 1 MiB of
//! passengers), with flat, nullable-or-required columns typed by a [`TableSchema`].

use crate::schema::{Cell, Column, ColumnType, TableSchema};
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::sync::Arc;

/// The page compression of a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    /// Snappy: the common default (Spark, pyarrow, DuckDB).
    Snappy,
    /// Zstandard, level 3.
    Zstd,
    /// No compression.
    Uncompressed,
}

impl ParquetCodec {
    /// `snappy` (also the empty string), `zstd` or `none`.
    pub fn from_name(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "snappy" => Ok(ParquetCodec::Snappy),
            "zstd" => Ok(ParquetCodec::Zstd),
            "none" | "uncompressed" => Ok(ParquetCodec::Uncompressed),
            other => Err(format!(
                "unknown Parquet compression {other:?}: expected snappy, zstd or none"
            )),
        }
    }

    fn compression(self) -> Result<parquet::basic::Compression, ParquetError> {
        Ok(match self {
            ParquetCodec::Snappy => parquet::basic::Compression::SNAPPY,
            ParquetCodec::Zstd => {
                parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3)?)
            }
            ParquetCodec::Uncompressed => parquet::basic::Compression::UNCOMPRESSED,
        })
    }
}

/// Bytes of a decimal over precision 18, stored as a 16-byte FIXED_LEN_BYTE_ARRAY.
const WIDE_DECIMAL_BYTES: i32 = 16;

/// The Parquet file of `rows` (one `Vec<Cell>` per row, in `schema`'s column order).
pub fn write_parquet(
    schema: &TableSchema,
    rows: &[Vec<Cell>],
    codec: ParquetCodec,
) -> Result<Vec<u8>, ParquetError> {
    let properties = WriterProperties::builder()
        .set_compression(codec.compression()?)
        .set_created_by(format!("busline {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = SerializedFileWriter::new(
        Vec::with_capacity(64 * 1024),
        Arc::new(parquet_schema(schema)?),
        Arc::new(properties),
    )?;
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        let spec = schema
            .columns
            .get(index)
            .ok_or_else(|| ParquetError::General(format!("no column {index} in the schema")))?;
        write_column(column.untyped(), spec, rows.iter().map(|row| &row[index]))?;
        column.close()?;
        index += 1;
    }
    group.close()?;
    writer.into_inner()
}

/// The Parquet message type of `schema`.
fn parquet_schema(schema: &TableSchema) -> Result<Type, ParquetError> {
    let fields = schema
        .columns
        .iter()
        .map(|column| column_type(column).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
}

fn column_type(column: &Column) -> Result<Type, ParquetError> {
    let (physical, logical, length) = match column.kind {
        ColumnType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String), -1),
        ColumnType::Json => (PhysicalType::BYTE_ARRAY, Some(LogicalType::Json), -1),
        ColumnType::Int64 => (PhysicalType::INT64, None, -1),
        ColumnType::Int32 => (PhysicalType::INT32, None, -1),
        ColumnType::Double => (PhysicalType::DOUBLE, None, -1),
        ColumnType::Bool => (PhysicalType::BOOLEAN, None, -1),
        ColumnType::Date => (PhysicalType::INT32, Some(LogicalType::Date), -1),
        ColumnType::Timestamp => (
            PhysicalType::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
            -1,
        ),
        ColumnType::Decimal { precision, scale } => {
            let logical = Some(LogicalType::decimal(i32::from(scale), i32::from(precision)));
            if precision <= 18 {
                (PhysicalType::INT64, logical, -1)
            } else {
                (
                    PhysicalType::FIXED_LEN_BYTE_ARRAY,
                    logical,
                    WIDE_DECIMAL_BYTES,
                )
            }
        }
    };
    let (precision, scale) = match column.kind {
        ColumnType::Decimal { precision, scale } => (i32::from(precision), i32::from(scale)),
        _ => (-1, -1),
    };
    Type::primitive_type_builder(&column.name, physical)
        .with_repetition(if column.nullable {
            Repetition::OPTIONAL
        } else {
            Repetition::REQUIRED
        })
        .with_logical_type(logical)
        .with_length(length)
        .with_precision(precision)
        .with_scale(scale)
        .build()
}

/// Writes one column's cells: the values that are present, and a definition level per row
/// when the column is nullable.
fn write_column<'c>(
    writer: &mut ColumnWriter<'_>,
    column: &Column,
    cells: impl Iterator<Item = &'c Cell>,
) -> Result<(), ParquetError> {
    let cells: Vec<&Cell> = cells.collect();
    let levels: Vec<i16> = cells.iter().map(|c| i16::from(**c != Cell::Null)).collect();
    let levels = column.nullable.then_some(levels.as_slice());
    let present = cells.iter().filter(|c| ***c != Cell::Null);
    let mismatch = || {
        ParquetError::General(format!(
            "column `{}`: a cell does not match its type {}",
            column.name,
            column.kind.name()
        ))
    };
    match writer {
        ColumnWriter::BoolColumnWriter(w) => {
            let values = present
                .map(|c| match c {
                    Cell::Bool(flag) => Ok(*flag),
                    _ => Err(mismatch()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write_batch(&values, levels, None)?;
        }
        ColumnWriter::Int32ColumnWriter(w) => {
            let values = present
                .map(|c| {
                    int(c)
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or_else(mismatch)
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write_batch(&values, levels, None)?;
        }
        ColumnWriter::Int64ColumnWriter(w) => {
            let values = present
                .map(|c| {
                    int(c)
                        .and_then(|v| i64::try_from(v).ok())
                        .ok_or_else(mismatch)
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write_batch(&values, levels, None)?;
        }
        ColumnWriter::DoubleColumnWriter(w) => {
            let values = present
                .map(|c| match c {
                    Cell::Double(value) => Ok(*value),
                    _ => Err(mismatch()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write_batch(&values, levels, None)?;
        }
        ColumnWriter::ByteArrayColumnWriter(w) => {
            let values = present
                .map(|c| match c {
                    Cell::Text(text) => Ok(ByteArray::from(text.as_bytes().to_vec())),
                    _ => Err(mismatch()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write_batch(&values, levels, None)?;
        }
        ColumnWriter::FixedLenByteArrayColumnWriter(w) => {
            let values = present
                .map(|c| {
                    int(c)
                        .map(|v| FixedLenByteArray::from(v.to_be_bytes().to_vec()))
                        .ok_or_else(mismatch)
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write_batch(&values, levels, None)?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn int(cell: &Cell) -> Option<i128> {
    match cell {
        Cell::Int(value) => Some(*value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_in::{Columns, row_to_record};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::{Map, Value, json};

    #[test]
    fn what_is_written_reads_back_as_the_same_records() {
        let schema = TableSchema::parse(
            r#"{"Name":"string not null","age":"int64","price":"decimal(10,2)","big":"decimal(30,3)","at":"timestamp","day":"date","ok":"bool","x":"double","n":"int32","doc":"json"}"#,
        )
        .expect("schema");
        let records = [
            json!({"Name": "Red", "age": 42, "price": "12.50", "big": "-123456789012345678901234567.125", "at": "2026-11-22T03:00:00Z", "day": "2026-11-22", "ok": true, "x": 0.25, "n": 7, "doc": {"k": [1]}}),
            json!({"Name": "Blue", "age": null, "price": null, "big": null, "at": null, "day": null, "ok": null, "x": null, "n": null, "doc": null}),
        ];
        let rows: Vec<Vec<Cell>> = records
            .iter()
            .map(|r| schema.cells(r.as_object().expect("object")).expect("fits"))
            .collect();
        for codec in [
            ParquetCodec::Snappy,
            ParquetCodec::Zstd,
            ParquetCodec::Uncompressed,
        ] {
            let file = write_parquet(&schema, &rows, codec).expect("written");
            let reader = SerializedFileReader::new(bytes::Bytes::from(file)).expect("readable");
            let columns = Columns::of(reader.metadata().file_metadata().schema_descr());
            let read: Vec<Map<String, Value>> = reader
                .get_row_iter(None)
                .expect("rows")
                .map(|row| row_to_record(&row.expect("row"), &columns).expect("record"))
                .collect();
            assert_eq!(
                Value::Array(read.into_iter().map(Value::Object).collect()).to_string(),
                r#"[{"Name":"Red","age":42,"price":12.50,"big":-123456789012345678901234567.125,"at":"2026-11-22T03:00:00Z","day":"2026-11-22","ok":true,"x":0.25,"n":7,"doc":{"k":[1]}},{"Name":"Blue","age":null,"price":null,"big":null,"at":null,"day":null,"ok":null,"x":null,"n":null,"doc":null}]"#
            );
        }
    }
}
