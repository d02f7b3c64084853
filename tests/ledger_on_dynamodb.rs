//! The DynamoDB ledger and the EventBridge completion event on MiniStack: buses recorded at
//! once from many tasks add up exactly, a redelivery adds nothing, a redrive replaces its dead
//! letter, a bus's records are read without its siblings', two claims of one completion let exactly one through, and the event reaches a
//! rule's SQS target. Part of the `dynamodb` test binary.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use busline_aws::{DynamoLedger, EventBridgeEvents};
use busline_core::ledger::{
    BusOutcome, Completion, Ledger, LedgerEntry, Manifest, MemoryLedger, Recorded, TripEvents,
    TripState, counter, dead_letter_bus, departure_bus, departure_left,
};
use busline_tests::cloud::{cloud, unique};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

async fn ledger_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("ledger");
    let mut create = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, role) in [("trip", KeyType::Hash), ("entry", KeyType::Range)] {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(role)
                    .build()
                    .expect("key"),
            );
    }
    create.send().await.expect("ledger table");
    name
}

/// A ledger over a new table on MiniStack, keeping trips a day.
async fn fresh_ledger() -> DynamoLedger {
    let cloud = cloud("ministack").await;
    let client = aws_sdk_dynamodb::Client::new(&cloud.config);
    let table = ledger_table(&client).await;
    DynamoLedger::new(client, table, Duration::from_secs(86_400))
}

fn entry(trip: &str, bus: &str, outcome: BusOutcome, counters: &[(String, u64)]) -> LedgerEntry {
    LedgerEntry {
        trip: trip.into(),
        stop: "load".into(),
        bus: bus.into(),
        outcome,
        at_ms: 1_764_633_600_000,
        counters: counters.iter().cloned().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_recorded_at_once_add_up_once_and_a_completion_is_claimed_once() {
    let ledger = fresh_ledger().await;
    let trip = "t-dynamo";
    let arrived = counter::arrived("load");
    let dropped = counter::stop("load", "dropped_off");
    let start = entry(
        trip,
        "trip-start",
        BusOutcome::Ridden,
        &[(counter::STARTED.into(), 1), (counter::sent("load"), 40)],
    );
    assert_eq!(ledger.record(&start).await.expect("start"), Recorded::New);
    // 20 buses of 2 passengers, recorded from 20 tasks at once, each of them twice.
    let buses: Vec<LedgerEntry> = (0..20)
        .map(|i| {
            entry(
                trip,
                &format!("b{i}"),
                BusOutcome::Ridden,
                &[(arrived.clone(), 2), (dropped.clone(), 2)],
            )
        })
        .collect();
    let records = buses.iter().chain(&buses).map(|bus| ledger.record(bus));
    let recorded = futures::future::join_all(records).await;
    let new = recorded
        .iter()
        .filter(|r| matches!(r, Ok(Recorded::New)))
        .count();
    let again = recorded
        .iter()
        .filter(|r| matches!(r, Ok(Recorded::AlreadyRecorded)))
        .count();
    assert_eq!((new, again), (20, 20), "{recorded:?}");

    let totals = ledger.totals(trip).await.expect("read").expect("trip");
    assert_eq!(totals.counters[&arrived], 40);
    assert_eq!(totals.counters[&dropped], 40);
    assert_eq!(totals.progress().state, TripState::Completed);
    assert_eq!(ledger.entries(trip).await.expect("entries").len(), 21);

    let claim = Completion {
        state: TripState::Completed,
        dead_lettered: 0,
        replayed: 0,
        by: "load/b7".into(),
        at_ms: 1_764_633_601_000,
        announced: false,
    };
    let (first, second) = tokio::join!(
        ledger.claim_completion(trip, &claim),
        ledger.claim_completion(trip, &claim)
    );
    assert_eq!(
        [first.expect("claim"), second.expect("claim")]
            .iter()
            .filter(|won| **won)
            .count(),
        1
    );
    ledger
        .mark_announced(trip, &claim)
        .await
        .expect("announced");
    let totals = ledger.totals(trip).await.expect("read").expect("trip");
    assert_eq!(
        totals.completion,
        Some(Completion {
            announced: true,
            ..claim.clone()
        })
    );
    // A replay completes the trip again, once; an older claim is no longer marked.
    let replayed = Completion {
        replayed: 1,
        ..claim.clone()
    };
    assert!(!ledger.claim_completion(trip, &claim).await.expect("again"));
    assert!(
        ledger
            .claim_completion(trip, &replayed)
            .await
            .expect("replay")
    );
    assert!(
        !ledger
            .claim_completion(trip, &replayed)
            .await
            .expect("twice")
    );
    // A claim whose announcement failed is released, and claimed again; an older one is not.
    ledger.release_claim(trip, &claim).await.expect("older");
    assert!(
        !ledger
            .claim_completion(trip, &replayed)
            .await
            .expect("still claimed")
    );
    ledger
        .release_claim(trip, &replayed)
        .await
        .expect("released");
    assert!(
        ledger
            .claim_completion(trip, &replayed)
            .await
            .expect("claimed again")
    );
    ledger.mark_announced(trip, &claim).await.expect("older");
    let last = ledger
        .totals(trip)
        .await
        .expect("read")
        .and_then(|t| t.completion);
    assert_eq!(last, Some(replayed.clone()), "an older claim marks nothing");
    ledger
        .mark_announced(trip, &replayed)
        .await
        .expect("announced");
    let last = ledger
        .totals(trip)
        .await
        .expect("read")
        .and_then(|t| t.completion);
    assert!(last.is_some_and(|c| c.announced && c.replayed == 1));
    let recent = ledger.recent_trips(10).await.expect("recent");
    assert!(recent.iter().any(|t| t.trip == trip), "{recent:?}");
}

#[tokio::test]
async fn a_redriven_bus_replaces_its_dead_letter_in_the_table() {
    let ledger = fresh_ledger().await;
    let dead_counter = counter::stop("load", "dead_lettered");
    let dead = entry(
        "t",
        "b",
        BusOutcome::DeadLettered,
        &[(counter::arrived("load"), 3), (dead_counter.clone(), 3)],
    );
    assert_eq!(ledger.record(&dead).await.expect("dead"), Recorded::New);
    let ridden = entry(
        "t",
        "b",
        BusOutcome::Ridden,
        &[(counter::arrived("load"), 3), (counter::sent("next"), 3)],
    );
    assert_eq!(
        ledger.record(&ridden).await.expect("redrive"),
        Recorded::Replaced
    );
    assert_eq!(
        ledger.record(&ridden).await.expect("again"),
        Recorded::AlreadyRecorded
    );
    assert_eq!(
        ledger.record(&dead).await.expect("late dead letter"),
        Recorded::AlreadyRecorded
    );
    let totals = ledger.totals("t").await.expect("read").expect("trip");
    let nonzero: BTreeMap<&str, i64> = totals
        .counters
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        nonzero,
        BTreeMap::from([("arrived:load", 3), ("sent:next", 3)])
    );
    let entries = ledger.entries("t").await.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, BusOutcome::Ridden);
}

