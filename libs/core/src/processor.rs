//! The batch processor: turns one `SqsEvent` into an `SqsBatchResponse`.
//!
//! Each message is handled on its own (a bad body or a panic fails that message only), with
//! bounded concurrency. Buses are forwarded before a message is acknowledged. A bus that fails
//! for good is dead-lettered with its reason: at once when permanent, on its last receive when
//! retryable. All other failures are listed in `batchItemFailures` for SQS to retry; when every
//! message failed the processor returns an error so Lambda backs off.

use crate::config::StopConfig;
use crate::envelope::{Envelope, Passenger, PayloadPointer, decode_envelope};
use crate::error::{DecodeError, ErrorClass, PortError, StopError};
use crate::forwarder::{Forwarder, Parcel, RetryPolicy};
use crate::metrics::{InvocationMetrics, StopCounts};
use crate::outbox::{Departures, Outbox, OutboxCounts};
use crate::ports::{Attribute, MetricsSink, ObjectStore, OutgoingMessage, QueueSender};
use crate::stop::{Stop, StopContext};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tracing::Instrument;

/// Message attribute names the processor puts on a dead-lettered bus.
pub mod dead_letter_attributes {
    /// Why the bus failed.
    pub const REASON: &str = "busline.reason";
    /// `retryable` or `permanent`.
    pub const CLASS: &str = "busline.class";
    /// The stop where it failed.
    pub const STOP: &str = "busline.stop";
    /// The trip, when the body could be read.
    pub const TRIP: &str = "busline.trip";
    /// How many times it was received.
    pub const RECEIVE_COUNT: &str = "busline.receive-count";
    /// The original SQS message id.
    pub const MESSAGE_ID: &str = "busline.message-id";
}

/// Longest reason text put on a dead-lettered bus.
const MAX_REASON_LEN: usize = 1000;

/// Returned when every message of a batch failed, so that Lambda backs off.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("all {count} messages of the batch failed; first failure: {first_reason}")]
pub struct BatchError {
    /// Messages in the batch.
    pub count: usize,
    /// The first failure's reason.
    pub first_reason: String,
}

/// The ports and settings a stop runs with, built once at init.
#[derive(Clone)]
pub struct StopRuntime {
    /// Shared settings.
    pub config: StopConfig,
    /// Where buses are sent.
    pub queues: Arc<dyn QueueSender>,
    /// The data bucket.
    pub objects: Arc<dyn ObjectStore>,
    /// Where metrics go.
    pub metrics: Arc<dyn MetricsSink>,
    /// How failed sends are retried.
    pub retry: RetryPolicy,
}

/// Runs a stop over SQS batches.
pub struct BatchProcessor {
    stop: Arc<dyn Stop>,
    runtime: StopRuntime,
    forwarder: Forwarder,
}

/// How one message ended before pooled sending.
struct Ridden {
    passengers_in: u64,
    trip: Option<String>,
    outcome: Result<(OutboxCounts, Departures), Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    class: ErrorClass,
    reason: String,
}

impl From<StopError> for Failure {
    fn from(err: StopError) -> Self {
        Failure {
            class: err.class(),
            reason: err.to_string(),
        }
    }
}

impl BatchProcessor {
    /// A processor running `stop` with `runtime`.
    pub fn new(stop: Arc<dyn Stop>, runtime: StopRuntime) -> Self {
        let forwarder = Forwarder::new(runtime.queues.clone(), runtime.retry);
        BatchProcessor {
            stop,
            runtime,
            forwarder,
        }
    }

    /// Handles one SQS batch and reports exactly the messages SQS must retry.
    pub async fn process(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let started = Instant::now();
        let config = &self.runtime.config;
        let records = &event.records;
        // Collected first: a closure inside the stream would make this future lose `Send`
        // for tokio::spawn (rustc's higher-ranked lifetime limitation).
        let rides: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(origin, record)| self.ride(origin, record))
            .collect();
        let mut ridden: Vec<(usize, Ridden)> = futures::stream::iter(rides)
            .buffer_unordered(config.batch_concurrency)
            .collect()
            .await;
        ridden.sort_by_key(|(origin, _)| *origin);
        let mut ridden: Vec<Ridden> = ridden.into_iter().map(|(_, r)| r).collect();

        self.send_pooled(&mut ridden).await;

        let mut counts = StopCounts::default();
        let mut dead_letters = Vec::new();
        let mut failed: Vec<(usize, String)> = Vec::new();
        for (origin, (record, ride)) in records.iter().zip(&ridden).enumerate() {
            counts.buses_in += 1;
            counts.passengers_in += ride.passengers_in;
            match &ride.outcome {
                Ok((outbox, _)) => {
                    add_outbox_counts(&mut counts, outbox, ride.passengers_in, record)
                }
                Err(failure) => {
                    counts.buses_failed += 1;
                    counts.passengers_failed += ride.passengers_in;
                    let receive_count = receive_count(record);
                    let last_chance = receive_count >= config.max_receive_count;
                    let dead_letter = failure.class == ErrorClass::Permanent || last_chance;
                    tracing::warn!(
                        message_id = message_id(record),
                        class = %failure.class,
                        receive_count,
                        reason = %failure.reason,
                        "bus failed"
                    );
                    if dead_letter && config.dead_letter_queue_url.is_some() {
                        dead_letters.push(Parcel {
                            origin,
                            message: self.dead_letter_message(record, ride, failure, receive_count),
                        });
                    } else {
                        failed.push((origin, failure.reason.clone()));
                    }
                }
            }
        }

