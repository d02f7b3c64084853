//! The batch processor: handles one batch of deliveries and says which must be retried.
//!
//! Each message is handled on its own (a bad body or a panic fails that message only), with
//! bounded concurrency. Buses are forwarded before a message is acknowledged. A bus that fails
//! for good is dead-lettered with its reason: at once when permanent, on its last receive when
//! retryable. All other failures are returned for the queue to retry; when every message failed
//! the processor returns an error so the host backs off.

use crate::delivery::{BatchHandler, BatchOutcome, Delivery, Invocation};
use crate::envelope::{Envelope, Passenger, PayloadPointer, decode_envelope};
use crate::error::{DecodeError, ErrorClass, PortError, StopError};
use crate::forwarder::{Forwarder, Parcel};
use crate::id::stable_id;
use crate::ledger::{
    LedgerEntry, Recorded, TripBook, cleared_dead_letter, dead_lettered_entry, ridden_entry,
};
use crate::metrics::{InvocationMetrics, StopCounts};
use crate::outbox::{Departures, Outbox, OutboxCounts, claim_check};
use crate::ports::{
    Attribute, OutgoingMessage, SQS_MAX_BATCH_ENTRIES, SQS_MAX_BYTES, VisibilityChange,
};
use crate::runtime::StopRuntime;
use crate::stop::{Stop, StopContext};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
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
    /// Every one of them: what a redrive takes off a bus it sends back.
    pub const ALL: [&str; 6] = [REASON, CLASS, STOP, TRIP, RECEIVE_COUNT, MESSAGE_ID];
}

/// Longest reason text put on a dead-lettered bus.
const MAX_REASON_LEN: usize = 1000;

/// Returned when every message of a batch failed, so that the host backs off (Lambda reports it
/// as a function error whose `errorType` is the class).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("all {count} messages of the batch failed; first failure: {first_reason}")]
pub struct BatchError {
    /// Messages in the batch.
    pub count: usize,
    /// The first failure's class.
    pub class: ErrorClass,
    /// The first failure's reason.
    pub first_reason: String,
}

/// Runs a stop over batches of deliveries.
pub struct BatchProcessor {
    stop: Arc<dyn Stop>,
    runtime: StopRuntime,
    forwarder: Forwarder,
}

/// How one started message ended before pooled sending (a message not started, because the
/// invocation's deadline was near, has none).
struct Ridden {
    passengers_in: u64,
    trip: Option<String>,
    bus: Option<String>,
    /// What a failed message still counts: its picked-up passengers and the buses that left.
    departed: OutboxCounts,
    outcome: Result<(OutboxCounts, Departures), Failure>,
}

impl Ridden {
    fn undecoded(failure: Failure) -> Self {
        Ridden {
            passengers_in: 0,
            trip: None,
            bus: None,
            departed: OutboxCounts::default(),
            outcome: Err(failure),
        }
    }
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
            reason: err.reason(),
        }
    }
}

impl BatchProcessor {
    /// A processor running `stop` with `runtime` (the registry builds it).
    pub(crate) fn new(stop: Arc<dyn Stop>, runtime: StopRuntime) -> Self {
        let forwarder = Forwarder::new(runtime.ports.queues.clone(), runtime.ports.retry);
        BatchProcessor {
            stop,
            runtime,
            forwarder,
        }
    }

