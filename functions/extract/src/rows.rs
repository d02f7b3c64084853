//! The parser thread: reads an object (decompressing it when it is gzip or zstd) on a blocking
//! thread and sends its rows in chunks, with where the read picks up after each chunk.

use crate::parquet_rows::{self, ParquetObject};
use crate::settings::CsvOptions;
use crate::{csv_rows, json_rows};
use busline_core::envelope::{Fields, JsonValues, Origin, Passenger, Rejection};
use busline_core::ports::ObjectReader;
use busline_core::{BoxError, StopError};
use busline_formats::Compression;
use serde_json::{Map, Value};
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

/// The input formats extract reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Comma-separated values (see the CSV settings).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects, read element by element.
    JsonArray,
    /// Apache Parquet, read row group by row group.
    Parquet,
}

impl InputFormat {
    /// `csv`, `ndjson` (also `jsonl`), `json` or `parquet` (also `parq`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(InputFormat::Csv),
            "ndjson" | "jsonl" => Some(InputFormat::Ndjson),
            "json" => Some(InputFormat::JsonArray),
            "parquet" | "parq" => Some(InputFormat::Parquet),
            _ => None,
        }
    }

    /// The format's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Csv => "CSV",
            InputFormat::Ndjson => "NDJSON",
            InputFormat::JsonArray => "JSON array",
            InputFormat::Parquet => "Parquet",
        }
    }

    /// The format and compression an object key's extensions name (`.csv.gz`, `.ndjson.zst`).
    pub fn from_key(key: &str) -> (Option<Self>, Option<Compression>) {
        let (compression, stem) = Compression::from_key(key);
        let format = stem
            .rsplit_once('.')
            .and_then(|(_, extension)| InputFormat::from_name(extension));
        (format, compression)
    }

    /// Whether a passenger's position is a line (text formats) or a row or element number.
    fn counts_lines(self) -> bool {
        matches!(self, InputFormat::Csv | InputFormat::Ndjson)
    }
}

/// Reading the object failed part way (retryable: the connection may come back).
#[derive(Debug, thiserror::Error)]
#[error("{key}: read failed")]
struct ReadFailed {
    key: String,
    #[source]
    source: BoxError,
}

/// One parsed row: a passenger, or raw input refused with its reason.
pub(crate) enum Row {
    Passenger(Passenger),
    Rejected(Rejection),
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// Where a read starts, or picks up again: a byte offset into the object (into its
/// decompressed bytes when it is compressed), the line, row or element number found there, the
/// CSV header read before it, and for a ranged ticket where its range ends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Bytes of the object already read (decompressed bytes when `decompressed`).
    pub offset: u64,
    /// The line number at `offset` (1 at the start); for JSON arrays and Parquet, the number
    /// of the next element or row.
    pub line: u64,
    /// The CSV header's names, once read; `None` at the start and for other formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
    /// True when `offset` counts decompressed bytes: the object is read again from its start
    /// and that many bytes skipped.
    #[serde(default, skip_serializing_if = "is_false")]
    pub decompressed: bool,
    /// For a ranged ticket (a part of a big plain object), the offset its range ends at: a
    /// line start, where the next range begins. `None` reads to the object's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

impl Checkpoint {
    /// The start of an object.
    pub fn start() -> Self {
        Checkpoint {
            offset: 0,
            line: 1,
            header: None,
            decompressed: false,
            end: None,
        }
    }

