//! One bus into the table in one transaction: every row in one upsert statement (the rows as one
//! JSON parameter, converted by `json_populate_recordset`, so numbers keep their digits). When a
//! row breaks a constraint or does not fit its column, the bus is written again row by row,
//! each under a savepoint: the bad rows are rejected with the column and the database's message,
//! the rest commit.

use crate::table::Table;
use busline_core::StopError;
use busline_postgres::{classify, describe, quote, row_level};
use serde_json::Value;
use tokio_postgres::types::Json;

/// One column's value of a row: a passenger's field, or its id.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'p> {
    /// A field's value, borrowed from the passenger.
    Field(&'p Value),
    /// The passenger's id (for `ID_COLUMN`).
    Id(&'p str),
}

impl serde::Serialize for Cell<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Field(value) => value.serialize(serializer),
            Cell::Id(id) => serializer.serialize_str(id),
        }
    }
}

/// A row to write: the passenger's index in its bus and its cells by column, borrowed from the
/// passenger, so a bus is serialized once into the statement's parameter and never copied.
#[derive(Debug)]
pub struct Row<'p> {
    pub index: usize,
    pub columns: Vec<(&'p str, Cell<'p>)>,
}

impl Row<'_> {
    /// Whether the row has a cell for `column`.
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|(c, _)| *c == column)
    }
}

impl serde::Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.columns.iter().map(|(column, cell)| (*column, cell)))
    }
}

/// The upsert of rows with `columns` (in table order): insert, or update every non-key column
/// of the row with the same key.
pub fn upsert_sql(table: &Table, columns: &[&str]) -> String {
    let list = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let key = table
        .key
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !table.key.iter().any(|k| k == *c))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
        .collect();
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    format!(
        "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{table}, $1::json) \
         ON CONFLICT ({key}) {on_conflict}",
        table = table.quoted
    )
}

/// Writes `rows` with `sql`; the rows rejected, each with its reason.
pub async fn write(
    client: &mut busline_postgres::Client,
    table: &Table,
    sql: &str,
    rows: &[Row<'_>],
) -> Result<Vec<(usize, String)>, StopError> {
    let fail = |err| classify(&table.name, err);
    let tx = client.transaction().await.map_err(fail)?;
    let statement = tx.prepare_cached(sql).await.map_err(fail)?;
    match tx.execute(&statement, &[&Json(rows)]).await {
        Ok(_) => {
            tx.commit().await.map_err(fail)?;
            return Ok(Vec::new());
        }
        Err(err) if row_level(&err) => drop(tx),
        Err(err) => return Err(fail(err)),
    }
    row_by_row(client, table, sql, rows).await
}

/// The bus written again row by row, each under a savepoint.
async fn row_by_row(
    client: &mut busline_postgres::Client,
    table: &Table,
    sql: &str,
    rows: &[Row<'_>],
) -> Result<Vec<(usize, String)>, StopError> {
    let fail = |err| classify(&table.name, err);
    let mut tx = client.transaction().await.map_err(fail)?;
    let statement = tx.prepare_cached(sql).await.map_err(fail)?;
    let mut rejected = Vec::new();
    for row in rows {
        let savepoint = tx.savepoint("busline_row").await.map_err(fail)?;
        match savepoint.execute(&statement, &[&Json([row])]).await {
            Ok(_) => savepoint.commit().await.map_err(fail)?,
            Err(err) if row_level(&err) => {
                savepoint.rollback().await.map_err(fail)?;
                let reason = reason(&mut tx, table, row, &err).await?;
                rejected.push((row.index, reason));
            }
            Err(err) => return Err(fail(err)),
        }
    }
    tx.commit().await.map_err(fail)?;
    Ok(rejected)
}

/// Why a row was refused: the column at fault (the database's, or found by converting each
/// column alone) and the database's message.
async fn reason(
    tx: &mut tokio_postgres::Transaction<'_>,
    table: &Table,
    row: &Row<'_>,
    err: &tokio_postgres::Error,
) -> Result<String, StopError> {
    let message = describe(err);
    let db = err.as_db_error();
    if let Some(column) = db.and_then(|db| db.column()) {
        return Ok(format!("column `{column}`: {message}"));
    }
    if let Some(constraint) = db.and_then(|db| db.constraint()) {
        return Ok(format!("constraint `{constraint}`: {message}"));
    }
    let probe = format!(
        "SELECT json_populate_record(NULL::{}, json_build_object($1::text, $2::json))",
        table.quoted
    );
    for (column, cell) in &row.columns {
        let savepoint = tx
            .savepoint("busline_probe")
            .await
            .map_err(|e| classify(&table.name, e))?;
        let converted = savepoint.execute(&probe, &[column, &Json(cell)]).await;
        savepoint
            .rollback()
            .await
            .map_err(|e| classify(&table.name, e))?;
        if converted.is_err() {
            let type_name = table
                .columns
                .iter()
                .find(|c| c.name == *column)
                .map(|c| c.type_name.as_str())
                .unwrap_or("?");
            return Ok(format!("column `{column}` ({type_name}): {message}"));
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn table(key: &[&str]) -> Table {
        Table {
            name: "public.flights".into(),
            quoted: "\"public\".\"flights\"".into(),
            columns: ["flight", "date", "fare"]
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    type_name: "text".into(),
                })
                .collect(),
            key: key.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn the_upsert_updates_every_column_but_the_key() {
        assert_eq!(
            upsert_sql(&table(&["flight", "date"]), &["flight", "date", "fare"]),
            "INSERT INTO \"public\".\"flights\" (\"flight\", \"date\", \"fare\") SELECT \"flight\", \"date\", \"fare\" \
             FROM json_populate_recordset(NULL::\"public\".\"flights\", $1::json) \
             ON CONFLICT (\"flight\", \"date\") DO UPDATE SET \"fare\" = EXCLUDED.\"fare\""
        );
        assert!(
            upsert_sql(&table(&["flight"]), &["flight"])
                .ends_with("ON CONFLICT (\"flight\") DO NOTHING")
        );
    }
}
