//! The parser thread: reads CSV or NDJSON from a streaming object read and sends rows in chunks.

use crate::raw_rejection;
use busline_core::envelope::{Passenger, Rejection};
use busline_core::ports::ObjectReader;
use busline_core::{BoxError, StopError};
use serde_json::{Map, Value};
use std::io::BufRead;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

/// The input formats extract reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl InputFormat {
    /// `csv` or `ndjson` (also `jsonl`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(InputFormat::Csv),
            "ndjson" | "jsonl" => Some(InputFormat::Ndjson),
            _ => None,
        }
    }

    /// The format's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Csv => "CSV",
            InputFormat::Ndjson => "NDJSON",
        }
    }

    /// The format an object key's extension names.
    pub fn from_key(key: &str) -> Option<Self> {
        let extension = key.rsplit_once('.')?.1;
        InputFormat::from_name(extension)
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

/// Where a read starts, or picks up again: a byte offset into the object, the line number
/// found there, and the CSV header read before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Bytes of the object already read.
    pub offset: u64,
    /// The line number at `offset` (1 at the start of the object).
    pub line: u64,
    /// The CSV header's names, once read; `None` at the start and for NDJSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
}

impl Checkpoint {
    /// The start of an object.
    pub fn start() -> Self {
        Checkpoint {
            offset: 0,
            line: 1,
            header: None,
        }
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
    pub delimiter: u8,
    pub key: String,
    pub ticket_id: String,
    pub from: Checkpoint,
    pub chunk_rows: usize,
}

/// Parses `reader` (the object from `parse.from.offset` on) on a blocking thread, sending rows
/// in chunks.
pub(crate) fn spawn_parser(
    reader: ObjectReader,
    parse: Parse,
    sender: Sender<Chunk>,
) -> JoinHandle<Result<(), StopError>> {
    let bridge = SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let mut rows = Chunker {
            sender,
            chunk: Vec::with_capacity(parse.chunk_rows),
            chunk_rows: parse.chunk_rows,
            after: parse.from.clone(),
        };
        let source = Source {
            key: &parse.key,
            ticket_id: &parse.ticket_id,
        };
        let result = match parse.format {
            InputFormat::Csv => parse_csv(bridge, parse.delimiter, parse.from, &source, &mut rows),
            InputFormat::Ndjson => parse_ndjson(
                std::io::BufReader::with_capacity(256 * 1024, bridge),
                parse.from,
                &source,
                &mut rows,
            ),
        };
        if result.is_ok() {
            rows.finish();
        }
        result
    })
}

struct Source<'a> {
    key: &'a str,
    ticket_id: &'a str,
}

impl Source<'_> {
    fn passenger(&self, line: u64, data: Map<String, Value>) -> Row {
        Row::Passenger(Passenger::new(
            format!("{}:{line}", self.ticket_id),
            Some(format!("{}:{line}", self.key)),
            data,
        ))
    }

    fn rejected(&self, line: u64, reason: String, raw: Value) -> Row {
        Row::Rejected(raw_rejection(self.ticket_id, self.key, line, reason, raw))
    }

    fn read_failed(&self, err: impl Into<BoxError>) -> StopError {
        StopError::retryable(ReadFailed {
            key: self.key.to_owned(),
            source: err.into(),
        })
    }
}

struct Chunker {
    sender: Sender<Chunk>,
    chunk: Vec<Row>,
    chunk_rows: usize,
    /// Where the read picks up after the rows pushed so far.
    after: Checkpoint,
}

impl Chunker {
    /// Queues a row, after which the read picks up at `offset`, `line`; false when the stop
    /// has stopped listening.
    fn push(&mut self, row: Row, offset: u64, line: u64) -> bool {
        self.chunk.push(row);
        self.skip(offset, line);
        self.chunk.len() < self.chunk_rows || self.send(false)
    }

    /// Moves the pick-up point past input that made no row (blank lines).
    fn skip(&mut self, offset: u64, line: u64) {
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

fn parse_csv(
    input: impl std::io::Read,
    delimiter: u8,
    from: Checkpoint,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        // Field counts are checked against the header here, so that a read resumed mid-object
        // (whose first record is not the header) checks them the same way.
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(LineEnds::new(input));
    // Positions count from where this read started.
    let at = |position: &csv::Position| {
        (
            from.offset + position.byte(),
            from.line + position.line() - 1,
        )
    };
    // The line a record starts on: the reader positions it where its read began, before the
    // empty lines (or the `\n` of a `\r\n`) it skipped.
    let first_line = |reader: &mut csv::Reader<LineEnds<_>>, record: &csv::ByteRecord| {
        record
            .position()
            .map_or(0, |p| at(p).1 + reader.get_mut().newlines_at(p.byte()))
    };
    let mut record = csv::ByteRecord::new();
    let header = match from.header {
        Some(header) => header,
        None => read_header(&mut reader, &mut record, source)?,
    };
    rows.after.header = Some(header.clone());
    let (offset, line) = at(reader.position());
    rows.skip(offset, line);
    loop {
        let row = match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) if blank(&record) => None,
            Ok(true) if record.len() != header.len() => Some(source.rejected(
                first_line(&mut reader, &record),
                format!(
                    "expected {} fields as in the header, found {}",
                    header.len(),
                    record.len()
                ),
                lossy_fields(&record),
            )),
            Ok(true) => {
                let line = first_line(&mut reader, &record);
                Some(csv_row(&header, &record, line, source))
            }
            Err(err) => return Err(csv_fatal(source, err)),
        };
        let (offset, line) = at(reader.position());
        match row {
            None => rows.skip(offset, line),
            Some(row) => {
                if !rows.push(row, offset, line) {
                    return Ok(());
                }
            }
        }
    }
}

