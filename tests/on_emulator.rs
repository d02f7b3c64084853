//! The colors route on each emulator: SQS and S3 adapters, stops invoked in process from the
//! queues the way Lambda's poller does, output compared with the embedded ride's.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use busline_aws::{S3Store, SqsQueues};
use busline_cli::ride::ride;
use busline_core::compression::COMPRESSED_PREFIX;
use busline_core::ports::{NoMetrics, ObjectStore};
use busline_core::route::Route;
use busline_core::{BatchProcessor, Extensions, Invocation, Ports, ReadyStop, TripRequest};
use busline_tests::backends::{QueueBackend, SqsBackend};
use busline_tests::cloud::{Cloud, cloud, unique};
use busline_tests::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Creates every queue of the route on the emulator; returns logical id -> queue URL.
async fn create_queues(cloud: &Cloud, route: &Route) -> HashMap<String, String> {
    let backend = SqsBackend {
        cloud: cloud.clone(),
    };
    let mut urls: HashMap<String, String> = HashMap::new();
    // Dead-letter queues first: the others' redrive policies name them.
    let mut queues: Vec<_> = route.queues.iter().collect();
    queues.sort_by_key(|q| q.dead_letter_queue.is_some());
    for spec in queues {
        let redrive = match (&spec.dead_letter_queue, spec.max_receive_count) {
            (Some(dlq), Some(count)) => Some((urls[dlq].as_str(), count)),
            _ => None,
        };
        let url = backend
            .create_queue(&spec.name, spec.visibility_timeout, redrive)
            .await;
        urls.insert(spec.name.clone(), url);
    }
    urls
}

/// A stop's environment on the emulator: queue logical ids become URLs, the bucket is real.
fn env_on(
    env: &HashMap<String, String>,
    urls: &HashMap<String, String>,
    bucket: &str,
) -> HashMap<String, String> {
    env.iter()
        .map(|(k, v)| {
            let value = match k.as_str() {
                "DATA_BUCKET" => bucket.to_owned(),
                _ => urls.get(v).cloned().unwrap_or_else(|| v.clone()),
            };
            (k.clone(), value)
        })
        .collect()
}

/// The event Lambda's poller would build from received SQS messages, as the Lambda host maps
/// it for the processor.
fn deliveries(
    messages: &[aws_sdk_sqs::types::Message],
    queue_url: &str,
) -> Vec<busline_core::Delivery> {
    lambda_event(messages, queue_url)
        .records
        .into_iter()
        .map(busline_lambda::sqs::delivery)
        .collect()
}

fn lambda_event(messages: &[aws_sdk_sqs::types::Message], queue_url: &str) -> SqsEvent {
    let queue_name = queue_url.rsplit('/').next().unwrap_or_default();
    let queue_arn = format!("arn:aws:sqs:us-east-1:000000000000:{queue_name}");
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            record.message_attributes = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            let mut value = SqsMessageAttribute::default();
                            value.string_value = v.string_value().map(str::to_owned);
                            value.data_type = Some(v.data_type().to_owned());
                            (k.clone(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.clone());
            record
        })
        .collect();
    event
}

struct PolledStop {
    queue_url: String,
    batch_size: i32,
    processor: BatchProcessor,
}