#[tokio::test]
async fn a_buses_records_are_its_own_its_departures_and_its_dead_letters_only() {
    let ledger = fresh_ledger().await;
    assert_eq!(
        buses_records(&ledger).await,
        ["b", "b~dead~0", "b~departure~0", "b~departure~0~left"]
    );
    let memory = MemoryLedger::default();
    assert_eq!(
        buses_records(&memory).await,
        ["b", "b~dead~0", "b~departure~0", "b~departure~0~left"]
    );
}

/// Records bus `b`, its departure, dead letter and two buses whose ids start with `b`; returns
/// the ids of what `bus_entries` says are `b`'s.
async fn buses_records(ledger: &dyn Ledger) -> Vec<String> {
    let departure = departure_bus("b", 0);
    let ids = [
        "b".to_owned(),
        "b/again".to_owned(),
        "b2".to_owned(),
        departure_left(&departure),
        departure,
        dead_letter_bus("b", 0),
    ];
    for id in &ids {
        // A departure's record that it left counts nothing: a put without the totals.
        let sent = [(counter::sent("next"), 1)];
        let counters = if id.ends_with("~left") {
            &[][..]
        } else {
            &sent[..]
        };
        let record = entry("t", id, BusOutcome::Ridden, counters);
        assert_eq!(ledger.record(&record).await.expect("record"), Recorded::New);
        assert_eq!(
            ledger.record(&record).await.expect("again"),
            Recorded::AlreadyRecorded
        );
    }
    let totals = ledger.totals("t").await.expect("read").expect("trip");
    assert_eq!(totals.counters.get("sent:next"), Some(&5));
    let mut other_stop = entry("t", "b", BusOutcome::Ridden, &[]);
    other_stop.stop = "extract".into();
    ledger.record(&other_stop).await.expect("record");
    ledger
        .bus_entries("t", "load", "b")
        .await
        .expect("bus entries")
        .into_iter()
        .map(|e| e.bus)
        .collect()
}

#[tokio::test]
async fn the_completion_event_reaches_a_rules_queue() {
    let cloud = cloud("ministack").await;
    let queue = cloud
        .clients
        .sqs
        .create_queue()
        .queue_name(unique("completed"))
        .send()
        .await
        .expect("queue");
    let queue_url = queue.queue_url().expect("url").to_owned();
    let arn = cloud
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("arn");
    let events = aws_sdk_eventbridge::Client::new(&cloud.config);
    let rule = unique("trip-completed");
    events
        .put_rule()
        .name(&rule)
        .event_pattern(r#"{"source": ["busline"], "detail-type": ["busline Trip Completed"]}"#)
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");

    let manifest = Manifest {
        trip: unique("trip"),
        route: "colors".into(),
        state: TripState::CompletedWithFailures,
        started_at: "2026-12-02T00:00:00.000Z".into(),
        completed_at: "2026-12-02T00:00:05.000Z".into(),
        completed_by: "load/b1".into(),
        stops: BTreeMap::new(),
        rejected: 2,
        dead_lettered: 1,
        replayed: 0,
        in_doubt: 0,
        bucket: "data".into(),
        key: "output/trip=x/_SUCCESS".into(),
        objects: Vec::new(),
    };
    EventBridgeEvents::new(events, "default")
        .trip_completed(&manifest)
        .await
        .expect("put");
    let received = cloud
        .clients
        .sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .expect("receive");
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let event: Value = serde_json::from_str(messages[0].body().expect("body")).expect("event JSON");
    assert_eq!(event["source"], "busline");
    assert_eq!(event["detail-type"], "busline Trip Completed");
    assert_eq!(event["detail"]["trip"], manifest.trip.as_str());
    assert_eq!(event["detail"]["state"], "completed_with_failures");
    assert_eq!(event["detail"]["object_count"], 0);
    assert_eq!(event["detail"]["dead_lettered"], 1);
}
