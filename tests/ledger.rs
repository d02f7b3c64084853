//! The trip ledger under the batch processor: each bus recorded once, redeliveries changing
//! nothing, a trip completing once (with failures when a bus is dead-lettered) and again once
//! its dead letter is redriven, or its quarantined passengers replayed. Part of the `batch` test binary.

use async_trait::async_trait;
use busline_core::PortError;
use busline_core::envelope::Passenger;
use busline_core::ledger::{
    BusOutcome, CollectedEvents, Ledger, LedgerEntry, MemoryLedger, TripBook, TripState,
    TripTotals, counter,
};
use busline_core::ports::{ObjectInfo, ObjectReader, ObjectStore};
use busline_core::replay::{REPLAY_STOP, ReplayError, read_passengers, replay};
use busline_core::{
    BatchProcessor, Delivery, Extensions, Invocation, Outbox, Ports, Stop, StopConfig, StopContext,
    StopError,
};
use busline_tests::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Drops every passenger off; fails a bus for good while `broken` and a passenger is fragile.
#[derive(Default)]
struct Sink {
    broken: AtomicBool,
}

#[async_trait]
impl Stop for Sink {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let fragile = passengers
            .iter()
            .any(|p| p.get("fragile") == Some(&Value::Bool(true)));
        if fragile && self.broken.load(Ordering::SeqCst) {
            return Err(StopError::permanent("the destination refused the bus"));
        }
        outbox.drop_off(passengers.len() as u64);
        Ok(())
    }
}

struct Bench {
    h: Harness,
    ledger: Arc<MemoryLedger>,
    events: Arc<CollectedEvents>,
}

impl Bench {
    fn new() -> Self {
        Bench {
            h: Harness::new(),
            ledger: Arc::default(),
            events: Arc::default(),
        }
    }

    /// The trip as a depot starts it: `tickets` passengers sent into `in`.
    async fn start(&self, tickets: u64) {
        let entry = LedgerEntry {
            trip: "t1".into(),
            stop: "depot".into(),
            bus: "trip-start".into(),
            outcome: BusOutcome::Ridden,
            at_ms: 1,
            counters: BTreeMap::from([
                (counter::STARTED.to_owned(), 1),
                (counter::sent("in"), tickets),
            ]),
        };
        self.ledger.record(&entry).await.expect("depot record");
    }

    /// The harness's ports with this bench's ledger.
    fn ports(&self) -> Ports {
        let mut ports = self.h.ports(Arc::new(self.h.queues.clone()));
        ports.trips = Some(TripBook {
            ledger: self.ledger.clone(),
            events: self.events.clone(),
            output_prefix: "output/".into(),
            retry: fast_retry(),
        });
        ports
    }

    async fn stop(&self, stop: Arc<dyn Stop>, extra: &[(&str, &str)]) -> BatchProcessor {
        self.stop_on(stop, extra, self.ports()).await
    }

    /// [`Bench::stop`] over `ports`.
    async fn stop_on(
        &self,
        stop: Arc<dyn Stop>,
        extra: &[(&str, &str)],
        ports: Ports,
    ) -> BatchProcessor {
        let mut vars = Harness::vars(&[("QUEUE_URL", "in")]);
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        shared_kind("scripted", stop)
            .build(Arc::new(vars), ports, Extensions::default())
            .await
            .expect("builds")
            .into_bus("scripted")
            .expect("reads a queue")
    }

    /// A sink reading `next`, as the stop after `scripted`.
    async fn next_sink(&self) -> BatchProcessor {
        let extra = [
            ("QUEUE_URL", "next"),
            ("NEXT_QUEUE_URL", ""),
            ("STOP_NAME", "load"),
        ];
        self.stop(Arc::new(Sink::default()), &extra).await
    }

