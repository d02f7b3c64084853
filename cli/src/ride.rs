//! `bus ride`: the whole route of a template in one process, on the embedded backends, with
//! every stop built through the registry.

use crate::report::{DeadLetter, Quarantined, RideReport, StopReport};
use busline_chaos::{ChaosHandler, ChaosSpec, FaultCounts, StopChaos};
use busline_core::config::DEFAULT_QUARANTINE_PREFIX;
use busline_core::envelope::{
    BusHeader, ENVELOPE_SUFFIX, Passenger, PayloadPointer, decode_envelope,
};
use busline_core::forwarder::RetryPolicy;
use busline_core::id::stable_id;
use busline_core::ledger::{
    CollectedEvents, Ledger, MANIFEST_NAME, MemoryLedger, TripBook, TripTotals,
};
use busline_core::ports::{ObjectStore, OutgoingMessage};
use busline_core::processor::dead_letter_attributes as attr;
use busline_core::quarantine;
use busline_core::route::{Route, StopSpec};
use busline_core::{
    BatchHandler, Extensions, InitError, Invocation, Ports, ReadyStop, Registry, TripError,
    TripHandler, TripRequest,
};
use busline_driver::{InvokedDepot, InvokedStop, Invoker, Served};
use busline_embedded::queue::attribute;
use busline_embedded::{
    BusStop, EmbeddedBus, EmbeddedQueues, FolderStore, ManualClock, MemoryQueue, MetricsBoard,
    QueueSettings,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::sync::Notify;

/// Visible bytes a stop's queue may hold before senders wait (embedded flow control only:
/// it bounds memory when one stop outruns the next; SQS itself has no such limit).
pub const BACKLOG_LIMIT: usize = 16 * 1024 * 1024;

/// Where trips' output goes (and so their `_SUCCESS` manifest) when the first stop names no
/// `TRIP_OUTPUT_PREFIX`.
pub const DEFAULT_TRIP_OUTPUT_PREFIX: &str = "output/";

/// Where `--input` is served when the first stop names no `INPUT_PREFIX`.
pub const DEFAULT_INPUT_PREFIX: &str = "input/";

/// What to ride.
pub struct RideOptions {
    /// The route.
    pub route: Route,
    /// The stop kinds the route's stops are built from.
    pub registry: Registry,
    /// Folder served under the first stop's `INPUT_PREFIX`.
    pub input: PathBuf,
    /// Folder standing in for the data bucket: output, quarantine and dead-letter reports land here.
    pub output: PathBuf,
    /// Reuse a trip id (a replay); a new one when `None`.
    pub trip_id: Option<String>,
    /// Batches in flight at once per stop (the event source's MaximumConcurrency).
    pub concurrency: usize,
    /// How failed sends are retried.
    pub retry: RetryPolicy,
    /// Stops reached through the Lambda Invoke API instead of built in process.
    pub invoke: InvokeOptions,
    /// Faults to inject into every stop built here (not the depot, whose caller retries a
    /// trip that does not start, nor invoked stops, which read their own `BUSLINE_CHAOS`).
    pub chaos: Option<ChaosOptions>,
    /// Ride one stop alone instead of the route: these passengers board one bus to it, and
    /// what it forwards stays on its lanes' queues for the report.
    pub feed: Option<Feed>,
    /// What the stops built here are offered beside the embedded ports, such as the AWS
    /// configuration a stop that writes DynamoDB needs ([`aws_extensions`]).
    pub extensions: Extensions,
}

/// One stop ridden alone (`bus test` cases for a single stop).
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// The stop's name.
    pub stop: String,
    /// The passengers on the one bus it receives.
    pub passengers: Vec<Passenger>,
}

/// `bus ride --chaos SPEC --seed N`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosOptions {
    /// Which faults, how often.
    pub spec: ChaosSpec,
    /// The seed the faults are drawn from: the same seed injects the same faults.
    pub seed: u64,
}

