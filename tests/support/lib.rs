//! Helpers shared by the integration tests: fixtures, a processor harness on the embedded
//! backends, fault-injecting stops and a flaky queue.
#![allow(missing_docs)]

pub mod backends;
pub mod cloud;
pub mod colors_api;
pub mod postgres;
pub mod readers;
pub mod watch;

use async_trait::async_trait;
use busline_cli::ride::RideOptions;
use busline_core::envelope::Passenger;
use busline_core::forwarder::RetryPolicy;
use busline_core::ports::{
    EntryFailure, MetricsSink, OutgoingMessage, QueueSender, VisibilityChange,
};
use busline_core::route::Route;
use busline_core::{
    BatchOutcome, BatchProcessor, Delivery, ErrorClass, Extensions, InitError, Invocation,
    InvocationMetrics, Outbox, PortError, Ports, ReadyStop, Registry, Stop, StopContext, StopError,
    StopKind,
};
use busline_embedded::{EmbeddedQueues, FolderStore, ManualClock, MemoryQueue, QueueSettings};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(name)
}

pub fn shipped_route(overrides: &[(&str, &str)]) -> Route {
    let parameters = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    busline_template::read_route(&workspace_root().join("template.yaml"), &parameters)
        .expect("shipped template")
}

/// Retries quickly so tests that exercise them stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 3,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

pub fn ride_options(route: Route, input: &Path, output: &Path) -> RideOptions {
    RideOptions {
        route,
        registry: busline_builtin::registry(),
        input: input.to_owned(),
        output: output.to_owned(),
        trip_id: None,
        concurrency: 4,
        retry: fast_retry(),
        invoke: Default::default(),
        chaos: None,
        feed: None,
        extensions: Default::default(),
    }
}

/// A kind `name` whose every build is this one `stop` (a test double, shared).
pub fn shared_kind(name: &str, stop: Arc<dyn Stop>) -> StopKind {
    StopKind::stop(name, move |_| {
        let stop = stop.clone();
        async move { Ok::<_, InitError>(stop) }
    })
}

/// The built-in registry with the stops of kind `kind` wrapped by `make`.
pub fn wrap_kind(
    kind: &str,
    make: impl Fn(Arc<dyn Stop>) -> Arc<dyn Stop> + Send + Sync + 'static,
) -> Registry {
    let registry = busline_builtin::registry();
    let wrapped = registry
        .get(kind)
        .expect("a built-in kind")
        .clone()
        .wrapped(make);
    registry.with(wrapped)
}

/// Every rejection of a ride as `id reason`, sorted: two rides' rejects compare equal when the
/// same passengers were rejected for the same reasons.
pub fn reject_lines(report: &busline_cli::report::RideReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .quarantined
        .iter()
        .map(|q| format!("{} {}", q.rejection.id, q.rejection.reason))
        .collect();
    lines.sort();
    lines
}

/// Every NDJSON record of every file under `dir`, sorted by its JSON text.
pub fn ndjson_records(dir: &Path) -> Vec<Value> {
    let mut records = Vec::new();
    for path in files_under(dir) {
        let text = std::fs::read_to_string(&path).expect("readable output");
        records.extend(
            text.lines()
                .map(|line| serde_json::from_str::<Value>(line).expect("valid NDJSON line")),
        );
    }
    records.sort_by_key(Value::to_string);
    records
}

/// Every data file under `dir`, sorted: as Hive-style readers do, files whose names start with
/// `_` or `.` (a trip's `_SUCCESS` manifest, `_schema.json`) are not data.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in
            std::fs::read_dir(&folder).unwrap_or_else(|err| panic!("{}: {err}", folder.display()))
        {
            let path = entry.expect("dir entry").path();
            let hidden = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('_') || name.starts_with('.'));
            if path.is_dir() {
                stack.push(path)
            } else if !hidden {
                files.push(path)
            }
        }
    }
    files.sort();
    files
}

/// The records of a CSV file as JSON objects of strings.
pub fn csv_records(path: &Path) -> Vec<Map<String, Value>> {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let headers = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let record = r.expect("record");
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
                .collect()
        })
        .collect()
}

