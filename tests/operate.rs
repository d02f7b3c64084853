//! `bus dlq` and `bus status` on each emulator: a stack that is missing or lacks a stop's
//! resource is named in the error; reading dead letters leaves them in the queue; a redrive
//! sends back exactly the buses it is asked for without their dead-letter attributes and hands
//! the others back at once; a failed send loses no bus.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use busline_ops::queue::depth;
use busline_ops::{RedriveFilter, RedriveMethod, dead_letters, redrive};
use busline_tests::backends::{QueueBackend, SqsBackend};
use busline_tests::cloud::{Cloud, cloud};
use std::collections::BTreeMap;
use std::time::Duration;

/// A stop's queue and its dead-letter queue, holding three buses the processor dead-lettered:
/// two of trip-a, one of trip-b.
struct Queues {
    sqs: Client,
    queue: String,
    dead_letters: String,
}

async fn dead_lettered_buses(cloud: &Cloud) -> Queues {
    let backend = SqsBackend {
        cloud: cloud.clone(),
    };
    let dead_letters = backend
        .create_queue(
            &busline_tests::cloud::unique("dlq"),
            Duration::from_secs(30),
            None,
        )
        .await;
    let queue = backend
        .create_queue(
            &busline_tests::cloud::unique("stop"),
            Duration::from_secs(30),
            Some((&dead_letters, 5)),
        )
        .await;
    let sqs = cloud.clients.sqs.clone();
    for (body, trip) in [
        ("bus-1", "trip-a"),
        ("bus-2", "trip-a"),
        ("bus-3", "trip-b"),
    ] {
        let text = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("attribute")
        };
        sqs.send_message()
            .queue_url(&dead_letters)
            .message_body(body)
            .message_attributes("busline.reason", text(&format!("{body} is not valid")))
            .message_attributes("busline.class", text("permanent"))
            .message_attributes("busline.stop", text("transform"))
            .message_attributes("busline.trip", text(trip))
            .message_attributes("busline.receive-count", text("1"))
            .message_attributes("busline.message-id", text(&format!("original-{body}")))
            .message_attributes("team", text("flights"))
            .send()
            .await
            .expect("send dead letter");
    }
    Queues {
        sqs,
        queue,
        dead_letters,
    }
}

/// Everything in the queue at `url` (deleted as read): body -> message attributes.
async fn drain(
    sqs: &Client,
    url: &str,
    expected: usize,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut got = BTreeMap::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            let attributes = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_owned()))
                .collect();
            got.insert(m.body().unwrap_or_default().to_owned(), attributes);
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        if got.len() >= expected {
            break;
        }
    }
    got
}

/// The first characters of a body that is not a bus (these tests' bodies).
fn preview(letter: &busline_ops::DeadLetter) -> String {
    match &letter.contents {
        busline_ops::BusContents::Unreadable { preview, .. } => preview.clone(),
        other => panic!("not a test body: {other:?}"),
    }
}

