//! The sample events in events/ (also used with `cargo lambda invoke --data-file`) drive the
//! real handlers, on the embedded backends.

use aws_lambda_events::event::sqs::SqsEvent;
use busline_core::envelope::{Envelope, Passenger, decode_envelope};
use busline_core::{BatchProcessor, Stop};
use busline_depot::{Depot, DepotConfig};
use busline_tests::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn event_file(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

fn sqs_event(name: &str) -> SqsEvent {
    serde_json::from_value(event_file(name)).expect("an SQS event")
}

fn processor(h: &Harness, stop: Arc<dyn Stop>) -> BatchProcessor {
    h.processor(stop, h.config(&[]), Arc::new(h.queues.clone()))
}

fn forwarded(h: &Harness) -> Vec<Passenger> {
    h.queue("next")
        .drain()
        .into_iter()
        .flat_map(|m| {
            decode_envelope::<Passenger>(&m.body)
                .expect("bus")
                .passengers
        })
        .collect()
}

#[tokio::test]
async fn extract_event_reads_the_ticketed_object() {
    let h = Harness::new();
    std::fs::create_dir_all(h.dir.path().join("input")).expect("mkdir");
    std::fs::copy(
        workspace_root().join("samples/colors/colors.csv"),
        h.dir.path().join("input/colors.csv"),
    )
    .expect("copy");
    let extract = busline_extract::Extract::new(busline_extract::ExtractConfig::default_csv());
    let response = processor(&h, Arc::new(extract))
        .process(sqs_event("sqs-extract.json"))
        .await
        .expect("ok");
    assert!(response.batch_item_failures.is_empty());
    let passengers = forwarded(&h);
    assert_eq!(passengers.len(), 30);
    assert_eq!(passengers[0].id, "6c1f0a9e2b7d4c35:2");
    assert_eq!(passengers[0].source.as_deref(), Some("input/colors.csv:2"));
    assert_eq!(
        Value::Object(passengers[0].data.clone()),
        json!({"Name": "Black", "HEX": "#000000", "RGB": "(0, 0, 0)"})
    );
}

#[tokio::test]
async fn transform_event_drops_hex_from_both_buses() {
    let h = Harness::new();
    let vars = HashMap::from([(
        "TRANSFORM_OPS".to_owned(),
        r#"[{"drop": ["HEX"]}]"#.to_owned(),
    )]);
    let transform = busline_transform::Transform::new(
        busline_transform::TransformConfig::from_vars(&vars).expect("ops"),
    );
    let response = processor(&h, Arc::new(transform))
        .process(sqs_event("sqs-transform.json"))
        .await
        .expect("ok");
    assert!(response.batch_item_failures.is_empty());
    let passengers = forwarded(&h);
    assert_transformed_sample_event(&passengers);
}

#[tokio::test]
async fn load_event_writes_one_object_keyed_by_trip_and_bus() {
    let h = Harness::new();
    let vars = HashMap::from([("OUTPUT_PREFIX".to_owned(), "output/".to_owned())]);
    let load = busline_load::Load::new(busline_load::LoadConfig::from_vars(&vars).expect("config"));
    let response = processor(&h, Arc::new(load))
        .process(sqs_event("sqs-load.json"))
        .await
        .expect("ok");
    assert!(response.batch_item_failures.is_empty());
    let written = std::fs::read_to_string(
        h.dir
            .path()
            .join("output/trip=20261122T010000Z-demo0001/3e2d1c0b9a8f7e65.ndjson"),
    )
    .expect("the object");
    assert_eq!(
        written,
        "{\"Name\":\"Black\",\"RGB\":\"(0, 0, 0)\"}\n{\"Name\":\"White\",\"RGB\":\"(255, 255, 255)\"}\n{\"Name\":\"Red\",\"RGB\":\"(255, 0, 0)\"}\n"
    );
}

fn depot(h: &Harness) -> Depot {
    std::fs::create_dir_all(h.dir.path().join("input")).expect("mkdir");
    std::fs::copy(
        workspace_root().join("samples/colors/colors.csv"),
        h.dir.path().join("input/colors.csv"),
    )
    .expect("copy");
    let runtime = busline_core::StopRuntime {
        config: h.config(&[("STOP_NAME", "depot")]),
        queues: Arc::new(h.queues.clone()),
        objects: h.store.clone(),
        metrics: h.metrics.clone(),
        retry: fast_retry(),
    };
    Depot::new(
        DepotConfig {
            input_prefix: "input/".into(),
        },
        runtime,
    )
}

#[tokio::test]
async fn the_schedule_starts_the_same_trip_for_the_same_event() {
    let h = Harness::new();
    let depot = depot(&h);
    let first = busline_depot::trigger::respond(&depot, event_file("schedule.json"))
        .await
        .expect("started");
    let again = busline_depot::trigger::respond(&depot, event_file("schedule.json"))
        .await
        .expect("started");
    assert_eq!(first["tickets"], 1);
    assert!(
        first["trip_id"]
            .as_str()
            .expect("id")
            .starts_with("20261122T010000Z-"),
        "{first}"
    );
    assert_eq!(
        first, again,
        "a retried scheduled event replays the same trip"
    );
    let tickets: Vec<Envelope<Passenger>> = h
        .queue("next")
        .drain()
        .iter()
        .map(|m| decode_envelope(&m.body).expect("bus"))
        .collect();
    assert_eq!(tickets.len(), 2);
    assert_eq!(tickets[0].passengers[0].data["key"], "input/colors.csv");
    assert_eq!(tickets[0].passengers[0].data["size"], 926);
}

#[tokio::test]
async fn the_http_api_starts_a_trip_and_answers_with_its_id() {
    let h = Harness::new();
    let depot = depot(&h);
    let response = busline_depot::trigger::respond(&depot, event_file("http-start-trip.json"))
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 202);
    assert_eq!(response["headers"]["content-type"], "application/json");
    let body: Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    assert_eq!(body, json!({"trip_id": "api-demo-0001", "tickets": 1}));

    let mut get = event_file("http-start-trip.json");
    get["requestContext"]["http"]["method"] = json!("GET");
    assert_eq!(
        busline_depot::trigger::respond(&depot, get)
            .await
            .expect("answered")["statusCode"],
        405
    );
    let mut bad = event_file("http-start-trip.json");
    bad["body"] = json!("{\"trip\": 1}");
    let answer = busline_depot::trigger::respond(&depot, bad)
        .await
        .expect("answered");
    assert_eq!(answer["statusCode"], 400);
    assert!(
        answer["body"]
            .as_str()
            .expect("body")
            .contains("unknown field `trip`"),
        "{answer}"
    );
}
