//! The benchmark's input: generated data, and for each queue-reading stop the batches it
//! receives when the route runs on that data (a first, untimed pass that keeps every bus).

use super::BenchError;
use super::sinks::{CountingQueues, CountingStore};
use crate::generate::{GenOptions, Generated, Schema, generate};
use crate::ride::input_prefix;
use busline_core::forwarder::RetryPolicy;
use busline_core::ports::{MetricsSink, NoMetrics, ObjectStore, OutgoingMessage, QueueSender};
use busline_core::route::{Route, StopSpec};
use busline_core::{
    BatchProcessor, Delivery, Extensions, Invocation, Ports, ReadyStop, Registry, StopConfig,
    TripRequest,
};
use busline_embedded::{FolderStore, ManualClock, MemoryQueue, MetricsBoard, QueueSettings};
use busline_formats::Compression;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One batch, as a host hands it to the processor.
pub type Batch = Vec<Delivery>;

/// One queue-reading stop and what it receives.
pub struct Stage {
    /// The stop.
    pub spec: StopSpec,
    /// The buses sent to its queue, in the batches Lambda's poller would make (its BatchSize).
    pub events: Vec<Batch>,
    /// Passengers it took in: the records it picked up, for a stop that reads input objects.
    pub passengers: u64,
    /// True when it read input objects (its input buses are tickets, not records).
    pub reads_objects: bool,
}

impl Stage {
    /// The bodies of the buses it receives.
    pub fn bodies(&self) -> Vec<&str> {
        self.events
            .iter()
            .flatten()
            .map(|delivery| delivery.body.as_str())
            .collect()
    }
}

/// What the benchmark generates: `records` records of `schema` as CSV in `files` files
/// (compressed when `compression` says so).
#[derive(Debug, Clone, Copy)]
pub struct Input {
    /// Records in all.
    pub records: u64,
    /// Files they are spread over (one ticket each).
    pub files: u64,
    /// gzip or zstd for the files.
    pub compression: Option<Compression>,
    /// Their columns.
    pub schema: Schema,
}

/// The generated data and the route's stages on it.
pub struct Prepared {
    /// What was generated.
    pub generated: Generated,
    /// The first stop (the depot), which hands out the tickets.
    pub depot: StopSpec,
    /// The tickets the depot sends, one per input object.
    pub tickets: Vec<OutgoingMessage>,
    /// The queue-reading stops with what they receive, once [`Prepared::ride`] ran.
    pub stages: Vec<Stage>,
    riders: Vec<StopSpec>,
    registry: Registry,
    input_prefix: String,
    claim_check_prefix: String,
    work: PathBuf,
}

impl Prepared {
    /// [`Prepared::generate`], then [`Prepared::ride`].
    pub async fn new(
        route: &Route,
        registry: &Registry,
        input: &Input,
        work: &Path,
    ) -> Result<Self, BenchError> {
        let mut prepared = Prepared::generate(route, registry, input, work).await?;
        prepared.ride().await?;
        Ok(prepared)
    }

    /// Generates `records` CSV records in `files` files under `work/input` (compressed when
    /// `compression` says so), and lets the depot hand out their tickets.
    pub async fn generate(
        route: &Route,
        registry: &Registry,
        input: &Input,
        work: &Path,
    ) -> Result<Self, BenchError> {
        let (depot_spec, riders) = route
            .stops
            .split_first()
            .ok_or_else(|| BenchError::Route("the route has no stops".into()))?;
        let generated = generate(&GenOptions {
            schema: input.schema,
            records: input.records,
            files: input.files,
            ndjson: false,
            out: work.join("input"),
            seed: 42,
            bad_every: 0,
            compression: input.compression,
        })
        .map_err(|source| BenchError::Generate {
            path: work.to_owned(),
            source,
        })?;
        let claim_check_prefix = StopConfig::from_vars(&depot_spec.env)
            .map_err(|e| stop_error(depot_spec, e))?
            .claim_check_prefix;
        let input_prefix = input_prefix(depot_spec);
        let mut prepared = Prepared {
            generated,
            depot: depot_spec.clone(),
            tickets: Vec::new(),
            riders: riders.to_vec(),
            stages: Vec::new(),
            registry: registry.clone(),
            input_prefix,
            claim_check_prefix,
            work: work.to_owned(),
        };
        let keep = Arc::new(CountingQueues::keeping());
        prepared
            .run_depot(keep.clone(), Arc::new(prepared.store()))
            .await?;
        prepared.tickets = keep.take(next_queue(depot_spec)?);
        Ok(prepared)
    }

