//! The extract stop: for each ticket, streams one CSV or NDJSON object from the object store
//! and boards its rows as passengers. Never holds a whole file: a parser thread reads the
//! object through a bounded channel. A malformed row is rejected with file, line and reason.
//!
//! Near the invocation's deadline it checkpoints: the ticket goes back to the stop's own queue
//! with where to pick up (byte offset, line number, CSV header), so an object of any size is
//! read over as many invocations as it needs, with the same passenger ids as in one read.

mod rows;
mod sniff;

use async_trait::async_trait;
use busline_core::config::{Vars, optional};
use busline_core::envelope::{Passenger, Rejection};
use busline_core::ports::ObjectReader;
use busline_core::{
    ConfigError, InitError, Outbox, PortError, Stop, StopContext, StopError, StopKind,
};
pub use rows::{Checkpoint, InputFormat};
use rows::{Chunk, Parse, Row};
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

/// The ticket field a continuation carries its [`Checkpoint`] in.
pub const RESUME_FIELD: &str = "resume";

/// How far a ticket got in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Read to its end (or refused whole).
    Done,
    /// Sent back to be continued: the deadline is near.
    Paused,
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
    ) -> Result<Progress, StopError> {
        let Some(key) = ticket.get_str("key").map(str::to_owned) else {
            let rejection = ticket.reject("ticket has no string field `key`");
            outbox.reject(&rejection).await?;
            return Ok(Progress::Done);
        };
        let source = match self.open(ctx, &ticket, key).await? {
            Ok(source) => source,
            Err(reason) => {
                outbox.reject(&ticket_rejection(ticket, reason)).await?;
                return Ok(Progress::Done);
            }
        };
        match read_until_deadline(ctx, source, outbox).await? {
            None => {
                // The ticket's ride ends here.
                outbox.drop_off(1);
                Ok(Progress::Done)
            }
            Some(checkpoint) => {
                continue_later(ticket, checkpoint, outbox).await?;
                Ok(Progress::Paused)
            }
        }
    }

    /// The ticket's object opened where its read starts or resumes, or why it is refused whole.
    async fn open(
        &self,
        ctx: &StopContext<'_>,
        ticket: &Passenger,
        key: String,
    ) -> Result<Result<(Parse, ObjectReader), String>, StopError> {
        let Some(format) = InputFormat::from_key(&key).or(self.config.format) else {
            return Ok(Err(format!(
                "{key}: unknown input format (name it .csv, .ndjson or .jsonl, or set INPUT_FORMAT)"
            )));
        };
        let from = match ticket
            .get(RESUME_FIELD)
            .cloned()
            .map(serde_json::from_value)
        {
            None => Checkpoint::start(),
            Some(Ok(from)) => from,
            Some(Err(err)) => {
                return Ok(Err(format!(
                    "{key}: ticket field `{RESUME_FIELD}` is invalid: {err}"
                )));
            }
        };
        let reader = ctx.objects.get_from(&key, from.offset).await?;
        let resumed = from.offset > 0;
        let parse = Parse {
            format,
            delimiter: self.config.csv_delimiter,
            key,
            ticket_id: ticket.id().to_owned(),
            from,
            chunk_rows: CHUNK_ROWS,
        };
        // A resumed read starts mid-object, where there are no magic bytes to sniff.
        if resumed {
            return Ok(Ok((parse, reader)));
        }
        let key = &parse.key;
        let (compressed, reader) = sniff::sniff(reader)
            .await
            .map_err(|err| StopError::retryable(PortError::retryable(key.as_str(), err)))?;
        Ok(match compressed {
            // Parsing binary as text would reject every line with a UTF-8 or field-count error.
            Some(compression) => Err(format!(
                "{key}: the object is {compression} data, not {} text; this extract reads \
                 plain CSV and NDJSON, so decompress it (or convert it) before the trip",
                format.name()
            )),
            None => Ok((parse, reader)),
        })
    }
}

/// Boards the rows `parse` reads from `reader` until the object's end (`None`) or until the
/// deadline is near: then the checkpoint after the last chunk boarded.
async fn read_until_deadline(
    ctx: &StopContext<'_>,
    (parse, reader): (Parse, ObjectReader),
    outbox: &mut Outbox,
) -> Result<Option<Checkpoint>, StopError> {
    let key = parse.key.clone();
    let (sender, mut chunks) = tokio::sync::mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let parser = rows::spawn_parser(reader, parse, sender);
    let mut paused_at = None;
    while let Some(chunk) = chunks.recv().await {
        outbox.pick_up(chunk.rows.len() as u64);
        for row in chunk.rows {
            match row {
                Row::Passenger(passenger) => outbox.board(&passenger).await?,
                Row::Rejected(rejection) => outbox.reject(&rejection).await?,
            }
        }
        if !chunk.last && ctx.deadline_near() {
            paused_at = Some(chunk.after);
            break;
        }
    }
    // The parser stops at its next send once nobody listens.
    drop(chunks);
    match parser.await {
        Ok(result) => result?,
        Err(join) => {
            return Err(StopError::retryable(format!(
                "{key}: parser thread failed: {join}"
            )));
        }
    }
    Ok(paused_at)
}

/// Sends `ticket` back to this stop's queue with where to pick its object up.
async fn continue_later(
    mut ticket: Passenger,
    checkpoint: Checkpoint,
    outbox: &mut Outbox,
) -> Result<(), StopError> {
    tracing::info!(
        key = ticket.get_str("key"),
        offset = checkpoint.offset,
        line = checkpoint.line,
        "deadline near: continuing the object in a later invocation"
    );
    let checkpoint = serde_json::to_value(checkpoint)
        .map_err(|err| StopError::permanent(format!("checkpoint of {}: {err}", ticket.id())))?;
    ticket.insert(RESUME_FIELD, checkpoint);
    outbox.ride_again(&ticket).await
}

#[async_trait]
impl Stop for Extract {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let mut tickets = passengers.into_iter();
        while let Some(ticket) = tickets.next() {
            if self.extract_one(ctx, ticket, outbox).await? == Progress::Paused {
                // Tickets not yet started go back unchanged, behind the continuation.
                for ticket in tickets.by_ref() {
                    outbox.ride_again(&ticket).await?;
                }
            }
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
