//! CSV rows: a header (or given column names), quoted fields over several lines, null
//! spellings and optional type inference; each record on the line it starts on.

use crate::rows::{Checkpoint, Chunker, Row, Source};
use crate::settings::CsvOptions;
use busline_core::envelope::JsonValues;
use busline_core::{Fields, StopError};
use serde_json::Value;

/// Parses CSV from `input` (the object from `from` on) into `rows`.
pub(crate) fn parse(
    input: impl std::io::Read,
    options: &CsvOptions,
    from: Checkpoint,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut reader = reader(options).from_reader(LineEnds::new(input));
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
    // Each row's values are written here as JSON text, then copied into its passenger.
    let mut values = JsonValues::new();
    let header = match from.header {
        Some(header) => header,
        None => columns(&mut reader, &mut record, options, source)?,
    };
    rows.after.header = Some(header.clone());
    // Every row shares the header's names instead of holding its own.
    let fields = Fields::new(header.clone())
        .map_err(|reason| StopError::permanent(format!("{}:1: header: {reason}", source.key)))?;
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
                Some(csv_row(
                    &mut values,
                    &fields,
                    &record,
                    line,
                    options,
                    source,
                ))
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

/// The CSV reader `options` describe.
fn reader(options: &CsvOptions) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(options.delimiter)
        .quote(options.quote.unwrap_or(b'"'))
        .quoting(options.quote.is_some())
        .escape(options.escape)
        .has_headers(false)
        // Field counts are checked against the header here, so that a read resumed mid-object
        // (whose first record is not the header) checks them the same way.
        .flexible(true)
        .buffer_capacity(256 * 1024);
    builder
}

/// The column names of a read from the start: `CSV_COLUMNS`, or the header's (which the
/// reader then has passed), or the header's replaced by `CSV_COLUMNS`.
fn columns(
    reader: &mut csv::Reader<impl std::io::Read>,
    record: &mut csv::ByteRecord,
    options: &CsvOptions,
    source: &Source<'_>,
) -> Result<Vec<String>, StopError> {
    if !options.header
        && let Some(columns) = &options.columns
    {
        return Ok(columns.clone());
    }
    let read = read_header(reader, record, source)?;
    match &options.columns {
        Some(columns) if columns.len() != read.len() => Err(StopError::permanent(format!(
            "{}:1: the header has {} columns, CSV_COLUMNS names {}",
            source.key,
            read.len(),
            columns.len()
        ))),
        Some(columns) => Ok(columns.clone()),
        None => Ok(read),
    }
}

/// The column names a read that starts after the header uses, found in `head` (the object's
/// first bytes; `whole` when that is all of it): `None` when the header does not end inside
/// `head` or is not valid, and the object is then read whole, which reports it.
pub(crate) fn columns_in(
    head: &[u8],
    whole: bool,
    options: &CsvOptions,
    key: &str,
) -> Option<Vec<String>> {
    let source = Source::new(key, "", None, true);
    let mut reader = reader(options).from_reader(head);
    let names = columns(&mut reader, &mut csv::ByteRecord::new(), options, &source).ok()?;
    let ended = whole || reader.position().byte() < head.len() as u64;
    ended.then_some(names)
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
    if !err.is_io_error() {
        return StopError::permanent(format!("{}: {err}", source.key));
    }
    // The I/O error itself, so that corrupt compressed bytes are told from a broken read.
    match err.into_kind() {
        csv::ErrorKind::Io(io) => source.read_failed(io),
        other => StopError::permanent(format!("{}: {other:?}", source.key)),
    }
}

/// Writes a field's value: null when spelled as one of `NULL_VALUES`, a number or boolean
/// when `INFER_TYPES` is on and it is spelled as one in JSON (digits kept), else its text.
fn push_field(values: &mut JsonValues, text: &str, options: &CsvOptions) {
    if options.null_values.iter().any(|null| null == text) {
        return values.push_null();
    }
    if options.infer_types {
        match text {
            "true" => return values.push_bool(true),
            "false" => return values.push_bool(false),
            _ if text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
                && values.push_number_text(text) =>
            {
                return;
            }
            _ => {}
        }
    }
    values.push_str(text);
}

fn csv_row(
    row: &mut JsonValues,
    fields: &Fields,
    record: &csv::ByteRecord,
    line: u64,
    options: &CsvOptions,
    source: &Source<'_>,
) -> Row {
    row.clear();
    // One check of the whole record is faster than one per field; a field is then valid
    // unless it splits a character with the next, which `get` finds.
    let whole = std::str::from_utf8(record.as_slice()).ok();
    for (i, (name, field)) in fields.names().iter().zip(record.iter()).enumerate() {
        let text = whole
            .zip(record.range(i))
            .and_then(|(whole, range)| whole.get(range));
        match text.map_or_else(|| std::str::from_utf8(field), Ok) {
            Ok(text) => push_field(row, text, options),
            Err(err) => {
                return source.rejected(
                    line,
                    format!("field `{name}` is not valid UTF-8: {err}"),
                    lossy_fields(record),
                );
            }
        }
    }
    source.passenger_of(line, fields, row)
}