async fn reading_keeps_every_bus_and_names_its_reason(name: &'static str) {
    let cloud = cloud(name).await;
    let q = dead_lettered_buses(&cloud).await;
    let letters = dead_letters(&q.sqs, &q.dead_letters, 10)
        .await
        .expect("read");
    let mut seen: Vec<String> = letters
        .iter()
        .map(|l| {
            format!(
                "{} {:?} {:?} {:?}",
                preview(l),
                l.trip,
                l.reason,
                l.receives
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            r#"bus-1 Some("trip-a") Some("bus-1 is not valid") Some(1)"#,
            r#"bus-2 Some("trip-a") Some("bus-2 is not valid") Some(1)"#,
            r#"bus-3 Some("trip-b") Some("bus-3 is not valid") Some(1)"#,
        ],
        "{name}"
    );
    // Each names its message id on the stop's queue and when it was dead-lettered.
    for letter in &letters {
        let original = format!("original-{}", preview(letter));
        assert_eq!(
            letter.original_message_id.as_deref(),
            Some(original.as_str()),
            "{name}"
        );
        assert!(
            letter
                .sent_at
                .as_deref()
                .is_some_and(|at| at.ends_with('Z')),
            "{name}: {letter:?}"
        );
    }
    // Handed back at once: all three are visible to the next reader.
    assert_eq!(
        depth(&q.sqs, &q.dead_letters).await.expect("depth").visible,
        3,
        "{name}"
    );
    let limited = dead_letters(&q.sqs, &q.dead_letters, 2)
        .await
        .expect("read two");
    assert_eq!(limited.len(), 2, "{name}");
}

async fn redrive_by_trip_then_the_rest(name: &'static str) {
    let cloud = cloud(name).await;
    let q = dead_lettered_buses(&cloud).await;
    let filter = RedriveFilter {
        trips: vec!["trip-a".into()],
        messages: vec![],
    };
    let report = redrive(&q.sqs, &q.dead_letters, &q.queue, &filter)
        .await
        .expect("redrive");
    assert_eq!(
        (report.moved, report.kept, report.failed.len()),
        (2, 1, 0),
        "{name}: {report:?}"
    );
    let back = drain(&q.sqs, &q.queue, 2).await;
    let team = BTreeMap::from([("team".to_owned(), "flights".to_owned())]);
    assert_eq!(
        back,
        BTreeMap::from([
            ("bus-1".to_owned(), team.clone()),
            ("bus-2".to_owned(), team.clone())
        ]),
        "{name}: sent back without the busline.* attributes"
    );
    // The kept bus was handed back at once, not after the redrive's hold.
    let left = dead_letters(&q.sqs, &q.dead_letters, 10)
        .await
        .expect("read");
    assert_eq!(
        left.iter().map(preview).collect::<Vec<_>>(),
        ["bus-3"],
        "{name}"
    );
    // By its id in the stop's queue.
    let filter = RedriveFilter {
        trips: vec![],
        messages: vec!["original-bus-3".into()],
    };
    let report = redrive(&q.sqs, &q.dead_letters, &q.queue, &filter)
        .await
        .expect("redrive");
    assert_eq!((report.moved, report.kept), (1, 0), "{name}");
    assert_eq!(
        drain(&q.sqs, &q.queue, 1).await.keys().collect::<Vec<_>>(),
        ["bus-3"]
    );
    assert_eq!(
        depth(&q.sqs, &q.dead_letters).await.expect("depth").total(),
        0,
        "{name}"
    );
}

async fn a_whole_queue_goes_back_by_move_task_where_sqs_has_one(name: &'static str) {
    let cloud = cloud(name).await;
    let q = dead_lettered_buses(&cloud).await;
    let report = redrive(&q.sqs, &q.dead_letters, &q.queue, &RedriveFilter::default())
        .await
        .expect("redrive");
    // LocalStack runs SQS's move task; MiniStack has none, so busline moves them itself.
    let method = match name {
        "localstack" => RedriveMethod::MoveTask,
        _ => RedriveMethod::ReceiveAndSend,
    };
    assert_eq!(
        (report.method, report.moved, report.kept),
        (method, 3, 0),
        "{name}: {report:?}"
    );
    let back = drain(&q.sqs, &q.queue, 3).await;
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        ["bus-1", "bus-2", "bus-3"],
        "{name}"
    );
    assert_eq!(
        depth(&q.sqs, &q.dead_letters).await.expect("depth").total(),
        0,
        "{name}"
    );
}

