//! The outbox a stop boards passengers into while it handles one bus. Full buses leave
//! early (so a stop can stream a large source in bounded memory); the rest leave when the
//! bus has been handled, pooled with the other messages of the batch.

use crate::config::{NEXT_LANE, StopConfig, lane_variable};
use crate::envelope::{BusHeader, EXTENDED_PAYLOAD_SIZE, Passenger, PayloadPointer, Rejection};
use crate::error::{ErrorClass, PortError, StopError};
use crate::forwarder::{Forwarder, Parcel};
use crate::ledger::{Ledger, departure_bus, departure_entry, departure_left_entry};
use crate::metrics::StopCounts;
use crate::packer::{PackedBus, Packer};
use crate::ports::{Attribute, ObjectStore, OutgoingMessage, SQS_MAX_BATCH_ENTRIES, SQS_MAX_BYTES};
use crate::quarantine::QuarantineFile;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an outbox counted, for the stop's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Passengers declared as new from a source.
    pub picked_up: u64,
    /// Passengers boarded for the next stops, on every lane.
    pub forwarded: u64,
    /// Of `forwarded`, by lane.
    pub lanes: BTreeMap<String, u64>,
    /// Passengers sent back to this stop's own queue (continuations).
    pub continued: u64,
    /// Passengers that left the bus here.
    pub dropped_off: u64,
    /// Passengers quarantined.
    pub rejected: u64,
    /// Buses built for the next stops.
    pub buses_out: u64,
    /// Bytes of those buses' bodies (before claim checks).
    pub bytes_out: u64,
}

impl OutboxCounts {
    /// These counts but for the passengers that `departed` early, on each lane and back to the
    /// stop's own queue.
    pub(crate) fn without_departures(&self, departed: &OutboxCounts) -> OutboxCounts {
        let mut rest = self.clone();
        for (lane, left) in &departed.lanes {
            if let Some(boarded) = rest.lanes.get_mut(lane) {
                *boarded = boarded.saturating_sub(*left);
            }
        }
        rest.lanes.retain(|_, boarded| *boarded > 0);
        rest.forwarded = rest.forwarded.saturating_sub(departed.forwarded);
        rest.continued = rest.continued.saturating_sub(departed.continued);
        rest
    }
}

impl From<OutboxCounts> for StopCounts {
    /// The stop's counts of one bus's outbox (its buses and passengers in are the caller's).
    fn from(outbox: OutboxCounts) -> Self {
        StopCounts {
            picked_up: outbox.picked_up,
            forwarded: outbox.forwarded,
            lanes: outbox.lanes,
            continued: outbox.continued,
            dropped_off: outbox.dropped_off,
            rejected: outbox.rejected,
            buses_out: outbox.buses_out,
            bytes_out: outbox.bytes_out,
            ..StopCounts::default()
        }
    }
}

/// Messages an outbox built but has not sent yet, by the queue URL they go to.
#[derive(Debug, Default)]
pub(crate) struct Departures(pub Vec<(String, Vec<OutgoingMessage>)>);

/// The ways out of an outbox to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// To a next stop, by the lane's index.
    Lane(usize),
    /// Back to this stop's own queue, for a later invocation.
    Again,
}

/// One queue's side of an outbox: a packer and the buses ready to leave.
struct Exit {
    /// The lane's name, for a way to a next stop.
    lane: String,
    queue_url: Option<String>,
    packer: Packer,
    ready: Vec<OutgoingMessage>,
    ready_bytes: usize,
    /// Riders and body bytes on the `ready` buses.
    ready_riders: u64,
    ready_body_bytes: u64,
    /// Passengers boarded on this lane, and of them those on buses that already left.
    boarded: u64,
    departed: u64,
}

impl Exit {
    fn new(lane: &str, queue_url: Option<String>, packer: Packer) -> Self {
        Exit {
            lane: lane.to_owned(),
            queue_url,
            packer,
            ready: Vec::new(),
            ready_bytes: 0,
            ready_riders: 0,
            ready_body_bytes: 0,
            boarded: 0,
            departed: 0,
        }
    }
}