/// Fails every bus it sees the first `times` times with `reason` of `class`, then lets it through.
pub struct FlakyStop {
    pub inner: Arc<dyn Stop>,
    pub times: u32,
    pub class: ErrorClass,
    pub reason: String,
    seen: Mutex<HashMap<String, u32>>,
}

impl FlakyStop {
    pub fn new(inner: Arc<dyn Stop>, times: u32, class: ErrorClass, reason: &str) -> Self {
        FlakyStop {
            inner,
            times,
            class,
            reason: reason.to_owned(),
            seen: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Stop for FlakyStop {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let attempt = {
            let mut seen = self.seen.lock().expect("lock");
            let count = seen.entry(ctx.bus.to_owned()).or_default();
            *count += 1;
            *count
        };
        if attempt <= self.times {
            return Err(match self.class {
                ErrorClass::Retryable => StopError::retryable(self.reason.clone()),
                _ => StopError::permanent(self.reason.clone()),
            });
        }
        self.inner.handle(ctx, passengers, outbox).await
    }
}

/// Forwards every passenger; panics on one with `"panic": true`; fails on `"fail": "permanent"|"retryable"`.
pub struct ScriptedStop;

#[async_trait]
impl Stop for ScriptedStop {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        for passenger in passengers {
            if passenger.get("panic") == Some(&Value::Bool(true)) {
                panic!("scripted panic on {}", passenger.id());
            }
            match passenger.get_str("fail") {
                Some("permanent") => {
                    return Err(StopError::permanent(format!(
                        "{} is poison",
                        passenger.id()
                    )));
                }
                Some("retryable") => {
                    return Err(StopError::retryable(format!(
                        "{} hit a throttle",
                        passenger.id()
                    )));
                }
                _ => {}
            }
            if passenger.get("reject") == Some(&Value::Bool(true)) {
                outbox
                    .reject(&passenger.reject("scripted rejection"))
                    .await?;
            } else if passenger.get("drop") == Some(&Value::Bool(true)) {
                outbox.drop_off(1);
            } else {
                outbox.board(&passenger).await?;
            }
        }
        Ok(())
    }
}

/// Records every invocation's metrics.
#[derive(Default)]
pub struct RecordedMetrics(pub Mutex<Vec<InvocationMetrics>>);

#[async_trait]
impl MetricsSink for RecordedMetrics {
    async fn record(&self, metrics: &InvocationMetrics) {
        self.0.lock().expect("lock").push(metrics.clone());
    }
}

/// Fails chosen entries of SendMessageBatch calls (by body substring) a number of times.
pub struct FlakyQueues {
    pub inner: EmbeddedQueues,
    /// body substring -> (failures left, sender_fault)
    pub plan: Mutex<Vec<(String, u32, bool)>>,
    pub calls: Mutex<Vec<usize>>,
}

#[async_trait]
impl QueueSender for FlakyQueues {
    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, PortError> {
        self.calls.lock().expect("lock").push(messages.len());
        let mut failed = Vec::new();
        let mut pass = Vec::new();
        {
            let mut plan = self.plan.lock().expect("lock");
            for (index, message) in messages.iter().enumerate() {
                let rule = plan
                    .iter_mut()
                    .find(|(needle, left, _)| *left > 0 && message.body.contains(needle.as_str()));
                match rule {
                    Some((_, left, sender_fault)) => {
                        *left -= 1;
                        failed.push(EntryFailure {
                            index,
                            sender_fault: *sender_fault,
                            code: if *sender_fault {
                                "InvalidParameterValue".into()
                            } else {
                                "InternalError".into()
                            },
                            message: "injected".into(),
                        });
                    }
                    None => pass.push(message.clone()),
                }
            }
        }
        if !pass.is_empty() {
            let errors = self.inner.send_batch(queue_url, &pass).await?;
            assert!(errors.is_empty(), "embedded queue refused {errors:?}");
        }
        Ok(failed)
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        changes: &[VisibilityChange],
    ) -> Result<Vec<EntryFailure>, PortError> {
        self.inner.change_visibility(queue_url, changes).await
    }
}

/// A processor over embedded queues (route: `in` -> stop -> `next`, with `dlq` and `quarantine`).
pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub queues: EmbeddedQueues,
    pub store: Arc<FolderStore>,
    pub metrics: Arc<RecordedMetrics>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_max_receive_count(3)
    }

    /// A harness whose `in` queue redrives after `max_receive_count` receives.
    pub fn with_max_receive_count(max_receive_count: u32) -> Self {
        let clock = Arc::new(ManualClock::default());
        let mut queues = EmbeddedQueues::default();
        let dlq = Arc::new(MemoryQueue::new(
            "dlq",
            QueueSettings::default(),
            clock.clone(),
        ));
        queues.insert(dlq.clone());
        queues.insert(Arc::new(MemoryQueue::new(
            "next",
            QueueSettings::default(),
            clock.clone(),
        )));
        let settings = QueueSettings {
            max_receive_count: Some(max_receive_count),
            dead_letter: Some(dlq),
            ..QueueSettings::default()
        };
        queues.insert(Arc::new(MemoryQueue::new("in", settings, clock.clone())));
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(FolderStore::new("bucket", dir.path()));
        Harness {
            clock,
            queues,
            store,
            metrics: Arc::default(),
            dir,
        }
    }

    /// A stop's settings on the harness's queues, plus `extra`.
    pub fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = [
            ("STOP_NAME", "scripted"),
            ("ROUTE_NAME", "test"),
            ("NEXT_QUEUE_URL", "next"),
            ("DEAD_LETTER_QUEUE_URL", "dlq"),
            ("MAX_RECEIVE_COUNT", "3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    /// Builds `kind` with the harness's settings plus `extra`, over its ports, as a host does.
    pub async fn build(
        &self,
        kind: &StopKind,
        extra: &[(&str, &str)],
    ) -> Result<ReadyStop, InitError> {
        kind.build(
            Arc::new(Self::vars(extra)),
            self.ports(Arc::new(self.queues.clone())),
            Extensions::default(),
        )
        .await
    }

    /// [`Harness::build`] of a kind that reads a queue.
    pub async fn bus_stop(&self, kind: &StopKind, extra: &[(&str, &str)]) -> BatchProcessor {
        self.build(kind, extra)
            .await
            .expect("the stop builds")
            .into_bus(kind.name())
            .expect("a stop reading a queue")
    }

    /// Every rejection the stops wrote to quarantine files (`quarantine/` of the harness's
    /// bucket), in key order.
    pub async fn quarantined(&self) -> Vec<busline_core::quarantine::QuarantineLine> {
        busline_core::quarantine::read_files(self.store.as_ref(), "quarantine/", usize::MAX)
            .await
            .expect("quarantine files")
    }

    pub fn ports(&self, queues: Arc<dyn QueueSender>) -> Ports {
        Ports {
            queues,
            objects: self.store.clone(),
            metrics: self.metrics.clone(),
            retry: fast_retry(),
            trips: None,
        }
    }

    /// `stop`, registered as a kind and built as a host builds it, with the harness's settings
    /// plus `extra`, sending through `queues`.
    pub async fn processor(
        &self,
        stop: Arc<dyn Stop>,
        extra: &[(&str, &str)],
        queues: Arc<dyn QueueSender>,
    ) -> BatchProcessor {
        shared_kind("scripted", stop)
            .build(
                Arc::new(Self::vars(extra)),
                self.ports(queues),
                Extensions::default(),
            )
            .await
            .expect("the stop builds")
            .into_bus("scripted")
            .expect("a stop reading a queue")
    }

    /// A processor running [`ScriptedStop`] over the embedded queues with extra settings.
    pub async fn scripted(&self, extra: &[(&str, &str)]) -> BatchProcessor {
        self.processor(Arc::new(ScriptedStop), extra, Arc::new(self.queues.clone()))
            .await
    }

    /// Receives up to `max` messages, processes them, and checks every one was acknowledged.
    pub async fn process_all_ok(&self, processor: &BatchProcessor, max: usize) {
        let (batch, _) = self.receive(max);
        let outcome = processor
            .process(batch, &Invocation::default())
            .await
            .expect("not a function error");
        assert!(outcome.retry.is_empty(), "{outcome:?}");
    }

    pub fn queue(&self, name: &str) -> &Arc<MemoryQueue> {
        self.queues.get(name).expect("queue")
    }

    /// Receives one batch from `in`, as the processor takes it.
    pub fn receive(&self, max: usize) -> (Vec<Delivery>, Vec<busline_embedded::ReceivedMessage>) {
        let messages = self.queue("in").receive(max, None).expect("receive");
        (messages.iter().map(|m| m.delivery()).collect(), messages)
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// A bus body carrying `passengers` (each a JSON object) for trip `t1`.
pub fn bus_body(bus: &str, passengers: &[Value]) -> String {
    let passengers: Vec<Value> = passengers
        .iter()
        .enumerate()
        .map(|(i, data)| serde_json::json!({"id": format!("{bus}-{i}"), "data": data}))
        .collect();
    serde_json::json!({
        "v": 1, "bus": bus, "trip": "t1", "route": "test", "from": "upstream", "hop": 1,
        "created": "2026-11-22T00:00:00.000Z", "passengers": passengers
    })
    .to_string()
}

/// The string values of `field` of every passenger on the bus `body` (any envelope version,
/// compressed or not), in order.
pub fn field_of_passengers(body: &str, field: &str) -> Vec<String> {
    busline_core::envelope::decode_envelope::<Passenger>(body)
        .expect("a bus")
        .passengers
        .iter()
        .filter_map(|p| p.get_str(field).map(str::to_owned))
        .collect()
}

pub fn send(queue: &MemoryQueue, body: &str) -> String {
    queue
        .send(&OutgoingMessage {
            body: body.to_owned(),
            attributes: Vec::new(),
        })
        .expect("send")
}

pub fn message_ids(batch: &[Delivery]) -> Vec<String> {
    batch.iter().map(|d| d.id.clone()).collect()
}

pub fn failure_ids(outcome: &BatchOutcome) -> HashSet<String> {
    outcome.retry.iter().cloned().collect()
}

/// For each ticket `{"count": n}`, picks up and boards n passengers `{"n": i}`.
pub struct Fanout;

#[async_trait]
impl Stop for Fanout {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        for ticket in passengers {
            let count = ticket
                .get("count")
                .and_then(Value::as_u64)
                .unwrap_or_default();
            for i in 0..count {
                let mut data = Map::new();
                data.insert("n".into(), i.into());
                outbox.pick_up(1);
                outbox
                    .board(&Passenger::new(format!("{}:{i}", ticket.id()), None, data))
                    .await?;
            }
            outbox.drop_off(1);
        }
        Ok(())
    }
}

/// Drops every passenger off.
pub struct DropAll;

#[async_trait]
impl Stop for DropAll {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        outbox.drop_off(passengers.len() as u64);
        Ok(())
    }
}

/// Checks what the transform stop forwarded for events/sqs-transform.json (HEX dropped).
pub fn assert_transformed_sample_event(passengers: &[Passenger]) {
    let names: Vec<&str> = passengers
        .iter()
        .filter_map(|p| p.get_str("Name"))
        .collect();
    assert_eq!(names, ["Black", "White", "Red", "Lime", "Blue"]);
    assert!(passengers.iter().all(|p| p.get("HEX").is_none()));
}

/// What examples/enrich's route writes for the colors sample (sorted NDJSON lines).
pub fn enrich_expected_output() -> Vec<String> {
    std::fs::read_to_string(
        workspace_root()
            .join("examples/enrich/tests/routes/colors-enriched/expected/output.ndjson"),
    )
    .expect("expected output")
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The quarantine reasons of examples/enrich's route for the colors sample, with its API at `url`.
pub fn enrich_expected_rejections(url: &str) -> [String; 2] {
    [
        format!("input/colors.csv:29: {url}Lavender knows no Name=\"Lavender\""),
        format!("input/colors.csv:31: {url}Mint knows no Name=\"Mint\""),
    ]
}