        if let Some(url) = &config.dead_letter_queue_url {
            let dead_lettered = dead_letters.len() as u64;
            let undelivered = self.forwarder.send(url, dead_letters).await;
            for lost in &undelivered {
                tracing::error!(message_id = message_id(&records[lost.origin]), reason = %lost.reason, "could not dead-letter bus; leaving it to SQS");
                failed.push((lost.origin, lost.reason.clone()));
            }
            counts.buses_dead_lettered += dead_lettered - undelivered.len() as u64;
        }

        failed.sort_by_key(|(origin, _)| *origin);
        let mut response = SqsBatchResponse::default();
        for (origin, _) in &failed {
            response.add_failure(message_id(&records[*origin]));
        }
        self.runtime
            .metrics
            .record(&InvocationMetrics {
                stop: config.stop.clone(),
                route: config.route.clone(),
                counts,
                duration: started.elapsed(),
                oldest_message_age: oldest_age(records),
            })
            .await;
        match failed.first() {
            Some((_, reason)) if failed.len() == records.len() => Err(BatchError {
                count: records.len(),
                first_reason: reason.clone(),
            }),
            _ => Ok(response),
        }
    }

    /// Decodes and handles one message; buses that are complete but not yet sent are returned.
    async fn ride(&self, origin: usize, record: &SqsMessage) -> (usize, Ridden) {
        let config = &self.runtime.config;
        let span = tracing::info_span!("bus", stop = %config.stop, trip = tracing::field::Empty, message_id = message_id(record));
        async {
            let envelope = match self.decode(record).await {
                Ok(envelope) => envelope,
                Err(failure) => {
                    return (
                        origin,
                        Ridden {
                            passengers_in: 0,
                            trip: None,
                            outcome: Err(failure),
                        },
                    );
                }
            };
            tracing::Span::current().record("trip", envelope.trip.as_str());
            let passengers_in = envelope.passengers.len() as u64;
            let trip = Some(envelope.trip.clone());
            let outcome = self.handle(origin, record, envelope).await;
            if let Ok((counts, _)) = &outcome {
                tracing::info!(
                    passengers_in,
                    picked_up = counts.picked_up,
                    forwarded = counts.forwarded,
                    dropped_off = counts.dropped_off,
                    rejected = counts.rejected,
                    "bus handled"
                );
            }
            (
                origin,
                Ridden {
                    passengers_in,
                    trip,
                    outcome,
                },
            )
        }
        .instrument(span)
        .await
    }

    async fn handle(
        &self,
        origin: usize,
        record: &SqsMessage,
        envelope: Envelope<Passenger>,
    ) -> Result<(OutboxCounts, Departures), Failure> {
        let config = &self.runtime.config;
        let Envelope {
            bus,
            trip,
            hop,
            passengers,
            ..
        } = envelope;
        if hop >= config.max_hops {
            return Err(Failure {
                class: ErrorClass::Permanent,
                reason: format!(
                    "bus {bus} has travelled {hop} stops, MAX_HOPS is {}: is the route a loop?",
                    config.max_hops
                ),
            });
        }
        let mut outbox = Outbox::new(
            config,
            &trip,
            &bus,
            hop + 1,
            origin,
            self.forwarder.clone(),
            self.runtime.objects.clone(),
        );
        let ctx = StopContext {
            trip: &trip,
            bus: &bus,
            message_id: message_id(record),
            config,
            objects: self.runtime.objects.as_ref(),
        };
        let handled = AssertUnwindSafe(self.stop.handle(&ctx, passengers, &mut outbox))
            .catch_unwind()
            .await;
        match handled {
            Ok(Ok(())) => Ok(outbox.finish().await?),
            Ok(Err(err)) => Err(err.into()),
            Err(panic) => Err(Failure {
                class: ErrorClass::Retryable,
                reason: format!("handler panicked: {}", panic_message(panic.as_ref())),
            }),
        }
    }

    /// Reads the envelope from the body, or from the object store for a claim check.
    /// Decode failures are retryable: a newer producer may be ahead of this stop's deploy,
    /// and on the last receive the bus is dead-lettered with the reason anyway.
    async fn decode(&self, record: &SqsMessage) -> Result<Envelope<Passenger>, Failure> {
        let decode_failure = |err: DecodeError| Failure {
            class: ErrorClass::Retryable,
            reason: err.to_string(),
        };
        let body = record
            .body
            .as_deref()
            .ok_or(DecodeError::MissingBody)
            .map_err(decode_failure)?;
        match PayloadPointer::from_body(body) {
            None => decode_envelope(body).map_err(decode_failure),
            Some(pointer) => {
                let pointer = pointer.map_err(decode_failure)?;
                let parked = self.fetch_parked(&pointer).await.map_err(|err| Failure {
                    class: err.class(),
                    reason: format!("claim check: {err}"),
                })?;
                decode_envelope(&parked).map_err(decode_failure)
            }
        }
    }

    async fn fetch_parked(&self, pointer: &PayloadPointer) -> Result<String, PortError> {
        let objects = &self.runtime.objects;
        let resource = format!("s3://{}/{}", pointer.s3_bucket_name, pointer.s3_key);
        if pointer.s3_bucket_name != objects.bucket() {
            return Err(PortError::permanent(
                resource,
                format!("this stop reads bucket {}", objects.bucket()),
            ));
        }
        let mut reader = objects.get(&pointer.s3_key).await?;
        let mut body = String::new();
        reader
            .read_to_string(&mut body)
            .await
            .map_err(|err| PortError::retryable(resource, err.to_string()))?;
        Ok(body)
    }

    /// Sends every successful message's remaining buses pooled into shared batch calls; a bus
    /// that cannot be delivered fails the message that produced it.
    async fn send_pooled(&self, ridden: &mut [Ridden]) {
        let config = &self.runtime.config;
        let mut next = Vec::new();
        let mut quarantine = Vec::new();
        for (origin, ride) in ridden.iter_mut().enumerate() {
            if let Ok((_, departures)) = &mut ride.outcome {
                next.extend(
                    std::mem::take(&mut departures.next)
                        .into_iter()
                        .map(|message| Parcel { origin, message }),
                );
                quarantine.extend(
                    std::mem::take(&mut departures.quarantine)
                        .into_iter()
                        .map(|message| Parcel { origin, message }),
                );
            }
        }
        let next_url = config.next_queue_url.as_deref().unwrap_or_default();
        let (lost_next, lost_quarantine) = tokio::join!(
            async {
                if next.is_empty() {
                    Vec::new()
                } else {
                    self.forwarder.send(next_url, next).await
                }
            },
            self.forwarder
                .send(&config.quarantine_queue_url, quarantine),
        );
        for lost in lost_next.into_iter().chain(lost_quarantine) {
            let ride = &mut ridden[lost.origin];
            if ride.outcome.is_ok() {
                ride.outcome = Err(Failure {
                    class: lost.class,
                    reason: format!("forwarding failed: {}", lost.reason),
                });
            }
        }
    }

    fn dead_letter_message(
        &self,
        record: &SqsMessage,
        ride: &Ridden,
        failure: &Failure,
        receive_count: u32,
    ) -> OutgoingMessage {
        use dead_letter_attributes as attr;
        let mut reason = failure.reason.clone();
        if reason.len() > MAX_REASON_LEN {
            let mut cut = MAX_REASON_LEN;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        let mut attributes = vec![
            Attribute::string(attr::REASON, reason),
            Attribute::string(attr::CLASS, failure.class.to_string()),
            Attribute::string(attr::STOP, self.runtime.config.stop.clone()),
            Attribute::number(attr::RECEIVE_COUNT, receive_count),
            Attribute::string(attr::MESSAGE_ID, message_id(record)),
        ];
        if let Some(trip) = &ride.trip {
            attributes.push(Attribute::string(attr::TRIP, trip.clone()));
        }
        OutgoingMessage {
            // An empty body is invalid in SQS; keep the fact visible instead.
            body: record
                .body
                .clone()
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "(no body)".into()),
            attributes,
        }
    }
}

