//! `bus`: ride a busline route locally, lint its template, benchmark its stops, generate data.

use anyhow::{Context, Result};
use busline_cli::bench::peer::PeerOptions;
use busline_cli::bench::stream::stream;
use busline_cli::bench::{BenchOptions, bench};
use busline_cli::generate::{GenOptions, generate, megabytes};
use busline_cli::ride::{RideOptions, ride};
use busline_core::forwarder::RetryPolicy;
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// busline: serverless event-bus ETL. Rides a route locally with no AWS account.
#[derive(Parser)]
#[command(name = "bus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stop of the route in one process on embedded queues and a folder as S3.
    /// Exits 2 when any bus was dead-lettered.
    Ride {
        /// The SAM template that describes the route.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Folder of input objects (served under the depot's INPUT_PREFIX).
        #[arg(long, default_value = "samples/colors")]
        input: PathBuf,
        /// Folder standing in for the data bucket: output/, quarantine/ and dead-letter/ land here.
        #[arg(long, default_value = "bus-out")]
        output: PathBuf,
        /// Reuse a trip id: a replay writes the same object keys.
        #[arg(long)]
        trip_id: Option<String>,
        /// Template parameter overrides, e.g. --parameter MaxReceiveCount=3.
        #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
        parameters: Vec<(String, String)>,
        /// Batches in flight at once per stop.
        #[arg(long, default_value_t = default_concurrency())]
        concurrency: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the route rules cfn-lint cannot know; exits 1 when any rule is broken.
    Lint {
        /// The SAM template to check.
        #[arg(default_value = "template.yaml")]
        template: PathBuf,
        /// Template parameter overrides, e.g. --parameter MaxReceiveCount=3.
        #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
        parameters: Vec<(String, String)>,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark each stop in process on generated data: throughput against the serde_json
    /// ceiling, SQS calls and billed requests per 10,000 records, cost per million records.
    Bench {
        /// The SAM template that describes the route.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Template parameter overrides, e.g. --parameter BusByteBudget=131072.
        #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
        parameters: Vec<(String, String)>,
        /// Generated records.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Files they are spread over.
        #[arg(long, default_value_t = 10)]
        files: u64,
        /// Timed rounds per stop (the fastest counts).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Lambda memory for GB-seconds (the template's MemorySize).
        #[arg(long, default_value_t = 256)]
        memory_mb: u32,
        /// Scratch folder for the generated input.
        #[arg(long, default_value = "data/bench")]
        work: PathBuf,
        /// Also run the Powertools BatchProcessor peer with this Python
        /// (infra/.venv-powertools/bin/python after ./infra/install).
        #[arg(long, value_name = "PYTHON")]
        powertools: Option<PathBuf>,
        /// The peer script.
        #[arg(long, default_value = "infra/powertools-peer")]
        peer_script: PathBuf,
        /// Instead: the streaming check, extract over one generated CSV of this many MB,
        /// reporting throughput and peak RSS.
        #[arg(long, value_name = "MB")]
        stream_mb: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write deterministic synthetic input in the colors schema.
    Gen {
        /// Records in all.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Files to spread them over.
        #[arg(long, default_value_t = 10)]
        files: u64,
        /// Write NDJSON instead of CSV.
        #[arg(long)]
        ndjson: bool,
        /// Output folder.
        #[arg(long, default_value = busline_cli::generate::default_out().as_os_str())]
        out: PathBuf,
        /// Seed; the same seed writes the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Make every n-th record malformed (0: none).
        #[arg(long, default_value_t = 0)]
        bad_every: u64,
    },
}

// Passengers are many small allocations; see the workspace's note on mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, found {text:?}"))
}

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BUS_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Ride {
            template,
            input,
            output,
            trip_id,
            parameters,
            concurrency,
            json,
        } => {
            let parameters: HashMap<String, String> = parameters.into_iter().collect();
            let route = busline_template::read_route(&template, &parameters)?;
            let options = RideOptions {
                route,
                input,
                output,
                trip_id,
                concurrency,
                retry: RetryPolicy::default(),
                wrap: None,
            };
            let progress = progress_bar(!json && std::io::stderr().is_terminal());
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let report = runtime.block_on(ride(options, |board| {
                if let Some(bar) = &progress {
                    let line: Vec<String> = board
                        .snapshot()
                        .iter()
                        .map(|(stop, t)| {
                            format!("{stop} {}", t.counts.passengers_in + t.counts.picked_up)
                        })
                        .collect();
                    bar.set_message(line.join(" · "));
                }
            }))?;
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
            emit(json, &report, || report.table())?;
            Ok(if report.dead_lettered() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Lint {
            template,
            parameters,
            json,
        } => {
            let text = std::fs::read_to_string(&template)
                .with_context(|| format!("reading {}", template.display()))?;
            let parameters: HashMap<String, String> = parameters.into_iter().collect();
            let findings =
                busline_template::lint::lint(&text, &template.display().to_string(), &parameters)?;
            emit(json, &findings, || {
                let mut text: String = findings.iter().map(|f| format!("{f}\n")).collect();
                text.push_str(&format!(
                    "{}: {} finding(s)\n",
                    template.display(),
                    findings.len()
                ));
                text
            })?;
            Ok(if findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench {
            template,
            parameters,
            records,
            files,
            rounds,
            memory_mb,
            work,
            stream_mb,
            powertools,
            peer_script,
            json,
        } => {
            let parameters: HashMap<String, String> = parameters.into_iter().collect();
            let route = busline_template::read_route(&template, &parameters)?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            if let Some(size_mb) = stream_mb {
                let report = runtime.block_on(stream(&route, size_mb, &work))?;
                emit(json, &report, || report.line())?;
                return Ok(ExitCode::SUCCESS);
            }
            let options = BenchOptions {
                route,
                records,
                files,
                work,
                rounds,
                memory_mb,
                peer: powertools.map(|python| PeerOptions {
                    python,
                    script: peer_script,
                }),
            };
            let report = runtime.block_on(bench(&options))?;
            emit(json, &report, || report.table())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gen {
            records,
            files,
            ndjson,
            out,
            seed,
            bad_every,
        } => {
            let generated = generate(&GenOptions {
                records,
                files,
                ndjson,
                out: out.clone(),
                seed,
                bad_every,
            })
            .with_context(|| format!("writing generated data to {}", out.display()))?;
            println!(
                "wrote {records} records ({} malformed) in {} files, {}, to {}",
                generated.bad,
                generated.files.len(),
                megabytes(generated.bytes),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints `value` as pretty JSON, or `text()` for people.
fn emit<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn progress_bar(show: bool) -> Option<indicatif::ProgressBar> {
    show.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    })
}
