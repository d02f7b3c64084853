//! A function binary under `cargo lambda watch`, invoked with an event file from events/ by
//! `cargo lambda invoke`, talking to SQS and S3 on LocalStack.

use busline_core::envelope::{Passenger, decode_envelope};
use busline_tests::backends::{QueueBackend, SqsBackend, receive_n};
use busline_tests::cloud::cloud;
use busline_tests::watch::{cargo_lambda, start_watch};
use busline_tests::{assert_transformed_sample_event, workspace_root};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_under_cargo_lambda_watch_answers_and_forwards() {
    let cloud = cloud("localstack").await;
    let queues = SqsBackend {
        cloud: cloud.clone(),
    };
    let next = queues
        .create_queue("watch-next", Duration::from_secs(30), None)
        .await;
    let dead = queues
        .create_queue("watch-dlq", Duration::from_secs(30), None)
        .await;
    let bucket = cloud.create_bucket("watch-data").await;
    let env: Vec<(String, String)> = [
        ("STOP_NAME", "transform"),
        ("ROUTE_NAME", "colors"),
        ("NEXT_QUEUE_URL", next.as_str()),
        ("DEAD_LETTER_QUEUE_URL", dead.as_str()),
        ("DATA_BUCKET", bucket.as_str()),
        ("TRANSFORM_OPS", r#"[{"drop": ["HEX"]}]"#),
        ("METRICS_MODE", "emf"),
        ("AWS_ENDPOINT_URL", cloud.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut args = vec!["-p".to_owned(), "busline-transform".to_owned()];
    for (key, value) in &env {
        args.extend(["--env-var".to_owned(), format!("{key}={value}")]);
    }
    let watch = tokio::task::spawn_blocking(move || start_watch(&workspace_root(), &args))
        .await
        .expect("watch");
    let port = watch
        .endpoint
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();

    // The first invoke builds the function; allow for a cold build.
    let invoke = tokio::task::spawn_blocking(move || {
        Command::new(cargo_lambda())
            .args([
                "lambda",
                "invoke",
                "transform",
                "--data-file",
                "events/sqs-transform.json",
                "--invoke-port",
                &port,
            ])
            .current_dir(workspace_root())
            .output()
            .expect("cargo lambda invoke runs")
    })
    .await
    .expect("invoke");
    let logs = watch.output.lock().expect("lock").clone();
    assert!(
        invoke.status.success(),
        "invoke failed: {}\n{}\nwatch output:\n{}",
        String::from_utf8_lossy(&invoke.stdout),
        String::from_utf8_lossy(&invoke.stderr),
        logs.join("\n")
    );
    let response: Value = serde_json::from_slice(&invoke.stdout).expect("a JSON response");
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));

    // One bus forwarded per bus in the event.
    let got = receive_n(&queues, &next, 2).await;
    assert_eq!(got.len(), 2);
    let mut passengers: Vec<Passenger> = got
        .iter()
        .flat_map(|m| {
            decode_envelope::<Passenger>(&m.body)
                .expect("bus")
                .passengers
        })
        .collect();
    passengers.sort_by_key(|p| {
        p.id()
            .rsplit(':')
            .next()
            .and_then(|line| line.parse::<u32>().ok())
    });
    assert_transformed_sample_event(&passengers);

    // JSON log lines carry stop, trip, message id and the Lambda request id; EMF carries metrics.
    let handled: Vec<Value> = logs
        .iter()
        .filter_map(|line| {
            line.find('{')
                .and_then(|start| serde_json::from_str::<Value>(&line[start..]).ok())
        })
        .filter(|json| json["fields"]["message"] == "bus handled")
        .collect();
    assert_eq!(handled.len(), 2, "one line per bus: {logs:?}");
    let text = handled[0].to_string();
    for needle in [
        "\"stop\":\"transform\"",
        "\"trip\":\"20261122T010000Z-demo0001\"",
        "\"message_id\":\"5d3f2a10-8c4b-4e0f-9a61-1b2c3d4e5f60\"",
        "requestId",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("\"CloudWatchMetrics\"") && l.contains("\"PassengersIn\":5")),
        "no EMF line: {logs:?}"
    );
    drop(watch);
}