    /// True at the start of an object.
    pub fn is_start(&self) -> bool {
        self.offset == 0 && self.line == 1
    }
}

/// Rows in source order, and where the read picks up after the last of them.
pub(crate) struct Chunk {
    pub rows: Vec<Row>,
    pub after: Checkpoint,
    /// True for the object's last chunk.
    pub last: bool,
}

/// What the parser reads and how.
pub(crate) struct Parse {
    pub format: InputFormat,
    /// Set when the stream is gzip or zstd: it is decompressed, and `from.offset` decompressed
    /// bytes are skipped before parsing.
    pub compression: Option<Compression>,
    pub csv: Arc<CsvOptions>,
    pub key: String,
    pub ticket_id: String,
    pub from: Checkpoint,
    pub chunk_rows: usize,
}

/// What the parser reads from: a stream (from the checkpoint's offset, or from the start of a
/// compressed object), or a Parquet object reached by ranged reads.
pub(crate) enum Input {
    Stream(ObjectReader),
    Parquet(ParquetObject),
}

/// Parses `input` on a blocking thread, sending rows in chunks.
pub(crate) fn spawn_parser(
    input: Input,
    parse: Parse,
    sender: Sender<Chunk>,
) -> JoinHandle<Result<(), StopError>> {
    tokio::task::spawn_blocking(move || {
        let mut from = parse.from.clone();
        from.decompressed = parse.compression.is_some();
        let mut rows = Chunker {
            sender,
            chunk: Vec::with_capacity(parse.chunk_rows),
            chunk_rows: parse.chunk_rows,
            after: from.clone(),
        };
        let source = Source::new(
            &parse.key,
            &parse.ticket_id,
            parse.compression,
            parse.format.counts_lines(),
        );
        let result = match input {
            Input::Parquet(object) => parquet_rows::parse(object, from, &source, &mut rows),
            Input::Stream(reader) => match open_stream(reader, &parse, &source) {
                Ok(stream) => match parse.format {
                    InputFormat::Csv => {
                        csv_rows::parse(stream, &parse.csv, from, &source, &mut rows)
                    }
                    InputFormat::Ndjson => json_rows::parse_lines(stream, from, &source, &mut rows),
                    InputFormat::JsonArray => {
                        json_rows::parse_array(stream, from, &source, &mut rows)
                    }
                    InputFormat::Parquet => Err(StopError::permanent(format!(
                        "{}: Parquet is read by ranged reads, not as a stream",
                        parse.key
                    ))),
                },
                Err(err) => Err(err),
            },
        };
        if result.is_ok() {
            rows.finish();
        }
        result
    })
}

/// The bytes to parse: decompressed when the object is, past the checkpoint's offset.
fn open_stream(
    reader: ObjectReader,
    parse: &Parse,
    source: &Source<'_>,
) -> Result<Box<dyn Read + Send>, StopError> {
    let bridge = SyncIoBridge::new(reader);
    let Some(compression) = parse.compression else {
        return Ok(Box::new(bridge));
    };
    let mut stream = compression
        .decoder(bridge)
        .map_err(|err| source.read_failed(err))?;
    let skip = parse.from.offset;
    if skip > 0 {
        let skipped = std::io::copy(&mut (&mut stream).take(skip), &mut std::io::sink())
            .map_err(|err| source.read_failed(err))?;
        if skipped < skip {
            return Err(StopError::permanent(format!(
                "{}: the object decompresses to {skipped} bytes, fewer than the {skip} its checkpoint had read: it changed during the trip",
                source.key
            )));
        }
    }
    Ok(stream)
}

/// Where rows come from, to name them in ids, sources and reasons.
pub(crate) struct Source<'a> {
    pub key: &'a str,
    pub ticket_id: &'a str,
    pub compression: Option<Compression>,
    /// True when positions are line numbers (`key:line`), false for element or row numbers
    /// (`key#n`).
    pub lines: bool,
    /// What the passengers of a read by lines share: ids `<ticket>:<line>` and sources
    /// `<key>:<line>`.
    origin: Arc<Origin>,
}

impl<'a> Source<'a> {
    /// The rows of `key`, read for ticket `ticket_id`.
    pub fn new(
        key: &'a str,
        ticket_id: &'a str,
        compression: Option<Compression>,
        lines: bool,
    ) -> Self {
        Source {
            key,
            ticket_id,
            compression,
            lines,
            origin: Origin::new(format!("{ticket_id}:"), Some(key.to_owned())),
        }
    }

    /// Where row `at` is, as a passenger's source and a reason's prefix.
    pub fn at(&self, at: u64) -> String {
        if self.lines {
            format!("{}:{at}", self.key)
        } else {
            format!("{}#{at}", self.key)
        }
    }

