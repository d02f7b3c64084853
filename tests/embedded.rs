//! The embedded backends keep SQS and S3 semantics.

use busline_core::PortError;
use busline_core::ports::{Attribute, ObjectStore, OutgoingMessage};
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
