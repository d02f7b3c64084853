//! The extract stop: for each ticket, streams one CSV or NDJSON object from the object store
//! and boards its rows as passengers. Never holds a whole file: a parser thread reads the
//! object through a bounded channel. A malformed row is rejected with file, line and reason.

mod rows;
mod sniff;

use async_trait::async_trait;
use busline_core::config::{Vars, optional};
use busline_core::envelope::{Passenger, Rejection};
use busline_core::{
    ConfigError, InitError, Outbox, PortError, Stop, StopContext, StopError, StopKind,
};
pub use rows::InputFormat;
use rows::Row;
use serde_json::Value;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "extract";

/// The extract kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = ExtractConfig::from_vars(init.settings());
        async move { Ok::<_, InitError>(Extract::new(config?)) }
    })
}

/// Rows handed from the parser thread at a time.
const CHUNK_ROWS: usize = 512;
/// Chunks buffered between the parser thread and the stop (bounds memory).
const CHUNKS_IN_FLIGHT: usize = 4;

/// The extract stop's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractConfig {
    /// `INPUT_FORMAT` (`csv` or `ndjson`): used for keys whose extension says nothing.
    pub format: Option<InputFormat>,
    /// `CSV_DELIMITER`: one ASCII character, `,` by default.
    pub csv_delimiter: u8,
}

impl ExtractConfig {
    /// Reads `INPUT_FORMAT` and `CSV_DELIMITER`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let format = match optional(vars, "INPUT_FORMAT") {
            None => None,
            Some(value) => {
                Some(
                    InputFormat::from_name(&value).ok_or_else(|| ConfigError::Invalid {
                        var: "INPUT_FORMAT".into(),
                        value: value.clone(),
                        reason: "expected csv or ndjson".into(),
                    })?,
                )
            }
        };
        let csv_delimiter = match optional(vars, "CSV_DELIMITER") {
            None => b',',
            Some(value) if value.len() == 1 && value.is_ascii() => value.as_bytes()[0],
            Some(value) => {
                return Err(ConfigError::Invalid {
                    var: "CSV_DELIMITER".into(),
                    value,
                    reason: "expected one ASCII character".into(),
                });
            }
        };
        Ok(ExtractConfig {
            format,
            csv_delimiter,
        })
    }
}

impl ExtractConfig {
    /// Formats from the key's extension, comma-separated CSV.
    pub fn default_csv() -> Self {
        ExtractConfig {
            format: None,
            csv_delimiter: b',',
        }
    }
}

/// The extract stop.
pub struct Extract {
    config: ExtractConfig,
}

impl Extract {
    /// An extract stop with its settings.
    pub fn new(config: ExtractConfig) -> Self {
        Extract { config }
    }

    async fn extract_one(
        &self,
        ctx: &StopContext<'_>,
        ticket: Passenger,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let Some(key) = ticket.get_str("key").map(str::to_owned) else {
            return outbox
                .reject(&ticket.reject("ticket has no string field `key`"))
                .await;
        };
        let Some(format) = InputFormat::from_key(&key).or(self.config.format) else {
            let reason = format!(
                "{key}: unknown input format (name it .csv, .ndjson or .jsonl, or set INPUT_FORMAT)"
            );
            return outbox.reject(&ticket_rejection(ticket, reason)).await;
        };
        let reader = ctx.objects.get(&key).await?;
        let (compressed, reader) = sniff::sniff(reader)
            .await
            .map_err(|err| StopError::retryable(PortError::retryable(key.as_str(), err)))?;
        if let Some(compression) = compressed {
            // Parsing binary as text would reject every line with a UTF-8 or field-count error.
            let reason = format!(
                "{key}: the object is {compression} data, not {} text; this extract reads plain \
                 CSV and NDJSON, so decompress it (or convert it) before the trip",
                format.name()
            );
            return outbox.reject(&ticket_rejection(ticket, reason)).await;
        }
        let (sender, mut chunks) = tokio::sync::mpsc::channel::<Vec<Row>>(CHUNKS_IN_FLIGHT);
        let parser = rows::spawn_parser(
            reader,
            format,
            self.config.csv_delimiter,
            key.clone(),
            ticket.id().to_owned(),
            sender,
            CHUNK_ROWS,
        );
        while let Some(chunk) = chunks.recv().await {
            outbox.pick_up(chunk.len() as u64);
            for row in chunk {
                match row {
                    Row::Passenger(passenger) => outbox.board(&passenger).await?,
                    Row::Rejected(rejection) => outbox.reject(&rejection).await?,
                }
            }
        }
        match parser.await {
            Ok(result) => result?,
            Err(join) => {
                return Err(StopError::retryable(format!(
                    "{key}: parser thread failed: {join}"
                )));
            }
        }
        // The ticket's ride ends here.
        outbox.drop_off(1);
        Ok(())
    }
}

#[async_trait]
impl Stop for Extract {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        for ticket in passengers {
            self.extract_one(ctx, ticket, outbox).await?;
        }
        Ok(())
    }
}

/// A ticket refused whole; `reason` starts with the object's key, which names it.
fn ticket_rejection(ticket: Passenger, reason: String) -> Rejection {
    Rejection {
        id: ticket.id().to_owned(),
        reason,
        data: Value::Object(ticket.into_data()),
    }
}

/// A rejection for raw input that never became a passenger.
fn raw_rejection(ticket_id: &str, key: &str, line: u64, reason: String, raw: Value) -> Rejection {
    Rejection {
        id: format!("{ticket_id}:{line}"),
        reason: format!("{key}:{line}: {reason}"),
        data: serde_json::json!({"file": key, "line": line, "raw": raw}),
    }
}
