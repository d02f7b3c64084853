//! One contract for the queue, object-store and metrics ports, run against the embedded
//! backends and against SQS, S3 and CloudWatch on both emulators (LocalStack, MiniStack).

use busline_core::ports::{Attribute, OutgoingMessage, VisibilityChange};
use busline_core::{InvocationMetrics, PortError, StopCounts};
use busline_embedded::MetricsBoard;
use busline_tests::backends::{
    EmbeddedBackend, MetricsBackend, QueueBackend, SqsBackend, object_store, receive_n,
};
use busline_tests::cloud::{Cloud, cloud, unique};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Clone, Copy)]
enum Target {
    Embedded,
    Emulator(&'static str),
}

impl Target {
    async fn cloud(self) -> Option<Cloud> {
        match self {
            Target::Embedded => None,
            Target::Emulator(name) => Some(cloud(name).await),
        }
    }

    async fn queues(self) -> Box<dyn QueueBackend> {
        match self.cloud().await {
            None => Box::new(EmbeddedBackend::new()),
            Some(cloud) => Box::new(SqsBackend { cloud }),
        }
    }
}

macro_rules! against_every_backend {
    ($($contract:ident),* $(,)?) => {$(
        mod $contract {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() { super::$contract(super::Target::Embedded).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn localstack() { super::$contract(super::Target::Emulator("localstack")).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ministack() { super::$contract(super::Target::Emulator("ministack")).await }
        }
    )*};
}

against_every_backend!(
    send_receive_delete,
    visibility_timeout_hides_then_redelivers,
    redrive_moves_to_the_dead_letter_queue,
    batch_partial_failure_is_reported_per_entry,
    one_mib_is_the_message_limit,
    list_paginates_in_key_order,
    large_objects_stream_and_round_trip,
    overwrite_is_idempotent_and_missing_is_not_found,
    a_read_resumes_from_an_offset,
    a_ranged_read_reads_its_bytes_only,
    only_the_first_write_if_absent_wins,
    visibility_changes_hand_back_and_hide,
    metrics_are_written_and_read_back,
);

fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        attributes: vec![],
    }
}

async fn send_receive_delete(target: Target) {
    let queues = target.queues().await;
    let url = queues
        .create_queue("send", Duration::from_secs(1), None)
        .await;
    let mut tagged = message("one");
    tagged.attributes = vec![
        Attribute::string("busline.reason", "why"),
        Attribute::number("ExtendedPayloadSize", 3),
    ];
    let failures = queues
        .sender()
        .send_batch(&url, &[tagged, message("two"), message("three")])
        .await
        .expect("send");
    assert!(failures.is_empty(), "{failures:?}");
    let mut got = receive_n(queues.as_ref(), &url, 3).await;
    got.sort_by(|a, b| a.body.cmp(&b.body));
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "three", "two"]);
    let mut attributes = got[0].attributes.clone();
    attributes.sort();
    assert_eq!(
        attributes,
        [
            ("ExtendedPayloadSize".into(), "3".into()),
            ("busline.reason".into(), "why".into())
        ]
    );
    assert!(got.iter().all(|m| m.receive_count == 1));
    for m in &got {
        queues.delete(&url, &m.receipt).await;
    }
    // Past the visibility timeout: a message that was not deleted would be back.
    queues.wait(Duration::from_millis(1600)).await;
    assert!(
        queues.receive(&url, 10).await.is_empty(),
        "deleted messages stay deleted"
    );
}

async fn visibility_timeout_hides_then_redelivers(target: Target) {
    let queues = target.queues().await;
    let url = queues
        .create_queue("visibility", Duration::from_secs(2), None)
        .await;
    queues
        .sender()
        .send_batch(&url, &[message("hidden")])
        .await
        .expect("send");
    let first = receive_n(queues.as_ref(), &url, 1).await;
    assert_eq!(first.len(), 1);
    assert!(
        queues.receive(&url, 10).await.is_empty(),
        "in flight means invisible"
    );
    queues.wait(Duration::from_millis(2600)).await;
    let second = receive_n(queues.as_ref(), &url, 1).await;
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    // Handed back through the port, as the processor does with a bus it did not start.
    let refused = queues
        .sender()
        .change_visibility(&url, &[visibility(&second[0].receipt, Duration::ZERO)])
        .await
        .expect("changed");
    assert!(refused.is_empty(), "{refused:?}");
    let third = receive_n(queues.as_ref(), &url, 1).await;
    assert_eq!(
        (third[0].message_id.as_str(), third[0].receive_count),
        (first[0].message_id.as_str(), 3)
    );
}