    /// Handles one batch and reports exactly the deliveries the queue must hand out again.
    pub async fn process(
        &self,
        deliveries: Vec<Delivery>,
        invocation: &Invocation,
    ) -> Result<BatchOutcome, BatchError> {
        let started = Instant::now();
        let config = &self.runtime.config;
        // Collected first: a closure inside the stream would make this future lose `Send`
        // for tokio::spawn (rustc's higher-ranked lifetime limitation).
        let rides: Vec<_> = deliveries
            .iter()
            .enumerate()
            .map(|(origin, delivery)| self.ride(origin, delivery, invocation))
            .collect();
        let mut ridden: Vec<(usize, Option<Ridden>)> = futures::stream::iter(rides)
            .buffer_unordered(config.batch_concurrency)
            .collect()
            .await;
        ridden.sort_by_key(|(origin, _)| *origin);
        let mut ridden: Vec<Option<Ridden>> = ridden.into_iter().map(|(_, r)| r).collect();

        if let Some(book) = &self.runtime.ports.trips {
            self.record_ridden(book, &mut ridden).await;
        }
        self.send_pooled(&mut ridden).await;

        let mut counts = StopCounts::default();
        let mut dead_letters = Vec::new();
        let mut failed: Vec<(usize, Failure)> = Vec::new();
        let mut handed_back = Vec::new();
        for (origin, (delivery, ride)) in deliveries.iter().zip(&ridden).enumerate() {
            let Some(ride) = ride else {
                counts.buses_handed_back += 1;
                handed_back.push(origin);
                continue;
            };
            add_counts(&mut counts, ride);
            let Err(failure) = &ride.outcome else {
                continue;
            };
            let last_chance = delivery.receive_count >= config.max_receive_count;
            let dead_letter = failure.class == ErrorClass::Permanent || last_chance;
            tracing::warn!(
                message_id = delivery.id,
                class = %failure.class,
                receive_count = delivery.receive_count,
                reason = %failure.reason,
                "bus failed"
            );
            if dead_letter && config.dead_letter_queue_url.is_some() {
                match self.dead_letter_message(delivery, ride, failure).await {
                    Ok(message) => dead_letters.push(Parcel { origin, message }),
                    Err(unparked) => failed.push((origin, unparked)),
                }
            } else {
                failed.push((origin, failure.clone()));
            }
        }

        let mut dead_lettered_origins: Vec<usize> = dead_letters.iter().map(|p| p.origin).collect();
        if let Some(url) = &config.dead_letter_queue_url {
            let dead_lettered = dead_letters.len() as u64;
            let undelivered = self.forwarder.send(url, dead_letters).await;
            for lost in &undelivered {
                tracing::error!(message_id = deliveries[lost.origin].id, reason = %lost.reason, "could not dead-letter bus; leaving it to the queue");
                failed.push((
                    lost.origin,
                    Failure {
                        class: lost.class,
                        reason: lost.reason.clone(),
                    },
                ));
            }
            counts.buses_dead_lettered += dead_lettered - undelivered.len() as u64;
            for lost in &undelivered {
                dead_lettered_origins.retain(|origin| *origin != lost.origin);
            }
        }
        if let Some(book) = &self.runtime.ports.trips {
            self.record_dead_letters(book, &ridden, &dead_lettered_origins, &mut failed)
                .await;
        }

        failed.sort_by_key(|(origin, _)| *origin);
        self.schedule_retries(&deliveries, &failed, &handed_back)
            .await;
        self.runtime
            .ports
            .metrics
            .record(&InvocationMetrics {
                stop: config.stop.clone(),
                route: config.route.clone(),
                counts,
                duration: started.elapsed(),
                oldest_message_age: oldest_age(&deliveries),
            })
            .await;
        match failed.first() {
            Some((_, first)) if failed.len() == deliveries.len() => Err(BatchError {
                count: deliveries.len(),
                class: first.class,
                first_reason: first.reason.clone(),
            }),
            _ => {
                let mut retry: Vec<usize> = failed.iter().map(|(origin, _)| *origin).collect();
                retry.extend(handed_back);
                retry.sort_unstable();
                Ok(BatchOutcome {
                    retry: retry
                        .into_iter()
                        .map(|origin| deliveries[origin].id.clone())
                        .collect(),
                })
            }
        }
    }

    /// Records every ridden bus in the ledger before its buses leave (and completes its trip
    /// when that made it complete), so nothing leaves uncounted. A bus whose record failed is
    /// not sent but retried: its work is done again, which changes nothing downstream (same
    /// ids). A bus recorded before that is ridden again (a redrive) clears its dead letter.
    async fn record_ridden(&self, book: &TripBook, ridden: &mut [Option<Ridden>]) {
        let config = &self.runtime.config;
        let mut origins = Vec::new();
        let mut entries = Vec::new();
        for (origin, ride) in ridden.iter().enumerate() {
            if let Some(Ridden {
                passengers_in,
                trip: Some(trip),
                bus: Some(bus),
                departed,
                outcome: Ok((counts, _)),
            }) = ride
            {
                origins.push(origin);
                entries.push(ridden_entry(
                    config,
                    trip,
                    bus,
                    *passengers_in,
                    counts,
                    departed,
                ));
            }
        }
        let objects = self.runtime.ports.objects.as_ref();
        let results = book.record(&entries, &config.route, objects).await;
        let mut again = Vec::new();
        for ((origin, entry), result) in origins.into_iter().zip(entries).zip(results) {
            match result {
                Ok(Recorded::AlreadyRecorded) => again.push((origin, entry)),
                Ok(_) => {}
                Err(err) => fail_on_ledger(&mut ridden[origin], &err),
            }
        }
        let buses = again
            .iter()
            .map(|(origin, entry)| (*origin, entry.trip.as_str(), entry.bus.as_str()))
            .collect();
        let clears = self
            .record_after_reading(book, buses, |_, _, bus, recorded| {
                cleared_dead_letter(recorded, bus)
            })
            .await;
        for (origin, err) in clears {
            fail_on_ledger(&mut ridden[origin], &err);
        }
    }