fn add_outbox_counts(
    counts: &mut StopCounts,
    outbox: &OutboxCounts,
    passengers_in: u64,
    record: &SqsMessage,
) {
    counts.picked_up += outbox.picked_up;
    counts.forwarded += outbox.forwarded;
    counts.dropped_off += outbox.dropped_off;
    counts.rejected += outbox.rejected;
    counts.buses_out += outbox.buses_out;
    counts.bytes_out += outbox.bytes_out;
    let arrived = passengers_in + outbox.picked_up;
    let accounted = outbox.forwarded + outbox.dropped_off + outbox.rejected;
    if arrived != accounted {
        tracing::error!(
            message_id = message_id(record),
            arrived,
            accounted,
            "handler did not account for every passenger (board, drop off or reject each one)"
        );
        counts.unaccounted += arrived.abs_diff(accounted);
    }
}

fn message_id(record: &SqsMessage) -> &str {
    record.message_id.as_deref().unwrap_or_default()
}

/// SQS's ApproximateReceiveCount; 1 when absent (a hand-made event).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

fn oldest_age(records: &[SqsMessage]) -> Option<Duration> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    records
        .iter()
        .filter_map(|r| r.attributes.get("SentTimestamp")?.parse::<u64>().ok())
        .min()
        .map(|sent| Duration::from_millis(now.saturating_sub(sent)))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(non-text panic payload)".to_owned()
    }
}
