//! The extract stop: for each ticket, streams one object from the object store and boards its
//! rows as passengers: CSV, NDJSON, a JSON array, each plain or gzip or zstd compressed (by
//! extension and by magic bytes), or Parquet (row group by row group, by ranged reads). Never
//! holds a whole file: a parser thread reads the object through a bounded channel. A malformed
//! row is rejected with file, line (or row) and reason.
//!
//! A plain CSV or NDJSON object over `SPLIT_SIZE` (64 MiB) is cut at line starts into ranged
//! tickets, each sent back on its own bus, so that several invocations read it at once.
//!
//! Near the invocation's deadline it checkpoints: the ticket goes back to the stop's own queue
//! with where to pick up (byte offset, line or row number, CSV header), so an object of any
//! size is read over as many invocations as it needs, with the same passenger ids as in one
//! read.

mod csv_rows;
mod fetch;
mod json_rows;
mod parquet_rows;
mod rows;
mod settings;
mod sniff;
mod split;

use async_trait::async_trait;
use busline_core::envelope::{Passenger, Rejection};
use busline_core::ports::ObjectStore;
use busline_core::{InitError, Outbox, PortError, Stop, StopContext, StopError, StopKind};
use busline_formats::Compression;
use parquet_rows::ParquetObject;
pub use rows::{Checkpoint, InputFormat};
use rows::{Chunk, Input, Parse, Row};
use serde_json::Value;
pub use settings::{CsvOptions, ExtractConfig};
use std::sync::Arc;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "extract";

/// The extract kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = ExtractConfig::from_vars(init.settings());
        let objects = init.ports().objects.clone();
        async move { Ok::<_, InitError>(Extract::new(config?, objects)) }
    })
}

/// Rows handed from the parser thread at a time.
const CHUNK_ROWS: usize = 512;
/// Chunks buffered between the parser thread and the stop (bounds memory).
const CHUNKS_IN_FLIGHT: usize = 4;