/// Bytes of buses (as sent) an exit holds before they leave ahead of the rest: above what one
/// bus's output takes (`BUS_RAW_BYTE_LIMIT` of envelope compresses to at most as much).
const EARLY_DEPARTURE_BYTES: usize = 8 * SQS_MAX_BYTES;

/// Collects what a stop forwards, drops off and rejects while it handles one bus.
pub struct Outbox {
    origin: usize,
    trip: String,
    claim_check_prefix: String,
    forwarder: Forwarder,
    objects: Arc<dyn ObjectStore>,
    stop: String,
    /// The lanes to next stops: [`NEXT_LANE`] first, then the named lanes.
    lanes: Vec<Exit>,
    quarantine: QuarantineFile,
    again: Exit,
    counts: OutboxCounts,
    /// Of `counts`, what already left: buses that departed early because they were full. They
    /// stay sent even when the handler then fails.
    departed: OutboxCounts,
    /// The bus this outbox's buses derive from, and the ledger its early departures are
    /// recorded in before they leave (none for the depot and a replay, which record once all
    /// has left) with how many it recorded.
    origin_bus: String,
    ledger: Option<Arc<dyn Ledger>>,
    early_departures: u32,
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
        let packer =
            |bus_space: String, header: BusHeader| Packer::new(header, bus_space, config.bus);
        let next = Exit::new(
            NEXT_LANE,
            config.next_queue_url.clone(),
            packer(origin_bus.to_owned(), header.clone()),
        );
        // Every other way gets its own bus id space, so its buses never collide with the
        // default lane's.
        let named = config.lanes.iter().map(|(lane, url)| {
            Exit::new(
                lane,
                Some(url.clone()),
                packer(format!("{origin_bus}/{lane}"), header.clone()),
            )
        });
        Outbox {
            origin,
            trip: trip.to_owned(),
            claim_check_prefix: config.claim_check_prefix.clone(),
            forwarder,
            objects,
            stop: config.stop.clone(),
            lanes: std::iter::once(next).chain(named).collect(),
            quarantine: QuarantineFile::new(
                &config.quarantine_prefix,
                trip,
                &config.stop,
                origin_bus,
                config.bus.budget,
            ),
            // A continuation has not travelled: it keeps the hop of the bus it continues, so
            // an object read over many invocations never trips the loop guard.
            again: Exit::new(
                "again",
                config.queue_url.clone(),
                packer(
                    format!("{origin_bus}/again"),
                    BusHeader {
                        hop: hop.saturating_sub(1),
                        ..header.clone()
                    },
                ),
            ),
            counts: OutboxCounts::default(),
            departed: OutboxCounts::default(),
            origin_bus: origin_bus.to_owned(),
            ledger: None,
            early_departures: 0,
        }
    }

    /// This outbox, recording each early departure in `ledger` before it leaves, so what left
    /// stays counted as sent even when the bus then dies before its own record.
    pub(crate) fn recording_departures(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Boards `passenger` for the next stop, on the default lane.
    pub async fn board(&mut self, passenger: &Passenger) -> Result<(), StopError> {
        self.board_to(NEXT_LANE, passenger).await
    }

    /// Boards `passenger` for the stop at the end of `lane` (`next` or a lane the stop's
    /// `LANE_<NAME>_QUEUE_URL` declares).
    pub async fn board_to(&mut self, lane: &str, passenger: &Passenger) -> Result<(), StopError> {
        let Some(index) = self
            .lanes
            .iter()
            .position(|exit| exit.lane == lane && exit.queue_url.is_some())
        else {
            return Err(StopError::permanent(format!(
                "stop {} has no {}, yet its handler boarded passenger {} on lane {lane}",
                self.stop,
                lane_variable(lane),
                passenger.id()
            )));
        };
        self.counts.forwarded += 1;
        let exit = &mut self.lanes[index];
        exit.boarded += 1;
        let mut full = Vec::new();
        board(&mut exit.packer, passenger, &mut full)?;
        self.count_buses_out(&full);
        self.depart_exit(full, Way::Lane(index)).await
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
        self.counts.continued += 1;
        let mut full = Vec::new();
        board(&mut self.again.packer, passenger, &mut full)?;
        self.depart_exit(full, Way::Again).await
    }

    /// Quarantines `rejection` with its reason (a file in the data bucket); the rest of the
    /// bus rides on.
    pub async fn reject(&mut self, rejection: &Rejection) -> Result<(), StopError> {
        self.counts.rejected += 1;
        if self.quarantine.push(rejection)? {
            self.departed.rejected += self.quarantine.write(self.objects.as_ref()).await?;
        }
        Ok(())
    }

    /// What a sink that writes a whole bus reports: the passengers at `refused`'s indexes are
    /// rejected with their reasons, in bus order, and the rest are dropped off.
    pub async fn written_but(
        &mut self,
        passengers: &[Passenger],
        mut refused: Vec<(usize, String)>,
    ) -> Result<(), StopError> {
        refused.sort_unstable();
        for (index, reason) in &refused {
            self.reject(&passengers[*index].clone().reject(reason))
                .await?;
        }
        self.drop_off((passengers.len() - refused.len()) as u64);
        Ok(())
    }

    /// Records `count` passengers leaving the bus here (written, consumed or filtered out).
    pub fn drop_off(&mut self, count: u64) {
        self.counts.dropped_off += count;
    }

    /// Records `count` new passengers taken from a source (each is then boarded or rejected).
    pub fn pick_up(&mut self, count: u64) {
        self.counts.picked_up += count;
    }

    /// Closes the buses being packed on every lane and back to this stop's own queue: the next
    /// passenger boards a new bus (so that, say, each part of a big object is read by its own
    /// invocation).
    pub async fn depart(&mut self) -> Result<(), StopError> {
        for index in 0..self.lanes.len() {
            let mut full = Vec::new();
            self.lanes[index].packer.finish(&mut full);
            self.count_buses_out(&full);
            self.depart_exit(full, Way::Lane(index)).await?;
        }
        let mut again = Vec::new();
        self.again.packer.finish(&mut again);
        self.depart_exit(again, Way::Again).await
    }

    /// What this outbox counted so far.
    pub fn counts(&self) -> OutboxCounts {
        OutboxCounts {
            lanes: self.lane_counts(|exit| exit.boarded),
            ..self.counts.clone()
        }
    }

    /// What a bus whose handler failed still counts: its picked-up passengers, and the buses
    /// that already left (nothing is dropped off: the bus is not done).
    pub(crate) fn departed(&self) -> OutboxCounts {
        OutboxCounts {
            picked_up: self.counts.picked_up,
            lanes: self.lane_counts(|exit| exit.departed),
            ..self.departed.clone()
        }
    }

    /// A count of each lane that boarded anyone (counted per exit, not per passenger in a map:
    /// boarding is the hot path).
    fn lane_counts(&self, count: fn(&Exit) -> u64) -> BTreeMap<String, u64> {
        self.lanes
            .iter()
            .filter(|exit| exit.boarded > 0)
            .map(|exit| (exit.lane.clone(), count(exit)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Closes every exit and returns what has not left yet, for the caller to send pooled
    /// with other messages' buses.
    pub(crate) async fn finish(mut self) -> Result<(OutboxCounts, Departures), StopError> {
        self.depart().await?;
        self.quarantine.write(self.objects.as_ref()).await?;
        let counts = self.counts();
        let exits = self.lanes.into_iter().chain([self.again]);
        let departures = exits
            .filter(|exit| !exit.ready.is_empty())
            .filter_map(|exit| Some((exit.queue_url?, exit.ready)))
            .collect();
        Ok((counts, Departures(departures)))
    }

    /// Closes every exit and sends everything now (for a caller with no batch to pool with,
    /// such as the depot).
    pub(crate) async fn close(self) -> Result<OutboxCounts, StopError> {
        let forwarder = self.forwarder.clone();
        let origin = self.origin;
        let (counts, departures) = self.finish().await?;
        for (url, messages) in departures.0 {
            send_now(&forwarder, &url, origin, messages).await?;
        }
        Ok(counts)
    }

    fn count_buses_out(&mut self, full: &[PackedBus]) {
        self.counts.buses_out += full.len() as u64;
        self.counts.bytes_out += full.iter().map(|bus| bus.body.len() as u64).sum::<u64>();
    }

    fn exit(&mut self, way: Way) -> &mut Exit {
        match way {
            Way::Lane(index) => &mut self.lanes[index],
            Way::Again => &mut self.again,
        }
    }

    async fn depart_exit(&mut self, full: Vec<PackedBus>, way: Way) -> Result<(), StopError> {
        if full.is_empty() {
            return Ok(());
        }
        self.park_and_queue(full, way).await?;
        let exit = self.exit(way);
        // Leave early only once ten buses or EARLY_DEPARTURE_BYTES are ready, so a stream longer
        // than a bus (extract reading an object) stays bounded in memory, while the output of one
        // bus leaves with it, pooled, and needs no ledger record of its own.
        if exit.ready.len() < SQS_MAX_BATCH_ENTRIES && exit.ready_bytes < EARLY_DEPARTURE_BYTES {
            return Ok(());
        }
        let messages = std::mem::take(&mut exit.ready);
        let (riders, body_bytes) = (exit.ready_riders, exit.ready_body_bytes);
        exit.ready_bytes = 0;
        exit.ready_riders = 0;
        exit.ready_body_bytes = 0;
        let buses = messages.len() as u64;
        if let Some(url) = exit.queue_url.clone() {
            let lane = match way {
                Way::Lane(index) => Some(self.lanes[index].lane.clone()),
                Way::Again => None,
            };
            let departure = self.record_departure(lane.as_deref(), &url, riders).await?;
            send_now(&self.forwarder, &url, self.origin, messages).await?;
            self.record_left(departure).await?;
        }
        let departed = &mut self.departed;
        match way {
            Way::Again => departed.continued += riders,
            Way::Lane(index) => {
                departed.forwarded += riders;
                departed.buses_out += buses;
                departed.bytes_out += body_bytes;
                self.lanes[index].departed += riders;
            }
        }
        Ok(())
    }

    /// Records the next early departure (`riders` passengers on `lane`, `None` for a
    /// continuation, into the queue at `url`) when this outbox keeps the ledger; its id.
    async fn record_departure(
        &mut self,
        lane: Option<&str>,
        url: &str,
        riders: u64,
    ) -> Result<Option<String>, StopError> {
        let index = self.early_departures;
        self.early_departures += 1;
        let Some(ledger) = &self.ledger else {
            return Ok(None);
        };
        let departure = departure_bus(&self.origin_bus, index);
        let entry = departure_entry(&self.stop, &self.trip, &departure, lane, url, riders);
        ledger.record(&entry).await?;
        Ok(Some(departure))
    }

    /// Records that `departure` left, so a dead letter of this bus does not count it in doubt.
    async fn record_left(&self, departure: Option<String>) -> Result<(), StopError> {
        if let (Some(ledger), Some(departure)) = (&self.ledger, departure) {
            let entry = departure_left_entry(&self.stop, &self.trip, &departure);
            ledger.record(&entry).await?;
        }
        Ok(())
    }

    /// Turns complete buses into messages, parking any bus over the budget in the object store.
    async fn park_and_queue(&mut self, buses: Vec<PackedBus>, way: Way) -> Result<(), StopError> {
        for bus in buses {
            let (riders, body_bytes) = (bus.riders as u64, bus.body.len() as u64);
            let mut message = OutgoingMessage {
                body: bus.body,
                attributes: Vec::new(),
            };
            if body_bytes as usize > self.exit(way).packer.budget() {
                let key = format!("{}{}/{}.json", self.claim_check_prefix, self.trip, bus.bus);
                message =
                    claim_check(self.objects.as_ref(), key, message, "application/json").await?;
            }
            let exit = self.exit(way);
            exit.ready_bytes += message.size();
            exit.ready_riders += riders;
            exit.ready_body_bytes += body_bytes;
            exit.ready.push(message);
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

/// Boards `passenger` for `packer`'s buses; buses it completed are pushed to `full`.
fn board(
    packer: &mut Packer,
    passenger: &Passenger,
    full: &mut Vec<PackedBus>,
) -> Result<(), StopError> {
    packer
        .board(passenger, full)
        .map_err(|err| StopError::permanent(format!("passenger {}: {err}", passenger.id())))
}