/// The object as the CSV reader reads it, noting where its line-end bytes are (only those the
/// reader has not passed yet: a few thousand at most).
struct LineEnds<R> {
    inner: R,
    read: u64,
    /// (offset from the start of this read, the byte: `\r` or `\n`).
    ends: std::collections::VecDeque<(u64, u8)>,
}

impl<R> LineEnds<R> {
    fn new(inner: R) -> Self {
        LineEnds {
            inner,
            read: 0,
            ends: std::collections::VecDeque::new(),
        }
    }

    /// The newlines in the run of line-end bytes starting at `offset`; forgets those before it.
    fn newlines_at(&mut self, offset: u64) -> u64 {
        while self.ends.front().is_some_and(|(at, _)| *at < offset) {
            self.ends.pop_front();
        }
        let run = self
            .ends
            .iter()
            .zip(offset..)
            .take_while(|((at, _), expected)| at == expected);
        run.filter(|((_, byte), _)| *byte == b'\n').count() as u64
    }
}

impl<R: std::io::Read> std::io::Read for LineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        let start = self.read;
        self.ends.extend(
            memchr::memchr2_iter(b'\n', b'\r', &buf[..read]).map(|i| (start + i as u64, buf[i])),
        );
        self.read += read as u64;
        Ok(read)
    }
}

/// Reads the header row: its names, trimmed, each once.
fn read_header(
    reader: &mut csv::Reader<impl std::io::Read>,
    record: &mut csv::ByteRecord,
    source: &Source<'_>,
) -> Result<Vec<String>, StopError> {
    let header: Vec<String> = match reader.read_byte_record(record) {
        Ok(true) => record
            .iter()
            .map(|name| std::str::from_utf8(name).map(|name| name.trim().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|err| {
                StopError::permanent(format!(
                    "{}:1: header is not valid UTF-8: {err}",
                    source.key
                ))
            })?,
        Ok(false) => Vec::new(),
        Err(err) => return Err(csv_fatal(source, err)),
    };
    if let Some(duplicate) = header
        .iter()
        .enumerate()
        .find(|(i, name)| header[..*i].contains(name))
    {
        return Err(StopError::permanent(format!(
            "{}:1: header names column `{}` twice",
            source.key, duplicate.1
        )));
    }
    Ok(header)
}

/// A line of nothing but spaces or tabs (an empty line the reader skips itself): no record.
fn blank(record: &csv::ByteRecord) -> bool {
    record.len() == 1 && record[0].trim_ascii().is_empty()
}

/// A CSV error that stops reading the file: an I/O error is retryable, anything else permanent.
fn csv_fatal(source: &Source<'_>, err: csv::Error) -> StopError {
    if err.is_io_error() {
        source.read_failed(err)
    } else {
        StopError::permanent(format!("{}: {err}", source.key))
    }
}

fn csv_row(header: &[String], record: &csv::ByteRecord, line: u64, source: &Source<'_>) -> Row {
    let mut data = Map::with_capacity(header.len());
    for (name, field) in header.iter().zip(record.iter()) {
        match std::str::from_utf8(field) {
            Ok(text) => {
                data.insert(name.clone(), Value::String(text.to_owned()));
            }
            Err(err) => {
                return source.rejected(
                    line,
                    format!("field `{name}` is not valid UTF-8: {err}"),
                    lossy_fields(record),
                );
            }
        }
    }
    source.passenger(line, data)
}

fn lossy_fields(record: &csv::ByteRecord) -> Value {
    Value::Array(
        record
            .iter()
            .map(|f| Value::String(String::from_utf8_lossy(f).into_owned()))
            .collect(),
    )
}

/// Longest raw line kept in a rejection.
const RAW_KEEP: usize = 512;

fn parse_ndjson(
    mut input: impl BufRead,
    from: Checkpoint,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut line = Vec::new();
    let mut offset = from.offset;
    let mut number = from.line - 1;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|err| source.read_failed(err))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        offset += read as u64;
        let text = line.trim_ascii();
        if text.is_empty() {
            rows.skip(offset, number + 1);
            continue;
        }
        let row = match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(data)) => source.passenger(number, data),
            Ok(other) => source.rejected(
                number,
                format!("expected a JSON object, found {}", kind(&other)),
                raw(text),
            ),
            Err(err) => source.rejected(number, json_reason(&err), raw(text)),
        };
        if !rows.push(row, offset, number + 1) {
            return Ok(());
        }
    }
}