/// The extract stop.
pub struct Extract {
    config: ExtractConfig,
    csv: Arc<CsvOptions>,
    /// The data bucket, for the parser thread's ranged reads of Parquet objects.
    objects: Arc<dyn ObjectStore>,
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
    /// An extract stop with its settings, reading the data bucket `objects`.
    pub fn new(config: ExtractConfig, objects: Arc<dyn ObjectStore>) -> Self {
        Extract {
            csv: Arc::new(config.csv.clone()),
            config,
            objects,
        }
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
        if ticket.get(RESUME_FIELD).is_none()
            && let Some(ranges) = self.ranges(ctx, &ticket, &key).await?
        {
            hand_out_ranges(ticket, ranges, outbox).await?;
            return Ok(Progress::Done);
        }
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

    /// The format `key`'s extension names, else `INPUT_FORMAT`'s, and the compression the
    /// extension names.
    fn format_of(&self, key: &str) -> (Option<InputFormat>, Option<Compression>) {
        let (named, compression) = InputFormat::from_key(key);
        (named.or(self.config.format), compression)
    }

    /// The ranges a fresh ticket's object is read in, when it is big enough to split.
    async fn ranges(
        &self,
        ctx: &StopContext<'_>,
        ticket: &Passenger,
        key: &str,
    ) -> Result<Option<Vec<Checkpoint>>, StopError> {
        let (Some(split_size), Some(size)) = (
            self.config.split_size,
            ticket.get("size").and_then(Value::as_u64),
        ) else {
            return Ok(None);
        };
        let (format, named_compression) = self.format_of(key);
        if named_compression.is_some() {
            return Ok(None);
        }
        let object = split::BigObject {
            objects: ctx.objects,
            key,
            size,
            format: format.unwrap_or(InputFormat::Csv),
        };
        split::ranges(&object, split_size, &self.csv).await
    }

    /// The ticket's object opened where its read starts or resumes, or why it is refused whole.
    async fn open(
        &self,
        ctx: &StopContext<'_>,
        ticket: &Passenger,
        key: String,
    ) -> Result<Result<(Parse, Input), String>, StopError> {
        let from = match ticket
            .get(RESUME_FIELD)
            .cloned()
            .map(serde_json::from_value::<Checkpoint>)
        {
            None => Checkpoint::start(),
            Some(Ok(from)) => from,
            Some(Err(err)) => {
                return Ok(Err(format!(
                    "{key}: ticket field `{RESUME_FIELD}` is invalid: {err}"
                )));
            }
        };
        let (format, named_compression) = self.format_of(&key);
        let mut parse = Parse {
            format: format.unwrap_or(InputFormat::Csv),
            compression: None,
            csv: self.csv.clone(),
            key,
            ticket_id: ticket.id().to_owned(),
            from,
            chunk_rows: CHUNK_ROWS,
        };
        if format == Some(InputFormat::Parquet) {
            return Ok(Ok(self.parquet(ctx, ticket, parse).await?));
        }
        // A range of a big plain object: its bytes only, up to the next range's line start.
        if let Some(end) = parse.from.end {
            let (offset, length) = (parse.from.offset, end.saturating_sub(parse.from.offset));
            let reader = ctx.objects.get_range(&parse.key, offset, length).await?;
            return Ok(Ok((parse, Input::Stream(reader))));
        }
        // A read resumed mid-object starts where there are no magic bytes to sniff; a
        // compressed one is read again from its start and skips what was read.
        if !parse.from.is_start() && !parse.from.decompressed && format.is_some() {
            let reader = ctx.objects.get_from(&parse.key, parse.from.offset).await?;
            return Ok(Ok((parse, Input::Stream(reader))));
        }
        let reader = ctx.objects.get(&parse.key).await?;
        let key = parse.key.clone();
        let (sniffed, reader) = sniff::sniff(reader)
            .await
            .map_err(|err| StopError::from(fetch::read_failed(&key, err)))?;
        match sniff::decide(&key, format, named_compression, sniffed) {
            Err(reason) => Ok(Err(reason)),
            Ok(sniff::Read::Parquet) => {
                drop(reader);
                Ok(Ok(self.parquet(ctx, ticket, parse).await?))
            }
            Ok(sniff::Read::Stream(compression)) => {
                parse.compression = compression;
                Ok(Ok((parse, Input::Stream(reader))))
            }
        }
    }

    /// A Parquet object to read by ranged reads; its size from the ticket (or a listing).
    async fn parquet(
        &self,
        ctx: &StopContext<'_>,
        ticket: &Passenger,
        mut parse: Parse,
    ) -> Result<(Parse, Input), StopError> {
        parse.format = InputFormat::Parquet;
        let size = match ticket.get("size").and_then(Value::as_u64) {
            Some(size) => size,
            None => ctx
                .objects
                .list(&parse.key)
                .await?
                .into_iter()
                .find(|object| object.key == parse.key)
                .map(|object| object.size)
                .ok_or_else(|| {
                    StopError::from(PortError::NotFound {
                        resource: format!("{}/{}", ctx.objects.bucket(), parse.key),
                    })
                })?,
        };
        let object = ParquetObject {
            objects: self.objects.clone(),
            key: parse.key.clone(),
            size,
            runtime: tokio::runtime::Handle::current(),
        };
        Ok((parse, Input::Parquet(object)))
    }
}

/// Boards the rows `parse` reads from `input` until the object's end (`None`) or until the
/// deadline is near: then the checkpoint after the last chunk boarded.
async fn read_until_deadline(
    ctx: &StopContext<'_>,
    (parse, input): (Parse, Input),
    outbox: &mut Outbox,
) -> Result<Option<Checkpoint>, StopError> {
    let key = parse.key.clone();
    let (sender, mut chunks) = tokio::sync::mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let parser = rows::spawn_parser(input, parse, sender);
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

/// Replaces `ticket` by one ticket per range of its object, each on its own bus back to this
/// stop's queue, so that as many invocations read them at once. The ranged tickets keep the
/// ticket's id, so their passengers' ids are those of one read.
async fn hand_out_ranges(
    ticket: Passenger,
    ranges: Vec<Checkpoint>,
    outbox: &mut Outbox,
) -> Result<(), StopError> {
    tracing::info!(
        key = ticket.get_str("key"),
        ranges = ranges.len(),
        "object split into ranges read side by side"
    );
    outbox.pick_up(ranges.len() as u64);
    for range in ranges {
        continue_from(ticket.clone(), range, outbox).await?;
        outbox.depart().await?;
    }
    // The whole-object ticket's ride ends here: its ranges ride on.
    outbox.drop_off(1);
    Ok(())
}

/// Sends `ticket` back to this stop's queue with where to pick its object up.
async fn continue_later(
    ticket: Passenger,
    checkpoint: Checkpoint,
    outbox: &mut Outbox,
) -> Result<(), StopError> {
    tracing::info!(
        key = ticket.get_str("key"),
        offset = checkpoint.offset,
        line = checkpoint.line,
        "deadline near: continuing the object in a later invocation"
    );
    continue_from(ticket, checkpoint, outbox).await
}

/// Sends `ticket` back to this stop's queue to be read from `checkpoint`.
async fn continue_from(
    mut ticket: Passenger,
    checkpoint: Checkpoint,
    outbox: &mut Outbox,
) -> Result<(), StopError> {
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