    /// Records every dead-lettered bus in the ledger (and completes its trip when that made it
    /// complete), counting what its earlier records sent and did not surely leave as in doubt.
    /// A bus whose record failed is retried (and dead-lettered again on its next receive).
    async fn record_dead_letters(
        &self,
        book: &TripBook,
        ridden: &[Option<Ridden>],
        dead_lettered: &[usize],
        failed: &mut Vec<(usize, Failure)>,
    ) {
        let config = &self.runtime.config;
        let buses = dead_lettered
            .iter()
            .filter_map(|&origin| {
                let ride = ridden[origin].as_ref()?;
                Some((origin, ride.trip.as_deref()?, ride.bus.as_deref()?))
            })
            .collect();
        let failures = self
            .record_after_reading(book, buses, |origin, trip, bus, recorded| {
                let passengers_in = ridden[origin].as_ref().map_or(0, |r| r.passengers_in);
                Some(dead_lettered_entry(
                    config,
                    trip,
                    bus,
                    passengers_in,
                    recorded,
                ))
            })
            .await;
        for (origin, err) in failures {
            tracing::warn!(error = %crate::error::chain(&err), "ledger record failed; the bus will be retried");
            failed.push((origin, ledger_failure(&err)));
        }
    }

    /// Reads the records of each of `buses` (origin, trip, bus), makes its entry from them with
    /// `entry_of` (none: nothing to record), and records those entries together, so each trip's
    /// completion is checked once. Returns the buses whose read or record failed.
    async fn record_after_reading(
        &self,
        book: &TripBook,
        buses: Vec<(usize, &str, &str)>,
        entry_of: impl Fn(usize, &str, &str, &[LedgerEntry]) -> Option<LedgerEntry>,
    ) -> Vec<(usize, PortError)> {
        let config = &self.runtime.config;
        let reads = buses
            .iter()
            .map(|(_, trip, bus)| book.ledger.bus_entries(trip, &config.stop, bus));
        let histories = futures::future::join_all(reads).await;
        let mut failures = Vec::new();
        let mut origins = Vec::new();
        let mut entries = Vec::new();
        for ((origin, trip, bus), history) in buses.into_iter().zip(histories) {
            match history.map(|recorded| entry_of(origin, trip, bus, &recorded)) {
                Ok(Some(entry)) => {
                    origins.push(origin);
                    entries.push(entry);
                }
                Ok(None) => {}
                Err(err) => failures.push((origin, err)),
            }
        }
        let objects = self.runtime.ports.objects.as_ref();
        let results = book.record(&entries, &config.route, objects).await;
        let refused = origins.into_iter().zip(results);
        failures.extend(refused.filter_map(|(origin, result)| Some((origin, result.err()?))));
        failures
    }