/// Which stops run elsewhere, reached through the Lambda Invoke API (`bus ride --invoke`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeOptions {
    /// The Invoke API endpoint of every stop not named in `stops`, if any.
    pub all: Option<String>,
    /// The endpoint of each named stop.
    pub stops: HashMap<String, String>,
    /// Where the driver serves SQS and S3 for those functions (their `AWS_ENDPOINT_URL`).
    pub serve: SocketAddr,
}

impl Default for InvokeOptions {
    fn default() -> Self {
        InvokeOptions {
            all: None,
            stops: HashMap::new(),
            serve: SocketAddr::from(([127, 0, 0, 1], 4577)),
        }
    }
}

impl InvokeOptions {
    /// From `--invoke` targets (`(Some(stop), url)` for one stop, `(None, url)` for all) and
    /// the driver's address.
    pub fn new(targets: Vec<(Option<String>, String)>, serve: SocketAddr) -> Self {
        let mut options = InvokeOptions {
            serve,
            ..InvokeOptions::default()
        };
        for (stop, url) in targets {
            match stop {
                Some(stop) => {
                    options.stops.insert(stop, url);
                }
                None => options.all = Some(url),
            }
        }
        options
    }

    /// The endpoint stop `stop` is invoked at, if it runs elsewhere.
    pub fn endpoint(&self, stop: &str) -> Option<&str> {
        self.stops
            .get(stop)
            .or(self.all.as_ref())
            .map(String::as_str)
    }

    fn any(&self) -> bool {
        self.all.is_some() || !self.stops.is_empty()
    }
}

