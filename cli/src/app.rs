//! The `bus` command line: ride a route locally, lint its template, benchmark its stops,
//! generate data. Every stop is built through the registry it is given.

use crate::bench::Input;
use crate::bench::stream::stream;
use crate::bench::{BenchOptions, bench};
use crate::generate::{GenOptions, Schema, generate, megabytes};
use crate::ride::{ChaosOptions, InvokeOptions, RideOptions, aws_extensions, ride};
use crate::route_test::{TestOptions, run_tests};
use anyhow::{Context, Result};
use busline_core::forwarder::RetryPolicy;
use busline_core::route::Route;
use busline_core::{Extensions, Registry};
use busline_formats::Compression;
use busline_template::add_stop::{NewStop, add_stop};
use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// busline: serverless event-bus ETL. Rides a route locally with no AWS account.
#[derive(Parser)]
#[command(name = "bus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The template and its parameter overrides.
#[derive(Args)]
struct RouteArgs {
    /// The SAM template that describes the route.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Template parameter overrides, e.g. --parameter MaxReceiveCount=3.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
    parameters: Vec<(String, String)>,
}

impl RouteArgs {
    fn parameters(&self) -> HashMap<String, String> {
        self.parameters.iter().cloned().collect()
    }

    fn route(&self) -> Result<Route> {
        Ok(busline_template::read_route(
            &self.template,
            &self.parameters(),
        )?)
    }
}

/// Where the trip ledger is: a ride's output folder, or a deployed route's table.
#[derive(Args)]
struct LedgerArgs {
    /// The output folder of `bus ride` (its ledger/ folder).
    #[arg(long, default_value = "bus-out")]
    output: PathBuf,
    /// A deployed route's ledger table instead (the stack output TripLedgerTableName), read
    /// with the environment's AWS configuration (AWS_ENDPOINT_URL for a local cloud).
    #[arg(long, value_name = "TABLE")]
    ledger_table: Option<String>,
}

impl LedgerArgs {
    fn source(self) -> crate::trips::LedgerSource {
        match self.ledger_table {
            Some(table) => crate::trips::LedgerSource::Table(table),
            None => crate::trips::LedgerSource::Folder(self.output),
        }
    }
}

/// A deployed route: its CloudFormation stack and the template it was deployed from.
#[derive(Args)]
struct StackArgs {
    /// The stack's name (sam deploy's --stack-name). AWS is reached with the environment's
    /// configuration (AWS_PROFILE, AWS_REGION; AWS_ENDPOINT_URL for a local cloud).
    #[arg(long = "stack-name", alias = "stack", value_name = "STACK")]
    stack: String,
    /// The template the stack was deployed from; read with the stack's parameter values.
    #[command(flatten)]
    route: RouteArgs,
}

impl StackArgs {
    async fn connect(&self) -> Result<crate::operate::Deployed> {
        let deployed = crate::operate::Deployed::connect(
            busline_ops::OpsClients::load().await,
            &self.stack,
            &self.route.template,
            self.route.parameters(),
        )
        .await?;
        Ok(deployed)
    }
}

/// `bus dlq`'s actions.
#[derive(Subcommand)]
enum DlqAction {
    /// Each stop's dead-letter queue and how many buses it holds (or a ride's dead letters).
    List {
        #[command(flatten)]
        from: PlaceArgs,
        #[command(flatten)]
        print: Output,
    },
    /// The buses in one stop's dead-letter queue with their trip and reason; the queue keeps
    /// them (each is hidden for 30 s while it is read).
    Show {
        /// The stop (its STOP_NAME).
        stop: String,
        /// Most buses shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        from: PlaceArgs,
        #[command(flatten)]
        print: Output,
    },
    /// Send one stop's dead-lettered buses back to its queue, without their busline.*
    /// dead-letter attributes: all of them, or those of --trip and --message. Run it once the
    /// cause is fixed. Exits 1 when any bus could not be moved.
    Redrive {
        /// The stop (its STOP_NAME).
        stop: String,
        /// Only the buses of this trip (repeatable).
        #[arg(long = "trip", value_name = "TRIP")]
        trips: Vec<String>,
        /// Only this bus: its message id in the dead-letter queue, or in the stop's queue
        /// (busline.message-id). Repeatable.
        #[arg(long = "message", value_name = "ID")]
        messages: Vec<String>,
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        print: Output,
    },
}