    /// Runs each queue-reading stop once on the tickets, keeping its output as the next
    /// stop's input.
    pub async fn ride(&mut self) -> Result<(), BenchError> {
        let mut stages = Vec::new();
        let mut input = self.tickets.clone();
        for spec in &self.riders {
            let events = batches(spec, &input)?;
            let keep = Arc::new(CountingQueues::keeping());
            let store = Arc::new(self.store());
            let board = Arc::new(MetricsBoard::default());
            let processor = self
                .processor(spec, keep.clone(), store.clone(), board.clone())
                .await?;
            for event in &events {
                processor
                    .process(event.clone(), &Invocation::default())
                    .await
                    .map_err(|e| stop_error(spec, e))?;
            }
            let output = spec
                .env
                .get("NEXT_QUEUE_URL")
                .map(|q| keep.take(q))
                .unwrap_or_default();
            let counts = board
                .snapshot()
                .get(&spec.name)
                .cloned()
                .unwrap_or_default()
                .counts;
            // A stop that picked passengers up read them from objects; any other may still
            // read an object (load reads its trip's Parquet schema).
            let reads_objects = counts.picked_up > 0;
            input = output;
            stages.push(Stage {
                spec: spec.clone(),
                events,
                passengers: if reads_objects {
                    counts.picked_up
                } else {
                    counts.passengers_in
                },
                reads_objects,
            });
        }
        self.stages = stages;
        Ok(())
    }

    /// The queue-reading stop that reads the depot's tickets.
    pub fn first_rider(&self) -> Option<&StopSpec> {
        self.riders.first()
    }

    /// The bodies of the buses stage `index` sends to the next stop (what the next stage reads).
    pub fn output_of(&self, index: usize) -> Vec<&str> {
        self.stages
            .get(index + 1)
            .map_or_else(Vec::new, Stage::bodies)
    }

    /// A store over the generated input that counts requests and keeps only claim checks
    /// (stops read them back); every other put, such as load's output, is counted and dropped.
    pub fn store(&self) -> CountingStore<FolderStore> {
        let folder = FolderStore::new("bench", self.work.join("bucket"))
            .mount(self.input_prefix.clone(), self.work.join("input"));
        CountingStore::new(folder, &self.claim_check_prefix)
    }

    /// The stage's stop over these ports, built by the registry.
    pub async fn processor(
        &self,
        spec: &StopSpec,
        queues: Arc<dyn QueueSender>,
        objects: Arc<dyn ObjectStore>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Result<BatchProcessor, BenchError> {
        self.build(spec, queues, objects, metrics)
            .await?
            .into_bus(&spec.kind)
            .map_err(|e| chained(spec, &e))
    }

    /// Starts one trip with the depot over these ports; returns how long it took.
    pub async fn run_depot(
        &self,
        queues: Arc<dyn QueueSender>,
        objects: Arc<dyn ObjectStore>,
    ) -> Result<Duration, BenchError> {
        let spec = &self.depot;
        let depot = self
            .build(spec, queues, objects, Arc::new(NoMetrics))
            .await?
            .into_depot(&spec.kind)
            .map_err(|e| chained(spec, &e))?;
        let request = TripRequest {
            trip_id: Some("bench".into()),
            ..TripRequest::default()
        };
        let started = Instant::now();
        depot
            .start_trip(request, &Invocation::default())
            .await
            .map_err(|e| chained(spec, &e))?;
        Ok(started.elapsed())
    }

    async fn build(
        &self,
        spec: &StopSpec,
        queues: Arc<dyn QueueSender>,
        objects: Arc<dyn ObjectStore>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Result<ReadyStop, BenchError> {
        let ports = Ports {
            queues,
            objects,
            metrics,
            retry: RetryPolicy::default(),
            trips: None,
        };
        self.registry
            .build(
                &spec.kind,
                Arc::new(spec.env.clone()),
                ports,
                Extensions::default(),
            )
            .await
            .map_err(|e| chained(spec, &e))
    }
}

/// A stop's error with its whole cause chain.
fn chained(spec: &StopSpec, err: &(dyn std::error::Error + 'static)) -> BenchError {
    stop_error(spec, busline_core::error::chain(err))
}

pub(super) fn stop_error(spec: &StopSpec, err: impl std::fmt::Display) -> BenchError {
    BenchError::Stop {
        stop: spec.name.clone(),
        message: err.to_string(),
    }
}

fn next_queue(spec: &StopSpec) -> Result<&str, BenchError> {
    spec.env
        .get("NEXT_QUEUE_URL")
        .map(String::as_str)
        .ok_or_else(|| stop_error(spec, "has no NEXT_QUEUE_URL"))
}

/// `input` as the batches Lambda's poller would deliver: the stop's BatchSize at a time, with
/// the ids and attributes an in-memory SQS queue gives them.
pub fn batches(spec: &StopSpec, input: &[OutgoingMessage]) -> Result<Vec<Batch>, BenchError> {
    let queue_name = spec.queue.clone().unwrap_or_else(|| spec.name.clone());
    let queue = MemoryQueue::new(
        &queue_name,
        QueueSettings::default(),
        Arc::new(ManualClock::default()),
    );
    for message in input {
        queue.send(message).map_err(|e| stop_error(spec, e))?;
    }
    let mut events = Vec::new();
    loop {
        let received = queue
            .receive(spec.batch_size.clamp(1, 10), None)
            .map_err(|e| stop_error(spec, e))?;
        if received.is_empty() {
            return Ok(events);
        }
        events.push(received.iter().map(|m| m.delivery()).collect());
    }
}