/// Why a ride could not run.
#[derive(Debug, Error)]
pub enum RideError {
    /// A stop could not be built.
    #[error("stop {stop} ({function}){}", missing_hint(.source))]
    Init {
        /// The stop.
        stop: String,
        /// Its function's logical id.
        function: String,
        /// What is wrong, naming the variable, resource or kind.
        #[source]
        source: InitError,
    },
    /// The route refers to a queue the template does not declare, or similar.
    #[error("route: {0}")]
    Route(String),
    /// The input folder does not exist.
    #[error("input folder {0} does not exist")]
    MissingInput(PathBuf),
    /// The trip could not start.
    #[error("the first stop could not start the trip")]
    Trip(#[source] TripError),
    /// The bus stopped early.
    #[error(transparent)]
    Bus(#[from] busline_embedded::RideError),
    /// Writing a report object failed.
    #[error("writing report")]
    Report(#[source] busline_core::PortError),
    /// A report line could not be serialized.
    #[error("serializing report: {0}")]
    Serialize(String),
    /// The local driver could not serve the invoked functions.
    #[error(transparent)]
    Driver(#[from] busline_driver::DriverError),
}

/// Rides the route once; `on_batch` runs after every batch (for a progress display).
pub async fn ride(
    options: RideOptions,
    on_batch: impl FnMut(&MetricsBoard),
) -> Result<RideReport, RideError> {
    let started = Instant::now();
    let route = &options.route;
    if !options.input.is_dir() {
        return Err(RideError::MissingInput(options.input.clone()));
    }
    let (first, riders) = route
        .stops
        .split_first()
        .ok_or_else(|| RideError::Route("the route has no stops".into()))?;
    let fed = match &options.feed {
        Some(feed) => Some(fed_stop(route, feed)?),
        None => None,
    };
    let riding: Vec<&StopSpec> = riders
        .iter()
        .filter(|s| fed.is_none_or(|fed| fed.name == s.name))
        .collect();
    let clock = Arc::new(ManualClock::default());
    let signal = Arc::new(Notify::new());
    let queues = Arc::new(build_queues(route, &riding, &clock, &signal)?);
    let metrics = Arc::new(MetricsBoard::default());
    let ledger = Arc::new(MemoryLedger::default());
    let ports = Ports {
        queues: queues.clone(),
        objects: Arc::new(bucket(first, &options)),
        metrics: metrics.clone(),
        retry: options.retry,
        trips: keeps_ledger(&options, first)?.then(|| TripBook {
            ledger: ledger.clone(),
            events: Arc::new(CollectedEvents::default()),
            output_prefix: setting(first, "TRIP_OUTPUT_PREFIX", DEFAULT_TRIP_OUTPUT_PREFIX),
            retry: options.retry,
        }),
    };

    // Invoked functions reach the same queues and bucket through the driver's endpoints.
    let _served = serve_invoked(&options.invoke, &ports).await?;
    let mut invokers = Invokers::default();
    let mut chaoses = HashMap::new();
    let mut bus_stops = Vec::new();
    for spec in riding {
        bus_stops
            .push(bus_stop(spec, &options, &ports, &queues, &mut invokers, &mut chaoses).await?);
    }
    let trip_id = match (&options.feed, fed) {
        (Some(feed), Some(spec)) => board_feed(route, spec, feed, &options, &queues)?,
        _ => {
            let depot = trip_handler(first, &options, &ports, &mut invokers).await?;
            let request = TripRequest {
                trip_id: options.trip_id.clone(),
                ..TripRequest::default()
            };
            depot
                .handle_trip(request, &Invocation::default())
                .await
                .map_err(RideError::Trip)?
                .trip_id
        }
    };

    let mut on_batch = on_batch;
    EmbeddedBus::new(clock, signal, bus_stops)
        .run(|| on_batch(&metrics))
        .await?;

    let forwarded = match fed {
        Some(spec) => drain_lanes(spec, &queues)?,
        None => BTreeMap::new(),
    };
    let quarantined = read_quarantine(route, ports.objects.as_ref(), &trip_id).await?;
    let dead_letters = drain_dead_letters(route, &queues)?;
    write_dead_letters(ports.objects.as_ref(), &trip_id, &dead_letters).await?;
    let trip = match &ports.trips {
        Some(_) => Some(save_ledger(ports.objects.as_ref(), &ledger, &trip_id).await?),
        None => None,
    };
    let manifest = match (
        &ports.trips,
        trip.as_ref().and_then(|t| t.completion.as_ref()),
    ) {
        (Some(book), Some(_)) => Some(options.output.join(format!(
            "{}trip={trip_id}/{MANIFEST_NAME}",
            book.output_prefix
        ))),
        _ => None,
    };
    let faults = chaoses
        .iter()
        .map(|(stop, chaos)| (stop.clone(), chaos.injected()))
        .collect();
    let mut stops = stop_reports(&options, &metrics, &queues, &dead_letters, &faults);
    if let Some(fed) = fed {
        stops.retain(|report| report.stop == fed.name);
    }
    Ok(RideReport {
        trip_id,
        forwarded,
        route: route.name.clone(),
        output: options.output.clone(),
        elapsed: started.elapsed(),
        stops,
        quarantined,
        dead_letters,
        trip,
        manifest,
    })
}

/// The embedded bus keeps the ledger unless the route's `TRIP_LEDGER` is `off`, a stop runs
/// elsewhere (an invoked function keeps its own, if any) or one stop is ridden alone (no depot
/// starts its trip).
fn keeps_ledger(options: &RideOptions, first: &StopSpec) -> Result<bool, RideError> {
    let on = busline_core::ledger::ledger_on(&first.env)
        .map_err(|err| RideError::Route(err.to_string()))?;
    Ok(on
        && options.feed.is_none()
        && options.invoke.all.is_none()
        && options.invoke.stops.is_empty())
}

/// Writes the trip's ledger to `ledger/trip=<trip>.json` in the bucket folder, where `bus
/// trip` reads it; its totals.
async fn save_ledger(
    objects: &dyn ObjectStore,
    ledger: &MemoryLedger,
    trip: &str,
) -> Result<TripTotals, RideError> {
    let key = embedded_ledger_key(trip);
    objects
        .put(&key, ledger.to_json().into_bytes(), "application/json")
        .await
        .map_err(RideError::Report)?;
    let totals = ledger.totals(trip).await.map_err(RideError::Report)?;
    Ok(totals.unwrap_or_default())
}

/// Where a ride leaves its trip's ledger in the bucket folder.
pub fn embedded_ledger_key(trip: &str) -> String {
    format!("ledger/trip={trip}.json")
}

/// The stop a feed names; it must read a queue (a depot starts trips, it is not fed).
fn fed_stop<'r>(route: &'r Route, feed: &Feed) -> Result<&'r StopSpec, RideError> {
    let names = || {
        let names: Vec<&str> = route.stops.iter().map(|s| s.name.as_str()).collect();
        names.join(", ")
    };
    let spec = route
        .stops
        .iter()
        .find(|s| s.name == feed.stop)
        .ok_or_else(|| {
            RideError::Route(format!(
                "the route has no stop {}; its stops are {}",
                feed.stop,
                names()
            ))
        })?;
    if spec.queue.is_none() {
        return Err(RideError::Route(format!(
            "stop {} reads no queue, so it cannot be fed passengers (it starts trips)",
            spec.name
        )));
    }
    Ok(spec)
}

/// Puts the feed's passengers on one bus in the stop's queue; the trip id they ride under.
fn board_feed(
    route: &Route,
    spec: &StopSpec,
    feed: &Feed,
    options: &RideOptions,
    queues: &EmbeddedQueues,
) -> Result<String, RideError> {
    let trip = options.trip_id.clone().unwrap_or_else(|| "test".to_owned());
    let header = BusHeader {
        trip: trip.clone(),
        route: route.name.clone(),
        from: "bus test".into(),
        hop: 1,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let riders = feed
        .passengers
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| RideError::Serialize(err.to_string()))?;
    let bus = stable_id(&[&trip, &spec.name, "fed"]);
    let body = format!(
        "{}{}{ENVELOPE_SUFFIX}",
        header.json_prefix(&bus),
        riders.join(",")
    );
    let queue = queues
        .get(spec.queue.as_deref().unwrap_or_default())
        .map_err(|err| RideError::Route(err.to_string()))?;
    queue
        .send(&OutgoingMessage {
            body,
            attributes: Vec::new(),
        })
        .map_err(|err| RideError::Route(err.to_string()))?;
    Ok(trip)
}

/// What a stop ridden alone forwarded, by lane: the passengers of the buses on each lane's queue.
fn drain_lanes(
    spec: &StopSpec,
    queues: &EmbeddedQueues,
) -> Result<BTreeMap<String, Vec<Passenger>>, RideError> {
    let mut forwarded = BTreeMap::new();
    for (lane, queue) in spec.lanes() {
        let queue = queues
            .get(queue)
            .map_err(|err| RideError::Route(err.to_string()))?;
        let mut passengers = Vec::new();
        for message in queue.drain() {
            let envelope = decode_envelope::<Passenger>(&message.body).map_err(|err| {
                RideError::Route(format!(
                    "a bus {} forwarded on lane {lane}: {err}",
                    spec.name
                ))
            })?;
            passengers.extend(envelope.passengers);
        }
        forwarded.insert(lane, passengers);
    }
    Ok(forwarded)
}

/// One row per stop: what the metrics board tallied, and what the queues saw.
fn stop_reports(
    options: &RideOptions,
    metrics: &MetricsBoard,
    queues: &EmbeddedQueues,
    dead_letters: &[DeadLetter],
    faults: &HashMap<String, FaultCounts>,
) -> Vec<StopReport> {
    let tallies = metrics.snapshot();
    options
        .route
        .stops
        .iter()
        .map(|spec| {
            let tally = tallies.get(&spec.name).cloned().unwrap_or_default();
            let retried = spec
                .queue
                .as_deref()
                .and_then(|q| queues.get(q).ok())
                .map(|q| q.stats().redelivered)
                .unwrap_or_default();
            let dead_lettered = dead_letters.iter().filter(|d| d.stop == spec.name).count() as u64;
            let invoked = options.invoke.endpoint(&spec.name).is_some();
            let mut report = StopReport::new(&spec.name, tally, retried, dead_lettered, invoked);
            report.ends_route = spec.lanes().is_empty();
            report.faults = faults.get(&spec.name).cloned();
            report
        })
        .collect()
}

/// What starts the trip: the first stop built from its kind here, or invoked.
async fn trip_handler(
    first: &StopSpec,
    options: &RideOptions,
    ports: &Ports,
    invokers: &mut Invokers,
) -> Result<Box<dyn TripHandler>, RideError> {
    Ok(match options.invoke.endpoint(&first.name) {
        Some(endpoint) => Box::new(InvokedDepot::new(invokers.get(endpoint).await, &first.kind)),
        None => Box::new(
            build(options, first, ports)
                .await?
                .into_depot(&first.kind)
                .map_err(|err| init_error(first, err))?,
        ),
    })
}

/// The driver's endpoints, when any stop is invoked.
async fn serve_invoked(invoke: &InvokeOptions, ports: &Ports) -> Result<Option<Served>, RideError> {
    if !invoke.any() {
        return Ok(None);
    }
    let served =
        busline_driver::serve(invoke.serve, ports.queues.clone(), ports.objects.clone()).await?;
    tracing::info!(
        endpoint = served.endpoint(),
        "the local driver serves SQS and S3 for invoked stops"
    );
    Ok(Some(served))
}

/// One Invoke API client per endpoint.
#[derive(Default)]
struct Invokers(HashMap<String, Invoker>);

impl Invokers {
    async fn get(&mut self, endpoint: &str) -> Invoker {
        if let Some(invoker) = self.0.get(endpoint) {
            return invoker.clone();
        }
        let invoker = Invoker::new(endpoint).await;
        self.0.insert(endpoint.to_owned(), invoker.clone());
        invoker
    }
}

/// The stop of `spec` on the bus: built from its kind here, or invoked where `--invoke` says.
async fn bus_stop(
    spec: &StopSpec,
    options: &RideOptions,
    ports: &Ports,
    queues: &EmbeddedQueues,
    invokers: &mut Invokers,
    chaoses: &mut HashMap<String, StopChaos>,
) -> Result<BusStop, RideError> {
    let queue_name = spec.queue.as_deref().unwrap_or_default();
    let (processor, timeout): (Arc<dyn BatchHandler>, _) = match options.invoke.endpoint(&spec.name)
    {
        Some(endpoint) => {
            let stop = InvokedStop::new(
                invokers.get(endpoint).await,
                &spec.kind,
                &spec.name,
                &options.route.name,
                queue_name,
                ports.metrics.clone(),
            );
            // The function's own host keeps its time.
            (Arc::new(stop), None)
        }
        None => {
            let chaos = options
                .chaos
                .as_ref()
                .map(|chaos| StopChaos::new(chaos.spec.clone(), chaos.seed, &spec.name));
            let ports = match &chaos {
                Some(chaos) => chaos.ports(ports),
                None => ports.clone(),
            };
            let processor: Arc<dyn BatchHandler> = Arc::new(
                build(options, spec, &ports)
                    .await?
                    .into_bus(&spec.kind)
                    .map_err(|err| init_error(spec, err))?,
            );
            let processor = match chaos {
                Some(chaos) => {
                    chaoses.insert(spec.name.clone(), chaos.clone());
                    Arc::new(ChaosHandler::new(processor, chaos))
                }
                None => processor,
            };
            (processor, Some(spec.timeout))
        }
    };
    Ok(BusStop {
        name: spec.name.clone(),
        queue: queues
            .get(queue_name)
            .map_err(|err| RideError::Route(err.to_string()))?
            .clone(),
        batch_size: spec.batch_size,
        max_concurrency: options.concurrency,
        timeout,
        processor,
    })
}

/// The AWS configuration of the environment and Secrets Manager, offered to stops that reach
/// AWS themselves (a DynamoDB table, a database's secret) when the environment names a region
/// or a profile; the queues and the bucket stay embedded. Without either nothing is offered,
/// so a ride never waits on instance metadata.
pub async fn aws_extensions() -> Extensions {
    let named = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| !v.is_empty()));
    if !named {
        return Extensions::default();
    }
    let shared = busline_aws::clients::load_config().await;
    busline_aws::AwsClients::from_config(&shared).extensions(&shared)
}