fn lossy_fields(record: &csv::ByteRecord) -> Value {
    Value::Array(
        record
            .iter()
            .map(|f| Value::String(String::from_utf8_lossy(f).into_owned()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::InputFormat;
    use crate::rows::tests::{every_checkpoint_resumes_the_rest, ids, rows_from};

    async fn csv_rows(text: &'static str, options: CsvOptions) -> Vec<(String, Checkpoint)> {
        rows_from(
            text.as_bytes(),
            InputFormat::Csv,
            None,
            options,
            Checkpoint::start(),
        )
        .await
    }

    #[tokio::test]
    async fn csv_resumes_at_every_checkpoint_with_quoted_newlines_blank_and_bad_lines() {
        let messy = "a,b\n1,x\n\n2,\"multi\nline\"\n   \n3\n4,y\r\n5,z";
        every_checkpoint_resumes_the_rest(
            messy.as_bytes(),
            InputFormat::Csv,
            None,
            CsvOptions::default(),
        )
        .await;
        // Each record on the line it starts on, after an empty line and a `\r\n` too.
        let whole = csv_rows(messy, CsvOptions::default()).await;
        assert_eq!(ids(&whole), ["t:2", "t:4", "t:7", "t:8", "t:9"]);
        assert!(
            whole[2]
                .0
                .ends_with("rejected: k:7: expected 2 fields as in the header, found 1")
        );
        let text = "a,b\n1,x\n2,\"multi\nline\"\n3\n4,y\n5,z";
        every_checkpoint_resumes_the_rest(
            text.as_bytes(),
            InputFormat::Csv,
            None,
            CsvOptions::default(),
        )
        .await;
        let whole = csv_rows(text, CsvOptions::default()).await;
        assert_eq!(ids(&whole), ["t:2", "t:3", "t:5", "t:6", "t:7"]);
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
    async fn null_spellings_become_nulls_and_inference_keeps_digits() {
        let text = "a,b,c\nNA,,\\N\n007,12.50,true\n-1e3,123456789012345678901234567890,NULL\n";
        let options = CsvOptions {
            null_values: vec!["".into(), "NA".into(), "NULL".into(), "\\N".into()],
            infer_types: true,
            ..CsvOptions::default()
        };
        let rows: Vec<String> = csv_rows(text, options)
            .await
            .into_iter()
            .map(|(row, _)| row)
            .collect();
        assert_eq!(
            rows,
            [
                r#"t:2 {"a":null,"b":null,"c":null}"#,
                r#"t:3 {"a":"007","b":12.50,"c":true}"#,
                r#"t:4 {"a":-1e+3,"b":123456789012345678901234567890,"c":null}"#,
            ]
        );
        // Off by default: every field is text, NA included.
        let rows = csv_rows("a\nNA\n12\n", CsvOptions::default()).await;
        assert_eq!(rows[0].0, r#"t:2 {"a":"NA"}"#);
        assert_eq!(rows[1].0, r#"t:3 {"a":"12"}"#);
    }

    #[tokio::test]
    async fn a_field_that_is_not_utf8_rejects_its_row_and_names_the_field() {
        // The second row's fields split an `é` between them: the record as a whole is UTF-8.
        let text: &'static [u8] = b"a,b\nok,\xC3\xA9\n\xC3,\xA9\nx,\xFF\nlast,row\n";
        let rows = rows_from(
            text,
            InputFormat::Csv,
            None,
            CsvOptions::default(),
            Checkpoint::start(),
        )
        .await;
        let rows: Vec<&str> = rows.iter().map(|(row, _)| row.as_str()).collect();
        assert_eq!(
            rows,
            [
                r#"t:2 {"a":"ok","b":"é"}"#,
                "t:3 rejected: k:3: field `a` is not valid UTF-8: incomplete utf-8 byte sequence from index 0",
                "t:4 rejected: k:4: field `b` is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 0",
                r#"t:5 {"a":"last","b":"row"}"#,
            ]
        );
    }

    #[tokio::test]
    async fn quote_escape_and_given_columns() {
        let options = CsvOptions {
            quote: Some(b'\''),
            escape: Some(b'\\'),
            header: false,
            columns: Some(vec!["name".into(), "note".into()]),
            ..CsvOptions::default()
        };
        let rows = csv_rows("Red,'it\\'s, red'\nBlue,plain\n", options).await;
        let rows: Vec<&str> = rows.iter().map(|(row, _)| row.as_str()).collect();
        assert_eq!(
            rows,
            [
                r#"t:1 {"name":"Red","note":"it's, red"}"#,
                r#"t:2 {"name":"Blue","note":"plain"}"#
            ]
        );
        let renamed = CsvOptions {
            columns: Some(vec!["x".into(), "y".into()]),
            ..CsvOptions::default()
        };
        let rows = csv_rows("a,b\n1,2\n", renamed).await;
        assert_eq!(rows[0].0, r#"t:2 {"x":"1","y":"2"}"#);
    }
}