    pub fn passenger(&self, at: u64, data: Map<String, Value>) -> Row {
        Row::Passenger(Passenger::new(
            format!("{}:{at}", self.ticket_id),
            Some(self.at(at)),
            data,
        ))
    }

    /// The passenger of line `at` with `values` of `fields`, numbered from the read's origin;
    /// a count that differs (the reader checks it first) is refused as the row's fault.
    pub fn passenger_of(&self, at: u64, fields: &Fields, values: &JsonValues) -> Row {
        match Passenger::numbered(&self.origin, at, fields, values) {
            Ok(passenger) => Row::Passenger(passenger),
            Err(reason) => self.rejected(at, reason, Value::Null),
        }
    }

    /// Raw input refused with its reason: it never became a passenger.
    pub fn rejected(&self, at: u64, reason: String, raw: Value) -> Row {
        let position = if self.lines { "line" } else { "row" };
        Row::Rejected(Rejection {
            id: format!("{}:{at}", self.ticket_id),
            reason: format!("{}: {reason}", self.at(at)),
            data: serde_json::json!({"file": self.key, position: at, "raw": raw}),
        })
    }

    /// A failed read: retryable, unless the bytes of a compressed object are not valid
    /// compressed data, which no retry changes.
    pub fn read_failed(&self, err: impl Into<BoxError>) -> StopError {
        let err: BoxError = err.into();
        let corrupt = err.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::UnexpectedEof
            )
        });
        match self.compression {
            Some(compression) if corrupt => StopError::permanent(format!(
                "{}: not valid {} data: {err}",
                self.key,
                compression.name()
            )),
            _ => StopError::retryable(ReadFailed {
                key: self.key.to_owned(),
                source: err,
            }),
        }
    }
}

/// Collects rows into chunks and sends each to the stop.
pub(crate) struct Chunker {
    sender: Sender<Chunk>,
    chunk: Vec<Row>,
    chunk_rows: usize,
    /// Where the read picks up after the rows pushed so far.
    pub after: Checkpoint,
}

impl Chunker {
    /// Queues a row, after which the read picks up at `offset`, `line`; false when the stop
    /// has stopped listening.
    pub fn push(&mut self, row: Row, offset: u64, line: u64) -> bool {
        self.chunk.push(row);
        self.skip(offset, line);
        self.chunk.len() < self.chunk_rows || self.send(false)
    }

    /// Moves the pick-up point past input that made no row (blank lines).
    pub fn skip(&mut self, offset: u64, line: u64) {
        self.after.offset = offset;
        self.after.line = line;
    }

    /// Sends the last chunk (it may be empty: it says the object is done).
    fn finish(&mut self) {
        // A stop that stopped listening no longer needs it.
        let _ = self.send(true);
    }

    fn send(&mut self, last: bool) -> bool {
        let rows = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.chunk_rows));
        let chunk = Chunk {
            rows,
            after: self.after.clone(),
            last,
        };
        self.sender.blocking_send(chunk).is_ok()
    }
}

/// Longest raw text kept in a rejection.
const RAW_KEEP: usize = 512;

/// Raw input as a rejection keeps it: at most [`RAW_KEEP`] bytes, lossy UTF-8.
pub(crate) fn raw(text: &[u8]) -> Value {
    let keep = &text[..text.len().min(RAW_KEEP)];
    Value::String(String::from_utf8_lossy(keep).into_owned())
}