/// Where a route's dead letters and quarantine files are: a deployed stack, or the output
/// folder `bus ride` left.
#[derive(Args)]
struct PlaceArgs {
    /// The deployed route's stack; without it, --output.
    #[arg(long = "stack-name", alias = "stack", value_name = "STACK")]
    stack: Option<String>,
    /// The output folder of `bus ride`.
    #[arg(long, default_value = "bus-out")]
    output: PathBuf,
    /// The route's template (its QUARANTINE_PREFIX; with --stack-name, its logical ids).
    #[command(flatten)]
    route: RouteArgs,
}

impl PlaceArgs {
    /// The deployed stack, when --stack-name names one.
    fn stack(&self) -> Option<StackArgs> {
        Some(StackArgs {
            stack: self.stack.clone()?,
            route: RouteArgs {
                template: self.route.template.clone(),
                parameters: self.route.parameters.clone(),
            },
        })
    }

    /// The store holding the quarantine files, and their key prefix.
    async fn quarantine(&self) -> Result<(Box<dyn busline_core::ports::ObjectStore>, String)> {
        match self.stack() {
            Some(stack) => {
                let deployed = stack.connect().await?;
                let store = crate::operate::data_bucket(&deployed)?;
                Ok((Box::new(store), deployed.route.quarantine_prefix.clone()))
            }
            None => {
                let route = self.route.route()?;
                let prefix = route
                    .stops
                    .iter()
                    .find_map(|s| s.env.get("QUARANTINE_PREFIX").cloned())
                    .unwrap_or_else(|| busline_core::config::DEFAULT_QUARANTINE_PREFIX.into());
                let folder = busline_embedded::FolderStore::new("bus-out", &self.output);
                Ok((Box::new(folder), prefix))
            }
        }
    }
}

/// `bus quarantine`'s actions.
#[derive(Subcommand)]
enum QuarantineAction {
    /// The quarantine files per trip and stop.
    List {
        /// Only this trip's.
        #[arg(long)]
        trip: Option<String>,
        #[command(flatten)]
        from: PlaceArgs,
        #[command(flatten)]
        print: Output,
    },
    /// One trip's rejected passengers with their stop, reason and data.
    Show {
        /// The trip.
        trip: String,
        /// Only those this stop rejected.
        #[arg(long)]
        stop: Option<String>,
        /// Most rejections shown.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        from: PlaceArgs,
        #[command(flatten)]
        print: Output,
    },
    /// Send corrected passengers to a stop's queue under their trip, and record them in the
    /// trip's ledger so the trip completes again with them (a new _SUCCESS, a new event). The
    /// file is a quarantine file or `bus quarantine show --json`, with each passenger's data
    /// fixed and its id kept. Replaying the same file again changes nothing.
    Replay {
        /// The file of corrected passengers (NDJSON or a JSON array).
        file: PathBuf,
        /// The trip they belong to.
        #[arg(long)]
        trip: String,
        /// The stop whose queue they go to, usually the one after the stop that rejected them.
        #[arg(long)]
        stop: String,
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        print: Output,
    },
}

