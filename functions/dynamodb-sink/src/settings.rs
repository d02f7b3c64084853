//! The dynamodb-sink stop's settings: which table, which fields key an item, how many
//! requests run at once and how long unprocessed items are asked again.

use busline_core::ConfigError;
use busline_core::config::{Vars, optional, parsed, required};
use std::time::Duration;

/// The dynamodb-sink stop's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// `TABLE_NAME`: the table; it must exist (the stop describes it at init).
    pub table: String,
    /// `KEY_FIELDS`: the passenger fields (comma-separated) that hold the table's key
    /// attributes, named as the table names them. Unset: the table's partition key (a string,
    /// with no sort key) takes each passenger's id.
    pub key_fields: Vec<String>,
    /// `WRITE_CONCURRENCY` (default 4): `BatchWriteItem` requests in flight at once.
    pub write_concurrency: usize,
    /// `UNPROCESSED_RETRY_SECONDS` (default 20): how long items DynamoDB leaves unprocessed
    /// are sent again (with backoff) before the bus fails as retryable.
    pub unprocessed_retry: Duration,
}

impl SinkConfig {
    /// Reads the settings; the error names the variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let key_fields: Vec<String> = optional(vars, "KEY_FIELDS")
            .map(|text| {
                text.split(',')
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if key_fields.len() > 2 {
            return Err(ConfigError::Invalid {
                var: "KEY_FIELDS".into(),
                value: key_fields.join(","),
                reason: "a DynamoDB key is a partition key and at most one sort key".into(),
            });
        }
        let write_concurrency = parsed(vars, "WRITE_CONCURRENCY", 4usize)?;
        if write_concurrency == 0 {
            return Err(ConfigError::Invalid {
                var: "WRITE_CONCURRENCY".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(SinkConfig {
            table: required(vars, "TABLE_NAME")?,
            key_fields,
            write_concurrency,
            unprocessed_retry: Duration::from_secs(parsed(
                vars,
                "UNPROCESSED_RETRY_SECONDS",
                20u64,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of as vars;

    #[test]
    fn reads_the_table_and_key_fields() {
        let config =
            SinkConfig::from_vars(&vars(&[("TABLE_NAME", "orders"), ("KEY_FIELDS", "pk, sk")]))
                .expect("valid");
        assert_eq!(config.table, "orders");
        assert_eq!(config.key_fields, ["pk", "sk"]);
        assert_eq!(config.write_concurrency, 4);
    }

    #[test]
    fn errors_name_the_variable() {
        let missing = SinkConfig::from_vars(&vars(&[])).expect_err("no table");
        assert!(missing.to_string().contains("TABLE_NAME"), "{missing}");
        let three = SinkConfig::from_vars(&vars(&[("TABLE_NAME", "t"), ("KEY_FIELDS", "a,b,c")]))
            .expect_err("three key fields");
        assert!(three.to_string().contains("KEY_FIELDS"), "{three}");
    }
}
