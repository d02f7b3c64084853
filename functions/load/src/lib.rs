//! The load stop: drops passengers off at the destination. Each bus becomes one object (one per
//! partition when `OUTPUT_PARTITIONS` is set) under `OUTPUT_PREFIX`, keyed by trip, partition
//! and bus id, so a redelivered bus overwrites its objects and never duplicates them. NDJSON
//! and CSV may be gzip or zstd compressed; Parquet is typed by a declared schema or by the
//! trip's first bus, and a passenger that does not fit is rejected with the field and reason.

mod encode;
mod partitions;
mod settings;
mod trip_schema;

use async_trait::async_trait;
use busline_core::envelope::Passenger;
use busline_core::{InitError, Outbox, Stop, StopContext, StopError, StopKind};
use busline_formats::{Cell, TableSchema};
pub use settings::{LoadConfig, OutputCompression, OutputFormat};
use std::sync::Arc;
pub use trip_schema::SCHEMA_OBJECT;
use trip_schema::TripSchemas;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "load";

/// The load kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = LoadConfig::from_vars(init.settings());
        async move { Ok::<_, InitError>(Load::new(config?)) }
    })
}

/// The load stop.
pub struct Load {
    config: LoadConfig,
    schemas: TripSchemas,
}

impl Load {
    /// A load stop with its settings.
    pub fn new(config: LoadConfig) -> Self {
        Load {
            config,
            schemas: TripSchemas::default(),
        }
    }

    /// The object key for one bus of one trip, in one partition (`year=2026/`, or empty).
    pub fn object_key(&self, trip: &str, partition: &str, bus: &str) -> String {
        format!(
            "{}trip={trip}/{partition}{bus}.{}",
            self.config.output_prefix,
            self.config.extension()
        )
    }

    /// The body of one partition's object, or `None` when every passenger was rejected.
    async fn body(
        &self,
        ctx: &StopContext<'_>,
        passengers: &[Passenger],
        outbox: &mut Outbox,
    ) -> Result<Option<(Vec<u8>, u64)>, StopError> {
        let fields = &self.config.partitions;
        let plain = match self.config.format {
            OutputFormat::Ndjson => encode::ndjson(passengers, fields)?,
            OutputFormat::Csv => {
                encode::csv(passengers.iter().map(|p| partitions::record_of(p, fields)))?
            }
            OutputFormat::Parquet => return self.parquet(ctx, passengers, outbox).await,
        };
        let body = match self.config.compression {
            OutputCompression::Text(Some(compression)) => {
                compression.compress(&plain).map_err(|err| {
                    StopError::permanent(format!("{} compression: {err}", compression.name()))
                })?
            }
            _ => plain,
        };
        Ok(Some((body, passengers.len() as u64)))
    }

    /// A Parquet body of the passengers that fit the schema; the others are rejected.
    async fn parquet(
        &self,
        ctx: &StopContext<'_>,
        passengers: &[Passenger],
        outbox: &mut Outbox,
    ) -> Result<Option<(Vec<u8>, u64)>, StopError> {
        let fields = &self.config.partitions;
        let schema = self.schema(ctx, passengers).await?;
        let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(passengers.len());
        for passenger in passengers {
            match schema.cells(&partitions::record_of(passenger, fields)) {
                Ok(cells) => rows.push(cells),
                Err(reason) => outbox.reject(&passenger.clone().reject(reason)).await?,
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let OutputCompression::Parquet(codec) = self.config.compression else {
            return Err(StopError::permanent(
                "Parquet output with a text compression",
            ));
        };
        let body = busline_formats::write_parquet(&schema, &rows, codec)
            .map_err(|err| StopError::permanent(format!("writing Parquet: {err}")))?;
        Ok(Some((body, rows.len() as u64)))
    }

    /// The declared schema without the partition fields, or the trip's.
    async fn schema(
        &self,
        ctx: &StopContext<'_>,
        passengers: &[Passenger],
    ) -> Result<Arc<TableSchema>, StopError> {
        let fields = &self.config.partitions;
        if let Some(declared) = &self.config.schema {
            let mut schema = declared.clone();
            schema.columns.retain(|c| !fields.contains(&c.name));
            return Ok(Arc::new(schema));
        }
        let key = format!(
            "{}trip={}/{SCHEMA_OBJECT}",
            self.config.output_prefix, ctx.trip
        );
        let infer = || {
            let records: Vec<_> = passengers
                .iter()
                .map(|p| partitions::record_of(p, fields))
                .collect();
            TableSchema::infer(records.iter().map(|r| r.as_ref()))
        };
        self.schemas
            .schema(ctx.objects, ctx.trip, &key, infer)
            .await
    }
}

#[async_trait]
impl Stop for Load {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        for partition in partitions::group(&self.config.partitions, passengers) {
            if partition.passengers.is_empty() {
                continue;
            }
            let Some((body, written)) = self.body(ctx, &partition.passengers, outbox).await? else {
                continue;
            };
            let key = self.object_key(ctx.trip, &partition.path, ctx.bus);
            // The records are in the body now. Freed before the PUT, during which the batch's
            // next bus is read: a load holds one bus's records at a time, not one per PUT.
            drop(partition);
            ctx.objects
                .put(&key, body, self.config.content_type())
                .await?;
            outbox.drop_off(written);
        }
        Ok(())
    }
}
