//! The postgres-sink stop's settings: where the database is, which table, which columns key
//! a row, and how passengers' fields map to columns.

use busline_core::ConfigError;
use busline_core::config::{Vars, optional, parsed, required};
use std::collections::BTreeMap;
use std::time::Duration;

/// The postgres-sink stop's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// `DATABASE_URL` (`postgres://user:password@host:port/dbname`, libpq's URL or key=value
    /// form, `sslmode` included) or `DATABASE_SECRET`, and TLS.
    pub database: busline_postgres::DatabaseSettings,
    /// `TABLE`: the target table, `name` or `schema.name`; it must exist.
    pub table: String,
    /// `KEY_COLUMNS`: the columns (comma-separated) a row is upserted by; they need a unique
    /// index. Unset: `ID_COLUMN` holds the passenger's id and is the key.
    pub key_columns: Vec<String>,
    /// `ID_COLUMN` (default `busline_id`): the column that takes each passenger's id when no
    /// `KEY_COLUMNS` are declared.
    pub id_column: String,
    /// `COLUMNS`: a JSON object of column to passenger field, for columns named otherwise than
    /// their fields; every other field goes to the column of its own name.
    pub columns: BTreeMap<String, String>,
    /// `POOL_SIZE` (default 2): connections the stop keeps.
    pub pool_size: usize,
    /// `CONNECT_RETRY_SECONDS` (default 10): how long one bus waits for an unreachable
    /// database (retrying with backoff) before the bus is failed as retryable.
    pub connect_retry: Duration,
}

impl SinkConfig {
    /// Reads the settings; the error names the variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let columns = match optional(vars, "COLUMNS") {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(&text).map_err(|err| ConfigError::Invalid {
                var: "COLUMNS".into(),
                value: text.clone(),
                reason: format!("{err} (expected a JSON object of column to field, e.g. {{\"color_name\": \"Name\"}})"),
            })?,
        };
        let key_columns = optional(vars, "KEY_COLUMNS")
            .map(|text| {
                text.split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let pool_size = parsed(vars, "POOL_SIZE", 2usize)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                var: "POOL_SIZE".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(SinkConfig {
            database: busline_postgres::DatabaseSettings::from_vars(vars)?,
            table: required(vars, "TABLE")?,
            key_columns,
            id_column: optional(vars, "ID_COLUMN").unwrap_or_else(|| "busline_id".into()),
            columns,
            pool_size,
            connect_retry: Duration::from_secs(parsed(vars, "CONNECT_RETRY_SECONDS", 10u64)?),
        })
    }
}
