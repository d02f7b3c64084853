//! The extract stop's settings: the input format for keys that do not name one, and how CSV is
//! read (delimiter, quote, escape, header or given columns, null spellings, type inference).

use crate::rows::InputFormat;
use busline_core::ConfigError;
use busline_core::config::{Vars, optional};

/// How CSV objects are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// `CSV_DELIMITER`: one ASCII character, `,` by default.
    pub delimiter: u8,
    /// `CSV_QUOTE`: one ASCII character, `"` by default; `none` reads quotes as text.
    pub quote: Option<u8>,
    /// `CSV_ESCAPE`: the character that escapes a quote inside a quoted field (e.g. `\`);
    /// unset, a quote is escaped by doubling it.
    pub escape: Option<u8>,
    /// `CSV_HEADER`: `true` (default) when the first record names the columns.
    pub header: bool,
    /// `CSV_COLUMNS`: the column names (a JSON list, or names separated by commas), needed when
    /// `CSV_HEADER` is `false`; with a header they replace its names (the counts must agree).
    pub columns: Option<Vec<String>>,
    /// `NULL_VALUES`: a JSON list of the spellings of null, e.g. `["", "NA", "NULL", "\\N"]`;
    /// a field spelled exactly so becomes null. None by default.
    pub null_values: Vec<String>,
    /// `INFER_TYPES`: `true` turns fields in JSON number syntax into numbers (their digits
    /// kept) and `true` / `false` into booleans; `false` (default) keeps every field text.
    pub infer_types: bool,
    /// `CSV_QUOTED_NEWLINES`: `true` reads a big CSV object whole, never split. `false`
    /// (default) lets it be split (see `SPLIT_SIZE`), at record starts only: a line start
    /// after an odd number of quotes is inside a quoted field.
    pub quoted_newlines: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: Some(b'"'),
            escape: None,
            header: true,
            columns: None,
            null_values: Vec::new(),
            infer_types: false,
            quoted_newlines: false,
        }
    }
}

/// Default `SPLIT_SIZE`: 64 MiB.
pub const DEFAULT_SPLIT_SIZE: u64 = 64 << 20;

/// The extract stop's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractConfig {
    /// `INPUT_FORMAT` (`csv`, `ndjson`, `json` or `parquet`): used for keys whose extension
    /// says nothing.
    pub format: Option<InputFormat>,
    /// How CSV is read.
    pub csv: CsvOptions,
    /// `SPLIT_SIZE`: bytes over which a plain CSV or NDJSON object (whose ticket states its
    /// `size`) is cut into ranged tickets read side by side; 64 MiB by default, `0` never.
    pub split_size: Option<u64>,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            format: None,
            csv: CsvOptions::default(),
            split_size: Some(DEFAULT_SPLIT_SIZE),
        }
    }
}

impl ExtractConfig {
    /// Formats from the key's extension, comma-separated CSV with a header.
    pub fn default_csv() -> Self {
        ExtractConfig::default()
    }

    /// Reads `INPUT_FORMAT` and the CSV settings; the error names the variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let format = match optional(vars, "INPUT_FORMAT") {
            None => None,
            Some(value) => Some(InputFormat::from_name(&value).ok_or_else(|| {
                invalid(
                    "INPUT_FORMAT",
                    &value,
                    "expected csv, ndjson, json or parquet",
                )
            })?),
        };
        let defaults = CsvOptions::default();
        let csv = CsvOptions {
            delimiter: character(vars, "CSV_DELIMITER")?.unwrap_or(defaults.delimiter),
            quote: match optional(vars, "CSV_QUOTE") {
                Some(value) if value.trim().eq_ignore_ascii_case("none") => None,
                _ => Some(character(vars, "CSV_QUOTE")?.unwrap_or(b'"')),
            },
            escape: character(vars, "CSV_ESCAPE")?,
            header: flag(vars, "CSV_HEADER", true)?,
            columns: optional(vars, "CSV_COLUMNS")
                .map(|value| {
                    names(&value).map_err(|reason| invalid("CSV_COLUMNS", &value, &reason))
                })
                .transpose()?,
            null_values: match optional(vars, "NULL_VALUES") {
                None => Vec::new(),
                Some(value) => serde_json::from_str(&value).map_err(|err| {
                    invalid(
                        "NULL_VALUES",
                        &value,
                        &format!(
                            "{err} (expected a JSON list of strings, e.g. [\"\", \"NA\", \"NULL\"])"
                        ),
                    )
                })?,
            },
            infer_types: flag(vars, "INFER_TYPES", false)?,
            quoted_newlines: flag(vars, "CSV_QUOTED_NEWLINES", false)?,
        };
        if !csv.header && csv.columns.is_none() {
            return Err(ConfigError::Missing {
                var: "CSV_COLUMNS".into(),
                hint: "; CSV_HEADER is false, so the columns must be named".into(),
            });
        }
        Ok(ExtractConfig {
            format,
            csv,
            split_size: split_size(vars)?,
        })
    }
}