/// Polls every stop's queue, invokes the stop, deletes what succeeded; until all are empty.
/// Returns how many of the buses received were compressed.
async fn poll_until_empty(cloud: &Cloud, stops: &[PolledStop]) -> usize {
    let mut compressed = 0;
    let sqs = &cloud.clients.sqs;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut idle_rounds = 0;
    while idle_rounds < 3 {
        assert!(
            Instant::now() < deadline,
            "the route did not drain within 90 s on {}",
            cloud.name
        );
        let mut worked = false;
        for stop in stops.iter().rev() {
            let received = sqs
                .receive_message()
                .queue_url(&stop.queue_url)
                .max_number_of_messages(stop.batch_size.min(10))
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            let messages = received.messages();
            if messages.is_empty() {
                continue;
            }
            worked = true;
            compressed += messages
                .iter()
                .filter(|m| m.body().unwrap_or_default().starts_with(COMPRESSED_PREFIX))
                .count();
            let outcome = stop
                .processor
                .process(
                    deliveries(messages, &stop.queue_url),
                    &Invocation::default(),
                )
                .await
                .expect("a batch that fails entirely");
            assert!(outcome.retry.is_empty(), "{outcome:?}");
            for message in messages {
                sqs.delete_message()
                    .queue_url(&stop.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        idle_rounds = if worked { 0 } else { idle_rounds + 1 };
        if !worked {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    compressed
}

/// Every object under `prefix`, as (key without the prefix, content).
async fn objects(store: &dyn ObjectStore, prefix: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for object in store.list(prefix).await.expect("list") {
        let mut text = String::new();
        store
            .get(&object.key)
            .await
            .expect("get")
            .read_to_string(&mut text)
            .await
            .expect("read");
        found.push((object.key.trim_start_matches(prefix).to_owned(), text));
    }
    found
}

/// `on_cloud` has `reference`'s keys and content; a mismatch names the key, the line counts
/// and the first line that differs (whole outputs are too long to read in a failure).
fn assert_same_objects(on_cloud: &[(String, String)], reference: &[(String, String)], name: &str) {
    let keys = |objects: &[(String, String)]| {
        objects
            .iter()
            .map(|(key, _)| key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(on_cloud), keys(reference), "same keys on {name}");
    for ((key, cloud), (_, embedded)) in on_cloud.iter().zip(reference) {
        let (cloud_lines, embedded_lines): (Vec<&str>, Vec<&str>) =
            (cloud.lines().collect(), embedded.lines().collect());
        let first = cloud_lines
            .iter()
            .zip(&embedded_lines)
            .position(|(a, b)| a != b);
        assert!(
            cloud == embedded,
            "{key} differs on {name}: {} lines on the cloud, {} embedded; first difference at line {first:?}: {:?} against {:?}",
            cloud_lines.len(),
            embedded_lines.len(),
            first.map(|i| cloud_lines[i]),
            first.map(|i| embedded_lines[i]),
        );
    }
}

/// Rides the CSV files in `input` through the shipped route with `BusByteBudget` `budget`
/// on the local cloud `name`, checks the output equals the embedded ride's, and returns how
/// many buses were compressed on the way.
async fn colors_route_matches_the_embedded_ride(
    name: &'static str,
    input: &Path,
    budget: &str,
) -> usize {
    let cloud = cloud(name).await;
    let route = shipped_route(&[("BusByteBudget", budget)]);
    let trip = format!("on-{name}-{}", unique("trip"));

    // The embedded ride of the same trip is the reference.
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route.clone(), input, out.path());
    options.trip_id = Some(trip.clone());
    ride(options, |_| {}).await.expect("embedded ride");
    // The stops on the cloud below keep no ledger, so the ride's `_SUCCESS` has no twin there.
    let reference: Vec<_> = objects(
        &busline_embedded::FolderStore::new("bucket", out.path()),
        &format!("output/trip={trip}/"),
    )
    .await
    .into_iter()
    .filter(|(key, _)| key != "_SUCCESS")
    .collect();
    assert!(
        reference.len() > 1,
        "a small budget spreads the trip over several buses"
    );

    let urls = create_queues(&cloud, &route).await;
    let bucket = cloud.create_bucket("busline-data").await;
    let store = Arc::new(S3Store::new(cloud.clients.s3.clone(), &bucket));
    let mut files = 0;
    for file in std::fs::read_dir(input).expect("input folder") {
        let path = file.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        if !name.ends_with(".csv") {
            continue;
        }
        let csv = std::fs::read(&path).expect("input file");
        store
            .put(&format!("input/{name}"), csv, "text/csv")
            .await
            .expect("upload");
        files += 1;
    }

    // Every stop built by the registry over the AWS ports, as the Lambda host builds it.
    let ports = Ports {
        queues: Arc::new(SqsQueues::new(cloud.clients.sqs.clone())),
        objects: store.clone(),
        metrics: Arc::new(NoMetrics),
        retry: fast_retry(),
        trips: None,
    };
    let mut extensions = Extensions::default();
    extensions.insert(cloud.config.clone());
    let registry = busline_builtin::registry();
    let mut depot = None;
    let mut stops = Vec::new();
    for spec in &route.stops {
        let env = env_on(&spec.env, &urls, &bucket);
        let built = registry
            .build(&spec.kind, Arc::new(env), ports.clone(), extensions.clone())
            .await
            .expect("the stop builds");
        match built {
            ReadyStop::Depot(starter) => depot = Some(starter),
            ReadyStop::Bus(processor) => stops.push(PolledStop {
                queue_url: urls[spec.queue.as_deref().expect("queue")].clone(),
                batch_size: spec.batch_size as i32,
                processor,
            }),
        }
    }
    let request = TripRequest {
        trip_id: Some(trip.clone()),
        ..TripRequest::default()
    };
    let started = depot
        .expect("the route has a depot")
        .start_trip(request, &Invocation::default())
        .await
        .expect("trip starts");
    assert_eq!(started.tickets, files);

    let compressed = poll_until_empty(&cloud, &stops).await;
    let on_cloud = objects(store.as_ref(), &format!("output/trip={trip}/")).await;
    assert_same_objects(&on_cloud, &reference, name);
    compressed
}

async fn small_buses_on(name: &'static str) {
    let sample = workspace_root().join("samples/colors");
    let compressed = colors_route_matches_the_embedded_ride(name, &sample, "1024").await;
    assert_eq!(compressed, 0, "a bus within one billed chunk goes as JSON");
}

/// 40,000 generated records: extract's and transform's buses span several billed chunks, so
/// they go compressed through SQS, and read back the same.
async fn compressed_buses_on(name: &'static str) {
    let input = tempfile::tempdir().expect("tempdir");
    busline_cli::generate::generate(&busline_cli::generate::GenOptions {
        schema: busline_cli::generate::Schema::Colors,
        records: 40_000,
        files: 1,
        ndjson: false,
        out: input.path().to_owned(),
        seed: 7,
        bad_every: 0,
        compression: None,
    })
    .expect("generated");
    let compressed = colors_route_matches_the_embedded_ride(name, input.path(), "262144").await;
    assert!(compressed >= 2, "{compressed} compressed buses on {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colors_route_on_localstack_matches_the_embedded_ride() {
    small_buses_on("localstack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colors_route_on_ministack_matches_the_embedded_ride() {
    small_buses_on("ministack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_buses_ride_localstack_as_the_embedded_bus() {
    compressed_buses_on("localstack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_buses_ride_ministack_as_the_embedded_bus() {
    compressed_buses_on("ministack").await;
}
