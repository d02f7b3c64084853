//! `bench-peer`: one stop of the route against Powertools for AWS Lambda's BatchProcessor
//! (Python) running the same operations on the same records, one record per SQS message, in
//! the same run. Benchmark-only: `infra/bench` runs it; the shipped `bus` does not carry it.

mod peer;

use anyhow::{Context, Result, bail};
use busline_cli::bench::{BenchOptions, Input, bench_prepared};
use busline_cli::generate::Schema;
use clap::Parser;
use peer::{PeerOptions, run_peer};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// Compares one stop with the Powertools BatchProcessor peer on the same records.
#[derive(Parser)]
struct Args {
    /// The stop to compare (its STOP_NAME); the peer runs its TRANSFORM_OPS.
    #[arg(long)]
    stop: String,
    /// A Python with aws-lambda-powertools (infra/.venv-powertools/bin/python).
    #[arg(long)]
    python: PathBuf,
    /// The peer script.
    #[arg(long, default_value = "infra/powertools-peer")]
    script: PathBuf,
    /// The SAM template that describes the route.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Generated records.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Files they are spread over.
    #[arg(long, default_value_t = 10)]
    files: u64,
    /// Timed rounds (the fastest counts).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Scratch folder.
    #[arg(long, default_value = "data/bench-peer")]
    work: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The comparison.
#[derive(Debug, Serialize)]
struct PeerReport {
    stop: String,
    /// The stop's passengers per second of handler time.
    passengers_per_sec: f64,
    /// The peer's records per second of handler time.
    peer_records_per_sec: f64,
    /// The stop's rate over the peer's.
    ratio: f64,
    /// The wire codec's rate alone (see `bus bench`) over the peer's: the most the stop's
    /// ratio could be while its buses are compressed. `None` when none was.
    codec_ratio: Option<f64>,
    peer: peer::PeerResult,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let route = busline_template::read_route(&args.template, &HashMap::new())?;
    let options = BenchOptions {
        route,
        registry: busline_builtin::registry(),
        input: Input {
            records: args.records,
            files: args.files,
            compression: None,
            schema: Schema::Colors,
        },
        work: args.work.clone(),
        rounds: args.rounds,
        memory_mb: 256,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (report, prepared) = runtime.block_on(async {
        let prepared = options.prepare().await?;
        let report = bench_prepared(&prepared, &options).await?;
        anyhow::Ok((report, prepared))
    })?;
    let Some(mine) = report.stops.iter().find(|s| s.stop == args.stop) else {
        bail!("the route has no stop named {}", args.stop);
    };
    let Some(stage) = prepared.stages.iter().find(|s| s.spec.name == args.stop) else {
        bail!("stop {} reads no queue", args.stop);
    };
    let peer = run_peer(
        &PeerOptions {
            python: args.python,
            script: args.script,
        },
        stage,
        &args.work,
        args.rounds,
    )?;
    let peer_records_per_sec = peer.records as f64 / peer.secs;
    let result = PeerReport {
        stop: args.stop,
        passengers_per_sec: mine.passengers_per_sec,
        peer_records_per_sec,
        ratio: mine.passengers_per_sec / peer_records_per_sec,
        codec_ratio: mine
            .codec_passengers_per_sec
            .map(|codec| codec / peer_records_per_sec),
        peer,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "peer: Powertools for AWS Lambda BatchProcessor, {} one-record messages of {}'s records: {:.0} records/s; {} is {:.0}x faster ({:.0} passengers/s)",
            result.peer.records,
            result.stop,
            result.peer_records_per_sec,
            result.stop,
            result.ratio,
            result.passengers_per_sec
        );
        if let Some(codec) = result.codec_ratio {
            println!(
                "peer: zstd alone (expanding {stop}'s buses and compressing what it sends) runs {codec:.0}x the peer's records/s, the most {stop} could reach while its buses are compressed",
                stop = result.stop
            );
        }
    }
    Ok(())
}
