//! The embedded backends keep SQS and S3 semantics.

use busline_core::PortError;
use busline_core::ports::{Attribute, AttributeType, ObjectStore, OutgoingMessage};
use busline_embedded::{FolderStore, ManualClock, MemoryQueue, QueueSettings};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        attributes: vec![],
    }
}

fn queue_with_dlq(max_receive_count: u32) -> (Arc<ManualClock>, MemoryQueue, Arc<MemoryQueue>) {
    let clock = Arc::new(ManualClock::default());
    let dlq = Arc::new(MemoryQueue::new(
        "dlq",
        QueueSettings::default(),
        clock.clone(),
    ));
    let settings = QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: Some(max_receive_count),
        dead_letter: Some(dlq.clone()),
        ..QueueSettings::default()
    };
    (clock.clone(), MemoryQueue::new("q", settings, clock), dlq)
}

#[test]
fn a_received_message_is_hidden_until_its_visibility_timeout_ends() {
    let (clock, queue, _) = queue_with_dlq(5);
    queue.send(&message("a")).expect("send");
    let first = queue.receive(10, None).expect("receive");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attributes["ApproximateReceiveCount"], "1");
    assert!(queue.receive(10, None).expect("receive").is_empty());
    assert_eq!(queue.depth(), (0, 1));
    clock.advance(Duration::from_secs(29));
    assert!(queue.receive(10, None).expect("receive").is_empty());
    clock.advance(Duration::from_secs(1));
    let second = queue.receive(10, None).expect("receive");
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].attributes["ApproximateReceiveCount"], "2");
    assert_ne!(second[0].receipt_handle, first[0].receipt_handle);
    // A stale receipt handle deletes nothing; the latest one does.
    assert!(!queue.delete(&first[0].receipt_handle));
    assert!(queue.delete(&second[0].receipt_handle));
    assert_eq!(queue.depth(), (0, 0));
}

#[test]
fn a_received_message_becomes_the_delivery_a_stop_takes() {
    let (_, queue, _) = queue_with_dlq(5);
    let attribute = Attribute {
        name: "busline-kind".into(),
        value: "bus".into(),
        data_type: AttributeType::String,
    };
    let sent = OutgoingMessage {
        body: "{\"v\":3}".into(),
        attributes: vec![attribute.clone()],
    };
    queue.send(&sent).expect("send");
    let received = queue.receive(1, None).expect("receive").remove(0);
    let (id, receipt_handle) = (received.message_id.clone(), received.receipt_handle.clone());
    let sent_ms: u64 = received.attributes["SentTimestamp"]
        .parse()
        .expect("SentTimestamp is milliseconds");
    // Copied (as a test's own poller takes it) or moved (as the embedded bus does).
    for delivery in [received.delivery(), received.into_delivery()] {
        assert_eq!(delivery.id, id);
        assert_eq!(delivery.receipt_handle, receipt_handle);
        assert_eq!(*delivery.body, "{\"v\":3}");
        assert_eq!(delivery.receive_count, 1);
        assert_eq!(delivery.attributes, vec![attribute.clone()]);
        assert_eq!(
            delivery.sent_at,
            Some(std::time::UNIX_EPOCH + Duration::from_millis(sent_ms))
        );
    }
}

#[test]
fn an_in_flight_message_s_body_is_shared_with_its_delivery_not_copied() {
    // A batch of ten 4 MiB buses was held twice while a stop handled it: once by the queue,
    // which keeps a message until it is deleted, once by the delivery.
    let (_, queue, _) = queue_with_dlq(5);
    queue.send(&message(&"x".repeat(4096))).expect("send");
    let received = queue.receive(1, None).expect("receive").remove(0);
    let receipt_handle = received.receipt_handle.clone();
    let delivery = received.into_delivery();
    assert_eq!(
        Arc::strong_count(&delivery.body),
        2,
        "the queue's and the delivery's"
    );
    assert!(queue.delete(&receipt_handle));
    assert_eq!(Arc::strong_count(&delivery.body), 1);
    assert_eq!(delivery.body.len(), 4096);
}

#[test]
fn change_visibility_releases_or_extends() {
    let (_, queue, _) = queue_with_dlq(5);
    queue.send(&message("a")).expect("send");
    let got = queue.receive(1, None).expect("receive");
    queue
        .change_visibility(&got[0].receipt_handle, Duration::ZERO)
        .expect("change");
    assert_eq!(queue.receive(1, None).expect("receive").len(), 1);
    assert!(matches!(
        queue.change_visibility("nope", Duration::ZERO),
        Err(PortError::Permanent { .. })
    ));
}

