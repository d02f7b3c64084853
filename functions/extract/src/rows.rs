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

/// Parses `reader` on a blocking thread, sending rows in chunks of `chunk_rows`.
pub(crate) fn spawn_parser(
    reader: ObjectReader,
    format: InputFormat,
    delimiter: u8,
    key: String,
    ticket_id: String,
    sender: Sender<Vec<Row>>,
    chunk_rows: usize,
) -> JoinHandle<Result<(), StopError>> {
    let bridge = SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let mut rows = Chunker {
            sender,
            chunk: Vec::with_capacity(chunk_rows),
            chunk_rows,
        };
        let source = Source {
            key: &key,
            ticket_id: &ticket_id,
        };
        let result = match format {
            InputFormat::Csv => parse_csv(bridge, delimiter, &source, &mut rows),
            InputFormat::Ndjson => parse_ndjson(
                std::io::BufReader::with_capacity(256 * 1024, bridge),
                &source,
                &mut rows,
            ),
        };
        rows.flush();
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
    sender: Sender<Vec<Row>>,
    chunk: Vec<Row>,
    chunk_rows: usize,
}

impl Chunker {
    /// Queues a row; false when the stop has stopped listening.
    fn push(&mut self, row: Row) -> bool {
        self.chunk.push(row);
        self.chunk.len() < self.chunk_rows || self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.chunk_rows));
        self.sender.blocking_send(chunk).is_ok()
    }
}

fn parse_csv(
    input: impl std::io::Read,
    delimiter: u8,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(256 * 1024)
        .from_reader(input);
    let header: Vec<String> = match reader.headers() {
        Ok(header) => header.iter().map(|name| name.trim().to_owned()).collect(),
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
    let mut record = csv::ByteRecord::new();
    loop {
        let row = match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) if blank(&record) => continue,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or_default();
                csv_row(&header, &record, line, source)
            }
            Err(err) => match err.kind() {
                csv::ErrorKind::UnequalLengths { len: 1, .. } if blank(&record) => continue,
                csv::ErrorKind::UnequalLengths {
                    pos,
                    expected_len,
                    len,
                } => {
                    let line = pos.as_ref().map(|p| p.line()).unwrap_or_default();
                    source.rejected(
                        line,
                        format!("expected {expected_len} fields as in the header, found {len}"),
                        lossy_fields(&record),
                    )
                }
                _ => return Err(csv_fatal(source, err)),
            },
        };
        if !rows.push(row) {
            return Ok(());
        }
    }
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
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|err| source.read_failed(err))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
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
        if !rows.push(row) {
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