    /// Sets when each message to retry is seen again: a failed bus after its backoff, an
    /// unstarted one at once. Best effort: a message whose visibility cannot be changed
    /// returns after the queue's visibility timeout, which only delays it.
    async fn schedule_retries(
        &self,
        deliveries: &[Delivery],
        failed: &[(usize, Failure)],
        handed_back: &[usize],
    ) {
        let config = &self.runtime.config;
        let Some(queue_url) = &config.queue_url else {
            return;
        };
        let backoff = failed.iter().map(|(origin, _)| {
            let delivery = &deliveries[*origin];
            (
                delivery,
                config.backoff.delay(delivery.receive_count, &delivery.id),
            )
        });
        let at_once = handed_back
            .iter()
            .map(|origin| (&deliveries[*origin], Duration::ZERO));
        let changes: Vec<(&Delivery, VisibilityChange)> = backoff
            .chain(at_once)
            .filter(|(delivery, _)| !delivery.receipt_handle.is_empty())
            .map(|(delivery, timeout)| {
                let change = VisibilityChange {
                    receipt_handle: delivery.receipt_handle.clone(),
                    timeout,
                };
                (delivery, change)
            })
            .collect();
        let queues = &self.runtime.ports.queues;
        for chunk in changes.chunks(SQS_MAX_BATCH_ENTRIES) {
            let entries: Vec<VisibilityChange> =
                chunk.iter().map(|(_, change)| change.clone()).collect();
            match queues.change_visibility(queue_url, &entries).await {
                Ok(refused) => {
                    for entry in refused {
                        tracing::warn!(
                            message_id = chunk[entry.index].0.id,
                            code = entry.code,
                            reason = entry.message,
                            "visibility not changed; the bus returns after the queue's visibility timeout"
                        );
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %crate::error::chain(&err), "visibility not changed; these buses return after the queue's visibility timeout");
                }
            }
        }
    }

    /// Decodes and handles one message; buses that are complete but not yet sent are returned.
    async fn ride(
        &self,
        origin: usize,
        delivery: &Delivery,
        invocation: &Invocation,
    ) -> (usize, Option<Ridden>) {
        let config = &self.runtime.config;
        // The first wave starts with the invocation, so it always runs: a margin set larger
        // than the function timeout then slows a stop down instead of stopping it.
        let first_wave = origin < config.batch_concurrency;
        if !first_wave
            && invocation
                .deadline
                .is_some_and(|d| d.within(config.deadline_margin))
        {
            tracing::info!(
                message_id = delivery.id,
                "deadline near: bus handed back unstarted"
            );
            return (origin, None);
        }
        let span = tracing::info_span!("bus", stop = %config.stop, trip = tracing::field::Empty, message_id = delivery.id);
        async {
            let envelope = match self.decode(delivery).await {
                Ok(envelope) => envelope,
                Err(failure) => return (origin, Some(Ridden::undecoded(failure))),
            };
            tracing::Span::current().record("trip", envelope.trip.as_str());
            let ridden = self.handle(origin, delivery, invocation, envelope).await;
            if let Ok((counts, _)) = &ridden.outcome {
                tracing::info!(
                    passengers_in = ridden.passengers_in,
                    picked_up = counts.picked_up,
                    forwarded = counts.forwarded,
                    dropped_off = counts.dropped_off,
                    rejected = counts.rejected,
                    "bus handled"
                );
            }
            (origin, Some(ridden))
        }
        .instrument(span)
        .await
    }

    async fn handle(
        &self,
        origin: usize,
        delivery: &Delivery,
        invocation: &Invocation,
        envelope: Envelope<Passenger>,
    ) -> Ridden {
        let max_hops = self.runtime.config.max_hops;
        let passengers_in = envelope.passengers.len() as u64;
        let trip = envelope.trip.clone();
        let bus = envelope.bus.clone();
        let (departed, outcome) = if envelope.hop >= max_hops {
            let loop_guard = Failure {
                class: ErrorClass::Permanent,
                reason: format!(
                    "bus {} has travelled {} stops, MAX_HOPS is {max_hops}: is the route a loop?",
                    envelope.bus, envelope.hop
                ),
            };
            (OutboxCounts::default(), Err(loop_guard))
        } else {
            self.run_stop(origin, delivery, invocation, envelope).await
        };
        Ridden {
            passengers_in,
            trip: Some(trip),
            bus: Some(bus),
            departed,
            outcome,
        }
    }

