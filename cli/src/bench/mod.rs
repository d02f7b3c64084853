//! `bus bench`: each stop of the route, in process, on generated data: throughput against the
//! serde_json round-trip ceiling of the same bytes and against the wire codec alone, SQS calls
//! and billed requests per 10,000 records, and what a million records would cost on AWS.
//!
//! Stops run one after another: a first pass keeps each stop's buses to feed the next stop,
//! then each stop is timed on those same SQS events with a sink that only counts.

mod codec;
pub mod cost;
pub mod prepare;
pub mod sinks;
pub mod stream;
mod table;

use crate::generate::Schema;
use busline_core::ports::NoMetrics;
use busline_core::route::Route;
use busline_core::{Invocation, Registry};
use cost::{PRICES, Prices, Usage};
pub use prepare::Input;
use prepare::{Batch, Prepared, stop_error};
use serde::Serialize;
use sinks::{CountingQueues, SendTally, StoreTally, billed_requests};
use std::borrow::Cow;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What to measure.
#[derive(Clone)]
pub struct BenchOptions {
    /// The route.
    pub route: Route,
    /// The stop kinds the route's stops are built from.
    pub registry: Registry,
    /// The generated input.
    pub input: Input,
    /// Scratch folder: the generated input is written to `input/` in it.
    pub work: PathBuf,
    /// Timed rounds per stop; the fastest counts, for the stop and for the ceiling alike.
    pub rounds: u32,
    /// Lambda memory size for GB-seconds (the template's `MemorySize`).
    pub memory_mb: u32,
}

/// One stop's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct StopBench {
    /// The stop.
    pub stop: String,
    /// Invocations (SQS events; one for the depot).
    pub invocations: u64,
    /// Passengers the handler took in (the records it picked up, for a source reader).
    pub passengers: u64,
    /// Bytes it read: bus bodies in, plus input objects for a stop that reads them.
    pub bytes: u64,
    /// Handler time of the fastest round, summed over invocations.
    pub handler_secs: f64,
    /// Passengers per second of handler time.
    pub passengers_per_sec: f64,
    /// Megabytes (10^6) per second of handler time.
    pub mb_per_sec: f64,
    /// The faster of serde_json's and simd-json's parse + serialize of the stop's bus
    /// envelopes (its output for a source reader), in MB/s, in the same run.
    pub ceiling_mb_per_sec: f64,
    /// Which of the two was faster (`-` for the depot).
    pub ceiling_parser: &'static str,
    /// `mb_per_sec` over the ceiling's, on the bus bytes.
    pub ceiling_ratio: f64,
    /// Passengers per second of the wire codec alone (expanding the compressed buses the stop
    /// reads, compressing those it sends): what the stop could reach if it did nothing else.
    /// `None` when it read and sent no compressed bus.
    pub codec_passengers_per_sec: Option<f64>,
    /// `ceiling_ratio` against the ceiling plus the codec: a JSON stop that reads and sends the
    /// same compressed buses. `None` with no codec.
    pub ceiling_with_codec_ratio: Option<f64>,
    /// SQS API calls (receive, delete, send) per 10,000 generated records.
    pub sqs_calls_per_10k: f64,
    /// SQS billed requests (64 KiB chunks) per 10,000 generated records.
    pub sqs_billed_per_10k: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Route name.
    pub route: String,
    /// The columns of the generated records.
    pub schema: Schema,
    /// Generated records.
    pub records: u64,
    /// Bytes of generated input.
    pub input_bytes: u64,
    /// Per stop, in riding order.
    pub stops: Vec<StopBench>,
    /// Usage of the whole route for `records`.
    pub usage: Usage,
    /// Lambda memory assumed, MB.
    pub memory_mb: u32,
    /// Cost of a million records through the route.
    pub cost_per_million: cost::Cost,
    /// Prices used.
    pub prices: Prices,
}

