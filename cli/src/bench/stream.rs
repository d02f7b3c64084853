//! The streaming check: the route's first queue-reading stop (extract) over one large generated
//! CSV object (plain, gzip or zstd), with its throughput and the process's peak resident memory
//! while it runs.

use super::BenchError;
use super::prepare::{Input, Prepared, batches, stop_error};
use super::sinks::CountingQueues;
use crate::generate::{Schema, megabytes};
use busline_core::route::Route;
use busline_core::{Invocation, Registry};
use busline_embedded::MetricsBoard;
use busline_formats::Compression;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CLEAR_REFS: &str = "/proc/self/clear_refs";
const STATUS: &str = "/proc/self/status";

/// What the streaming check measured.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// The stop that read the object.
    pub stop: String,
    /// Bytes of CSV in the object (0 when the stop read its tickets' rows elsewhere).
    pub bytes: u64,
    /// Size of the object: `bytes` compressed, when it is.
    pub object_bytes: u64,
    /// `gzip` or `zstd` when the object is compressed.
    pub compression: Option<&'static str>,
    /// The columns of its records.
    pub schema: Schema,
    /// Records in it (all picked up).
    pub records: u64,
    /// Handler time.
    pub secs: f64,
    /// Megabytes (10^6) of CSV per second.
    pub mb_per_sec: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Peak resident memory of this process while the stop ran, in MiB (VmHWM, reset before).
    pub peak_rss_mib: f64,
}

impl StreamReport {
    /// The report as one line for people.
    pub fn line(&self) -> String {
        if self.bytes == 0 {
            return format!(
                "{} picked up {} records from its tickets' source in {:.2} s: {:.0} records/s, peak RSS {:.1} MiB\n",
                self.stop, self.records, self.secs, self.records_per_sec, self.peak_rss_mib
            );
        }
        let compressed = match self.compression {
            Some(name) => format!(" ({name}: {} object)", megabytes(self.object_bytes)),
            None => String::new(),
        };
        format!(
            "{} streamed {} of {} CSV{compressed} ({} records) in {:.2} s: {:.1} MB/s, {:.0} records/s, peak RSS {:.1} MiB\n",
            self.stop,
            megabytes(self.bytes),
            self.schema.name(),
            self.records,
            self.secs,
            self.mb_per_sec,
            self.records_per_sec,
            self.peak_rss_mib
        )
    }
}

/// Generates `input` (one CSV object, compressed if it says so) under `work` and times the
/// first queue reader over its ticket, forwarding into a sink that only counts.
pub async fn stream(
    route: &Route,
    registry: &Registry,
    input: &Input,
    work: &Path,
) -> Result<StreamReport, BenchError> {
    let compression = input.compression;
    let prepared = Prepared::generate(route, registry, input, work).await?;
    let spec = prepared
        .first_rider()
        .ok_or_else(|| BenchError::Route("the route has no stop after the depot".into()))?;
    let events = batches(spec, &prepared.tickets)?;
    let board = Arc::new(MetricsBoard::default());
    let store = Arc::new(prepared.store());
    let processor = prepared
        .processor(
            spec,
            Arc::new(CountingQueues::counting()),
            store.clone(),
            board.clone(),
        )
        .await?;
    reset_peak_rss()?;
    let started = Instant::now();
    for event in events {
        processor
            .process(event, &Invocation::default())
            .await
            .map_err(|e| stop_error(spec, e))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let peak_rss_mib = peak_rss_kib()? as f64 / 1024.0;
    // A stop that reads its tickets from elsewhere (a database) never reads the generated CSV.
    let bytes = if store.tally().gets > 0 {
        prepared.generated.bytes
    } else {
        0
    };
    let tally = board
        .snapshot()
        .get(&spec.name)
        .cloned()
        .unwrap_or_default();
    if tally.counts.continued > 0 {
        // A split object or a checkpoint: what was timed is not one read of the object.
        return Err(BenchError::Stop {
            stop: spec.name.clone(),
            message: format!(
                "sent {} tickets back to its own queue, so this invocation did not read the whole object; the streaming check times one read: keep the object whole (for the shipped template, --parameter SplitSize=0)",
                tally.counts.continued
            ),
        });
    }
    let records = tally.counts.picked_up;
    Ok(StreamReport {
        stop: spec.name.clone(),
        bytes,
        object_bytes: prepared.generated.file_bytes,
        compression: compression.map(Compression::name),
        schema: input.schema,
        records,
        secs,
        mb_per_sec: bytes as f64 / 1e6 / secs,
        records_per_sec: records as f64 / secs,
        peak_rss_mib,
    })
}

/// Resets the kernel's peak-RSS mark for this process (Linux). "5" clears VmHWM; without it the
/// peak would include the generator and the runtime's start.
fn reset_peak_rss() -> Result<(), BenchError> {
    std::fs::write(CLEAR_REFS, "5")
        .map_err(|e| BenchError::Memory(format!("resetting the peak through {CLEAR_REFS}: {e}")))
}

/// Peak resident memory since the last reset, in KiB, from /proc/self/status (Linux).
fn peak_rss_kib() -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(STATUS)
        .map_err(|e| BenchError::Memory(format!("reading {STATUS}: {e}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| BenchError::Memory(format!("{STATUS} has no VmHWM line in kB")))
}
