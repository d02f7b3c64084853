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
use busline_core::{InitError, Outbox, Stop, StopContext, StopError, StopKind};
use busline_postgres::redacted;
pub use settings::SinkConfig;
use table::Table;
use write::{Cell, Row};

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "postgres-sink";

/// The postgres-sink kind, as the registry builds it: a pool and the table's description at
/// init.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = SinkConfig::from_vars(init.settings());
        async move { PostgresSink::connect(config?).await }
    })
}

/// The postgres-sink stop.
pub struct PostgresSink {
    config: SinkConfig,
    pool: busline_postgres::Pool,
    table: Table,
}

impl PostgresSink {
    /// Builds the pool and describes the table; the error names the database or the table.
    pub async fn connect(config: SinkConfig) -> Result<Self, InitError> {
        let pool = busline_postgres::pool(&config.database_url, config.pool_size)?;
        let client = pool.get().await.map_err(|err| init_failed(&config, err))?;
        let table = table::describe(&client, &config)
            .await
            .map_err(|message| init_failed(&config, message))?;
        drop(client);
        Ok(PostgresSink {
            config,
            pool,
            table,
        })
    }

    /// A connection, waiting up to `CONNECT_RETRY_SECONDS` (less when the deadline is near)
    /// for a database that is restarting.
    async fn client(&self, ctx: &StopContext<'_>) -> Result<busline_postgres::Client, StopError> {
        let mut window = self.config.connect_retry;
        if let Some(deadline) = ctx.deadline {
            window = window.min(
                deadline
                    .remaining()
                    .saturating_sub(ctx.config.deadline_margin),
            );
        }
        let what = format!(
            "table {} at {}",
            self.table.name,
            redacted(&self.config.database_url)
        );
        busline_postgres::client(&self.pool, window, &what).await
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

fn init_failed(config: &SinkConfig, cause: impl std::fmt::Display) -> InitError {
    InitError::Resource {
        resource: format!(
            "PostgreSQL {} table {}",
            redacted(&config.database_url),
            config.table
        ),
        source: cause.to_string().into(),
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
        refused.sort_unstable();
        for (index, reason) in &refused {
            outbox
                .reject(&passengers[*index].clone().reject(reason))
                .await?;
        }
        outbox.drop_off((passengers.len() - refused.len()) as u64);
        Ok(())
    }
}
