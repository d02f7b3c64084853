//! The outbox a stop boards passengers into while it handles one bus. Full buses leave
//! early (so a stop can stream a large source in bounded memory); the rest leave when the
//! bus has been handled, pooled with the other messages of the batch.

use crate::config::StopConfig;
use crate::envelope::{BusHeader, EXTENDED_PAYLOAD_SIZE, Passenger, PayloadPointer, Rejection};
use crate::error::{ErrorClass, PortError, StopError};
use crate::forwarder::{Forwarder, Parcel};
use crate::metrics::StopCounts;
use crate::packer::{PackedBus, Packer};
use crate::ports::{Attribute, ObjectStore, OutgoingMessage, SQS_MAX_BATCH_ENTRIES, SQS_MAX_BYTES};
use std::sync::Arc;

/// What an outbox counted, for the stop's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Passengers declared as new from a source.
    pub picked_up: u64,
    /// Passengers boarded for the next stop.
    pub forwarded: u64,
    /// Passengers sent back to this stop's own queue (continuations).
    pub continued: u64,
    /// Passengers that left the bus here.
    pub dropped_off: u64,
    /// Passengers sent to quarantine.
    pub rejected: u64,
    /// Buses built for the next stop.
    pub buses_out: u64,
    /// Bytes of those buses' bodies (before claim checks).
    pub bytes_out: u64,
}

impl From<OutboxCounts> for StopCounts {
    /// The stop's counts of one bus's outbox (its buses and passengers in are the caller's).
    fn from(outbox: OutboxCounts) -> Self {
        StopCounts {
            picked_up: outbox.picked_up,
            forwarded: outbox.forwarded,
            continued: outbox.continued,
            dropped_off: outbox.dropped_off,
            rejected: outbox.rejected,
            buses_out: outbox.buses_out,
            bytes_out: outbox.bytes_out,
            ..StopCounts::default()
        }
    }
}

/// Messages an outbox built but has not sent yet, by the queue they go to.
#[derive(Debug, Default)]
pub(crate) struct Departures {
    /// Buses for the next stop.
    pub next: Vec<OutgoingMessage>,
    /// Buses for the quarantine queue.
    pub quarantine: Vec<OutgoingMessage>,
    /// Buses back to this stop's own queue.
    pub again: Vec<OutgoingMessage>,
}

/// The ways out of an outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// To the next stop.
    Next,
    /// To quarantine, with a reason.
    Quarantine,
    /// Back to this stop's own queue, for a later invocation.
    Again,
}

/// One queue's side of an outbox: a packer and the buses ready to leave.
struct Lane {
    queue_url: Option<String>,
    packer: Packer,
    ready: Vec<OutgoingMessage>,
    ready_bytes: usize,
    /// Riders and body bytes on the `ready` buses.
    ready_riders: u64,
    ready_body_bytes: u64,
}

/// Collects what a stop forwards, drops off and rejects while it handles one bus.
pub struct Outbox {
    origin: usize,
    trip: String,
    claim_check_prefix: String,
    forwarder: Forwarder,
    objects: Arc<dyn ObjectStore>,
    stop: String,
    next: Lane,
    quarantine: Lane,
    again: Lane,
    counts: OutboxCounts,
    /// Of `counts`, what already left: buses that departed early because they were full. They
    /// stay sent even when the handler then fails.
    departed: OutboxCounts,
    rider: Vec<u8>,
}