/// How results are printed.
#[derive(Args)]
struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stop of the route in one process on embedded queues and a folder as S3.
    /// Exits 2 when any bus was dead-lettered.
    Ride {
        #[command(flatten)]
        route: RouteArgs,
        /// Folder of input objects (served under the first stop's INPUT_PREFIX, `input/` when
        /// it has none).
        #[arg(long, default_value = "samples/colors")]
        input: PathBuf,
        /// Folder standing in for the data bucket: output/, quarantine/ and dead-letter/ land here.
        #[arg(long, default_value = "bus-out")]
        output: PathBuf,
        /// Reuse a trip id: a replay writes the same object keys.
        #[arg(long)]
        trip_id: Option<String>,
        /// Batches in flight at once per stop (default: one per core).
        #[arg(long, default_value_t = default_concurrency())]
        concurrency: usize,
        /// Reach a stop through the Lambda Invoke API instead of building it here: STOP=URL for
        /// one stop, URL for every stop (e.g. http://127.0.0.1:9000 of `cargo lambda watch`).
        /// Start its function with the variables `bus env STOP` prints.
        #[arg(long = "invoke", value_name = "[STOP=]URL", value_parser = parse_invoke)]
        invoke: Vec<(Option<String>, String)>,
        /// Where the ride serves SQS and S3 for invoked functions (their AWS_ENDPOINT_URL).
        #[arg(long, default_value = busline_driver::DEFAULT_ADDRESS)]
        serve: SocketAddr,
        /// Inject faults into every stop built here, e.g. `all=5%,abort=2%,slow-read=1%@50ms`
        /// (faults: send, send-entry, visibility, object-5xx, object-throttle, slow-read,
        /// truncated-read, metrics, abort). The report counts them per stop.
        #[arg(long, value_name = "SPEC")]
        chaos: Option<busline_chaos::ChaosSpec>,
        /// The seed chaos draws from: the same seed injects the same faults.
        #[arg(long, default_value_t = 1, requires = "chaos")]
        seed: u64,
        #[command(flatten)]
        print: Output,
    },
    /// Print the variables a function needs to run one stop against `bus ride --invoke`, as
    /// NAME=VALUE lines (for `cargo lambda watch --env-file`).
    Env {
        /// The stop (its STOP_NAME).
        stop: String,
        #[command(flatten)]
        route: RouteArgs,
        /// The address `bus ride --serve` uses.
        #[arg(long, default_value = busline_driver::DEFAULT_ADDRESS)]
        serve: SocketAddr,
    },
    /// Check the route rules cfn-lint cannot know; exits 1 when any rule is broken.
    Lint {
        /// The SAM template to check.
        #[arg(default_value = "template.yaml")]
        template: PathBuf,
        /// Template parameter overrides, e.g. --parameter MaxReceiveCount=3.
        #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
        parameters: Vec<(String, String)>,
        #[command(flatten)]
        print: Output,
    },
    /// Run route tests: each case rides its template on the embedded bus with a fixed trip id
    /// (the whole route, or one stop fed passengers) and must produce its expected output
    /// records, lane passengers, quarantine reasons, dead letters and counts. Exit 1 on a failure.
    Test {
        /// Cases: a case folder (case.yaml, input/, expected/), a case file, or a folder of them.
        #[arg(default_value = "tests/routes")]
        paths: Vec<PathBuf>,
        /// The template of cases that name none.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Write what came out as each case folder's expected files (look at it first).
        #[arg(long)]
        bless: bool,
        /// A parameter override for every case, after the case's own, e.g. an API's address.
        #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
        parameters: Vec<(String, String)>,
        #[command(flatten)]
        print: Output,
    },
    /// Put a new stop into the template's route after another: its queue, dead-letter queue,
    /// function, policies, alarms and outputs, one parameter per setting; the stop before it is
    /// rewired to send to it. The template is rewritten in place (or printed with --print).
    AddStop {
        /// The new stop's name (STOP_NAME), e.g. enrich; logical ids use its CamelCase.
        name: String,
        /// The stop kind it runs.
        #[arg(long)]
        kind: String,
        /// The stop it comes after (its name or function logical id).
        #[arg(long)]
        after: String,
        /// The SAM template to change.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// The binary holding the kind (BuildProperties.Binary); the kind by default.
        #[arg(long)]
        binary: Option<String>,
        /// A setting of the new stop, e.g. --setting ENRICH_URL=https://api.example.com/;
        /// it becomes a template parameter (EnrichUrl) with this default.
        #[arg(long = "setting", value_name = "NAME=VALUE", value_parser = parse_pair)]
        settings: Vec<(String, String)>,
        /// Add the stop on a new lane of --after (LANE_<LANE>_QUEUE_URL), ending the branch,
        /// instead of between --after and its next stop.
        #[arg(long)]
        lane: Option<String>,
        /// A key prefix of the data bucket the new stop writes (s3:PutObject), e.g. audit/.
        #[arg(long = "writes", value_name = "PREFIX")]
        writes: Vec<String>,
        /// A key prefix of the data bucket the new stop reads (s3:GetObject).
        #[arg(long = "reads", value_name = "PREFIX")]
        reads: Vec<String>,
        /// A DynamoDB table the new stop writes, by its key: `id` (a string partition key) or
        /// `pk,sk:N` (attributes with `:S` or `:N`, string by default). The template gains the
        /// table and a policy to write it; the stop's TABLE_NAME names it.
        #[arg(long = "dynamodb-table", value_name = "KEY", value_parser = parse_table_key)]
        dynamodb_table: Option<TableKey>,
        /// A Secrets Manager secret (name or ARN) the new stop may read, e.g. the one its
        /// DATABASE_SECRET names.
        #[arg(long = "reads-secret", value_name = "SECRET")]
        reads_secret: Vec<String>,
        /// Print the new template instead of writing it.
        #[arg(long)]
        print: bool,
    },
    /// Benchmark each stop in process on generated data: throughput against the serde_json
    /// ceiling, SQS calls and billed requests per 10,000 records, cost per million records.
    Bench {
        #[command(flatten)]
        route: RouteArgs,
        /// Generated records.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// The columns of the generated records: colors or wide.
        #[arg(long, value_enum, default_value_t = Schema::Colors)]
        schema: Schema,
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
        /// Instead: the streaming check, the first stop after the depot over one generated CSV
        /// of this many MB, reporting throughput and peak RSS.
        #[arg(long, value_name = "MB")]
        stream_mb: Option<u64>,
        /// The streaming check's object compressed this way (gzip or zstd).
        #[arg(long, value_name = "COMPRESSION", value_parser = parse_compression)]
        stream_compression: Option<Compression>,
        #[command(flatten)]
        print: Output,
    },
    /// Show one trip's progress per stop from the ledger: its state, each stop's counts, each
    /// queue's passengers in flight, and where its manifest and reports are.
    Trip {
        /// The trip's id.
        trip: String,
        #[command(flatten)]
        ledger: LedgerArgs,
        #[command(flatten)]
        print: Output,
    },
    /// List the most recent trips with their state.
    Trips {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        ledger: LedgerArgs,
        #[command(flatten)]
        print: Output,
    },
    /// A deployed route now: each stop's waiting and in-flight buses, its dead letters, and
    /// the alarms not OK. Exits 2 when a dead-letter queue holds buses or an alarm is in ALARM.
    Status {
        #[command(flatten)]
        stack: StackArgs,
        /// Print it again every SECONDS until interrupted.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
        /// Minutes of metrics the passengers per minute are averaged over.
        #[arg(long, default_value_t = 5)]
        minutes: u64,
        #[command(flatten)]
        print: Output,
    },
    /// A deployed route's dead-letter queues: list them, show their buses, redrive them.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// The passengers a route's stops rejected, kept as NDJSON files under
    /// quarantine/trip=<trip>/<stop>/ of its data bucket (or of a ride's output folder).
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Write deterministic synthetic input in the colors schema.
    Gen {
        /// The columns: colors (Name, HEX, RGB) or wide (twenty columns of payments).
        #[arg(long, value_enum, default_value_t = Schema::Colors)]
        schema: Schema,
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
        #[arg(long, default_value = crate::generate::default_out().as_os_str())]
        out: PathBuf,
        /// Seed; the same seed writes the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Make every n-th record malformed (0: none).
        #[arg(long, default_value_t = 0)]
        bad_every: u64,
        /// Compress each file (gzip or zstd): part-00000.csv.gz.
        #[arg(long, value_name = "COMPRESSION", value_parser = parse_compression)]
        compress: Option<Compression>,
    },
}

