//! A function binary under `cargo lambda watch`, invoked with an event file from events/ by
//! `cargo lambda invoke`, talking to SQS and S3 on LocalStack.

use busline_core::envelope::{Passenger, decode_envelope};
use busline_tests::backends::{QueueBackend, SqsBackend, receive_n};
use busline_tests::cloud::cloud;
use busline_tests::{assert_transformed_sample_event, workspace_root};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pinned cargo-lambda that ./infra/test installs.
fn cargo_lambda() -> PathBuf {
    let path = workspace_root().join("infra/.venv/bin/cargo-lambda");
    assert!(
        path.exists(),
        "cargo-lambda is not installed at {}: run ./infra/install (pip install cargo-lambda==1.9.2 works too)",
        path.display()
    );
    path
}

/// `cargo lambda watch`, killed with its whole process group when dropped.
struct Watch {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start_watch(port: u16, env: &[(String, String)]) -> Watch {
    use std::os::unix::process::CommandExt;
    let tool = cargo_lambda();
    let mut command = Command::new(&tool);
    command
        .args([
            "lambda",
            "watch",
            "--ignore-changes",
            "--invoke-port",
            &port.to_string(),
            "-p",
            "busline-transform",
        ])
        .current_dir(workspace_root())
        .env(
            "PATH",
            format!(
                "{}:{}",
                tool.parent().expect("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, value) in env {
        command.args(["--env-var", &format!("{key}={value}")]);
    }
    let mut child = command.spawn().expect("cargo lambda watch starts");
    let output = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output.lock().expect("lock").push(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}: {:?}",
            output.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Watch { child, output }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_under_cargo_lambda_watch_answers_and_forwards() {
    let cloud = cloud("localstack").await;
    let queues = SqsBackend {
        cloud: cloud.clone(),
    };
    let next = queues
        .create_queue("watch-next", Duration::from_secs(30), None)
        .await;
    let quarantine = queues
        .create_queue("watch-quarantine", Duration::from_secs(30), None)
        .await;
    let dead = queues
        .create_queue("watch-dlq", Duration::from_secs(30), None)
        .await;
    let bucket = cloud.create_bucket("watch-data").await;
    let env: Vec<(String, String)> = [
        ("STOP_NAME", "transform"),
        ("ROUTE_NAME", "colors"),
        ("NEXT_QUEUE_URL", next.as_str()),
        ("QUARANTINE_QUEUE_URL", quarantine.as_str()),
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
    let port = free_port();
    let watch = tokio::task::spawn_blocking(move || start_watch(port, &env))
        .await
        .expect("watch");

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
                &port.to_string(),
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