impl Outbox {
    /// An outbox for buses derived from the bus `origin_bus` (hop `hop` when they leave), as
    /// input message `origin` of its batch.
    pub(crate) fn new(
        config: &StopConfig,
        trip: &str,
        origin_bus: &str,
        hop: u32,
        origin: usize,
        forwarder: Forwarder,
        objects: Arc<dyn ObjectStore>,
    ) -> Self {
        let header = BusHeader {
            trip: trip.to_owned(),
            route: config.route.clone(),
            from: config.stop.clone(),
            hop,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let lane = |queue_url: Option<String>, origin_bus: String, header: BusHeader| Lane {
            queue_url,
            packer: Packer::new(header, origin_bus, config.bus_byte_budget),
            ready: Vec::new(),
            ready_bytes: 0,
            ready_riders: 0,
            ready_body_bytes: 0,
        };
        Outbox {
            origin,
            trip: trip.to_owned(),
            claim_check_prefix: config.claim_check_prefix.clone(),
            forwarder,
            objects,
            stop: config.stop.clone(),
            next: lane(
                config.next_queue_url.clone(),
                origin_bus.to_owned(),
                header.clone(),
            ),
            // Quarantine and continuation buses get their own id spaces so they never collide
            // with route buses.
            quarantine: lane(
                Some(config.quarantine_queue_url.clone()),
                format!("{origin_bus}/quarantine"),
                header.clone(),
            ),
            // A continuation has not travelled: it keeps the hop of the bus it continues, so
            // an object read over many invocations never trips the loop guard.
            again: lane(
                config.queue_url.clone(),
                format!("{origin_bus}/again"),
                BusHeader {
                    hop: hop.saturating_sub(1),
                    ..header.clone()
                },
            ),
            counts: OutboxCounts::default(),
            departed: OutboxCounts::default(),
            rider: Vec::new(),
        }
    }

    /// Boards `passenger` for the next stop.
    pub async fn board(&mut self, passenger: &Passenger) -> Result<(), StopError> {
        if self.next.queue_url.is_none() {
            return Err(StopError::permanent(format!(
                "stop {} has no NEXT_QUEUE_URL, yet its handler boarded passenger {}",
                self.stop,
                passenger.id()
            )));
        }
        let rider = serialize(&mut self.rider, passenger, passenger.id())?;
        self.counts.forwarded += 1;
        let mut full = Vec::new();
        self.next.packer.push(rider, &mut full);
        self.counts.buses_out += full.len() as u64;
        self.counts.bytes_out += full.iter().map(|bus| bus.body.len() as u64).sum::<u64>();
        self.depart_lane(full, Way::Next).await
    }

    /// Sends `passenger` back to this stop's own queue (`QUEUE_URL`) for a later invocation:
    /// a continuation ticket that says where to pick up long work the deadline cut short.
    pub async fn ride_again(&mut self, passenger: &Passenger) -> Result<(), StopError> {
        if self.again.queue_url.is_none() {
            return Err(StopError::retryable(format!(
                "stop {} has no QUEUE_URL, so it cannot send passenger {} back to itself to \
                 continue; set QUEUE_URL to the stop's own queue",
                self.stop,
                passenger.id()
            )));
        }
        let rider = serialize(&mut self.rider, passenger, passenger.id())?;
        self.counts.continued += 1;
        let mut full = Vec::new();
        self.again.packer.push(rider, &mut full);
        self.depart_lane(full, Way::Again).await
    }

    /// Sends `rejection` to quarantine with its reason; the rest of the bus rides on.
    pub async fn reject(&mut self, rejection: &Rejection) -> Result<(), StopError> {
        let rider = serialize(&mut self.rider, rejection, &rejection.id)?;
        self.counts.rejected += 1;
        let mut full = Vec::new();
        self.quarantine.packer.push(rider, &mut full);
        self.depart_lane(full, Way::Quarantine).await
    }

    /// Records `count` passengers leaving the bus here (written, consumed or filtered out).
    pub fn drop_off(&mut self, count: u64) {
        self.counts.dropped_off += count;
    }

    /// Records `count` new passengers taken from a source (each is then boarded or rejected).
    pub fn pick_up(&mut self, count: u64) {
        self.counts.picked_up += count;
    }

    /// Closes the bus being packed: the next passenger boards a new bus.
    pub async fn depart(&mut self) -> Result<(), StopError> {
        let full: Vec<PackedBus> = self.next.packer.finish().into_iter().collect();
        self.counts.buses_out += full.len() as u64;
        self.counts.bytes_out += full.iter().map(|bus| bus.body.len() as u64).sum::<u64>();
        self.depart_lane(full, Way::Next).await
    }

    /// What this outbox counted so far.
    pub fn counts(&self) -> OutboxCounts {
        self.counts
    }

    /// What a bus whose handler failed still counts: its picked-up passengers, and the buses
    /// that already left (nothing is dropped off: the bus is not done).
    pub(crate) fn departed(&self) -> OutboxCounts {
        OutboxCounts {
            picked_up: self.counts.picked_up,
            ..self.departed
        }
    }

    /// Closes every lane and returns what has not left yet, for the caller to send pooled
    /// with other messages' buses.
    pub(crate) async fn finish(mut self) -> Result<(OutboxCounts, Departures), StopError> {
        self.depart().await?;
        for way in [Way::Quarantine, Way::Again] {
            let last: Vec<PackedBus> = self.lane(way).packer.finish().into_iter().collect();
            self.park_and_queue(last, way).await?;
        }
        Ok((
            self.counts,
            Departures {
                next: self.next.ready,
                quarantine: self.quarantine.ready,
                again: self.again.ready,
            },
        ))
    }

    /// Closes every lane and sends everything now (for a caller with no batch to pool with,
    /// such as the depot).
    pub(crate) async fn close(self) -> Result<OutboxCounts, StopError> {
        let next_url = self.next.queue_url.clone();
        let quarantine_url = self.quarantine.queue_url.clone();
        let again_url = self.again.queue_url.clone();
        let forwarder = self.forwarder.clone();
        let origin = self.origin;
        let (counts, departures) = self.finish().await?;
        for (url, messages) in [
            (next_url, departures.next),
            (quarantine_url, departures.quarantine),
            (again_url, departures.again),
        ] {
            if let Some(url) = url {
                send_now(&forwarder, &url, origin, messages).await?;
            }
        }
        Ok(counts)
    }

    fn lane(&mut self, way: Way) -> &mut Lane {
        match way {
            Way::Next => &mut self.next,
            Way::Quarantine => &mut self.quarantine,
            Way::Again => &mut self.again,
        }
    }

    async fn depart_lane(&mut self, full: Vec<PackedBus>, way: Way) -> Result<(), StopError> {
        if full.is_empty() {
            return Ok(());
        }
        self.park_and_queue(full, way).await?;
        let lane = self.lane(way);
        // Leave early once a whole SendMessageBatch is ready, so memory stays bounded.
        if lane.ready.len() >= SQS_MAX_BATCH_ENTRIES || lane.ready_bytes >= SQS_MAX_BYTES {
            let messages = std::mem::take(&mut lane.ready);
            let (riders, body_bytes) = (lane.ready_riders, lane.ready_body_bytes);
            lane.ready_bytes = 0;
            lane.ready_riders = 0;
            lane.ready_body_bytes = 0;
            let buses = messages.len() as u64;
            if let Some(url) = lane.queue_url.clone() {
                send_now(&self.forwarder, &url, self.origin, messages).await?;
            }
            match way {
                Way::Quarantine => self.departed.rejected += riders,
                Way::Again => self.departed.continued += riders,
                Way::Next => {
                    self.departed.forwarded += riders;
                    self.departed.buses_out += buses;
                    self.departed.bytes_out += body_bytes;
                }
            }
        }
        Ok(())
    }

    /// Turns complete buses into messages, parking any bus over the budget in the object store.
    async fn park_and_queue(&mut self, buses: Vec<PackedBus>, way: Way) -> Result<(), StopError> {
        for bus in buses {
            let (riders, body_bytes) = (bus.riders as u64, bus.body.len() as u64);
            let message = if bus.body.len() > self.lane(way).packer.budget() {
                let key = format!("{}{}/{}.json", self.claim_check_prefix, self.trip, bus.bus);
                let parked = OutgoingMessage {
                    body: bus.body,
                    attributes: Vec::new(),
                };
                claim_check(self.objects.as_ref(), key, parked, "application/json").await?
            } else {
                OutgoingMessage {
                    body: bus.body,
                    attributes: Vec::new(),
                }
            };
            let lane = self.lane(way);
            lane.ready_bytes += message.size();
            lane.ready_riders += riders;
            lane.ready_body_bytes += body_bytes;
            lane.ready.push(message);
        }
        Ok(())
    }
}

/// `message` with its body parked in the object store under `key` and a claim check (the AWS
/// SQS extended client's pointer, with its size attribute) in its place.
pub(crate) async fn claim_check(
    objects: &dyn ObjectStore,
    key: String,
    mut message: OutgoingMessage,
    content_type: &str,
) -> Result<OutgoingMessage, PortError> {
    let size = message.body.len();
    let body = std::mem::take(&mut message.body).into_bytes();
    objects.put(&key, body, content_type).await?;
    message.body = PayloadPointer {
        s3_bucket_name: objects.bucket().to_owned(),
        s3_key: key,
    }
    .to_body();
    message
        .attributes
        .push(Attribute::number(EXTENDED_PAYLOAD_SIZE, size));
    Ok(message)
}

/// Sends `messages` now; any that cannot be delivered fails the bus with its class.
async fn send_now(
    forwarder: &Forwarder,
    url: &str,
    origin: usize,
    messages: Vec<OutgoingMessage>,
) -> Result<(), StopError> {
    let parcels = messages
        .into_iter()
        .map(|message| Parcel { origin, message })
        .collect();
    match forwarder.send(url, parcels).await.into_iter().next() {
        None => Ok(()),
        Some(failed) if failed.class == ErrorClass::Retryable => {
            Err(StopError::retryable(failed.reason))
        }
        Some(failed) => Err(StopError::permanent(failed.reason)),
    }
}

/// Serializes one rider into the reused buffer `buf`.
fn serialize<'b, T: serde::Serialize>(
    buf: &'b mut Vec<u8>,
    rider: &T,
    id: &str,
) -> Result<&'b str, StopError> {
    buf.clear();
    serde_json::to_writer(&mut *buf, rider)
        .map_err(|err| StopError::permanent(format!("passenger {id}: {err}")))?;
    std::str::from_utf8(buf).map_err(|err| StopError::permanent(format!("passenger {id}: {err}")))
}