/// Why a benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The route is not a depot followed by queue-reading stops this build knows.
    #[error("route: {0}")]
    Route(String),
    /// Generating the input failed.
    #[error("generating input in {path}: {source}")]
    Generate {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Peak memory could not be measured (the streaming check needs Linux's /proc).
    #[error("memory: {0}")]
    Memory(String),
    /// serde_json could not round-trip a bus body.
    #[error("ceiling: a bus body is not JSON: {0}")]
    Ceiling(#[from] serde_json::Error),
    /// simd-json could not round-trip a bus body.
    #[error("ceiling: simd-json: {0}")]
    Simd(String),
    /// A compressed bus body did not expand.
    #[error("ceiling: {0}")]
    Expand(#[from] busline_core::error::DecodeError),
    /// The codec pass could not repeat a stop's compression.
    #[error("codec: {0}")]
    Codec(String),
    /// A stop failed where the benchmark expects success.
    #[error("stop {stop}: {message}")]
    Stop {
        /// The stop.
        stop: String,
        /// What went wrong.
        message: String,
    },
}

/// Runs the benchmark.
pub async fn bench(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    bench_prepared(&options.prepare().await?, options).await
}

impl BenchOptions {
    /// The generated data and the route's stages on it, for these options.
    pub async fn prepare(&self) -> Result<Prepared, BenchError> {
        Prepared::new(&self.route, &self.registry, &self.input, &self.work).await
    }
}

/// Runs the benchmark on data already generated and ridden once (see [`Prepared::new`]).
pub async fn bench_prepared(
    prepared: &Prepared,
    options: &BenchOptions,
) -> Result<BenchReport, BenchError> {
    let mut usage = Usage::default();
    let mut stops = vec![bench_depot(prepared, options, &mut usage).await?];
    for index in 0..prepared.stages.len() {
        stops.push(bench_stage(prepared, index, options, &mut usage).await?);
    }
    let scale = 1e6 / options.input.records.max(1) as f64;
    Ok(BenchReport {
        route: options.route.name.clone(),
        schema: options.input.schema,
        records: options.input.records,
        input_bytes: prepared.generated.bytes,
        stops,
        usage,
        memory_mb: options.memory_mb,
        cost_per_million: usage.cost(&PRICES, scale),
        prices: PRICES,
    })
}

/// SQS calls (or billed requests) for all the records, per 10,000 records.
fn per_10k(count: u64, options: &BenchOptions) -> f64 {
    count as f64 * 10_000.0 / options.input.records.max(1) as f64
}

/// The depot: one invocation that lists the input and sends one ticket per object.
async fn bench_depot(
    prepared: &Prepared,
    options: &BenchOptions,
    usage: &mut Usage,
) -> Result<StopBench, BenchError> {
    let mut best = Duration::MAX;
    let (mut sent, mut store_tally) = (SendTally::default(), StoreTally::default());
    for _ in 0..options.rounds.max(1) {
        let queues = Arc::new(CountingQueues::counting());
        let store = Arc::new(prepared.store());
        best = best.min(prepared.run_depot(queues.clone(), store.clone()).await?);
        (sent, store_tally) = (queues.tally(), store.tally());
    }
    usage.invocations += 1;
    usage.gb_seconds += gb_seconds(best, options.memory_mb);
    usage.sqs_billed += sent.billed;
    usage.s3_writes += store_tally.lists;
    // The depot records its trip's start, and reads the totals once.
    usage.ledger_write_units += cost::ledger_write_units_per_bus(options.route.stops.len());
    usage.ledger_read_units += 1;
    Ok(StopBench {
        stop: prepared.depot.name.clone(),
        invocations: 1,
        passengers: sent.messages,
        bytes: 0,
        handler_secs: best.as_secs_f64(),
        passengers_per_sec: sent.messages as f64 / best.as_secs_f64(),
        mb_per_sec: 0.0,
        ceiling_mb_per_sec: 0.0,
        ceiling_parser: "-",
        ceiling_ratio: 0.0,
        codec_passengers_per_sec: None,
        ceiling_with_codec_ratio: None,
        sqs_calls_per_10k: per_10k(sent.calls, options),
        sqs_billed_per_10k: per_10k(sent.billed, options),
    })
}

/// One queue-reading stop, timed on its stage's events with a sink that only counts.
async fn bench_stage(
    prepared: &Prepared,
    index: usize,
    options: &BenchOptions,
    usage: &mut Usage,
) -> Result<StopBench, BenchError> {
    let stage = &prepared.stages[index];
    let spec = &stage.spec;
    let rounds = options.rounds.max(1);
    let mut best = Duration::MAX;
    let mut durations = Vec::new();
    let (mut sent, mut store_tally) = (SendTally::default(), StoreTally::default());
    for _ in 0..rounds {
        let queues = Arc::new(CountingQueues::counting());
        let store = Arc::new(prepared.store());
        let processor = prepared
            .processor(spec, queues.clone(), store.clone(), Arc::new(NoMetrics))
            .await?;
        let mut round = Vec::with_capacity(stage.events.len());
        for event in stage.events.clone() {
            let started = Instant::now();
            processor
                .process(event, &Invocation::default())
                .await
                .map_err(|e| stop_error(spec, e))?;
            round.push(started.elapsed());
        }
        let total: Duration = round.iter().sum();
        if total < best {
            best = total;
            durations = round;
        }
        (sent, store_tally) = (queues.tally(), store.tally());
    }
    // The ceiling runs on the buses' envelope JSON (compressed bodies expanded): what the stop
    // reads, or for a source reader (whose input is CSV) what it writes.
    let (received, forwarded) = (stage.bodies(), prepared.output_of(index));
    let inputs = expanded(&received)?;
    let bodies = if stage.reads_objects {
        expanded(&forwarded)?
    } else {
        inputs.clone()
    };
    let ceiling = ceiling(&bodies, rounds)?;
    let codec = codec::codec_time(&received, &forwarded, rounds)?;
    let bus_bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    let input_bytes: u64 = inputs.iter().map(|b| b.len() as u64).sum();
    let object_bytes = if stage.reads_objects {
        prepared.generated.bytes
    } else {
        0
    };
    let bytes = input_bytes + object_bytes;
    let secs = best.as_secs_f64();
    let ceiling_mb_per_sec = bus_bytes as f64 / 1e6 / ceiling.time.as_secs_f64();
    let invocations = stage.events.len() as u64;
    // Lambda's poller receives each batch, and deletes what succeeded in one call.
    let (receive_calls, receive_billed) = receive_costs(&stage.events);
    let calls = receive_calls + invocations + sent.calls;
    let billed = receive_billed + invocations + sent.billed;
    usage.invocations += invocations;
    // Each bus is recorded once; each batch reads its trip's totals once.
    let buses: u64 = stage.events.iter().map(|batch| batch.len() as u64).sum();
    usage.ledger_write_units += buses * cost::ledger_write_units_per_bus(options.route.stops.len());
    usage.ledger_read_units += invocations;
    usage.gb_seconds += durations
        .iter()
        .map(|d| gb_seconds(*d, options.memory_mb))
        .sum::<f64>();
    usage.sqs_billed += billed;
    usage.s3_writes += store_tally.puts + store_tally.lists;
    usage.s3_reads += store_tally.gets;
    Ok(StopBench {
        stop: spec.name.clone(),
        invocations,
        passengers: stage.passengers,
        bytes,
        handler_secs: secs,
        passengers_per_sec: stage.passengers as f64 / secs,
        mb_per_sec: bytes as f64 / 1e6 / secs,
        ceiling_mb_per_sec,
        ceiling_parser: ceiling.parser,
        ceiling_ratio: bus_bytes as f64 / 1e6 / secs / ceiling_mb_per_sec,
        codec_passengers_per_sec: codec.map(|time| stage.passengers as f64 / time.as_secs_f64()),
        ceiling_with_codec_ratio: codec.map(|time| (ceiling.time + time).as_secs_f64() / secs),
        sqs_calls_per_10k: per_10k(calls, options),
        sqs_billed_per_10k: per_10k(billed, options),
    })
}

/// ReceiveMessage calls (one per batch) and the requests SQS bills for them.
fn receive_costs(events: &[Batch]) -> (u64, u64) {
    let billed = events
        .iter()
        .map(|event| billed_requests(event.iter().map(|d| d.body.len()).sum()))
        .sum();
    (events.len() as u64, billed)
}

/// The envelope JSON of each bus body.
fn expanded<'b>(bodies: &[&'b str]) -> Result<Vec<Cow<'b, str>>, BenchError> {
    Ok(bodies
        .iter()
        .map(|body| busline_core::compression::expand(body))
        .collect::<Result<_, _>>()?)
}

