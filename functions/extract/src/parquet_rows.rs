//! Parquet rows, row group by row group: the footer and then each row group come from the
//! object store in one ranged read each, so only the current row group is in memory. Rows are
//! numbered from 1 across the file; a read resumes at a row number.

use crate::fetch::read_range;
use crate::rows::{Checkpoint, Chunker, Source, raw};
use busline_core::ports::ObjectStore;
use busline_core::{PortError, StopError};
use busline_formats::{Columns, row_to_record};
use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Bytes read from an object's end at once: the footer and, usually, all of its metadata.
const TAIL_BYTES: u64 = 64 * 1024;

/// A Parquet object in the data bucket.
pub(crate) struct ParquetObject {
    pub objects: Arc<dyn ObjectStore>,
    pub key: String,
    pub size: u64,
    pub runtime: tokio::runtime::Handle,
}

/// The object as Parquet's reader reads it: ranged reads of whole row groups (or of the
/// tail), the last one kept.
struct Ranged {
    object: ParquetObject,
    /// Byte ranges of the row groups, once the metadata is read.
    spans: Mutex<Vec<Range<u64>>>,
    cached: Mutex<Option<(u64, Bytes)>>,
    /// The port error behind a failed read, so it keeps its class.
    failure: Mutex<Option<PortError>>,
}

impl Ranged {
    /// The range to fetch for a read of `start..end`: its row group, or the tail, or itself.
    fn span_for(&self, start: u64, end: u64) -> Range<u64> {
        let size = self.object.size;
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(span) = spans.iter().find(|s| s.start <= start && end <= s.end) {
            return span.clone();
        }
        if start >= size.saturating_sub(TAIL_BYTES) {
            return size.saturating_sub(TAIL_BYTES)..size;
        }
        start..end
    }

    fn fetch(&self, span: Range<u64>) -> Result<Bytes, ParquetError> {
        let object = &self.object;
        let read = object.runtime.block_on(async {
            let length = span.end - span.start;
            read_range(object.objects.as_ref(), &object.key, span.start, length).await
        });
        match read {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(err) => {
                let message = err.to_string();
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                Err(ParquetError::General(message))
            }
        }
    }
}

/// A shared [`Ranged`]: Parquet's reader owns its chunk reader, the parser keeps a handle to
/// set the row groups' spans and to find a read's failure.
#[derive(Clone)]
struct SharedRanged(Arc<Ranged>);

impl Length for SharedRanged {
    fn len(&self) -> u64 {
        self.0.object.size
    }
}

impl ChunkReader for SharedRanged {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        let end = self.0.span_for(start, start + 1).end;
        Ok(self.get_bytes(start, (end - start) as usize)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let end = start + length as u64;
        if end > self.0.object.size {
            return Err(ParquetError::EOF(format!(
                "a read of bytes {start}..{end} is past the object's {} bytes",
                self.0.object.size
            )));
        }
        let mut cached = self.0.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, bytes)) = cached.as_ref()
            && *at <= start
            && end <= *at + bytes.len() as u64
        {
            let from = (start - at) as usize;
            return Ok(bytes.slice(from..from + length));
        }
        let span = self.0.span_for(start, end);
        let bytes = self.0.fetch(span.clone())?;
        let from = (start - span.start) as usize;
        let wanted = bytes.slice(from..from + length);
        *cached = Some((span.start, bytes));
        Ok(wanted)
    }
}

/// Reads `object` from row `from.line` on into `rows`.
pub(crate) fn parse(
    object: ParquetObject,
    from: Checkpoint,
    source: &Source<'_>,
    rows: &mut Chunker,
) -> Result<(), StopError> {
    let ranged = SharedRanged(Arc::new(Ranged {
        object,
        spans: Mutex::new(Vec::new()),
        cached: Mutex::new(None),
        failure: Mutex::new(None),
    }));
    let failed = |err: ParquetError| {
        let port = ranged
            .0
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match port {
            Some(port) => StopError::from(port),
            None => StopError::permanent(format!("{}: not readable as Parquet: {err}", source.key)),
        }
    };
    let reader = SerializedFileReader::new(ranged.clone()).map_err(failed)?;
    let metadata = reader.metadata();
    *ranged.0.spans.lock().unwrap_or_else(|p| p.into_inner()) = metadata
        .row_groups()
        .iter()
        .map(|group| {
            let ranges = group.columns().iter().map(|c| c.byte_range());
            let start = ranges.clone().map(|(at, _)| at).min().unwrap_or(0);
            let end = ranges.map(|(at, len)| at + len).max().unwrap_or(0);
            start..end
        })
        .collect();
    let columns = Columns::of(metadata.file_metadata().schema_descr());
    // Row numbers count from 1 across the file; skip the row groups the checkpoint is past.
    let mut first = 1u64;
    for index in 0..metadata.num_row_groups() {
        let in_group = metadata.row_group(index).num_rows() as u64;
        if first + in_group <= from.line {
            first += in_group;
            continue;
        }
        let group = reader.get_row_group(index).map_err(failed)?;
        let skip = from.line.saturating_sub(first) as usize;
        let mut number = first + skip as u64;
        for row in group.get_row_iter(None).map_err(failed)?.skip(skip) {
            let row = row.map_err(failed)?;
            let parsed = match row_to_record(&row, &columns) {
                Ok(record) => source.passenger(number, record),
                Err(reason) => source.rejected(number, reason, raw(row.to_string().as_bytes())),
            };
            number += 1;
            if !rows.push(parsed, 0, number) {
                return Ok(());
            }
        }
        first += in_group;
    }
    Ok(())
}