#[test]
fn after_max_receive_count_the_next_receive_redrives_to_the_dlq() {
    let (clock, queue, dlq) = queue_with_dlq(3);
    let id = queue
        .send(&OutgoingMessage {
            body: "poison".into(),
            attributes: vec![Attribute::string("k", "v")],
        })
        .expect("send");
    for _ in 0..3 {
        assert_eq!(queue.receive(1, None).expect("receive").len(), 1);
        clock.advance(Duration::from_secs(30));
    }
    assert!(
        queue.receive(1, None).expect("receive").is_empty(),
        "moved, not delivered a 4th time"
    );
    assert_eq!(queue.stats().redriven, 1);
    let moved = dlq.receive(1, None).expect("receive");
    assert_eq!(
        (moved[0].message_id.as_str(), moved[0].body.as_str()),
        (id.as_str(), "poison")
    );
    assert_eq!(
        moved[0].message_attributes,
        vec![Attribute::string("k", "v")]
    );
}

#[test]
fn sqs_limits_are_enforced() {
    let (_, queue, _) = queue_with_dlq(5);
    let too_big = message(&"x".repeat(1024 * 1024 + 1));
    assert!(
        queue
            .send(&too_big)
            .expect_err("too big")
            .to_string()
            .contains("over the limit of 1048576 bytes")
    );
    let eleven: Vec<OutgoingMessage> = (0..11).map(|i| message(&i.to_string())).collect();
    assert!(
        queue
            .send_batch(&eleven)
            .expect_err("11")
            .to_string()
            .contains("TooManyEntriesInBatchRequest")
    );
    let two_halves = vec![message(&"x".repeat(600_000)), message(&"y".repeat(600_000))];
    assert!(
        queue
            .send_batch(&two_halves)
            .expect_err("1.2 MB")
            .to_string()
            .contains("BatchRequestTooLong")
    );
    assert!(
        queue.send(&message("")).is_err(),
        "empty bodies are invalid"
    );
    assert!(queue.receive(11, None).is_err());
    for i in 0..25 {
        queue.send(&message(&i.to_string())).expect("send");
    }
    assert_eq!(queue.receive(10, None).expect("receive").len(), 10);
}

#[test]
fn messages_older_than_retention_expire() {
    let clock = Arc::new(ManualClock::default());
    let settings = QueueSettings {
        retention: Duration::from_secs(60),
        ..QueueSettings::default()
    };
    let queue = MemoryQueue::new("q", settings, clock.clone());
    queue.send(&message("old")).expect("send");
    clock.advance(Duration::from_secs(61));
    assert!(queue.receive(1, None).expect("receive").is_empty());
    assert_eq!(queue.stats().expired, 1);
}