/// `gzip` or `zstd`.
fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::from_name(text)?.ok_or_else(|| "expected gzip or zstd".to_owned())
}

/// One batch per stop and core: the stops share this process's cores, so more batches in flight
/// add memory, not speed (a 1 GB ride on 2 cores took as long with 4 as with 2, and 60 MiB more).
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `STOP=URL` or `URL`.
fn parse_invoke(text: &str) -> Result<(Option<String>, String), String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        return Ok((None, text.to_owned()));
    }
    match text.split_once('=') {
        Some((stop, url)) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok((Some(stop.to_owned()), url.to_owned()))
        }
        _ => Err(format!(
            "expected STOP=URL or URL with an http(s) URL, found {text:?}"
        )),
    }
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, found {text:?}"))
}

/// A DynamoDB table's key as `--dynamodb-table` gives it: attributes with their types.
#[derive(Debug, Clone)]
struct TableKey(Vec<(String, String)>);

/// `pk,sk:N` -> `[(pk, S), (sk, N)]`: a table key's attributes, strings unless `:N`.
fn parse_table_key(text: &str) -> Result<TableKey, String> {
    text.split(',')
        .map(|part| {
            let (name, kind) = part.trim().split_once(':').unwrap_or((part.trim(), "S"));
            if name.is_empty() || !matches!(kind, "S" | "N") {
                return Err(format!(
                    "expected attribute[:S|:N], comma-separated, found {part:?}"
                ));
            }
            Ok((name.to_owned(), kind.to_owned()))
        })
        .collect::<Result<_, _>>()
        .map(TableKey)
}

