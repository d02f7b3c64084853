//! JSON rows: NDJSON line by line, and a JSON array of objects element by element (serde's
//! sequence visitor: one element in memory at a time).

use crate::rows::{Checkpoint, Chunker, Row, Source, kind, raw};
use busline_core::StopError;
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::Value;
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

/// Parses NDJSON from `input` (the object from `from` on) into `rows`.
pub(crate) fn parse_lines(
    input: impl Read,
    from: Checkpoint,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
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
    format!(
        "invalid JSON at column {}: {}",
        err.column(),
        bare_message(err)
    )
}

/// serde_json's message without the position it appends.
fn bare_message(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    message
        .strip_suffix(&position)
        .unwrap_or(&message)
        .to_owned()
}

/// Parses a JSON array of objects from `input` (the object from `from` on: its start, or just
/// after an element) into `rows`; an element that is not an object is rejected with its number.
pub(crate) fn parse_array(
    input: impl Read,
    from: Checkpoint,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut base = from.offset;
    let resumed = !from.is_start();
    if resumed {
        match skip_separator(&mut input).map_err(|err| source.read_failed(err))? {
            Some(skipped) => base += skipped,
            None => return Ok(()),
        }
    }
    let consumed = Rc::new(Cell::new(0u64));
    let counted = Counted {
        inner: input,
        consumed: consumed.clone(),
    };
    // A resumed read continues the array's elements: it reads as an array of the rest.
    let opening: &[u8] = if resumed { b"[" } else { b"" };
    let mut de = serde_json::Deserializer::from_reader(opening.chain(counted));
    let stopped = Cell::new(false);
    let elements = Elements {
        source,
        rows,
        consumed: &consumed,
        base,
        next: from.line,
        stopped: &stopped,
    };
    let parsed = de.deserialize_seq(elements).and_then(|()| de.end());
    match parsed {
        Ok(()) => Ok(()),
        // The stop stopped listening mid-array: the rest is for a later read.
        Err(_) if stopped.get() => Ok(()),
        // serde_json's line and column count from where this read started.
        Err(err) if resumed => Err(array_error(
            &err,
            &format!("near byte {}", base + consumed.get()),
            source,
        )),
        Err(err) => Err(array_error(
            &err,
            &format!("at line {} column {}", err.line(), err.column()),
            source,
        )),
    }
}

/// A failure that ends an array's read: a broken read is retried, bad JSON is permanent (no
/// later element can be found after it).
fn array_error(err: &serde_json::Error, at: &str, source: &Source<'_>) -> StopError {
    if let Some(kind) = err.io_error_kind() {
        return source.read_failed(std::io::Error::new(kind, err.to_string()));
    }
    StopError::permanent(format!(
        "{}: invalid JSON array {at}: {} (a JSON input must be one array of objects)",
        source.key,
        bare_message(err)
    ))
}

/// Skips the whitespace and the one comma after an element; the bytes skipped, or `None` when
/// the array (or the object) ends there.
fn skip_separator(input: &mut impl BufRead) -> std::io::Result<Option<u64>> {
    let mut skipped = 0u64;
    let mut comma = false;
    loop {
        let Some(&byte) = input.fill_buf()?.first() else {
            return Ok(None);
        };
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b',' if !comma => comma = true,
            b']' => return Ok(None),
            _ => return Ok(Some(skipped)),
        }
        input.consume(1);
        skipped += 1;
    }
}

/// A reader that counts the bytes taken from it, so an element's end has an offset.
struct Counted<R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + read as u64);
        Ok(read)
    }
}

/// Boards each element of the array as it is parsed.
struct Elements<'s, 'r, 'c> {
    source: &'s Source<'s>,
    rows: &'r mut Chunker,
    consumed: &'c Cell<u64>,
    base: u64,
    /// The number of the next element (from 1).
    next: u64,
    stopped: &'c Cell<bool>,
}