#[tokio::test]
async fn folder_store_lists_reads_streams_and_overwrites() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(input.path().join("sub")).expect("mkdir");
    std::fs::write(input.path().join("b.csv"), "x\n1\n").expect("write");
    std::fs::write(input.path().join("sub/a.csv"), "x\n2\n").expect("write");
    let store = FolderStore::new("bucket", root.path()).mount("input/", input.path());

    store
        .put("output/k.ndjson", b"one".to_vec(), "text/plain")
        .await
        .expect("put");
    store
        .put("output/k.ndjson", b"two".to_vec(), "text/plain")
        .await
        .expect("overwrite");
    let listed: Vec<(String, u64)> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("input/b.csv".into(), 4),
            ("input/sub/a.csv".into(), 4),
            ("output/k.ndjson".into(), 3)
        ]
    );
    assert_eq!(store.list("input/sub/").await.expect("list").len(), 1);
    let mut text = String::new();
    store
        .get("output/k.ndjson")
        .await
        .expect("get")
        .read_to_string(&mut text)
        .await
        .expect("read");
    assert_eq!(text, "two");
    assert!(
        matches!(store.get("output/missing").await.err(), Some(PortError::NotFound { resource }) if resource == "bucket/output/missing")
    );
    assert!(store.put("../escape", vec![], "x").await.is_err());
    assert!(store.get("input//b.csv").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_abandoned_mid_write_leaves_the_object_whole_or_absent_never_a_partial_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = FolderStore::new("bucket", root.path());
    let body = vec![b'x'; 64 * 1024 * 1024];
    // Abandoned as soon as it yields, as when a function is killed mid-put.
    let abandoned =
        tokio::time::timeout(Duration::ZERO, store.put("output/big.ndjson", body, "x")).await;
    assert!(abandoned.is_err(), "the put was still writing");
    let folder = root.path().join("output");
    let settled = || {
        let names: Vec<String> = std::fs::read_dir(&folder)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names
    };
    let mut names = settled();
    for _ in 0..100 {
        if names.iter().all(|name| !name.contains(".partial-")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        names = settled();
    }
    assert!(
        names.is_empty() || names == ["big.ndjson"],
        "left behind: {names:?}"
    );
    if !names.is_empty() {
        let size = std::fs::metadata(folder.join("big.ndjson"))
            .expect("meta")
            .len();
        assert_eq!(size, 64 * 1024 * 1024);
    }
}

mod flow_control {
    use async_trait::async_trait;
    use busline_core::ports::OutgoingMessage;
    use busline_core::{
        BatchProcessor, ErrorClass, Extensions, Outbox, Passenger, Ports, Stop, StopContext,
        StopError,
    };
    use busline_embedded::{
        BusStop, EmbeddedBus, EmbeddedQueues, FolderStore, ManualClock, MemoryQueue, QueueSettings,
    };
    use busline_tests::{
        DropAll, Fanout, FlakyStop, RecordedMetrics, bus_body, fast_retry, shared_kind,
    };
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Notify;

    const LIMIT: usize = 64 * 1024;
    const BUDGET: usize = 4096;
    // Enough that the producer sends several times the backlog bound, even as compact as
    // version 3 buses carry these one-field passengers (about 8 bytes each).
    const PASSENGERS: u64 = 150_000;

    struct Line {
        clock: Arc<ManualClock>,
        signal: Arc<Notify>,
        queues: EmbeddedQueues,
        store: Arc<FolderStore>,
        metrics: Arc<RecordedMetrics>,
        _dir: tempfile::TempDir,
    }

    impl Line {
        /// tickets -> producer -> mid (backlog-limited, redrives to dlq after 2) -> consumer
        fn new() -> Self {
            let clock = Arc::new(ManualClock::default());
            let signal = Arc::new(Notify::new());
            let mut queues = EmbeddedQueues::default();
            let queue = |name: &str, settings: QueueSettings| {
                MemoryQueue::new(name, settings, clock.clone()).with_signal(signal.clone())
            };
            let dlq = Arc::new(queue("dlq", QueueSettings::default()));
            queues.insert(dlq.clone());
            queues.insert(Arc::new(queue("tickets", QueueSettings::default())));
            let mid = QueueSettings {
                max_receive_count: Some(2),
                dead_letter: Some(dlq),
                ..QueueSettings::default()
            };
            queues.insert(Arc::new(queue("mid", mid).with_backlog_limit(LIMIT)));
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(FolderStore::new("bucket", dir.path()));
            Line {
                clock,
                signal,
                queues,
                store,
                metrics: Arc::default(),
                _dir: dir,
            }
        }

        async fn processor(
            &self,
            name: &str,
            next: Option<&str>,
            stop: Arc<dyn Stop>,
        ) -> Arc<BatchProcessor> {
            let mut vars: HashMap<String, String> = HashMap::from([
                ("STOP_NAME".into(), name.into()),
                ("ROUTE_NAME".into(), "flow".into()),
                ("DEAD_LETTER_QUEUE_URL".into(), "dlq".into()),
                ("MAX_RECEIVE_COUNT".into(), "2".into()),
                ("BUS_BYTE_BUDGET".into(), BUDGET.to_string()),
            ]);
            if let Some(next) = next {
                vars.insert("NEXT_QUEUE_URL".into(), next.into());
            }
            let ports = Ports {
                queues: Arc::new(self.queues.clone()),
                objects: self.store.clone(),
                metrics: self.metrics.clone(),
                retry: fast_retry(),
                trips: None,
            };
            let built = shared_kind(name, stop)
                .build(Arc::new(vars), ports, Extensions::default())
                .await
                .expect("builds");
            Arc::new(built.into_bus(name).expect("a stop reading a queue"))
        }

        async fn run(&self, consumer: Arc<dyn Stop>) {
            self.run_with_timeout(consumer, Duration::from_secs(30))
                .await
        }

        /// Rides with the consumer's function timeout set to `timeout`.
        async fn run_with_timeout(&self, consumer: Arc<dyn Stop>, timeout: Duration) {
            let tickets = self.queues.get("tickets").expect("queue").clone();
            tickets
                .send(&OutgoingMessage {
                    body: bus_body("t", &[json!({"count": PASSENGERS})]),
                    attributes: vec![],
                })
                .expect("send");
            let stops = vec![
                BusStop {
                    name: "producer".into(),
                    queue: tickets,
                    batch_size: 1,
                    max_concurrency: 1,
                    timeout: Some(Duration::from_secs(30)),
                    processor: self
                        .processor("producer", Some("mid"), Arc::new(Fanout))
                        .await,
                },
                BusStop {
                    name: "consumer".into(),
                    queue: self.queues.get("mid").expect("queue").clone(),
                    batch_size: 10,
                    max_concurrency: 2,
                    timeout: Some(timeout),
                    processor: self.processor("consumer", None, consumer).await,
                },
            ];
            let bus = EmbeddedBus::new(self.clock.clone(), self.signal.clone(), stops);
            // A deadlock would hang here; fail instead.
            tokio::time::timeout(Duration::from_secs(120), bus.run(|| {}))
                .await
                .expect("the ride finishes")
                .expect("ride");
        }

        fn counts(&self, stop: &str) -> busline_core::StopCounts {
            let mut total = busline_core::StopCounts::default();
            for m in self
                .metrics
                .0
                .lock()
                .expect("lock")
                .iter()
                .filter(|m| m.stop == stop)
            {
                total += m.counts.clone();
            }
            total
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fast_producer_cannot_flood_the_next_queue() {
        let line = Line::new();
        line.run(Arc::new(DropAll)).await;
        assert_eq!(line.counts("consumer").dropped_off, PASSENGERS);
        // The backlog stays within the limit plus one eager send (10 buses) and the consumer's
        // batches in flight (2 x 10 buses), far below everything the producer sent.
        let bound = LIMIT + 10 * BUDGET + 2 * 10 * BUDGET;
        let producer = line.counts("producer");
        assert!(
            producer.bytes_out > 5 * bound as u64,
            "the producer sent {} bytes in all",
            producer.bytes_out
        );
        let peak = line.queues.get("mid").expect("queue").stats().peak_bytes;
        assert!(peak <= bound, "peak backlog {peak} bytes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consumer_that_always_fails_cannot_deadlock_the_flow_control() {
        let line = Line::new();
        let failing = Arc::new(FlakyStop::new(
            Arc::new(DropAll),
            u32::MAX,
            ErrorClass::Retryable,
            "down",
        ));
        line.run(failing).await;
        let buses = line.counts("producer").buses_out;
        let dead = line.queues.get("dlq").expect("queue").drain();
        assert_eq!(
            dead.len() as u64,
            buses,
            "every bus ended in the dead-letter queue"
        );
        let consumer = line.counts("consumer");
        assert_eq!(
            consumer.buses_in,
            2 * buses,
            "each bus was received maxReceiveCount times"
        );
        assert_eq!(consumer.buses_dead_lettered, buses);
    }

    /// Waits past any function timeout before dropping its passengers off.
    struct Slow(Duration);

    #[async_trait]
    impl Stop for Slow {
        async fn handle(
            &self,
            ctx: &StopContext<'_>,
            passengers: Vec<Passenger>,
            outbox: &mut Outbox,
        ) -> Result<(), StopError> {
            assert!(
                ctx.deadline.is_some(),
                "the embedded bus gives every invocation a deadline"
            );
            tokio::time::sleep(self.0).await;
            outbox.drop_off(passengers.len() as u64);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invocation_past_its_function_timeout_is_ended_and_its_buses_return() {
        let line = Line::new();
        line.run_with_timeout(
            Arc::new(Slow(Duration::from_secs(5))),
            Duration::from_millis(20),
        )
        .await;
        let buses = line.counts("producer").buses_out;
        assert!(buses > 1, "{buses}");
        // Lambda would have ended each invocation: nothing was deleted, so after two receives
        // the queue's redrive policy moved every bus, and the stop reported no counts.
        let dead = line.queues.get("dlq").expect("queue").drain();
        assert_eq!(dead.len() as u64, buses);
        assert_eq!(line.counts("consumer"), busline_core::StopCounts::default());
        assert_eq!(line.queues.get("mid").expect("queue").depth(), (0, 0));
    }
}