async fn redrive_moves_to_the_dead_letter_queue(target: Target) {
    let queues = target.queues().await;
    let dlq = queues
        .create_queue("redrive-dlq", Duration::from_secs(30), None)
        .await;
    let url = queues
        .create_queue("redrive", Duration::from_secs(1), Some((&dlq, 2)))
        .await;
    queues
        .sender()
        .send_batch(&url, &[message("poison")])
        .await
        .expect("send");
    for receive in 1..=2 {
        let got = receive_n(queues.as_ref(), &url, 1).await;
        assert_eq!(got.len(), 1, "receive {receive}");
        queues.wait(Duration::from_millis(1600)).await;
    }
    // A receive after maxReceiveCount moves the message instead of delivering it. An emulator
    // under load may still hide it at the first such receive, so keep receiving: it must never
    // be delivered a third time, and must arrive on the dead-letter queue.
    let mut dead = Vec::new();
    for _ in 0..50 {
        let again = queues.receive(&url, 10).await;
        assert!(
            again.is_empty(),
            "delivered past maxReceiveCount: {again:?}"
        );
        dead = queues.receive(&dlq, 10).await;
        if !dead.is_empty() {
            break;
        }
        queues.wait(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
}

async fn batch_partial_failure_is_reported_per_entry(target: Target) {
    let queues = target.queues().await;
    let url = queues
        .create_queue("partial", Duration::from_secs(30), None)
        .await;
    // U+0000 is not a character SQS accepts in a body: that entry fails, the others go.
    let failures = queues
        .sender()
        .send_batch(
            &url,
            &[
                message("fine"),
                message("bad \u{0} byte"),
                message("also fine"),
            ],
        )
        .await
        .expect("the call succeeds");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    assert!(failures[0].sender_fault, "{failures:?}");
    assert_eq!(receive_n(queues.as_ref(), &url, 2).await.len(), 2);
}

async fn one_mib_is_the_message_limit(target: Target) {
    let queues = target.queues().await;
    let url = queues
        .create_queue("limit", Duration::from_secs(30), None)
        .await;
    let full = message(&"x".repeat(1024 * 1024));
    let failures = queues
        .sender()
        .send_batch(&url, &[full])
        .await
        .expect("1 MiB fits");
    assert!(failures.is_empty(), "{failures:?}");
    let over = message(&"x".repeat(1024 * 1024 + 1));
    match queues.sender().send_batch(&url, &[over]).await {
        Err(err) => assert!(matches!(err, PortError::Permanent { .. }), "{err}"),
        Ok(failures) => assert!(
            failures.len() == 1 && failures[0].sender_fault,
            "{failures:?}"
        ),
    }
    let got = receive_n(queues.as_ref(), &url, 1).await;
    assert_eq!(got[0].body.len(), 1024 * 1024);
}

async fn list_paginates_in_key_order(target: Target) {
    let cloud = target.cloud().await;
    let (store, _dir) = object_store(cloud.as_ref(), 10).await;
    for i in (0..25).rev() {
        store
            .put(
                &format!("input/part-{i:02}.csv"),
                b"x\n".to_vec(),
                "text/csv",
            )
            .await
            .expect("put");
    }
    store
        .put(
            "output/other.ndjson",
            b"{}\n".to_vec(),
            "application/x-ndjson",
        )
        .await
        .expect("put");
    let listed = store.list("input/").await.expect("list");
    let keys: Vec<String> = listed.iter().map(|o| o.key.clone()).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("input/part-{i:02}.csv")).collect();
    assert_eq!(
        keys, expected,
        "every page, in key order, nothing outside the prefix"
    );
    assert!(listed.iter().all(|o| o.size == 2));
}

async fn large_objects_stream_and_round_trip(target: Target) {
    let cloud = target.cloud().await;
    let (store, _dir) = object_store(cloud.as_ref(), 1000).await;
    // Over the multipart threshold (16 MiB) on S3, so the upload goes in parts.
    let body: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    store
        .put("claim-check/big.json", body.clone(), "application/json")
        .await
        .expect("put");
    let mut reader = store.get("claim-check/big.json").await.expect("get");
    let mut chunk = vec![0u8; 64 * 1024];
    let mut read = 0usize;
    loop {
        let n = reader.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        assert_eq!(&chunk[..n], &body[read..read + n], "bytes at offset {read}");
        read += n;
    }
    assert_eq!(read, body.len());
}

async fn overwrite_is_idempotent_and_missing_is_not_found(target: Target) {
    let cloud = target.cloud().await;
    let (store, _dir) = object_store(cloud.as_ref(), 1000).await;
    store
        .put(
            "output/trip=t/b.ndjson",
            b"one\n".to_vec(),
            "application/x-ndjson",
        )
        .await
        .expect("put");
    store
        .put(
            "output/trip=t/b.ndjson",
            b"two\n".to_vec(),
            "application/x-ndjson",
        )
        .await
        .expect("overwrite");
    let mut text = String::new();
    store
        .get("output/trip=t/b.ndjson")
        .await
        .expect("get")
        .read_to_string(&mut text)
        .await
        .expect("read");
    assert_eq!(text, "two\n");
    assert_eq!(store.list("output/").await.expect("list").len(), 1);
    match store.get("output/missing.ndjson").await {
        Err(PortError::NotFound { resource }) => {
            assert!(resource.ends_with("/output/missing.ndjson"), "{resource}")
        }
        Err(other) => panic!("expected NotFound, got {other}"),
        Ok(_) => panic!("a missing key must not read"),
    }
}

async fn a_read_resumes_from_an_offset(target: Target) {
    let cloud = target.cloud().await;
    let (store, _dir) = object_store(cloud.as_ref(), 1000).await;
    let key = "input/resume.csv";
    store
        .put(key, b"Name\nRed\nBlue\n".to_vec(), "text/csv")
        .await
        .expect("put");
    for (offset, rest) in [(0, "Name\nRed\nBlue\n"), (9, "Blue\n"), (14, ""), (15, "")] {
        let mut text = String::new();
        store
            .get_from(key, offset)
            .await
            .unwrap_or_else(|err| panic!("from {offset}: {err}"))
            .read_to_string(&mut text)
            .await
            .expect("read");
        assert_eq!(text, rest, "from byte {offset}");
    }
}

async fn a_ranged_read_reads_its_bytes_only(target: Target) {
    let cloud = target.cloud().await;
    let (store, _dir) = object_store(cloud.as_ref(), 1000).await;
    let key = "input/table.parquet";
    store
        .put(
            key,
            b"PAR1 row group footer PAR1".to_vec(),
            "application/octet-stream",
        )
        .await
        .expect("put");
    for (offset, length, read) in [
        (0, 4, "PAR1"),
        (5, 9, "row group"),
        (22, 10, "PAR1"),
        (26, 4, ""),
    ] {
        let mut text = String::new();
        store
            .get_range(key, offset, length)
            .await
            .unwrap_or_else(|err| panic!("{offset}+{length}: {err}"))
            .read_to_string(&mut text)
            .await
            .expect("read");
        assert_eq!(text, read, "bytes {offset}+{length}");
    }
}

async fn only_the_first_write_if_absent_wins(target: Target) {
    let cloud = target.cloud().await;
    let (store, _dir) = object_store(cloud.as_ref(), 1000).await;
    let key = "output/trip=t/_schema.json";
    let writes = (0..4).map(|i| {
        let store = store.clone();
        async move {
            store
                .put_if_absent(key, format!("writer {i}").into_bytes(), "application/json")
                .await
                .expect("put if absent")
        }
    });
    let won: Vec<bool> = futures::future::join_all(writes).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).unwrap_or_default();
    let mut text = String::new();
    store
        .get(key)
        .await
        .expect("get")
        .read_to_string(&mut text)
        .await
        .expect("read");
    assert_eq!(text, format!("writer {winner}"));
    assert!(
        !store
            .put_if_absent(key, b"late".to_vec(), "application/json")
            .await
            .expect("refused")
    );
}