impl<'de> Visitor<'de> for Elements<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<Value>()? {
            let at = self.next;
            self.next += 1;
            let row: Row = match element {
                Value::Object(data) => self.source.passenger(at, data),
                other => self.source.rejected(
                    at,
                    format!("expected a JSON object, found {}", kind(&other)),
                    raw(other.to_string().as_bytes()),
                ),
            };
            if !self
                .rows
                .push(row, self.base + self.consumed.get(), self.next)
            {
                self.stopped.set(true);
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::InputFormat;
    use crate::rows::tests::{every_checkpoint_resumes_the_rest, ids, rows_from};
    use crate::settings::CsvOptions;

    async fn read(text: &'static str, format: InputFormat) -> Vec<(String, Checkpoint)> {
        rows_from(
            text.as_bytes(),
            format,
            None,
            CsvOptions::default(),
            Checkpoint::start(),
        )
        .await
    }

    #[tokio::test]
    async fn ndjson_resumes_at_every_checkpoint_with_blank_and_bad_lines() {
        let text = "{\"n\":1}\n\n{\"n\":2}\nnot json\n  \n{\"n\":3}\n{\"n\":4}";
        every_checkpoint_resumes_the_rest(
            text.as_bytes(),
            InputFormat::Ndjson,
            None,
            CsvOptions::default(),
        )
        .await;
        let whole = read(text, InputFormat::Ndjson).await;
        assert_eq!(ids(&whole), ["t:1", "t:3", "t:4", "t:6", "t:7"]);
    }

    #[tokio::test]
    async fn a_json_array_is_read_element_by_element_and_resumes_after_any_element() {
        let text = "[\n {\"n\": 1},\n {\"n\": 2.50, \"s\": \"a,]\"},\n 7,\n \"x\" ,\n {\"n\": [1, {\"k\": null}]}\n,{\"n\":5}]\n";
        let whole = read(text, InputFormat::JsonArray).await;
        let rows: Vec<&str> = whole.iter().map(|(row, _)| row.as_str()).collect();
        assert_eq!(
            rows,
            [
                r#"t:1 {"n":1}"#,
                r#"t:2 {"n":2.50,"s":"a,]"}"#,
                "t:3 rejected: k#3: expected a JSON object, found a number",
                "t:4 rejected: k#4: expected a JSON object, found a string",
                r#"t:5 {"n":[1,{"k":null}]}"#,
                r#"t:6 {"n":5}"#,
            ]
        );
        every_checkpoint_resumes_the_rest(
            text.as_bytes(),
            InputFormat::JsonArray,
            None,
            CsvOptions::default(),
        )
        .await;
        assert!(read("[]", InputFormat::JsonArray).await.is_empty());
    }

    #[tokio::test]
    async fn a_json_input_that_is_not_an_array_fails_whole_with_where() {
        for (text, expected) in [
            (
                "{\"n\": 1}",
                "k: invalid JSON array at line 1 column 1: invalid type: map, expected a JSON array of objects",
            ),
            (
                "[{\"n\": 1},\n {\"n\": }]",
                "k: invalid JSON array at line 2 column 8: expected value",
            ),
            (
                "[{\"n\": 1}] [",
                "k: invalid JSON array at line 1 column 12: trailing characters",
            ),
        ] {
            let reader: busline_core::ports::ObjectReader =
                Box::pin(std::io::Cursor::new(text.as_bytes()));
            let (sender, mut chunks) = tokio::sync::mpsc::channel(4);
            let parse = crate::rows::Parse {
                format: InputFormat::JsonArray,
                compression: None,
                csv: std::sync::Arc::new(CsvOptions::default()),
                key: "k".into(),
                ticket_id: "t".into(),
                from: Checkpoint::start(),
                chunk_rows: 100,
            };
            let parser =
                crate::rows::spawn_parser(crate::rows::Input::Stream(reader), parse, sender);
            while chunks.recv().await.is_some() {}
            let err = parser.await.expect("joined").expect_err("not an array");
            assert_eq!(err.class(), busline_core::ErrorClass::Permanent);
            assert!(err.reason().starts_with(expected), "{}", err.reason());
        }
    }
}
