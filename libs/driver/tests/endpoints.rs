//! The driver's SQS and S3 endpoints through busline's own AWS adapters (the AWS SDK), as a
//! function under `cargo lambda watch` reaches them.

use busline_aws::{AwsClients, S3Store, SqsQueues};
use busline_core::PortError;
use busline_core::ports::{Attribute, ObjectStore, OutgoingMessage, QueueSender, VisibilityChange};
use busline_embedded::{EmbeddedQueues, FolderStore, ManualClock, MemoryQueue, QueueSettings};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

async fn clients(endpoint: &str) -> AwsClients {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .http_client(busline_aws::clients::https_client())
        .load()
        .await;
    AwsClients::from_config(&config)
}

#[tokio::test]
async fn the_sdk_sends_to_the_embedded_queues_and_reads_and_writes_the_bucket() {
    let clock = Arc::new(ManualClock::default());
    let mut queues = EmbeddedQueues::default();
    let next = Arc::new(MemoryQueue::new(
        "LoadQueue",
        QueueSettings::default(),
        clock,
    ));
    queues.insert(next.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = Arc::new(FolderStore::new("DataBucket", dir.path()));
    let served = busline_driver::serve(
        "127.0.0.1:0".parse().expect("address"),
        Arc::new(queues),
        bucket.clone(),
    )
    .await
    .expect("serves");
    let endpoint = served.endpoint();
    let clients = clients(&endpoint).await;

    let sqs = SqsQueues::new(clients.sqs.clone());
    let url = busline_driver::queue_url(&endpoint, "LoadQueue");
    let messages = [
        OutgoingMessage {
            body: "{\"v\":1}".into(),
            attributes: vec![Attribute::string("busline.reason", "because")],
        },
        OutgoingMessage {
            body: "second".into(),
            attributes: vec![Attribute::number("ExtendedPayloadSize", 7)],
        },
    ];
    let failures = sqs.send_batch(&url, &messages).await.expect("sent");
    assert!(failures.is_empty(), "{failures:?}");
    let received = next.receive(10, None).expect("receive");
    let bodies: Vec<&str> = received.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["{\"v\":1}", "second"]);
    assert_eq!(received[0].message_attributes, messages[0].attributes);
    assert_eq!(received[1].message_attributes, messages[1].attributes);
    // SendMessage too, attributes and all.
    clients
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body("third")
        .message_attributes(
            "busline.stop",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("transform")
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("SendMessage");
    let third = next.receive(10, None).expect("receive");
    assert_eq!(*third[0].body, "third");
    assert_eq!(
        third[0].message_attributes,
        [Attribute::string("busline.stop", "transform")]
    );
    // ChangeMessageVisibilityBatch: a received message handed back at once, a bad handle refused.
    let handles: Vec<VisibilityChange> = [third[0].receipt_handle.as_str(), "stale"]
        .iter()
        .map(|handle| VisibilityChange {
            receipt_handle: (*handle).to_owned(),
            timeout: std::time::Duration::ZERO,
        })
        .collect();
    let refused = sqs
        .change_visibility(&url, &handles)
        .await
        .expect("changed");
    assert_eq!(
        refused
            .iter()
            .map(|f| (f.index, f.code.as_str()))
            .collect::<Vec<_>>(),
        [(1, "ReceiptHandleIsInvalid")]
    );
    assert_eq!(
        next.depth(),
        (1, 2),
        "the handed-back message is visible again"
    );
    let missing = sqs
        .send_batch(&busline_driver::queue_url(&endpoint, "Nope"), &messages)
        .await
        .expect_err("no such queue");
    assert!(matches!(missing, PortError::NotFound { .. }), "{missing}");

    let s3 = S3Store::new(clients.s3.clone(), "DataBucket");
    s3.put(
        "output/trip=t/a b&c.ndjson",
        b"{\"x\":1}\n".to_vec(),
        "application/x-ndjson",
    )
    .await
    .expect("put");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output/trip=t/a b&c.ndjson")).expect("written"),
        "{\"x\":1}\n"
    );
    let mut text = String::new();
    s3.get("output/trip=t/a b&c.ndjson")
        .await
        .expect("get")
        .read_to_string(&mut text)
        .await
        .expect("read");
    assert_eq!(text, "{\"x\":1}\n");
    // A read resumed from an offset (a ranged GET), and one from the end.
    let mut rest = String::new();
    s3.get_from("output/trip=t/a b&c.ndjson", 2)
        .await
        .expect("ranged get")
        .read_to_string(&mut rest)
        .await
        .expect("read");
    assert_eq!(rest, "x\":1}\n");
    let mut none = String::new();
    s3.get_from("output/trip=t/a b&c.ndjson", 8)
        .await
        .expect("at the end")
        .read_to_string(&mut none)
        .await
        .expect("read");
    assert_eq!(none, "");
    let mut part = String::new();
    s3.get_range("output/trip=t/a b&c.ndjson", 1, 5)
        .await
        .expect("a range with an end")
        .read_to_string(&mut part)
        .await
        .expect("read");
    assert_eq!(part, "\"x\":1");
    // A write only if absent: the first wins, the second is refused (412) and changes nothing.
    assert!(
        s3.put_if_absent(
            "output/trip=t/_schema.json",
            b"first".to_vec(),
            "application/json"
        )
        .await
        .expect("written")
    );
    assert!(
        !s3.put_if_absent(
            "output/trip=t/_schema.json",
            b"second".to_vec(),
            "application/json"
        )
        .await
        .expect("refused")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output/trip=t/_schema.json")).expect("written"),
        "first"
    );
    for i in 0..1005 {
        bucket
            .put(&format!("input/{i:04}.csv"), b"x".to_vec(), "text/csv")
            .await
            .expect("put");
    }
    let listed = s3.list("input/").await.expect("list");
    assert_eq!(listed.len(), 1005, "two pages");
    assert_eq!(listed[1004].key, "input/1004.csv");
    assert_eq!(listed[0].size, 1);
    // A continuation token this endpoint never gave is refused, not read as "from the start".
    let refused = clients
        .s3
        .list_objects_v2()
        .bucket("DataBucket")
        .prefix("input/")
        .continuation_token("nonsense")
        .send()
        .await
        .expect_err("an unknown token");
    assert_eq!(
        aws_sdk_sqs::error::ProvideErrorMetadata::code(&refused),
        Some("InvalidArgument"),
        "{refused:?}"
    );
    let gone = s3.get("input/none.csv").await.err().expect("missing");
    assert!(matches!(gone, PortError::NotFound { .. }), "{gone}");
    let other = S3Store::new(clients.s3.clone(), "OtherBucket");
    let err = other.list("input/").await.expect_err("another bucket");
    assert!(matches!(err, PortError::NotFound { .. }), "{err}");
}