    /// Rides every bus waiting in `next` with `sink`.
    async fn ride_next(&self, sink: &BatchProcessor) {
        let waiting = self.h.queue("next").receive(10, None).expect("receive");
        let deliveries = waiting.iter().map(|m| m.delivery()).collect();
        let outcome = sink
            .process(deliveries, &Invocation::default())
            .await
            .expect("not a function error");
        assert!(outcome.retry.is_empty(), "{outcome:?}");
    }

    async fn state(&self) -> TripState {
        self.totals().await.progress().state
    }

    /// Trip `t1`'s totals.
    async fn totals(&self) -> TripTotals {
        self.ledger.totals("t1").await.expect("read").expect("trip")
    }

    async fn counters(&self) -> BTreeMap<String, i64> {
        self.totals()
            .await
            .counters
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect()
    }
}

#[tokio::test]
async fn a_redelivered_bus_does_not_change_the_ledger() {
    let bench = Bench::new();
    bench.start(3).await;
    let processor = bench.stop(Arc::new(ScriptedStop), &[]).await;
    let body = bus_body(
        "b1",
        &[
            json!({"n": 1}),
            json!({"reject": true}),
            json!({"drop": true}),
        ],
    );
    send(bench.h.queue("in"), &body);
    let (batch, _) = bench.h.receive(10);
    let first = processor
        .process(batch.clone(), &Invocation::default())
        .await
        .expect("ok");
    assert!(first.retry.is_empty());
    let recorded = bench.counters().await;
    assert_eq!(
        recorded,
        BTreeMap::from([
            ("arrived:in".to_owned(), 3),
            ("sent:in".to_owned(), 3),
            ("sent:next".to_owned(), 1),
            ("stop:scripted:buses".to_owned(), 1),
            ("stop:scripted:dropped_off".to_owned(), 1),
            ("stop:scripted:forwarded".to_owned(), 1),
            ("stop:scripted:in".to_owned(), 3),
            ("stop:scripted:lane:next".to_owned(), 1),
            ("stop:scripted:rejected".to_owned(), 1),
            ("trip:started".to_owned(), 1),
        ])
    );
    // SQS hands the same message out again (its acknowledgement was lost), and a second copy
    // of the bus arrives as another message (an upstream retried its send).
    processor
        .process(batch, &Invocation::default())
        .await
        .expect("again");
    send(bench.h.queue("in"), &body);
    bench.h.process_all_ok(&processor, 10).await;
    assert_eq!(bench.counters().await, recorded);
    assert_eq!(bench.ledger.entries("t1").await.expect("entries").len(), 2);
    // One passenger went on to `next`, which nobody rode: the trip is still in progress.
    let totals = bench.totals().await;
    assert_eq!(totals.progress().state, TripState::InProgress);
    assert!(bench.events.announced().is_empty());
}