async fn a_bus_that_fails_again_is_left_for_the_next_redrive(name: &'static str) {
    let cloud = cloud(name).await;
    let q = dead_lettered_buses(&cloud).await;
    // A stop whose fault is not fixed: whatever reaches its queue is dead-lettered again at
    // once, as a new message, while the redrive is still running.
    let (sqs, queue, dead_letters) = (q.sqs.clone(), q.queue.clone(), q.dead_letters.clone());
    let faulty_stop = tokio::spawn(async move {
        loop {
            let out = sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for m in out.messages() {
                sqs.send_message()
                    .queue_url(&dead_letters)
                    .message_body(m.body().unwrap_or_default())
                    .send()
                    .await
                    .expect("dead-letter again");
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    });
    let by_trip = RedriveFilter {
        trips: vec!["trip-a".into(), "trip-b".into()],
        messages: vec![],
    };
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        redrive(&q.sqs, &q.dead_letters, &q.queue, &by_trip),
    )
    .await
    .expect("the redrive ends though its buses come back")
    .expect("redrive");
    faulty_stop.abort();
    // Each bus was sent back once: the copies the faulty stop dead-lettered again were left.
    assert_eq!((report.moved, report.kept), (3, 0), "{name}: {report:?}");
    assert!(
        report.failed.is_empty() && report.hidden.is_empty(),
        "{name}: {report:?}"
    );
}

async fn a_failed_send_keeps_the_bus_and_names_the_queue(name: &'static str) {
    let cloud = cloud(name).await;
    let q = dead_lettered_buses(&cloud).await;
    let gone = format!("{}-gone", q.queue);
    // Whole (a move task where SQS has one) and filtered alike.
    let by_trip = RedriveFilter {
        trips: vec!["trip-a".into(), "trip-b".into()],
        messages: vec![],
    };
    for filter in [RedriveFilter::default(), by_trip] {
        let err = redrive(&q.sqs, &q.dead_letters, &gone, &filter)
            .await
            .expect_err("no such queue");
        assert!(err.to_string().contains(&gone), "{name}: {err}");
    }
    let left = dead_letters(&q.sqs, &q.dead_letters, 10)
        .await
        .expect("read");
    assert_eq!(
        left.len(),
        3,
        "{name}: every bus is still dead-lettered and visible"
    );
}

/// On MiniStack: the test LocalStack runs no CloudFormation.
#[tokio::test]
async fn a_missing_stack_or_resource_is_named() {
    let name = "ministack";
    let cloud = cloud(name).await;
    let template = busline_tests::workspace_root().join("template.yaml");
    let connect = |stack: String| {
        let clients = busline_ops::OpsClients::from_config(&cloud.config);
        let template = template.clone();
        async move {
            busline_cli::operate::Deployed::connect(clients, &stack, &template, Default::default())
                .await
                .err()
                .map(|err| err.to_string())
        }
    };
    let nowhere = busline_tests::cloud::unique("busline-nowhere");
    assert_eq!(
        connect(nowhere.clone()).await.as_deref(),
        Some(format!("no stack {nowhere} (check --stack-name and the region; AWS_ENDPOINT_URL for a local cloud)").as_str()),
        "{name}"
    );
    // A stack with the template's extract queues and nothing else.
    let stack = busline_tests::cloud::unique("busline-queues-only");
    let body = r#"{"Resources": {"ExtractQueue": {"Type": "AWS::SQS::Queue"},
                   "ExtractDeadLetterQueue": {"Type": "AWS::SQS::Queue"}}}"#;
    let cloudformation = aws_sdk_cloudformation::Client::new(&cloud.config);
    cloudformation
        .create_stack()
        .stack_name(&stack)
        .template_body(body)
        .send()
        .await
        .expect("create stack");
    for _ in 0..60 {
        let described = cloudformation
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .expect("describe");
        let status = described.stacks()[0]
            .stack_status()
            .map(|s| s.as_str().to_owned());
        if status.as_deref() != Some("CREATE_IN_PROGRESS") {
            assert_eq!(status.as_deref(), Some("CREATE_COMPLETE"), "{name}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        connect(stack.clone()).await.as_deref(),
        Some(format!("stack {stack} has no resource DepotFunction (the function of stop depot); was it deployed from this template?").as_str()),
        "{name}"
    );
    cloudformation
        .delete_stack()
        .stack_name(&stack)
        .send()
        .await
        .expect("delete stack");
}

macro_rules! on_both_clouds {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn localstack() { super::$case("localstack").await }
            #[tokio::test]
            async fn ministack() { super::$case("ministack").await }
        }
    )*};
}

on_both_clouds!(
    reading_keeps_every_bus_and_names_its_reason,
    redrive_by_trip_then_the_rest,
    a_whole_queue_goes_back_by_move_task_where_sqs_has_one,
    a_bus_that_fails_again_is_left_for_the_next_redrive,
    a_failed_send_keeps_the_bus_and_names_the_queue,
);
