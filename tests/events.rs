//! The sample events in events/ (also used with `cargo lambda invoke --data-file`) drive the
//! real handlers through the Lambda host's mapping, on the embedded backends; each stop is
//! built by its kind as the Lambda host builds it.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use busline_core::envelope::{Envelope, Passenger, decode_envelope};
use busline_core::{BatchProcessor, Invocation, TripStarter};
use busline_tests::*;
use serde_json::{Value, json};

fn event_file(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

fn sqs_event(name: &str) -> SqsEvent {
    serde_json::from_value(event_file(name)).expect("an SQS event")
}

/// The event file `name` through the Lambda host's SQS mapping.
async fn handle(processor: &BatchProcessor, name: &str) -> SqsBatchResponse {
    busline_lambda::sqs::handle(processor, sqs_event(name), &Default::default())
        .await
        .expect("not a function error")
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
    let extract = h.bus_stop(&busline_extract::kind(), &[]).await;
    let response = handle(&extract, "sqs-extract.json").await;
    assert!(response.batch_item_failures.is_empty());
    let passengers = forwarded(&h);
    assert_eq!(passengers.len(), 30);
    assert_eq!(passengers[0].id(), "6c1f0a9e2b7d4c35:2");
    assert_eq!(passengers[0].source(), Some("input/colors.csv:2"));
    assert_eq!(
        Value::Object(passengers[0].data().clone()),
        json!({"Name": "Black", "HEX": "#000000", "RGB": "(0, 0, 0)"})
    );
}

#[tokio::test]
async fn transform_event_drops_hex_from_both_buses() {
    let h = Harness::new();
    let transform = h
        .bus_stop(
            &busline_transform::kind(),
            &[("TRANSFORM_OPS", r#"[{"drop": ["HEX"]}]"#)],
        )
        .await;
    let response = handle(&transform, "sqs-transform.json").await;
    assert!(response.batch_item_failures.is_empty());
    let passengers = forwarded(&h);
    assert_transformed_sample_event(&passengers);
}

#[tokio::test]
async fn load_event_writes_one_object_keyed_by_trip_and_bus() {
    let h = Harness::new();
    let load = h
        .bus_stop(&busline_load::kind(), &[("OUTPUT_PREFIX", "output/")])
        .await;
    let response = handle(&load, "sqs-load.json").await;
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

async fn depot(h: &Harness) -> TripStarter {
    std::fs::create_dir_all(h.dir.path().join("input")).expect("mkdir");
    std::fs::copy(
        workspace_root().join("samples/colors/colors.csv"),
        h.dir.path().join("input/colors.csv"),
    )
    .expect("copy");
    h.build(
        &busline_depot::kind(),
        &[("STOP_NAME", "depot"), ("INPUT_PREFIX", "input/")],
    )
    .await
    .expect("builds")
    .into_depot("depot")
    .expect("a depot")
}

async fn respond(depot: &TripStarter, event: Value) -> Value {
    busline_lambda::trigger::respond(depot, event, &Invocation::default())
        .await
        .expect("answered")
}

#[tokio::test]
async fn the_schedule_starts_the_same_trip_for_the_same_event() {
    let h = Harness::new();
    let depot = depot(&h).await;
    let first = respond(&depot, event_file("schedule.json")).await;
    let again = respond(&depot, event_file("schedule.json")).await;
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
    assert_eq!(
        tickets[0].passengers[0].get_str("key"),
        Some("input/colors.csv")
    );
    assert_eq!(tickets[0].passengers[0].get("size"), Some(&json!(926)));
}

#[tokio::test]
async fn the_http_api_starts_a_trip_and_answers_with_its_id() {
    let h = Harness::new();
    let depot = depot(&h).await;
    let response = respond(&depot, event_file("http-start-trip.json")).await;
    assert_eq!(response["statusCode"], 202);
    assert_eq!(response["headers"]["content-type"], "application/json");
    let body: Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    assert_eq!(body, json!({"trip_id": "api-demo-0001", "tickets": 1}));

    let mut get = event_file("http-start-trip.json");
    get["requestContext"]["http"]["method"] = json!("GET");
    assert_eq!(respond(&depot, get).await["statusCode"], 405);
    let mut bad = event_file("http-start-trip.json");
    bad["body"] = json!("{\"trip\": 1}");
    let answer = respond(&depot, bad).await;
    assert_eq!(answer["statusCode"], 400);
    assert!(
        answer["body"]
            .as_str()
            .expect("body")
            .contains("unknown field `trip`"),
        "{answer}"
    );
}