/// The folder standing in for the data bucket (named by the first stop's `DATA_BUCKET`), with
/// `--input` served under its `INPUT_PREFIX`.
fn bucket(first: &StopSpec, options: &RideOptions) -> FolderStore {
    FolderStore::new(setting(first, "DATA_BUCKET", "DataBucket"), &options.output)
        .mount(input_prefix(first), &options.input)
}

/// Where the first stop reads input: its `INPUT_PREFIX`, [`DEFAULT_INPUT_PREFIX`] without one.
pub fn input_prefix(first: &StopSpec) -> String {
    setting(first, "INPUT_PREFIX", DEFAULT_INPUT_PREFIX)
}

/// A stop's setting `name`, or `default` when unset or empty.
fn setting(spec: &StopSpec, name: &str, default: &str) -> String {
    spec.env
        .get(name)
        .filter(|value| !value.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

/// Builds the stop of `spec` from its kind in `registry`, over the embedded ports.
async fn build(
    options: &RideOptions,
    spec: &StopSpec,
    ports: &Ports,
) -> Result<ReadyStop, RideError> {
    options
        .registry
        .build(
            &spec.kind,
            Arc::new(spec.env.clone()),
            ports.clone(),
            options.extensions.clone(),
        )
        .await
        .map_err(|err| init_error(spec, err))
}

fn init_error(spec: &StopSpec, source: InitError) -> RideError {
    RideError::Init {
        stop: spec.name.clone(),
        function: spec.function.clone(),
        source,
    }
}

/// What to do when a stop needs something the ride did not offer (see [`aws_extensions`]).
fn missing_hint(source: &InitError) -> &'static str {
    match source {
        InitError::Missing { .. } => {
            "; bus ride offers the AWS configuration and a secret store (Secrets Manager) only \
             when AWS_REGION or AWS_PROFILE is set, with AWS_ENDPOINT_URL for an emulator"
        }
        _ => "",
    }
}

/// One embedded queue per queue of the template, dead-letter queues wired by their redrive
/// policy; the queues `riding` stops read hold a bounded backlog (a queue nobody reads in this
/// ride, such as a lane out of a stop ridden alone, holds all it is sent).
fn build_queues(
    route: &Route,
    riding: &[&StopSpec],
    clock: &Arc<ManualClock>,
    signal: &Arc<Notify>,
) -> Result<EmbeddedQueues, RideError> {
    let mut queues = EmbeddedQueues::default();
    // Dead-letter queues first, so the queues that redrive into them can point at them.
    let mut pending: Vec<_> = route.queues.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for spec in pending {
            let dead_letter = match &spec.dead_letter_queue {
                None => None,
                Some(name) => match queues.get(name) {
                    Ok(queue) => Some(queue.clone()),
                    Err(_) if route.queue(name).is_some() => {
                        waiting.push(spec);
                        continue;
                    }
                    Err(_) => {
                        return Err(RideError::Route(format!(
                            "queue {} redrives to {name}, which is not an AWS::SQS::Queue of the template",
                            spec.name
                        )));
                    }
                },
            };
            let settings = QueueSettings {
                visibility_timeout: spec.visibility_timeout,
                retention: spec.retention,
                max_receive_count: spec.max_receive_count,
                dead_letter,
            };
            let mut queue = MemoryQueue::new(spec.name.clone(), settings, clock.clone())
                .with_signal(signal.clone());
            if riding
                .iter()
                .any(|stop| stop.queue.as_deref() == Some(spec.name.as_str()))
            {
                queue = queue.with_backlog_limit(BACKLOG_LIMIT);
            }
            queues.insert(Arc::new(queue));
        }
        if waiting.len() == before {
            let names: Vec<&str> = waiting.iter().map(|q| q.name.as_str()).collect();
            return Err(RideError::Route(format!(
                "redrive policies form a cycle among {}",
                names.join(", ")
            )));
        }
        pending = waiting;
    }
    Ok(queues)
}