/// serde_json's message with its own position (always "line 1" here) replaced by the column.
fn json_reason(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    format!("invalid JSON at column {}: {message}", err.column())
}

fn raw(text: &[u8]) -> Value {
    let keep = &text[..text.len().min(RAW_KEEP)];
    Value::String(String::from_utf8_lossy(keep).into_owned())
}

fn kind(value: &Value) -> &'static str {
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
mod tests {
    use super::*;

    /// Every row of `text` read from `from`, one per chunk: (passenger id or rejection id, and
    /// the checkpoint after it).
    async fn rows_from(
        text: &'static str,
        format: InputFormat,
        from: Checkpoint,
    ) -> Vec<(String, Checkpoint)> {
        let bytes = &text.as_bytes()[from.offset as usize..];
        let reader: ObjectReader = Box::pin(std::io::Cursor::new(bytes));
        let (sender, mut chunks) = tokio::sync::mpsc::channel(4);
        let parse = Parse {
            format,
            delimiter: b',',
            key: "k".into(),
            ticket_id: "t".into(),
            from,
            chunk_rows: 1,
        };
        let parser = spawn_parser(reader, parse, sender);
        let mut rows = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            for row in chunk.rows {
                let id = match row {
                    Row::Passenger(p) => format!("{} {:?}", p.id(), p.data()),
                    Row::Rejected(r) => format!("{} rejected: {}", r.id, r.reason),
                };
                rows.push((id, chunk.after.clone()));
            }
        }
        parser.await.expect("joined").expect("parsed");
        rows
    }

    /// Resuming at any row's checkpoint reads exactly the rows after it, with the same ids.
    async fn every_checkpoint_resumes_the_rest(text: &'static str, format: InputFormat) {
        let whole = rows_from(text, format, Checkpoint::start()).await;
        assert!(whole.len() >= 4, "{whole:?}");
        for (at, (_, checkpoint)) in whole.iter().enumerate() {
            let rest = rows_from(text, format, checkpoint.clone()).await;
            let rest: Vec<&String> = rest.iter().map(|(id, _)| id).collect();
            let expected: Vec<&String> = whole[at + 1..].iter().map(|(id, _)| id).collect();
            assert_eq!(rest, expected, "resumed at {checkpoint:?}");
        }
    }

    #[tokio::test]
    async fn csv_resumes_at_every_checkpoint_with_quoted_newlines_blank_and_bad_lines() {
        let messy = "a,b\n1,x\n\n2,\"multi\nline\"\n   \n3\n4,y\r\n5,z";
        every_checkpoint_resumes_the_rest(messy, InputFormat::Csv).await;
        // Each record on the line it starts on, after an empty line and a `\r\n` too.
        let whole = rows_from(messy, InputFormat::Csv, Checkpoint::start()).await;
        let ids: Vec<&str> = whole
            .iter()
            .map(|(id, _)| id.split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["t:2", "t:4", "t:7", "t:8", "t:9"]);
        assert!(
            whole[2]
                .0
                .ends_with("rejected: k:7: expected 2 fields as in the header, found 1")
        );
        let text = "a,b\n1,x\n2,\"multi\nline\"\n3\n4,y\n5,z";
        every_checkpoint_resumes_the_rest(text, InputFormat::Csv).await;
        let whole = rows_from(text, InputFormat::Csv, Checkpoint::start()).await;
        let ids: Vec<&str> = whole
            .iter()
            .map(|(id, _)| id.split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["t:2", "t:3", "t:5", "t:6", "t:7"]);
        assert!(
            whole[2]
                .0
                .ends_with("rejected: k:5: expected 2 fields as in the header, found 1")
        );
        assert_eq!(
            whole[0].1.header.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
    }

    #[tokio::test]
    async fn ndjson_resumes_at_every_checkpoint_with_blank_and_bad_lines() {
        let text = "{\"n\":1}\n\n{\"n\":2}\nnot json\n  \n{\"n\":3}\n{\"n\":4}";
        every_checkpoint_resumes_the_rest(text, InputFormat::Ndjson).await;
        let whole = rows_from(text, InputFormat::Ndjson, Checkpoint::start()).await;
        let ids: Vec<&str> = whole
            .iter()
            .map(|(id, _)| id.split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["t:1", "t:3", "t:4", "t:6", "t:7"]);
    }
}
