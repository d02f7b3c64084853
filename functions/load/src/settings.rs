//! The load stop's settings: where objects go, in which format and compression, under which
//! Hive-style partitions, and the Parquet schema when one is declared.

use busline_core::ConfigError;
use busline_core::config::{Vars, optional, required};
use busline_formats::{Compression, ParquetCodec, TableSchema};

/// The output formats load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row: the fields of the bus in first-seen order.
    Csv,
    /// Apache Parquet, one row group per object, typed by a schema.
    Parquet,
}

impl OutputFormat {
    /// The key extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Csv => "csv",
            OutputFormat::Parquet => "parquet",
        }
    }

    /// The content type of an uncompressed object.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "application/x-ndjson",
            OutputFormat::Csv => "text/csv",
            OutputFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// How an object's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCompression {
    /// NDJSON or CSV as they are, or gzip / zstd of the whole object.
    Text(Option<Compression>),
    /// Parquet's own page compression.
    Parquet(ParquetCodec),
}

/// The load stop's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// `OUTPUT_PREFIX`: where objects are written, e.g. `output/`.
    pub output_prefix: String,
    /// `OUTPUT_FORMAT`: `ndjson` (default), `csv` or `parquet`.
    pub format: OutputFormat,
    /// `OUTPUT_COMPRESSION`: `gzip` or `zstd` for NDJSON and CSV (none by default); `snappy`
    /// (default), `zstd` or `none` for Parquet.
    pub compression: OutputCompression,
    /// `OUTPUT_PARTITIONS`: fields (comma-separated) whose values become key parts after
    /// `trip=<trip>/`, as `year=2026/month=11/`; they are left out of the objects, as Hive,
    /// Spark and Athena expect.
    pub partitions: Vec<String>,
    /// `PARQUET_SCHEMA`: the declared schema; unset, the trip's first bus decides it.
    pub schema: Option<TableSchema>,
}

impl LoadConfig {
    /// Reads the settings; the error names the variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let invalid = |var: &str, value: &str, reason: String| ConfigError::Invalid {
            var: var.into(),
            value: value.into(),
            reason,
        };
        let format_name = optional(vars, "OUTPUT_FORMAT").map(|v| v.trim().to_ascii_lowercase());
        let format = match format_name.as_deref() {
            None | Some("ndjson") | Some("jsonl") => OutputFormat::Ndjson,
            Some("csv") => OutputFormat::Csv,
            Some("parquet") => OutputFormat::Parquet,
            Some(other) => {
                return Err(invalid(
                    "OUTPUT_FORMAT",
                    other,
                    "expected ndjson, csv or parquet".into(),
                ));
            }
        };
        let compression_name = optional(vars, "OUTPUT_COMPRESSION").unwrap_or_default();
        let compression = match format {
            OutputFormat::Parquet => {
                ParquetCodec::from_name(&compression_name).map(OutputCompression::Parquet)
            }
            _ => Compression::from_name(&compression_name).map(OutputCompression::Text),
        }
        .map_err(|reason| invalid("OUTPUT_COMPRESSION", &compression_name, reason))?;
        let partitions: Vec<String> = optional(vars, "OUTPUT_PARTITIONS")
            .map(|value| value.split(',').map(|f| f.trim().to_owned()).collect())
            .unwrap_or_default();
        if partitions
            .iter()
            .any(|field| field.is_empty() || field == "trip")
        {
            return Err(invalid(
                "OUTPUT_PARTITIONS",
                &partitions.join(","),
                "expected field names separated by commas (trip= is always the first part)".into(),
            ));
        }
        let schema = match optional(vars, "PARQUET_SCHEMA") {
            None => None,
            Some(text) => Some(
                TableSchema::parse(&text)
                    .map_err(|reason| invalid("PARQUET_SCHEMA", &text, reason))?,
            ),
        };
        if schema.is_some() && format != OutputFormat::Parquet {
            return Err(ConfigError::Invalid {
                var: "PARQUET_SCHEMA".into(),
                value: schema
                    .as_ref()
                    .map(TableSchema::to_text)
                    .unwrap_or_default(),
                reason: "is set, but OUTPUT_FORMAT is not parquet".into(),
            });
        }
        Ok(LoadConfig {
            output_prefix: required(vars, "OUTPUT_PREFIX")?,
            format,
            compression,
            partitions,
            schema,
        })
    }

    /// The key extension: the format's, and the compression's for compressed text.
    pub fn extension(&self) -> String {
        match self.compression {
            OutputCompression::Text(Some(compression)) => {
                format!("{}.{}", self.format.extension(), compression.extension())
            }
            _ => self.format.extension().to_owned(),
        }
    }

    /// The content type of the objects written.
    pub fn content_type(&self) -> &'static str {
        match self.compression {
            OutputCompression::Text(Some(compression)) => compression.content_type(),
            _ => self.format.content_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of;

    fn config(pairs: &[(&str, &str)]) -> Result<LoadConfig, String> {
        let mut vars = vars_of(pairs);
        vars.insert("OUTPUT_PREFIX".into(), "output/".into());
        LoadConfig::from_vars(&vars).map_err(|err| err.to_string())
    }

    #[test]
    fn formats_compressions_and_partitions_are_read_and_bad_ones_named() {
        let parquet = config(&[
            ("OUTPUT_FORMAT", "parquet"),
            ("OUTPUT_COMPRESSION", "zstd"),
            ("OUTPUT_PARTITIONS", "year, month"),
        ])
        .expect("valid");
        assert_eq!(
            parquet.compression,
            OutputCompression::Parquet(ParquetCodec::Zstd)
        );
        assert_eq!(parquet.partitions, ["year", "month"]);
        assert_eq!(parquet.extension(), "parquet");
        let gzip = config(&[("OUTPUT_COMPRESSION", "gzip")]).expect("valid");
        assert_eq!(gzip.extension(), "ndjson.gz");
        assert_eq!(gzip.content_type(), "application/gzip");
        assert_eq!(
            config(&[("OUTPUT_COMPRESSION", "snappy")]).unwrap_err(),
            "environment variable OUTPUT_COMPRESSION=\"snappy\" is invalid: unknown compression \"snappy\": expected none, gzip or zstd"
        );
        assert_eq!(
            config(&[("PARQUET_SCHEMA", r#"{"a":"int64"}"#)]).unwrap_err(),
            "environment variable PARQUET_SCHEMA=\"{\\\"a\\\":\\\"int64\\\"}\" is invalid: is set, but OUTPUT_FORMAT is not parquet"
        );
        assert_eq!(
            config(&[
                ("OUTPUT_FORMAT", "parquet"),
                ("PARQUET_SCHEMA", r#"{"a":"int"#)
            ])
            .unwrap_err(),
            "environment variable PARQUET_SCHEMA=\"{\\\"a\\\":\\\"int\" is invalid: EOF while parsing a string at line 1 column 9 (expected e.g. {\"Name\": \"string\", \"age\": \"int64 not null\"})"
        );
        assert!(config(&[("OUTPUT_PARTITIONS", "trip")]).is_err());
    }
}
