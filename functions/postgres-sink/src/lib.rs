//! The postgres-sink stop: drops each bus's passengers off into a PostgreSQL table, in one
//! transaction, upserting by the declared key columns (or by passenger id), so a redelivered
//! bus changes nothing. A row that breaks a constraint or does not fit its column is rejected
//! with the column and the database's message while the rest of the bus commits; a lost
//! connection, too many connections, a serialization failure or a deadlock fails the bus as
//! retryable. The table must exist; the stop checks it, its key and the column mapping at init.

mod settings;
mod table;
mod write;

use async_trait::async_trait;
use busline_core::envelope::Passenger;
use busline_core::{InitError, Outbox, SecretStore, Stop, StopContext, StopError, StopKind};
pub use settings::SinkConfig;
use std::sync::Arc;
use table::Table;
use write::{Cell, Row};

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "postgres-sink";

/// The postgres-sink kind, as the registry builds it: a pool and the table's description at
/// init.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = SinkConfig::from_vars(init.settings());
        let secrets = init.extension::<Arc<dyn SecretStore>>().cloned();
        async move { PostgresSink::connect(config?, secrets.as_ref()).await }
    })
}

/// The postgres-sink stop.
pub struct PostgresSink {
    config: SinkConfig,
    database: busline_postgres::Database,
    table: Table,
}

impl PostgresSink {
    /// Builds the pool (reading the database's secret from `secrets` when the settings name
    /// one) and describes the table; the error names the database or the table.
    pub async fn connect(
        config: SinkConfig,
        secrets: Option<&Arc<dyn SecretStore>>,
    ) -> Result<Self, InitError> {
        let database =
            busline_postgres::open(KIND, &config.database, secrets, config.pool_size).await?;
        let failed = |cause: &dyn std::fmt::Display| InitError::Resource {
            resource: format!("PostgreSQL {} table {}", database.shown, config.table),
            source: cause.to_string().into(),
        };
        let client = database
            .pool
            .get()
            .await
            .map_err(|err| failed(&busline_postgres::pool_error(&err)))?;
        let table = table::describe(&client, &config)
            .await
            .map_err(|message| failed(&message))?;
        drop(client);
        Ok(PostgresSink {
            config,
            database,
            table,
        })
    }

    /// A connection, waiting up to `CONNECT_RETRY_SECONDS` (less when the deadline is near)
    /// for a database that is restarting.
    async fn client(&self, ctx: &StopContext<'_>) -> Result<busline_postgres::Client, StopError> {
        let window = ctx.wait_limit(self.config.connect_retry);
        let what = format!("table {} at {}", self.table.name, self.database.shown);
        busline_postgres::client(&self.database.pool, window, &what).await
    }

    /// Each passenger's row (its fields by column), or why it has none.
    fn row<'p>(&'p self, index: usize, passenger: &'p Passenger) -> Result<Row<'p>, String> {
        let mut columns = Vec::with_capacity(passenger.data().len() + 1);
        for (field, value) in passenger.data() {
            let column = self
                .config
                .columns
                .iter()
                .find(|(_, mapped)| *mapped == field)
                .map_or(field.as_str(), |(column, _)| column.as_str());
            if !self.table.has(column) {
                return Err(format!(
                    "field `{field}` has no column in table {} (map it in COLUMNS or drop it before this stop)",
                    self.table.name
                ));
            }
            columns.push((column, Cell::Field(value)));
        }
        if self.config.key_columns.is_empty() {
            columns.push((self.config.id_column.as_str(), Cell::Id(passenger.id())));
        }
        Ok(Row { index, columns })
    }
}

#[async_trait]
impl Stop for PostgresSink {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let mut rows = Vec::with_capacity(passengers.len());
        let mut refused: Vec<(usize, String)> = Vec::new();
        for (index, passenger) in passengers.iter().enumerate() {
            match self.row(index, passenger) {
                Ok(row) => rows.push(row),
                Err(reason) => refused.push((index, reason)),
            }
        }
        if !rows.is_empty() {
            let mut columns: Vec<&str> = self
                .table
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .filter(|c| rows.iter().any(|r| r.has(c)))
                .collect();
            for key in &self.table.key {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
            let sql = write::upsert_sql(&self.table, &columns);
            let mut client = self.client(ctx).await?;
            refused.extend(write::write(&mut client, &self.table, &sql, &rows).await?);
        }
        outbox.written_but(&passengers, refused).await
    }
}