/// Runs `bus` with the stop kinds of `registry`: parses the arguments, runs the command, prints
/// an error with its causes on failure. Call it from a binary's `main`.
pub fn main(registry: Registry) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BUS_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command, registry) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, registry: Registry) -> Result<ExitCode> {
    match command {
        Command::Ride {
            route,
            input,
            output,
            trip_id,
            concurrency,
            invoke,
            serve,
            chaos,
            seed,
            print,
        } => {
            let options = RideOptions {
                route: route.route()?,
                registry,
                input,
                output,
                trip_id,
                concurrency,
                retry: RetryPolicy::default(),
                invoke: InvokeOptions::new(invoke, serve),
                chaos: chaos.map(|spec| ChaosOptions { spec, seed }),
                feed: None,
                extensions: Extensions::default(),
            };
            run_ride(options, print.json)
        }
        Command::Env { stop, route, serve } => {
            let route = route.route()?;
            let Some(spec) = route.stops.iter().find(|s| s.name == stop) else {
                let names: Vec<&str> = route.stops.iter().map(|s| s.name.as_str()).collect();
                anyhow::bail!(
                    "the route has no stop {stop}; its stops are {}",
                    names.join(", ")
                );
            };
            let env = busline_driver::function_env(&route, spec, &format!("http://{serve}"));
            print!("{}", busline_driver::env_file(&env));
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            paths,
            template,
            bless,
            parameters,
            print,
        } => {
            let options = TestOptions {
                paths,
                template,
                bless,
                parameters,
            };
            let report = runtime()?.block_on(run_tests(&options, &registry))?;
            emit(print.json, &report, || report.text())?;
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Lint {
            template,
            parameters,
            print,
        } => {
            let text = std::fs::read_to_string(&template)
                .with_context(|| format!("reading {}", template.display()))?;
            let parameters: HashMap<String, String> = parameters.into_iter().collect();
            let findings =
                busline_template::lint::lint(&text, &template.display().to_string(), &parameters)?;
            emit(print.json, &findings, || {
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
        Command::AddStop {
            name,
            kind,
            after,
            template,
            binary,
            settings,
            lane,
            writes,
            reads,
            dynamodb_table,
            reads_secret,
            print,
        } => {
            let stop = NewStop {
                name,
                kind,
                after,
                binary,
                settings,
                lane,
                writes,
                reads,
                table_key: dynamodb_table.map(|key| key.0).unwrap_or_default(),
                secrets: reads_secret,
            };
            run_add_stop(&template, &stop, print)
        }
        Command::Bench {
            route,
            records,
            schema,
            files,
            rounds,
            memory_mb,
            work,
            stream_mb,
            stream_compression,
            print,
        } => {
            let route = route.route()?;
            let runtime = runtime()?;
            if let Some(size_mb) = stream_mb {
                let input = Input {
                    records: size_mb * 1_000_000 / schema.bytes_per_record(),
                    files: 1,
                    compression: stream_compression,
                    schema,
                };
                let report = runtime.block_on(stream(&route, &registry, &input, &work))?;
                emit(print.json, &report, || report.line())?;
                return Ok(ExitCode::SUCCESS);
            }
            let options = BenchOptions {
                route,
                registry,
                input: Input {
                    records,
                    files,
                    compression: None,
                    schema,
                },
                work,
                rounds,
                memory_mb,
            };
            let report = runtime.block_on(bench(&options))?;
            emit(print.json, &report, || report.table())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trip {
            trip,
            ledger,
            print,
        } => {
            let source = ledger.source();
            let view = runtime()?.block_on(crate::trips::trip(&source, &trip))?;
            emit(print.json, &view, || {
                crate::trips::trip_text(&view, &source)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trips {
            limit,
            ledger,
            print,
        } => {
            let views = runtime()?.block_on(crate::trips::trips(&ledger.source(), limit))?;
            emit(print.json, &views, || crate::trips::trips_text(&views))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            stack,
            watch,
            minutes,
            print,
        } => {
            let window = std::time::Duration::from_secs(minutes.max(1) * 60);
            runtime()?.block_on(run_status(&stack, watch, window, print.json))
        }
        Command::Dlq { action } => runtime()?.block_on(run_dlq(action)),
        Command::Quarantine { action } => runtime()?.block_on(run_quarantine(action)),
        Command::Gen {
            schema,
            records,
            files,
            ndjson,
            out,
            seed,
            bad_every,
            compress,
        } => {
            let generated = generate(&GenOptions {
                schema,
                records,
                files,
                ndjson,
                out: out.clone(),
                seed,
                bad_every,
                compression: compress,
            })
            .with_context(|| format!("writing generated data to {}", out.display()))?;
            let compressed = match compress {
                Some(compression) => format!(
                    " ({} as {})",
                    megabytes(generated.file_bytes),
                    compression.name()
                ),
                None => String::new(),
            };
            println!(
                "wrote {records} records ({} malformed) in {} files, {}{compressed}, to {}",
                generated.bad,
                generated.files.len(),
                megabytes(generated.bytes),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `bus ride`: the ride with a progress line on a terminal, then its report; exit 2 when any
/// bus was dead-lettered.
fn run_ride(mut options: RideOptions, json: bool) -> Result<ExitCode> {
    let progress = progress_bar(!json && std::io::stderr().is_terminal());
    let report = runtime()?.block_on(async {
        options.extensions = aws_extensions().await;
        ride(options, |board| {
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
        })
        .await
    })?;
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

/// `bus add-stop`: the template rewritten in place, or printed.
fn run_add_stop(template: &std::path::Path, stop: &NewStop, print: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let edited = add_stop(&text, &template.display().to_string(), stop)?;
    if print {
        print!("{edited}");
    } else {
        write_atomically(template, &edited)?;
        let place = match &stop.lane {
            Some(lane) => format!("{} on its lane {lane}", stop.after),
            None => stop.after.clone(),
        };
        println!(
            "{}: stop {} (kind {}) now rides after {place}; run `bus lint` and `bus ride` to try it",
            template.display(),
            stop.name,
            stop.kind,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Replaces `path` with `text` through a temporary file beside it, so a failed write leaves the
/// old template whole.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    let mut file = tempfile::NamedTempFile::new_in(folder.unwrap_or(std::path::Path::new(".")))
        .with_context(|| format!("writing beside {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing beside {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

async fn run_status(
    stack: &StackArgs,
    watch: Option<u64>,
    window: std::time::Duration,
    json: bool,
) -> Result<ExitCode> {
    let deployed = stack.connect().await?;
    loop {
        let status = crate::operate::status(&deployed, window).await?;
        if watch.is_some() && !json && std::io::stdout().is_terminal() {
            // Clear the screen and go home, so each refresh replaces the last.
            print!("\x1b[2J\x1b[H");
        }
        emit(json, &status, || crate::operate::status_text(&status))?;
        let Some(seconds) = watch else {
            let troubled = status.dead_lettered() > 0 || status.alarming().next().is_some();
            return Ok(if troubled {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        };
        tokio::time::sleep(std::time::Duration::from_secs(seconds.max(1))).await;
    }
}

async fn run_dlq(action: DlqAction) -> Result<ExitCode> {
    use crate::operate as op;
    match action {
        DlqAction::List { from, print } => {
            let queues = match from.stack() {
                Some(stack) => op::dlq_list(&stack.connect().await?).await?,
                None => op::ride_dlq_list(&from.output)?,
            };
            emit(print.json, &queues, || op::dlq_list_text(&queues))?;
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Show {
            stop,
            limit,
            from,
            print,
        } => {
            let letters = match from.stack() {
                Some(stack) => op::dlq_show(&stack.connect().await?, &stop, limit).await?,
                None => op::ride_dead_letters(&from.output, Some(&stop), limit)?,
            };
            emit(print.json, &letters, || op::dlq_show_text(&stop, &letters))?;
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Redrive {
            stop,
            trips,
            messages,
            stack,
            print,
        } => {
            let filter = busline_ops::RedriveFilter { trips, messages };
            let report = op::dlq_redrive(&stack.connect().await?, &stop, &filter).await?;
            emit(print.json, &report, || op::dlq_redrive_text(&stop, &report))?;
            Ok(if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn run_quarantine(action: QuarantineAction) -> Result<ExitCode> {
    use crate::operate as op;
    match action {
        QuarantineAction::List { trip, from, print } => {
            let (store, prefix) = from.quarantine().await?;
            let at = busline_ops::quarantine_list(store.as_ref(), &prefix, trip.as_deref()).await?;
            emit(print.json, &at, || op::quarantine_list_text(&at))?;
        }
        QuarantineAction::Show {
            trip,
            stop,
            limit,
            from,
            print,
        } => {
            let (store, prefix) = from.quarantine().await?;
            let lines = busline_ops::quarantine_show(
                store.as_ref(),
                &prefix,
                &trip,
                stop.as_deref(),
                limit,
            )
            .await?;
            emit(print.json, &lines, || {
                op::quarantine_show_text(&trip, &lines)
            })?;
        }
        QuarantineAction::Replay {
            file,
            trip,
            stop,
            stack,
            print,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let passengers =
                busline_core::replay::read_passengers(&file.display().to_string(), &text)
                    .map_err(anyhow::Error::msg)?;
            let deployed = stack.connect().await?;
            let report = op::quarantine_replay(&deployed, &stop, &trip, &passengers).await?;
            emit(print.json, &report, || op::quarantine_replay_text(&report))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .build()
        .context("starting the async runtime")
}

/// How long an idle blocking thread (the local bucket's file reads and writes, extract's
/// parsers) is kept, instead of tokio's 10 s: an idle one still holds the allocator's pages of
/// what it parsed. A 1 GB `bus ride` peaked at 237 to 269 MiB with 10 s, 216 to 228 with this.
const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(100);

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_argument_parses_as_declared() {
        // clap checks that each field's type matches its argument's definition only here.
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "bus",
            "add-stop",
            "items",
            "--kind",
            "my-sink",
            "--after",
            "prepare",
            "--dynamodb-table",
            "pk,sk:N",
        ])
        .expect("parses");
        let Command::AddStop { dynamodb_table, .. } = cli.command else {
            panic!("add-stop")
        };
        assert_eq!(
            dynamodb_table.map(|key| key.0),
            Some(vec![("pk".into(), "S".into()), ("sk".into(), "N".into())])
        );
        let bad = Cli::try_parse_from([
            "bus",
            "add-stop",
            "x",
            "--kind",
            "k",
            "--after",
            "a",
            "--dynamodb-table",
            "pk:B",
        ]);
        assert!(bad.is_err());
    }
}