/// `SPLIT_SIZE` in bytes: `None` when `0` (never split).
fn split_size(vars: &dyn Vars) -> Result<Option<u64>, ConfigError> {
    let Some(value) = optional(vars, "SPLIT_SIZE") else {
        return Ok(Some(DEFAULT_SPLIT_SIZE));
    };
    match value.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(bytes) => Ok(Some(bytes)),
        Err(_) => Err(invalid(
            "SPLIT_SIZE",
            &value,
            "expected a number of bytes (0 never splits), e.g. 67108864 for 64 MiB",
        )),
    }
}

fn invalid(var: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var: var.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// One ASCII character, if set.
fn character(vars: &dyn Vars, var: &str) -> Result<Option<u8>, ConfigError> {
    match optional(vars, var) {
        None => Ok(None),
        Some(value) if value == "\\t" => Ok(Some(b'\t')),
        Some(value) if value.len() == 1 && value.is_ascii() => Ok(Some(value.as_bytes()[0])),
        Some(value) => Err(invalid(
            var,
            &value,
            "expected one ASCII character (or \\t)",
        )),
    }
}

/// `true` or `false`, or `default` when unset.
fn flag(vars: &dyn Vars, var: &str, default: bool) -> Result<bool, ConfigError> {
    match optional(vars, var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(value) if value == "true" => Ok(true),
        Some(value) if value == "false" => Ok(false),
        Some(value) => Err(invalid(var, &value, "expected true or false")),
    }
}

/// Column names from a JSON list or a comma-separated list, each once.
fn names(value: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = if value.trim_start().starts_with('[') {
        serde_json::from_str(value).map_err(|err| err.to_string())?
    } else {
        value
            .split(',')
            .map(|name| name.trim().to_owned())
            .collect()
    };
    if let Some(empty) = names.iter().position(String::is_empty) {
        return Err(format!("column {} has no name", empty + 1));
    }
    if let Some((_, twice)) = names
        .iter()
        .enumerate()
        .find(|(i, name)| names[..*i].contains(name))
    {
        return Err(format!("names column `{twice}` twice"));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of;

    fn config(pairs: &[(&str, &str)]) -> Result<ExtractConfig, String> {
        ExtractConfig::from_vars(&vars_of(pairs)).map_err(|err| err.to_string())
    }

    #[test]
    fn csv_settings_are_read_and_bad_ones_named() {
        let read = config(&[
            ("CSV_DELIMITER", "\\t"),
            ("CSV_QUOTE", "'"),
            ("CSV_ESCAPE", "\\"),
            ("CSV_HEADER", "false"),
            ("CSV_COLUMNS", "a, b"),
            ("NULL_VALUES", r#"["", "NA", "\\N"]"#),
            ("INFER_TYPES", "TRUE"),
        ])
        .expect("valid");
        assert_eq!(
            read.csv,
            CsvOptions {
                delimiter: b'\t',
                quote: Some(b'\''),
                escape: Some(b'\\'),
                header: false,
                columns: Some(vec!["a".into(), "b".into()]),
                null_values: vec!["".into(), "NA".into(), "\\N".into()],
                infer_types: true,
                quoted_newlines: false,
            }
        );
        assert_eq!(
            config(&[("CSV_QUOTE", "none")]).expect("valid").csv.quote,
            None
        );
        assert_eq!(
            config(&[("CSV_HEADER", "false")]).unwrap_err(),
            "environment variable CSV_COLUMNS is required but not set; CSV_HEADER is false, so the columns must be named"
        );
        assert_eq!(
            config(&[("NULL_VALUES", "NA")]).unwrap_err(),
            "environment variable NULL_VALUES=\"NA\" is invalid: expected value at line 1 column 1 (expected a JSON list of strings, e.g. [\"\", \"NA\", \"NULL\"])"
        );
        assert_eq!(
            config(&[("CSV_COLUMNS", r#"["a","a"]"#)]).unwrap_err(),
            "environment variable CSV_COLUMNS=\"[\\\"a\\\",\\\"a\\\"]\" is invalid: names column `a` twice"
        );
        assert_eq!(config(&[]).expect("valid").split_size, Some(64 << 20));
        assert_eq!(
            config(&[("SPLIT_SIZE", "0")]).expect("valid").split_size,
            None
        );
        assert!(
            config(&[("CSV_QUOTED_NEWLINES", "true")])
                .expect("valid")
                .csv
                .quoted_newlines
        );
        assert_eq!(
            config(&[("SPLIT_SIZE", "64MiB")]).unwrap_err(),
            "environment variable SPLIT_SIZE=\"64MiB\" is invalid: expected a number of bytes (0 never splits), e.g. 67108864 for 64 MiB"
        );
        assert_eq!(
            config(&[("INPUT_FORMAT", "xml")]).unwrap_err(),
            "environment variable INPUT_FORMAT=\"xml\" is invalid: expected csv, ndjson, json or parquet"
        );
    }
}
