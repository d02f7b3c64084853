//! The target table as the database describes it at init: its columns and the unique indexes
//! an upsert can conflict on. A table that does not exist, a key without a unique index or a
//! mapping to a column the table lacks stops the stop at init, naming it.

use crate::settings::SinkConfig;
use busline_postgres::quote;
use std::collections::BTreeSet;

/// A table column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type, as `format_type` writes it (`numeric(6,2)`, `timestamp with time zone`).
    pub type_name: String,
}

/// The table a stop writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The name as configured.
    pub name: String,
    /// The name quoted for SQL (`"schema"."table"`).
    pub quoted: String,
    /// Its columns, in table order.
    pub columns: Vec<Column>,
    /// The columns a row is upserted by.
    pub key: Vec<String>,
}

impl Table {
    /// Whether the table has column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }
}

/// Describes `config.table` through `client`, checking the key and the column mapping.
pub async fn describe(
    client: &tokio_postgres::Client,
    config: &SinkConfig,
) -> Result<Table, String> {
    let name = &config.table;
    let found: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[name])
        .await
        .map_err(|err| format!("looking up table {name}: {err}"))?
        .get(0);
    if found.is_none() {
        let database: String = client
            .query_one("SELECT current_database()", &[])
            .await
            .map(|row| row.get(0))
            .unwrap_or_default();
        return Err(format!(
            "table {name} does not exist in database {database}: create it first (busline writes rows, it does not create tables)"
        ));
    }
    let columns: Vec<Column> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[name],
        )
        .await
        .map_err(|err| format!("reading the columns of {name}: {err}"))?
        .iter()
        .map(|row| Column {
            name: row.get(0),
            type_name: row.get(1),
        })
        .collect();
    let uniques: Vec<BTreeSet<String>> = client
        .query(
            "SELECT array_agg(a.attname::text) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = to_regclass($1) AND i.indisunique GROUP BY i.indexrelid",
            &[name],
        )
        .await
        .map_err(|err| format!("reading the unique indexes of {name}: {err}"))?
        .iter()
        .map(|row| row.get::<_, Vec<String>>(0).into_iter().collect())
        .collect();
    let key = if config.key_columns.is_empty() {
        vec![config.id_column.clone()]
    } else {
        config.key_columns.clone()
    };
    let table = Table {
        name: name.clone(),
        quoted: name.split('.').map(quote).collect::<Vec<_>>().join("."),
        columns,
        key,
    };
    check(&table, config, &uniques)?;
    Ok(table)
}

fn check(table: &Table, config: &SinkConfig, uniques: &[BTreeSet<String>]) -> Result<(), String> {
    let name = &table.name;
    let variable = if config.key_columns.is_empty() {
        "ID_COLUMN"
    } else {
        "KEY_COLUMNS"
    };
    if let Some(missing) = table.key.iter().find(|c| !table.has(c)) {
        return Err(format!("{variable}: table {name} has no column {missing}"));
    }
    let key: BTreeSet<String> = table.key.iter().cloned().collect();
    if !uniques.contains(&key) {
        return Err(format!(
            "{variable}: table {name} has no unique index on ({}), which an upsert needs (CREATE UNIQUE INDEX ON {name} ({}))",
            table.key.join(", "),
            table.key.join(", ")
        ));
    }
    if let Some(missing) = config.columns.keys().find(|c| !table.has(c)) {
        return Err(format!("COLUMNS: table {name} has no column {missing}"));
    }
    Ok(())
}