/// Every passenger the trip's stops quarantined (the files under each stop's
/// `QUARANTINE_PREFIX`), once each, in key order.
async fn read_quarantine(
    route: &Route,
    objects: &dyn ObjectStore,
    trip: &str,
) -> Result<Vec<Quarantined>, RideError> {
    let mut prefixes: Vec<&str> = route
        .stops
        .iter()
        .map(|s| {
            s.env
                .get("QUARANTINE_PREFIX")
                .map_or(DEFAULT_QUARANTINE_PREFIX, String::as_str)
        })
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    let mut quarantined = Vec::new();
    for prefix in prefixes {
        let folder = quarantine::trip_folder(prefix, trip);
        quarantined.extend(
            quarantine::read_files(objects, &folder, usize::MAX)
                .await
                .map_err(RideError::Report)?,
        );
    }
    // A passenger two files name (a bus redelivered after a file was written, whose handler
    // then cut its files differently) is reported once, as a sink upserting by id would.
    let mut seen = std::collections::HashSet::new();
    quarantined.retain(|q| seen.insert((q.stop.clone(), q.rejection.id.clone())));
    Ok(quarantined)
}

/// Every bus left on a stop's dead-letter queue, with the reason the stop gave, once each.
fn drain_dead_letters(
    route: &Route,
    queues: &EmbeddedQueues,
) -> Result<Vec<DeadLetter>, RideError> {
    let mut dead = Vec::new();
    for spec in &route.stops {
        let Some(dlq) = spec
            .queue
            .as_deref()
            .and_then(|q| route.queue(q))
            .and_then(|q| q.dead_letter_queue.as_deref())
        else {
            continue;
        };
        let queue = queues
            .get(dlq)
            .map_err(|err| RideError::Route(err.to_string()))?;
        for message in queue.drain() {
            let attrs = &message.message_attributes;
            dead.push(DeadLetter {
                stop: spec.name.clone(),
                message_id: attribute(attrs, attr::MESSAGE_ID)
                    .unwrap_or(&message.message_id)
                    .to_owned(),
                reason: attribute(attrs, attr::REASON)
                    .unwrap_or("moved by the queue's redrive policy (the stop gave no reason)")
                    .to_owned(),
                class: attribute(attrs, attr::CLASS).map(str::to_owned),
                receive_count: attribute(attrs, attr::RECEIVE_COUNT).and_then(|c| c.parse().ok()),
                claim_check: PayloadPointer::from_body(&message.body)
                    .and_then(Result::ok)
                    .map(|p| p.s3_key),
                body: message.body.to_string(),
            });
        }
    }
    // A bus dead-lettered by an invocation that then died comes back and is dead-lettered
    // again: one report per original message.
    let mut seen = std::collections::HashSet::new();
    dead.retain(|letter| seen.insert((letter.stop.clone(), letter.message_id.clone())));
    Ok(dead)
}

/// Writes the dead-letter reports beside the output, as objects of the bucket.
async fn write_dead_letters(
    objects: &dyn ObjectStore,
    trip: &str,
    dead: &[DeadLetter],
) -> Result<(), RideError> {
    let mut by_stop: HashMap<&str, Vec<&DeadLetter>> = HashMap::new();
    for letter in dead {
        by_stop
            .entry(letter.stop.as_str())
            .or_default()
            .push(letter);
    }
    for (stop, letters) in by_stop {
        let lines = ndjson(&letters)?;
        objects
            .put(
                &format!("dead-letter/trip={trip}/{stop}.ndjson"),
                lines,
                "application/x-ndjson",
            )
            .await
            .map_err(RideError::Report)?;
    }
    Ok(())
}

fn ndjson<T: serde::Serialize>(items: &[T]) -> Result<Vec<u8>, RideError> {
    let mut out = Vec::new();
    for item in items {
        serde_json::to_writer(&mut out, item)
            .map_err(|err| RideError::Serialize(err.to_string()))?;
        out.push(b'\n');
    }
    Ok(out)
}