#[tokio::test]
async fn a_dead_letter_completes_the_trip_with_failures_and_its_redrive_completes_it() {
    let bench = Bench::new();
    bench.start(3).await;
    let sink = Arc::new(Sink::default());
    sink.broken.store(true, Ordering::SeqCst);
    let processor = bench.stop(sink.clone(), &[("NEXT_QUEUE_URL", "")]).await;
    std::fs::create_dir_all(bench.h.dir.path().join("output/trip=t1")).expect("dir");
    std::fs::write(
        bench.h.dir.path().join("output/trip=t1/part.ndjson"),
        "{}\n{}\n",
    )
    .expect("write");
    send(
        bench.h.queue("in"),
        &bus_body("b1", &[json!({"n": 1}), json!({"n": 2})]),
    );
    send(
        bench.h.queue("in"),
        &bus_body("b2", &[json!({"fragile": true})]),
    );
    bench.h.process_all_ok(&processor, 10).await;

    let announced = bench.events.announced();
    assert_eq!(announced.len(), 1, "{announced:?}");
    let failed = &announced[0];
    assert_eq!(failed.state, TripState::CompletedWithFailures);
    assert_eq!((failed.dead_lettered, failed.rejected), (1, 0));
    assert_eq!(failed.stops["scripted"].dropped_off, 2);
    assert_eq!(failed.key, "output/trip=t1/_SUCCESS");
    let keys: Vec<&str> = failed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["output/trip=t1/part.ndjson"]);
    let written: Value = serde_json::from_slice(
        &std::fs::read(bench.h.dir.path().join("output/trip=t1/_SUCCESS")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(written["state"], "completed_with_failures");
    assert_eq!(written["objects"][0]["size"], 6);

    // The destination is fixed and the dead letter redriven: the same bus, under the same id.
    sink.broken.store(false, Ordering::SeqCst);
    let dead = bench.h.queue("dlq").receive(10, None).expect("dlq");
    assert_eq!(dead.len(), 1);
    send(bench.h.queue("in"), &dead[0].delivery().body);
    bench.h.process_all_ok(&processor, 10).await;
    let announced = bench.events.announced();
    assert_eq!(announced.len(), 2);
    assert_eq!(announced[1].state, TripState::Completed);
    assert_eq!(announced[1].dead_lettered, 0);
    assert_eq!(announced[1].stops["scripted"].dropped_off, 3);
    let totals = bench.totals().await;
    assert_eq!(totals.progress().flows["in"].arrived, 3);

    // A later copy of the redriven bus completes nothing again.
    send(bench.h.queue("in"), &dead[0].delivery().body);
    bench.h.process_all_ok(&processor, 10).await;
    assert_eq!(bench.events.announced().len(), 2);
}

#[tokio::test]
async fn a_stop_keeping_the_ledger_must_know_its_queue() {
    let bench = Bench::new();
    let mut ports = bench.h.ports(Arc::new(bench.h.queues.clone()));
    ports.trips = Some(TripBook {
        ledger: bench.ledger.clone(),
        events: bench.events.clone(),
        output_prefix: "output/".into(),
        retry: fast_retry(),
    });
    let err = shared_kind("scripted", Arc::new(ScriptedStop))
        .build(Arc::new(Harness::vars(&[])), ports, Extensions::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "environment variable QUEUE_URL is required but not set; a stop that keeps the trip ledger must know its own queue"
    );
}

#[tokio::test]
async fn a_replay_of_corrected_passengers_completes_the_trip_again_once() {
    let bench = Bench::new();
    bench.start(2).await;
    let extra = [("NEXT_QUEUE_URL", "")];
    let processor = bench.stop(Arc::new(ScriptedStop), &extra).await;
    let body = bus_body("b1", &[json!({"drop": true}), json!({"reject": true})]);
    send(bench.h.queue("in"), &body);
    bench.h.process_all_ok(&processor, 10).await;
    let announced = bench.events.announced();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!((announced[0].rejected, announced[0].replayed), (1, 0));

    // The operator corrects the quarantined passenger (it is now one the stop drops off) and
    // replays the file into the stop's queue.
    let quarantined = bench.h.quarantined().await;
    assert_eq!(quarantined.len(), 1);
    let mut fixed = serde_json::to_value(&quarantined[0]).expect("json");
    fixed["data"] = json!({"drop": true, "fixed": true});
    let passengers = read_passengers("fix.ndjson", &fixed.to_string()).expect("valid");
    let target = StopConfig::from_vars(&Harness::vars(&[("QUEUE_URL", "in")])).expect("config");
    let ports = bench.ports();
    let report = replay(&ports, &target, "t1", &passengers)
        .await
        .expect("replayed");
    assert_eq!(
        (
            report.passengers,
            report.buses,
            report.recorded,
            report.state
        ),
        (1, 1, Some("new"), Some(TripState::InProgress))
    );
    let (sent, _) = bench.h.receive(10);
    let envelope: busline_core::Envelope<Passenger> =
        busline_core::envelope::decode_envelope(&sent[0].body).expect("a bus");
    assert_eq!(
        (envelope.trip.as_str(), envelope.from.as_str()),
        ("t1", REPLAY_STOP)
    );
    assert_eq!(envelope.passengers[0].id(), quarantined[0].rejection.id);
    let outcome = processor
        .process(sent, &Invocation::default())
        .await
        .expect("not a function error");
    assert!(outcome.retry.is_empty(), "{outcome:?}");

    let announced = bench.events.announced();
    assert_eq!(announced.len(), 2, "the replay completes the trip again");
    let again = &announced[1];
    assert_eq!(again.state, TripState::Completed);
    assert_eq!(
        (again.rejected, again.replayed, again.dead_lettered),
        (1, 1, 0)
    );
    assert_eq!(again.stops["scripted"].dropped_off, 2);
    assert_eq!(again.stops[REPLAY_STOP].picked_up, 1);
    let counted = bench.counters().await;

    // The same file again sends the same bus, which counts and completes nothing again.
    let report = replay(&ports, &target, "t1", &passengers)
        .await
        .expect("again");
    assert_eq!(report.recorded, Some("already_recorded"));
    bench.h.process_all_ok(&processor, 10).await;
    assert_eq!(bench.events.announced().len(), 2);
    assert_eq!(bench.counters().await, counted);

    let unknown = replay(&ports, &target, "t9", &passengers).await.err();
    assert!(
        matches!(unknown, Some(ReplayError::UnknownTrip { .. })),
        "{unknown:?}"
    );
    assert_eq!(
        unknown.map(|e| e.to_string()).unwrap_or_default(),
        "trip t9 is not in the trip ledger; check --trip (bus trips lists the recent ones)"
    );
}

/// The harness's store, but the first `failures` puts of a trip's manifest fail (S3 answered
/// 503), or never return (`hang`: the invocation dies waiting).
struct ManifestFails {
    inner: Arc<dyn ObjectStore>,
    failures: AtomicUsize,
    hang: bool,
}

impl ManifestFails {
    fn new(bench: &Bench, failures: usize) -> Arc<Self> {
        Arc::new(ManifestFails {
            inner: bench.h.store.clone(),
            failures: AtomicUsize::new(failures),
            hang: false,
        })
    }

    /// The first put of the manifest never returns.
    fn hanging(bench: &Bench) -> Arc<Self> {
        Arc::new(ManifestFails {
            inner: bench.h.store.clone(),
            failures: AtomicUsize::new(1),
            hang: true,
        })
    }
}

#[async_trait]
impl ObjectStore for ManifestFails {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        self.inner.list(prefix).await
    }
    async fn get_from(&self, key: &str, offset: u64) -> Result<ObjectReader, PortError> {
        self.inner.get_from(key, offset).await
    }
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), PortError> {
        let manifest_fails = key.ends_with("/_SUCCESS")
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
        if manifest_fails && self.hang {
            std::future::pending::<()>().await;
        }
        if manifest_fails {
            return Err(PortError::retryable(key, "503 Slow Down"));
        }
        self.inner.put(key, body, content_type).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<bool, PortError> {
        self.inner.put_if_absent(key, body, content_type).await
    }
}

