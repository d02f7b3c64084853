//! What a PostgreSQL source reads: a query and the key its rows are split and ordered by, the
//! settings the depot that hands out key ranges and the stop that reads them share.

use busline_core::ConfigError;
use busline_core::config::{Vars, optional, required};

/// A query read in key ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceQuery {
    /// `DATABASE_URL` or `DATABASE_SECRET`, and TLS.
    pub database: crate::DatabaseSettings,
    /// `SOURCE_QUERY`: the rows to read, e.g. `SELECT * FROM orders` (a subquery: no ORDER BY
    /// or LIMIT of its own).
    pub query: String,
    /// `SOURCE_KEY`: the unique, ordered column (a number or a timestamp) that splits the rows
    /// into ranges and makes each passenger's id.
    pub key: String,
    /// `SOURCE_NAME` (default `postgres`): the first part of passenger ids, `<name>:<key>`.
    pub name: String,
}

impl SourceQuery {
    /// Reads the settings; the error names the variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Ok(SourceQuery {
            database: crate::DatabaseSettings::from_vars(vars)?,
            query: required(vars, "SOURCE_QUERY")?,
            key: required(vars, "SOURCE_KEY")?,
            name: optional(vars, "SOURCE_NAME").unwrap_or_else(|| "postgres".into()),
        })
    }

    /// The query as a subquery `q`, its key quoted.
    pub fn from_clause(&self) -> (String, String) {
        (
            format!("({}) q", self.query),
            format!("q.{}", crate::quote(&self.key)),
        )
    }
}