/// What the fastest parse + serialize of the same bytes took, and by which parser.
#[derive(Debug, Clone, Copy)]
struct Ceiling {
    time: Duration,
    parser: &'static str,
}

/// The faster of serde_json and simd-json, each the fastest of `rounds` parse + serialize
/// passes over `bodies` (simd-json parses in place, so its passes include copying the bytes).
fn ceiling(bodies: &[Cow<'_, str>], rounds: u32) -> Result<Ceiling, BenchError> {
    let fastest = |pass: &dyn Fn() -> Result<(), BenchError>| -> Result<Duration, BenchError> {
        let mut best = Duration::MAX;
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            pass()?;
            best = best.min(started.elapsed());
        }
        Ok(best)
    };
    let serde = fastest(&|| {
        for body in bodies {
            let value: serde_json::Value = serde_json::from_str(body.as_ref())?;
            black_box(serde_json::to_vec(&value)?);
        }
        Ok(())
    })?;
    let simd = fastest(&|| {
        for body in bodies {
            let mut bytes = body.as_bytes().to_vec();
            let value = simd_json::to_owned_value(&mut bytes)
                .map_err(|err| BenchError::Simd(err.to_string()))?;
            black_box(simd_json::prelude::Writable::encode(&value));
        }
        Ok(())
    })?;
    Ok(if simd < serde {
        Ceiling {
            time: simd,
            parser: "simd-json",
        }
    } else {
        Ceiling {
            time: serde,
            parser: "serde_json",
        }
    })
}

/// Billed GB-seconds of one invocation: its duration rounded up to the millisecond.
fn gb_seconds(duration: Duration, memory_mb: u32) -> f64 {
    let billed_ms = duration.as_micros().div_ceil(1000) as f64;
    billed_ms / 1000.0 * f64::from(memory_mb) / 1024.0
}

impl BenchReport {
    /// The report as the table `bus bench` prints.
    pub fn table(&self) -> String {
        table::render(self)
    }
}