/// A processor of the `scripted` stop (a sink) over `objects`, after a one-bus trip `t1`.
async fn scripted_sink(bench: &Bench, objects: Arc<dyn ObjectStore>) -> BatchProcessor {
    bench.start(1).await;
    let mut ports = bench.ports();
    ports.objects = objects;
    let extra = [("NEXT_QUEUE_URL", "")];
    let processor = bench.stop_on(Arc::new(ScriptedStop), &extra, ports).await;
    send(
        bench.h.queue("in"),
        &bus_body("b1", &[json!({"drop": true})]),
    );
    processor
}

async fn assert_announced_once(bench: &Bench) {
    assert_eq!(bench.events.announced().len(), 1);
    let manifest = bench.h.dir.path().join("output/trip=t1/_SUCCESS");
    assert!(manifest.exists(), "the manifest is written");
    let totals = bench.totals().await;
    assert!(totals.completion.is_some_and(|c| c.announced));
}

/// The bus's batch received again: it succeeds whole and the trip is announced once.
async fn comes_back_and_is_announced(
    bench: &Bench,
    processor: &BatchProcessor,
    batch: Vec<Delivery>,
) {
    let again = processor
        .process(batch, &Invocation::default())
        .await
        .expect("not a function error");
    assert!(again.retry.is_empty(), "{again:?}");
    assert_announced_once(bench).await;
}