    /// Runs the stop's handler over one bus: what already left, and how it ended.
    async fn run_stop(
        &self,
        origin: usize,
        delivery: &Delivery,
        invocation: &Invocation,
        envelope: Envelope<Passenger>,
    ) -> (OutboxCounts, Result<(OutboxCounts, Departures), Failure>) {
        let config = &self.runtime.config;
        let Envelope {
            bus,
            trip,
            hop,
            passengers,
            ..
        } = envelope;
        let passengers_in = passengers.len() as u64;
        let mut outbox = Outbox::new(
            config,
            &trip,
            &bus,
            hop + 1,
            origin,
            self.forwarder.clone(),
            self.runtime.ports.objects.clone(),
        );
        if let Some(book) = &self.runtime.ports.trips {
            outbox = outbox.recording_departures(book.ledger.clone());
        }
        let ctx = StopContext {
            trip: &trip,
            bus: &bus,
            message_id: &delivery.id,
            request_id: &invocation.request_id,
            deadline: invocation.deadline,
            config,
            objects: self.runtime.ports.objects.as_ref(),
        };
        let handled = AssertUnwindSafe(self.stop.handle(&ctx, passengers, &mut outbox))
            .catch_unwind()
            .await;
        let departed = outbox.departed();
        let outcome = match handled {
            Ok(Ok(())) => match outbox.finish().await {
                Ok(done) => balanced(&config.stop, passengers_in, done),
                Err(err) => Err(err.into()),
            },
            Ok(Err(err)) => Err(err.into()),
            Err(panic) => Err(Failure {
                class: ErrorClass::Retryable,
                reason: format!("handler panicked: {}", panic_message(panic.as_ref())),
            }),
        };
        (departed, outcome)
    }

    /// Reads the envelope from the body, or from the object store for a claim check.
    /// A body that can never be read (no body, not JSON, not an envelope, an unknown version, a
    /// broken pointer) is permanent: redelivering the same bytes cannot help, so it goes to the
    /// dead-letter queue at once with the reason, to be redriven once a reader for it is
    /// deployed. Only a claim check the store cannot fetch right now is retryable.
    async fn decode(&self, delivery: &Delivery) -> Result<Envelope<Passenger>, Failure> {
        let unreadable = |err: DecodeError| Failure {
            class: ErrorClass::Permanent,
            reason: err.to_string(),
        };
        let body = delivery.body.as_str();
        if body.is_empty() {
            return Err(unreadable(DecodeError::MissingBody));
        }
        match PayloadPointer::from_body(body) {
            None => decode_envelope(body).map_err(unreadable),
            Some(pointer) => {
                let pointer = pointer.map_err(unreadable)?;
                let parked = self.fetch_parked(&pointer).await.map_err(|err| Failure {
                    class: err.class(),
                    reason: format!("claim check: {}", crate::error::chain(&err)),
                })?;
                decode_envelope(&parked).map_err(unreadable)
            }
        }
    }

    async fn fetch_parked(&self, pointer: &PayloadPointer) -> Result<String, PortError> {
        let objects = &self.runtime.ports.objects;
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
            .map_err(|err| PortError::retryable(resource, err))?;
        Ok(body)
    }

    /// Sends every successful message's remaining buses pooled into shared batch calls, one
    /// stream of calls per queue; a bus that cannot be delivered fails the message that
    /// produced it.
    async fn send_pooled(&self, ridden: &mut [Option<Ridden>]) {
        let mut by_queue: BTreeMap<String, Vec<Parcel>> = BTreeMap::new();
        for (origin, ride) in ridden.iter_mut().enumerate() {
            if let Some(Ridden {
                outcome: Ok((_, departures)),
                ..
            }) = ride
            {
                for (url, messages) in std::mem::take(&mut departures.0) {
                    let parcels = messages
                        .into_iter()
                        .map(|message| Parcel { origin, message });
                    by_queue.entry(url).or_default().extend(parcels);
                }
            }
        }
        let sends: Vec<_> = by_queue
            .iter_mut()
            .map(|(url, parcels)| self.forwarder.send(url, std::mem::take(parcels)))
            .collect();
        let lost = futures::future::join_all(sends).await;
        for lost in lost.into_iter().flatten() {
            if let Some(ride) = &mut ridden[lost.origin]
                && ride.outcome.is_ok()
            {
                ride.outcome = Err(Failure {
                    class: lost.class,
                    reason: format!("forwarding failed: {}", lost.reason),
                });
            }
        }
    }