/// "a number", "an array": a JSON value's kind in a reason.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every row of `bytes` read from `from` in `format`, one per chunk: (passenger id and
    /// data, or rejection id and reason; the checkpoint after it).
    pub(crate) async fn rows_from(
        bytes: &'static [u8],
        format: InputFormat,
        compression: Option<Compression>,
        csv: CsvOptions,
        from: Checkpoint,
    ) -> Vec<(String, Checkpoint)> {
        let start = if compression.is_some() {
            0
        } else {
            from.offset as usize
        };
        let reader: ObjectReader = Box::pin(std::io::Cursor::new(&bytes[start..]));
        let (sender, mut chunks) = tokio::sync::mpsc::channel(4);
        let parse = Parse {
            format,
            compression,
            csv: Arc::new(csv),
            key: "k".into(),
            ticket_id: "t".into(),
            from,
            chunk_rows: 1,
        };
        let parser = spawn_parser(Input::Stream(reader), parse, sender);
        let mut rows = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            for row in chunk.rows {
                let id = match row {
                    Row::Passenger(p) => format!("{} {}", p.id(), Value::Object(p.data().clone())),
                    Row::Rejected(r) => format!("{} rejected: {}", r.id, r.reason),
                };
                rows.push((id, chunk.after.clone()));
            }
        }
        parser.await.expect("joined").expect("parsed");
        rows
    }

    /// The ids of `rows`.
    pub(crate) fn ids(rows: &[(String, Checkpoint)]) -> Vec<&str> {
        rows.iter()
            .map(|(id, _)| id.split(' ').next().unwrap_or_default())
            .collect()
    }

    /// Resuming at any row's checkpoint reads exactly the rows after it, with the same ids.
    pub(crate) async fn every_checkpoint_resumes_the_rest(
        bytes: &'static [u8],
        format: InputFormat,
        compression: Option<Compression>,
        csv: CsvOptions,
    ) {
        let whole = rows_from(bytes, format, compression, csv.clone(), Checkpoint::start()).await;
        assert!(whole.len() >= 4, "{whole:?}");
        for (at, (_, checkpoint)) in whole.iter().enumerate() {
            let rest = rows_from(bytes, format, compression, csv.clone(), checkpoint.clone()).await;
            let rest: Vec<&String> = rest.iter().map(|(id, _)| id).collect();
            let expected: Vec<&String> = whole[at + 1..].iter().map(|(id, _)| id).collect();
            assert_eq!(rest, expected, "resumed at {checkpoint:?}");
        }
    }

    #[tokio::test]
    async fn compressed_input_resumes_at_every_checkpoint_by_skipping_decompressed_bytes() {
        let plain = b"a,b\n1,x\n2,\"multi\nline\"\n3,z\n4,y\n";
        for compression in [Compression::Gzip, Compression::Zstd] {
            let packed: &'static [u8] = Box::leak(
                compression
                    .compress(plain)
                    .expect("packed")
                    .into_boxed_slice(),
            );
            let whole = rows_from(
                packed,
                InputFormat::Csv,
                Some(compression),
                CsvOptions::default(),
                Checkpoint::start(),
            )
            .await;
            assert_eq!(ids(&whole), ["t:2", "t:3", "t:5", "t:6"]);
            assert!(whole.iter().all(|(_, checkpoint)| checkpoint.decompressed));
            every_checkpoint_resumes_the_rest(
                packed,
                InputFormat::Csv,
                Some(compression),
                CsvOptions::default(),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn corrupt_compressed_data_is_permanent_and_names_the_compression() {
        let mut packed = Compression::Gzip
            .compress(&b"a\n1\n".repeat(1000))
            .expect("packed");
        let middle = packed.len() / 2;
        packed[middle..].iter_mut().for_each(|b| *b = !*b);
        let reader: ObjectReader = Box::pin(std::io::Cursor::new(packed));
        let (sender, mut chunks) = tokio::sync::mpsc::channel(4);
        let parse = Parse {
            format: InputFormat::Csv,
            compression: Some(Compression::Gzip),
            csv: Arc::new(CsvOptions::default()),
            key: "in/a.csv.gz".into(),
            ticket_id: "t".into(),
            from: Checkpoint::start(),
            chunk_rows: 100,
        };
        let parser = spawn_parser(Input::Stream(reader), parse, sender);
        while chunks.recv().await.is_some() {}
        let err = parser.await.expect("joined").expect_err("corrupt");
        assert_eq!(err.class(), busline_core::ErrorClass::Permanent);
        assert!(
            err.reason()
                .starts_with("in/a.csv.gz: not valid gzip data:"),
            "{}",
            err.reason()
        );
    }
}