async fn visibility_changes_hand_back_and_hide(target: Target) {
    let queues = target.queues().await;
    let url = queues
        .create_queue("handback", Duration::from_secs(30), None)
        .await;
    let sender = queues.sender();
    sender
        .send_batch(&url, &[message("a"), message("b")])
        .await
        .expect("sent");
    let received = receive_n(queues.as_ref(), &url, 2).await;
    assert_eq!(received.len(), 2);
    let refused = sender
        .change_visibility(
            &url,
            &[
                visibility(&received[0].receipt, Duration::ZERO),
                visibility(&received[1].receipt, Duration::from_secs(600)),
                visibility("not-a-receipt-handle", Duration::ZERO),
            ],
        )
        .await
        .expect("the call succeeds");
    // A bad handle is refused on its own entry; the others are changed.
    assert_eq!(refused.iter().map(|f| f.index).collect::<Vec<_>>(), [2]);
    // The one handed back is received again at once; the one hidden for 10 minutes is not.
    let again = receive_n(queues.as_ref(), &url, 1).await;
    let bodies: Vec<&str> = again.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, [received[0].body.as_str()]);
    assert!(queues.receive(&url, 10).await.is_empty());
}

fn visibility(receipt_handle: &str, timeout: Duration) -> VisibilityChange {
    VisibilityChange {
        receipt_handle: receipt_handle.to_owned(),
        timeout,
    }
}

async fn metrics_are_written_and_read_back(target: Target) {
    let backend = match target.cloud().await {
        None => MetricsBackend::Embedded(Arc::new(MetricsBoard::default())),
        Some(cloud) => MetricsBackend::CloudWatch {
            cloud: Box::new(cloud),
            namespace: unique("busline-contract"),
        },
    };
    let metrics = InvocationMetrics {
        stop: "transform".into(),
        route: "colors".into(),
        counts: StopCounts {
            buses_in: 1,
            passengers_in: 30,
            forwarded: 28,
            rejected: 2,
            ..StopCounts::default()
        },
        duration: Duration::from_millis(5),
        oldest_message_age: None,
    };
    backend.sink().record(&metrics).await;
    let mut read = (0.0, 0.0);
    for _ in 0..20 {
        read = (
            backend
                .read_sum("colors", "transform", "PassengersIn")
                .await,
            backend.read_sum("colors", "transform", "Rejected").await,
        );
        if read == (30.0, 2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(read, (30.0, 2.0));
}