    /// The dead-letter message of a failed bus: its body as it came, with the reason and where
    /// it failed as attributes. A body too large to send again (a producer that went around
    /// SQS's limit) is parked in the bucket and the message carries a claim check to it.
    async fn dead_letter_message(
        &self,
        delivery: &Delivery,
        ride: &Ridden,
        failure: &Failure,
    ) -> Result<OutgoingMessage, Failure> {
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
            Attribute::number(attr::RECEIVE_COUNT, delivery.receive_count),
            Attribute::string(attr::MESSAGE_ID, delivery.id.clone()),
        ];
        if let Some(trip) = &ride.trip {
            attributes.push(Attribute::string(attr::TRIP, trip.clone()));
        }
        let message = OutgoingMessage {
            // An empty body is invalid in SQS; keep the fact visible instead.
            body: if delivery.body.is_empty() {
                "(no body)".into()
            } else {
                delivery.body.to_string()
            },
            attributes,
        };
        if message.size() <= SQS_MAX_BYTES {
            return Ok(message);
        }
        self.park_dead_letter(delivery, message).await
    }

    async fn park_dead_letter(
        &self,
        delivery: &Delivery,
        message: OutgoingMessage,
    ) -> Result<OutgoingMessage, Failure> {
        let config = &self.runtime.config;
        let key = format!(
            "{}dead-letter/{}/{}.body",
            config.claim_check_prefix,
            config.stop,
            stable_id(&[&config.stop, &delivery.id])
        );
        let size = message.body.len();
        claim_check(
            self.runtime.ports.objects.as_ref(),
            key,
            message,
            "application/octet-stream",
        )
        .await
        .map_err(|err| Failure {
            class: ErrorClass::Retryable,
            reason: format!(
                "could not park the {size}-byte body of a bus to dead-letter: {}",
                crate::error::chain(&err)
            ),
        })
    }
}

#[async_trait]
impl BatchHandler for BatchProcessor {
    async fn handle_batch(
        &self,
        deliveries: Vec<Delivery>,
        invocation: &Invocation,
    ) -> Result<BatchOutcome, BatchError> {
        self.process(deliveries, invocation).await
    }
}

/// The outbox's result, or a permanent failure when the handler lost or invented passengers:
/// every passenger that arrived or was picked up must be boarded, dropped off or rejected.
fn balanced(
    stop: &str,
    passengers_in: u64,
    (counts, departures): (OutboxCounts, Departures),
) -> Result<(OutboxCounts, Departures), Failure> {
    let arrived = passengers_in + counts.picked_up;
    let accounted = counts.forwarded + counts.continued + counts.dropped_off + counts.rejected;
    if arrived == accounted {
        return Ok((counts, departures));
    }
    Err(Failure {
        class: ErrorClass::Permanent,
        reason: format!(
            "stop {stop} did not account for every passenger: {arrived} arrived or were picked up, \
             {accounted} were boarded, continued, dropped off or rejected (a handler must do one of these to each)"
        ),
    })
}

/// The failure of a bus whose ledger record failed: retryable.
fn ledger_failure(err: &PortError) -> Failure {
    Failure {
        class: ErrorClass::Retryable,
        reason: format!("ledger: {}", crate::error::chain(err)),
    }
}

/// Fails a ridden bus whose ledger record failed, so its buses do not leave uncounted.
fn fail_on_ledger(ride: &mut Option<Ridden>, err: &PortError) {
    tracing::warn!(error = %crate::error::chain(err), "ledger record failed; the bus will be retried");
    if let Some(ride) = ride {
        ride.outcome = Err(ledger_failure(err));
    }
}

/// Adds one message's counts. A failed message counts what already left before it failed;
/// the rest of its passengers count as failed, so the counts add up either way.
fn add_counts(counts: &mut StopCounts, ride: &Ridden) {
    counts.buses_in += 1;
    counts.passengers_in += ride.passengers_in;
    match &ride.outcome {
        Ok((outbox, _)) => *counts += StopCounts::from(outbox.clone()),
        Err(_) => {
            let left = &ride.departed;
            *counts += StopCounts::from(left.clone());
            counts.buses_failed += 1;
            counts.passengers_failed += (ride.passengers_in + left.picked_up)
                .saturating_sub(left.forwarded + left.continued + left.rejected);
        }
    }
}

fn oldest_age(deliveries: &[Delivery]) -> Option<Duration> {
    let now = SystemTime::now();
    deliveries
        .iter()
        .filter_map(|d| d.sent_at)
        .min()
        .map(|sent| now.duration_since(sent).unwrap_or(Duration::ZERO))
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
