//! `bus ride`: the whole route of a template in one process, on the embedded backends.

use crate::report::{DeadLetter, Quarantined, RideReport, StopReport};
use crate::stops::{KINDS, consumer_stop};
use busline_core::envelope::{Envelope, PayloadPointer, Rejection, decode_envelope};
use busline_core::forwarder::RetryPolicy;
use busline_core::ports::ObjectStore;
use busline_core::processor::dead_letter_attributes as attr;
use busline_core::route::{Route, StopSpec};
use busline_core::{BatchProcessor, StopConfig, StopRuntime};
use busline_depot::{Depot, DepotConfig, TripRequest};
use busline_embedded::queue::attribute;
use busline_embedded::{
    BusStop, EmbeddedBus, EmbeddedQueues, FolderStore, ManualClock, MemoryQueue, MetricsBoard,
    QueueSettings,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::sync::Notify;

/// Visible bytes a stop's queue may hold before senders wait (embedded flow control only:
/// it bounds memory when one stop outruns the next; SQS itself has no such limit).
pub const BACKLOG_LIMIT: usize = 16 * 1024 * 1024;

/// Wraps a stop before it rides (tests inject faults this way).
pub type StopWrapper = Box<
    dyn Fn(&StopSpec, Arc<dyn busline_core::Stop>) -> Arc<dyn busline_core::Stop> + Send + Sync,
>;

/// What to ride.
pub struct RideOptions {
    /// The route.
    pub route: Route,
    /// Folder served under the depot's `INPUT_PREFIX`.
    pub input: PathBuf,
    /// Folder standing in for the data bucket: output, quarantine and dead-letter reports land here.
    pub output: PathBuf,
    /// Reuse a trip id (a replay); a new one when `None`.
    pub trip_id: Option<String>,
    /// Batches in flight at once per stop (the event source's MaximumConcurrency).
    pub concurrency: usize,
    /// How failed sends are retried.
    pub retry: RetryPolicy,
    /// Optional wrapper around each queue-reading stop.
    pub wrap: Option<StopWrapper>,
}

/// Why a ride could not run.
#[derive(Debug, Error)]
pub enum RideError {
    /// A stop's configuration is bad.
    #[error("stop {stop} ({function}): {message}")]
    Config {
        /// The stop.
        stop: String,
        /// Its function's logical id.
        function: String,
        /// What is wrong, naming the variable.
        message: String,
    },
    /// The route refers to a queue the template does not declare, or similar.
    #[error("route: {0}")]
    Route(String),
    /// The input folder does not exist.
    #[error("input folder {0} does not exist")]
    MissingInput(PathBuf),
    /// The trip could not start.
    #[error("depot: {0}")]
    Depot(#[from] busline_depot::DepotError),
    /// The bus stopped early.
    #[error(transparent)]
    Bus(#[from] busline_embedded::RideError),
    /// Writing a report object failed.
    #[error("writing report: {0}")]
    Report(#[from] busline_core::PortError),
    /// A report line could not be serialized.
    #[error("serializing report: {0}")]
    Serialize(String),
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
    let clock = Arc::new(ManualClock::default());
    let signal = Arc::new(Notify::new());
    let queues = Arc::new(build_queues(route, &clock, &signal)?);
    let depot_spec = &route.stops[0];
    if depot_spec.kind != "depot" {
        return Err(RideError::Route(format!(
            "the first stop ({}) must be a depot, found kind {}",
            depot_spec.function, depot_spec.kind
        )));
    }
    let depot_config =
        DepotConfig::from_vars(&depot_spec.env).map_err(|err| config_error(depot_spec, err))?;
    let bucket = depot_spec
        .env
        .get("DATA_BUCKET")
        .cloned()
        .unwrap_or_else(|| "DataBucket".into());
    let objects = Arc::new(
        FolderStore::new(bucket, &options.output)
            .mount(depot_config.input_prefix.clone(), &options.input),
    );
    let metrics = Arc::new(MetricsBoard::default());
    let runtime_for = |spec: &StopSpec| -> Result<StopRuntime, RideError> {
        Ok(StopRuntime {
            config: StopConfig::from_vars(&spec.env).map_err(|err| config_error(spec, err))?,
            queues: queues.clone(),
            objects: objects.clone(),
            metrics: metrics.clone(),
            retry: options.retry,
        })
    };

    let mut bus_stops = Vec::new();
    for spec in &route.stops[1..] {
        let stop = consumer_stop(&spec.kind, &spec.env)
            .map_err(|err| config_error(spec, err))?
            .ok_or_else(|| RideError::Config {
                stop: spec.name.clone(),
                function: spec.function.clone(),
                message: format!(
                    "unknown stop kind {:?}; this build has {}",
                    spec.kind,
                    KINDS.join(", ")
                ),
            })?;
        let stop = match &options.wrap {
            Some(wrap) => wrap(spec, stop),
            None => stop,
        };
        let queue_name = spec.queue.as_deref().unwrap_or_default();
        bus_stops.push(BusStop {
            name: spec.name.clone(),
            queue: queues
                .get(queue_name)
                .map_err(|err| RideError::Route(err.to_string()))?
                .clone(),
            batch_size: spec.batch_size,
            max_concurrency: options.concurrency,
            processor: Arc::new(BatchProcessor::new(stop, runtime_for(spec)?)),
        });
    }
    let depot = Depot::new(depot_config, runtime_for(depot_spec)?);
    let trip = depot
        .start_trip(TripRequest {
            trip_id: options.trip_id.clone(),
            input_prefix: None,
        })
        .await?;

    let mut on_batch = on_batch;
    EmbeddedBus::new(clock, signal, bus_stops)
        .run(|| on_batch(&metrics))
        .await?;

    let quarantined = drain_quarantine(route, &queues)?;
    let dead_letters = drain_dead_letters(route, &queues)?;
    write_reports(objects.as_ref(), &trip.trip_id, &quarantined, &dead_letters).await?;
    let tallies = metrics.snapshot();
    let stops = route
        .stops
        .iter()
        .map(|spec| {
            let tally = tallies.get(&spec.name).copied().unwrap_or_default();
            let retried = spec
                .queue
                .as_deref()
                .and_then(|q| queues.get(q).ok())
                .map(|q| q.stats().redelivered)
                .unwrap_or_default();
            let dead_lettered = dead_letters.iter().filter(|d| d.stop == spec.name).count() as u64;
            StopReport::new(&spec.name, tally, retried, dead_lettered)
        })
        .collect();
    Ok(RideReport {
        trip_id: trip.trip_id,
        route: route.name.clone(),
        output: options.output.clone(),
        elapsed: started.elapsed(),
        stops,
        quarantined,
        dead_letters,
    })
}

fn config_error(spec: &StopSpec, err: impl std::fmt::Display) -> RideError {
    RideError::Config {
        stop: spec.name.clone(),
        function: spec.function.clone(),
        message: err.to_string(),
    }
}

/// One embedded queue per queue of the template, dead-letter queues wired by their redrive policy.
fn build_queues(
    route: &Route,
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
            if route
                .stops
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

/// Every rejected passenger left on the quarantine queues.
fn drain_quarantine(route: &Route, queues: &EmbeddedQueues) -> Result<Vec<Quarantined>, RideError> {
    let mut names: Vec<&str> = route
        .stops
        .iter()
        .filter_map(|s| s.env.get("QUARANTINE_QUEUE_URL"))
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut quarantined = Vec::new();
    for name in names {
        let queue = queues
            .get(name)
            .map_err(|err| RideError::Route(err.to_string()))?;
        for message in queue.drain() {
            match decode_envelope::<Rejection>(&message.body) {
                Ok(Envelope {
                    from, passengers, ..
                }) => {
                    quarantined.extend(passengers.into_iter().map(|rejection| Quarantined {
                        stop: from.clone(),
                        rejection,
                    }));
                }
                Err(err) => {
                    tracing::error!(queue = name, message_id = message.message_id, %err, "unreadable quarantine bus")
                }
            }
        }
    }
    Ok(quarantined)
}

/// Every bus left on a stop's dead-letter queue, with the reason the stop gave.
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
                body: message.body,
            });
        }
    }
    Ok(dead)
}

/// Writes quarantine and dead-letter reports beside the output, as objects of the bucket.
async fn write_reports(
    objects: &dyn ObjectStore,
    trip: &str,
    quarantined: &[Quarantined],
    dead: &[DeadLetter],
) -> Result<(), RideError> {
    if !quarantined.is_empty() {
        let lines = ndjson(quarantined)?;
        objects
            .put(
                &format!("quarantine/trip={trip}/rejected.ndjson"),
                lines,
                "application/x-ndjson",
            )
            .await?;
    }
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
            .await?;
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