#[tokio::test]
async fn a_manifest_that_failed_twice_is_written_by_the_same_bus_without_riding_it_again() {
    let bench = Bench::new();
    let processor = scripted_sink(&bench, ManifestFails::new(&bench, 2)).await;
    let (batch, _) = bench.h.receive(10);
    let outcome = processor
        .process(batch, &Invocation::default())
        .await
        .expect("not a function error");
    assert!(outcome.retry.is_empty(), "{outcome:?}");
    assert_announced_once(&bench).await;
}

#[tokio::test]
async fn a_manifest_that_could_not_be_written_is_written_when_its_bus_comes_back() {
    let bench = Bench::new();
    let attempts = fast_retry().retries + 1;
    let processor = scripted_sink(&bench, ManifestFails::new(&bench, attempts)).await;
    let (batch, _) = bench.h.receive(10);
    // A batch whose every bus failed fails the invocation: the bus comes back.
    let first = processor
        .process(batch.clone(), &Invocation::default())
        .await
        .expect_err("the bus fails");
    assert!(first.to_string().contains("503 Slow Down"), "{first}");
    assert!(bench.events.announced().is_empty());
    // Its next receive: the record is already there, and the completion is claimed again.
    comes_back_and_is_announced(&bench, &processor, batch).await;
}

#[tokio::test]
async fn a_completion_whose_bus_died_before_announcing_it_is_announced_when_that_bus_comes_back() {
    let bench = Bench::new();
    let processor = scripted_sink(&bench, ManifestFails::hanging(&bench)).await;
    let (batch, _) = bench.h.receive(10);
    // The invocation dies between its claim of the completion and the manifest, as a killed
    // process or an invocation past its timeout does: its future is dropped where it stands.
    let died = tokio::time::timeout(
        Duration::from_millis(200),
        processor.process(batch.clone(), &Invocation::default()),
    )
    .await;
    assert!(
        died.is_err(),
        "the invocation died waiting for the manifest"
    );
    let claim = bench
        .totals()
        .await
        .completion
        .expect("the completion was claimed");
    assert!(!claim.announced);
    // Its bus comes back long before the claim is stale, and is the claimer itself.
    comes_back_and_is_announced(&bench, &processor, batch).await;
}

/// Boards every passenger and then fails on its first bus (a source that broke half way);
/// fails at once on every later one.
#[derive(Default)]
struct BreaksAfterStreaming {
    calls: AtomicUsize,
}

#[async_trait]
impl Stop for BreaksAfterStreaming {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            for passenger in &passengers {
                outbox.board(passenger).await?;
            }
        }
        Err(StopError::retryable("the source went away"))
    }
}

/// Rides `delivery` on each of its three receives: it fails with `reason` on the first two and
/// is dead-lettered on the last.
async fn ride_to_its_dead_letter(processor: &BatchProcessor, delivery: &Delivery, reason: &str) {
    let received = |receive_count| {
        vec![Delivery {
            receive_count,
            ..delivery.clone()
        }]
    };
    for receive_count in 1..=2 {
        let failed = processor
            .process(received(receive_count), &Invocation::default())
            .await
            .expect_err("the bus fails");
        assert!(failed.to_string().contains(reason), "{failed}");
    }
    let last = processor
        .process(received(3), &Invocation::default())
        .await
        .expect("dead-lettered");
    assert!(last.retry.is_empty(), "{last:?}");
}

#[tokio::test]
async fn a_bus_dead_lettered_after_its_early_departures_left_keeps_its_trip_going_until_they_arrive()
 {
    let bench = Bench::new();
    bench.start(12).await;
    // One passenger per bus: the eleventh boarding fills the tenth bus, and ten leave early.
    let extra = [("BUS_BYTE_BUDGET", "1024")];
    let processor = bench
        .stop(Arc::new(BreaksAfterStreaming::default()), &extra)
        .await;
    let pad = "x".repeat(600);
    let passengers: Vec<Value> = (0..12).map(|n| json!({"n": n, "pad": pad})).collect();
    send(bench.h.queue("in"), &bus_body("b1", &passengers));
    let (batch, _) = bench.h.receive(10);
    ride_to_its_dead_letter(&processor, &batch[0], "the source went away").await;
    assert_eq!(
        bench.h.queue("dlq").receive(10, None).expect("dlq").len(),
        1
    );
    // Its ten early buses are on their way: the trip waits for them.
    assert_eq!(bench.state().await, TripState::InProgress);
    assert!(bench.events.announced().is_empty());

    let sink = bench.next_sink().await;
    bench.ride_next(&sink).await;
    let announced = bench.events.announced();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].state, TripState::CompletedWithFailures);
    assert_eq!(announced[0].stops["load"].dropped_off, 10);
    assert_eq!(announced[0].stops["scripted"].forwarded, 10);
    assert_eq!(announced[0].dead_lettered, 12);
}

#[tokio::test]
async fn a_bus_recorded_whose_buses_never_left_completes_its_trip_with_failures_until_redriven() {
    let bench = Bench::new();
    bench.start(1).await;
    let queues = Arc::new(FlakyQueues {
        inner: bench.h.queues.clone(),
        // Its output, not its dead letter (which carries the body it came with).
        plan: Mutex::new(vec![(r#""from":"scripted""#.into(), u32::MAX, false)]),
        calls: Mutex::default(),
    });
    let mut ports = bench.ports();
    ports.queues = queues.clone();
    let processor = bench.stop_on(Arc::new(ScriptedStop), &[], ports).await;
    send(
        bench.h.queue("in"),
        &bus_body("b1", &[json!({"unsendable": true})]),
    );
    let (batch, _) = bench.h.receive(10);
    ride_to_its_dead_letter(&processor, &batch[0], "forwarding failed").await;
    // Recorded as ridden before its send, it counted a bus sent that never left: in doubt, so
    // the trip completes with failures instead of waiting for ever.
    let announced = bench.events.announced();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].state, TripState::CompletedWithFailures);
    assert_eq!((announced[0].dead_lettered, announced[0].in_doubt), (1, 1));
    let totals = bench.totals().await;
    let next = &totals.progress().flows["next"];
    assert_eq!((next.sent, next.arrived, next.in_doubt), (1, 0, 1));

    // The queue is back and the dead letter redriven: its bus leaves, and the trip completes.
    queues.plan.lock().expect("lock").clear();
    let dead = bench.h.queue("dlq").receive(10, None).expect("dlq");
    assert_eq!(dead.len(), 1);
    send(bench.h.queue("in"), &dead[0].delivery().body);
    bench.h.process_all_ok(&processor, 10).await;
    assert_eq!(
        bench.state().await,
        TripState::InProgress,
        "its bus travels"
    );
    bench.ride_next(&bench.next_sink().await).await;
    let announced = bench.events.announced();
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert_eq!(announced[1].state, TripState::Completed);
    assert_eq!((announced[1].dead_lettered, announced[1].in_doubt), (0, 0));
    assert_eq!(announced[1].stops["load"].dropped_off, 1);
}
