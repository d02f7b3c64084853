//! The batch processor on its own, over embedded queues: isolation, dead-lettering, claim checks,
//! and the trip ledger it keeps (`ledger.rs`).

mod ledger;

use busline_core::processor::dead_letter_attributes as attr;
use busline_embedded::queue::attribute;
use busline_tests::*;
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn a_malformed_bus_and_a_panicking_bus_fail_alone() {
    let h = Harness::new();
    let good_1 = send(
        h.queue("in"),
        &bus_body("b1", &[json!({"n": 1}), json!({"n": 2})]),
    );
    let malformed = send(h.queue("in"), "{\"v\":1,\"bus\":");
    let panics = send(
        h.queue("in"),
        &bus_body("b3", &[json!({"n": 3}), json!({"panic": true})]),
    );
    let good_2 = send(h.queue("in"), &bus_body("b4", &[json!({"n": 4})]));
    let processor = h.scripted(&[]).await;

    let (event, _) = h.receive(10);
    assert_eq!(
        message_ids(&event),
        [
            good_1.clone(),
            malformed.clone(),
            panics.clone(),
            good_2.clone()
        ]
    );
    let response = processor
        .process(event, &busline_core::Invocation::default())
        .await
        .expect("partial failure is not a function error");

    // A panic may not happen again: retried. A malformed bus never reads: dead-lettered at once.
    assert_eq!(failure_ids(&response), HashSet::from([panics]));
    let dead = h.queue("dlq").drain();
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::MESSAGE_ID),
        Some(malformed.as_str())
    );
    // The partners' passengers were forwarded, all pooled in one bus per partner.
    let forwarded = h.queue("next").drain();
    let mut ids: Vec<String> = forwarded
        .iter()
        .flat_map(|m| {
            let envelope: busline_core::Envelope<busline_core::Passenger> =
                busline_core::envelope::decode_envelope(&m.body).expect("bus");
            envelope.passengers.into_iter().map(|p| p.id().to_owned())
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["b1-0", "b1-1", "b4-0"]);
    let metrics = h.metrics.0.lock().expect("lock");
    let counts = metrics[0].counts.clone();
    assert_eq!(
        (
            counts.buses_in,
            counts.buses_failed,
            counts.passengers_in,
            counts.forwarded,
            counts.passengers_failed
        ),
        (4, 2, 5, 3, 2)
    );
    assert!(counts.adds_up());
}

#[tokio::test]
async fn every_message_failing_is_a_function_error() {
    let h = Harness::new();
    for bus in ["b1", "b2"] {
        send(
            h.queue("in"),
            &bus_body(bus, &[json!({"fail": "retryable"})]),
        );
    }
    let processor = h.scripted(&[]).await;
    let (event, _) = h.receive(10);
    let err = processor
        .process(event, &busline_core::Invocation::default())
        .await
        .expect_err("all failed");
    assert_eq!(err.count, 2);
    assert_eq!(err.class, busline_core::ErrorClass::Retryable);
    assert_eq!(err.first_reason, "b1-0 hit a throttle");
}

/// Bodies that can never be read, each with the reason it is dead-lettered with.
fn unreadable_bodies() -> Vec<(&'static str, String, &'static str)> {
    let envelope = |v: u32, hop: u32| {
        json!({"v": v, "bus": "x", "trip": "t1", "route": "test", "from": "up", "hop": hop,
               "created": "2026-11-22T00:00:00.000Z", "passengers": [{"id": "x-0", "data": {}}]})
        .to_string()
    };
    let pointer = busline_core::envelope::PayloadPointer {
        s3_bucket_name: "bucket".into(),
        s3_key: "claim-check/t1/gone.json".into(),
    };
    vec![
        (
            "not JSON",
            "this is not a bus".to_owned(),
            "bus body is not a valid envelope: expected ident at line 1 column 2",
        ),
        (
            "JSON, not an envelope",
            r#"{"hello": 1}"#.to_owned(),
            "bus body is not a valid envelope: missing field `v` at line 1 column 12",
        ),
        (
            "a null body",
            "null".to_owned(),
            "bus body is not a valid envelope: invalid type: null, expected struct Envelope at line 1 column 4",
        ),
        (
            "an unknown envelope version",
            envelope(99, 1),
            "bus envelope version 99 is not supported (this stop reads versions 1 to 3)",
        ),
        (
            "a hop count at MAX_HOPS",
            envelope(1, 32),
            "bus x has travelled 32 stops, MAX_HOPS is 32: is the route a loop?",
        ),
        (
            "a pointer to an object that does not exist",
            pointer.to_body(),
            "claim check: bucket/claim-check/t1/gone.json: not found",
        ),
    ]
}

#[tokio::test]
async fn a_bus_that_can_never_be_read_is_dead_lettered_at_its_first_receive() {
    for (case, body, reason) in unreadable_bodies() {
        let h = Harness::new();
        let id = send(h.queue("in"), &body);
        let processor = h.scripted(&[]).await;
        let (batch, _) = h.receive(10);
        let outcome = processor
            .process(batch, &busline_core::Invocation::default())
            .await
            .unwrap_or_else(|err| panic!("{case}: dead-lettered, not a function error: {err}"));
        assert!(outcome.retry.is_empty(), "{case}: acknowledged");
        let dead = h.queue("dlq").drain();
        assert_eq!(dead.len(), 1, "{case}");
        let attrs = &dead[0].message_attributes;
        assert_eq!(attribute(attrs, attr::REASON), Some(reason), "{case}");
        assert_eq!(attribute(attrs, attr::CLASS), Some("permanent"), "{case}");
        assert_eq!(attribute(attrs, attr::RECEIVE_COUNT), Some("1"), "{case}");
        assert_eq!(
            attribute(attrs, attr::MESSAGE_ID),
            Some(id.as_str()),
            "{case}"
        );
        assert_eq!(*dead[0].body, body, "{case}: kept as it was");
    }
}

#[tokio::test]
async fn unreadable_buses_mixed_with_good_ones_go_alone_and_the_good_ones_ride_on() {
    let h = Harness::new();
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for (i, (_, body, _)) in unreadable_bodies().into_iter().enumerate() {
        good.push(send(
            h.queue("in"),
            &bus_body(&format!("g{i}"), &[json!({"n": i})]),
        ));
        bad.push(send(h.queue("in"), &body));
    }
    let processor = h.scripted(&[]).await;
    // One batch of all of them, as an event source with a batching window delivers.
    let (mut batch, _) = h.receive(10);
    batch.extend(h.receive(10).0);
    assert_eq!(batch.len(), 2 * unreadable_bodies().len());
    let outcome = processor
        .process(batch, &busline_core::Invocation::default())
        .await
        .expect("not a function error");
    assert!(outcome.retry.is_empty(), "{outcome:?}");
    let mut dead: Vec<String> = h
        .queue("dlq")
        .drain()
        .iter()
        .filter_map(|m| attribute(&m.message_attributes, attr::MESSAGE_ID).map(str::to_owned))
        .collect();
    dead.sort();
    bad.sort();
    assert_eq!(dead, bad, "exactly the bad ones, at their first receive");
    let forwarded: usize = h
        .queue("next")
        .drain()
        .iter()
        .map(|m| {
            busline_core::envelope::decode_envelope::<busline_core::Passenger>(&m.body)
                .expect("bus")
                .passengers
                .len()
        })
        .sum();
    assert_eq!(forwarded, good.len());
}

#[tokio::test]
async fn a_message_with_no_body_is_dead_lettered_with_the_reason() {
    let h = Harness::new();
    let processor = h.scripted(&[]).await;
    let batch = vec![busline_core::Delivery {
        id: "no-body".into(),
        receipt_handle: String::new(),
        body: Default::default(),
        receive_count: 1,
        sent_at: None,
        attributes: Vec::new(),
    }];
    let outcome = processor
        .process(batch, &busline_core::Invocation::default())
        .await
        .expect("dead-lettered");
    assert!(outcome.retry.is_empty());
    let dead = h.queue("dlq").drain();
    assert_eq!(*dead[0].body, "(no body)");
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::REASON),
        Some("SQS message has no body")
    );
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_with_reason_attributes() {
    let h = Harness::new();
    let poison = send(
        h.queue("in"),
        &bus_body("b1", &[json!({"n": 1}), json!({"fail": "permanent"})]),
    );
    let fine = send(h.queue("in"), &bus_body("b2", &[json!({"n": 2})]));
    let processor = h.scripted(&[]).await;
    let (event, _) = h.receive(10);
    let response = processor
        .process(event, &busline_core::Invocation::default())
        .await
        .expect("ok");
    assert!(
        response.retry.is_empty(),
        "dead-lettered buses are acknowledged"
    );

    let dead = h.queue("dlq").drain();
    assert_eq!(dead.len(), 1);
    let attrs = &dead[0].message_attributes;
    assert_eq!(attribute(attrs, attr::REASON), Some("b1-1 is poison"));
    assert_eq!(attribute(attrs, attr::CLASS), Some("permanent"));
    assert_eq!(attribute(attrs, attr::STOP), Some("scripted"));
    assert_eq!(attribute(attrs, attr::TRIP), Some("t1"));
    assert_eq!(attribute(attrs, attr::RECEIVE_COUNT), Some("1"));
    assert_eq!(attribute(attrs, attr::MESSAGE_ID), Some(poison.as_str()));
    assert!(dead[0].body.contains("\"bus\":\"b1\""));
    assert_eq!(h.queue("next").drain().len(), 1, "bus {fine} still rode on");
}

#[tokio::test]
async fn a_retryable_failure_is_retried_then_dead_lettered_on_its_last_receive() {
    let h = Harness::new();
    let flaky = send(
        h.queue("in"),
        &bus_body("b1", &[json!({"fail": "retryable"})]),
    );
    send(h.queue("in"), &bus_body("b2", &[json!({"n": 1})]));
    let processor = h.scripted(&[]).await;
    for receive in 1..=3 {
        let (event, messages) = h.receive(10);
        let failed = match processor
            .process(event, &busline_core::Invocation::default())
            .await
        {
            Ok(response) => failure_ids(&response),
            Err(err) => {
                // Alone in its batch, the flaky bus fails the whole invocation, as Lambda expects.
                assert_eq!((receive, err.count), (2, 1));
                messages.iter().map(|m| m.message_id.clone()).collect()
            }
        };
        for message in &messages {
            if !failed.contains(&message.message_id) {
                h.queue("in").delete(&message.receipt_handle);
            }
        }
        if receive < 3 {
            assert_eq!(failed, HashSet::from([flaky.clone()]), "receive {receive}");
            assert!(h.queue("dlq").drain().is_empty());
            h.clock.advance(std::time::Duration::from_secs(31));
        } else {
            assert!(
                failed.is_empty(),
                "on the last receive the stop dead-letters it and acknowledges"
            );
        }
    }
    let dead = h.queue("dlq").drain();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::REASON),
        Some("b1-0 hit a throttle")
    );
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::RECEIVE_COUNT),
        Some("3")
    );
    assert_eq!(h.queue("in").depth(), (0, 0));
}

#[tokio::test]
async fn rejected_passengers_go_to_quarantine_and_the_rest_ride_on() {
    let h = Harness::new();
    send(
        h.queue("in"),
        &bus_body(
            "b1",
            &[
                json!({"n": 1}),
                json!({"reject": true}),
                json!({"drop": true}),
            ],
        ),
    );
    let processor = h.scripted(&[]).await;
    h.process_all_ok(&processor, 10).await;
    let quarantine = h.quarantined().await;
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].stop, "scripted");
    assert_eq!(quarantine[0].rejection.id, "b1-1");
    assert_eq!(
        quarantine[0].rejection.reason,
        "passenger b1-1: scripted rejection"
    );
    assert_eq!(h.queue("next").drain().len(), 1);
    let counts = h.metrics.0.lock().expect("lock")[0].counts.clone();
    assert_eq!(
        (counts.forwarded, counts.rejected, counts.dropped_off),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_passenger_over_the_budget_rides_as_a_claim_check_and_is_read_back() {
    let h = Harness::new();
    let big = "x".repeat(5000);
    send(
        h.queue("in"),
        &bus_body("b1", &[json!({"small": 1}), json!({"big": big})]),
    );
    let processor = h.scripted(&[("BUS_BYTE_BUDGET", "2048")]).await;
    h.process_all_ok(&processor, 10).await;

    let forwarded = h.queue("next").drain();
    assert_eq!(forwarded.len(), 2);
    let pointer = forwarded
        .iter()
        .find(|m| {
            m.body
                .starts_with("[\"software.amazon.payloadoffloading.PayloadS3Pointer\"")
        })
        .expect("a claim check");
    assert!(pointer.body.len() < 200);
    let size: usize = attribute(&pointer.message_attributes, "ExtendedPayloadSize")
        .expect("size")
        .parse()
        .expect("number");
    assert!(size > 5000);

    // The next stop reads the parked bus back transparently.
    h.queue("in")
        .send(&busline_core::ports::OutgoingMessage {
            body: pointer.body.to_string(),
            attributes: vec![],
        })
        .expect("send");
    h.process_all_ok(&processor, 1).await;
    let again = h.queue("next").drain();
    let parked_again = again.iter().any(|m| m.body.contains("PayloadS3Pointer"));
    assert!(
        parked_again,
        "the big passenger is parked again for the next hop"
    );
}

#[tokio::test]
async fn a_bus_that_has_travelled_too_far_is_dead_lettered_as_a_loop() {
    let h = Harness::new();
    let body = bus_body("b1", &[json!({"n": 1})]).replace("\"hop\":1", "\"hop\":32");
    send(h.queue("in"), &body);
    let processor = h.scripted(&[]).await;
    h.process_all_ok(&processor, 1).await;
    let dead = h.queue("dlq").drain();
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::REASON),
        Some("bus b1 has travelled 32 stops, MAX_HOPS is 32: is the route a loop?")
    );
}

#[tokio::test]
async fn a_body_over_the_sqs_limit_is_dead_lettered_at_once_through_a_claim_check() {
    let h = Harness::new();
    let good = send(h.queue("in"), &bus_body("g1", &[json!({"n": 1})]));
    let (mut batch, _) = h.receive(10);
    // Only a producer that went around SQS's limit could deliver it; it cannot be sent again.
    let oversized = "x".repeat(busline_core::ports::SQS_MAX_BYTES + 1);
    batch.push(busline_core::Delivery {
        id: "oversized".into(),
        receipt_handle: String::new(),
        body: oversized.clone().into(),
        receive_count: 1,
        sent_at: None,
        attributes: Vec::new(),
    });
    let outcome = processor_outcome(&h, batch).await;
    assert!(outcome.retry.is_empty(), "both acknowledged: {outcome:?}");
    let dead = h.queue("dlq").drain();
    assert_eq!(dead.len(), 1);
    let attrs = &dead[0].message_attributes;
    assert_eq!(attribute(attrs, attr::MESSAGE_ID), Some("oversized"));
    assert_eq!(
        attribute(attrs, attr::REASON),
        Some("bus body is not a valid envelope: expected value at line 1 column 1")
    );
    assert_eq!(attribute(attrs, attr::RECEIVE_COUNT), Some("1"));
    let pointer = busline_core::envelope::PayloadPointer::from_body(&dead[0].body)
        .expect("a claim check")
        .expect("readable");
    let mut parked = String::new();
    use tokio::io::AsyncReadExt;
    busline_core::ports::ObjectStore::get(h.store.as_ref(), &pointer.s3_key)
        .await
        .expect("parked")
        .read_to_string(&mut parked)
        .await
        .expect("read");
    assert_eq!(parked, oversized, "the body is kept whole");
    assert_eq!(h.queue("next").drain().len(), 1, "bus {good} rode on");
}

async fn processor_outcome(
    h: &Harness,
    batch: Vec<busline_core::Delivery>,
) -> busline_core::BatchOutcome {
    h.scripted(&[])
        .await
        .process(batch, &busline_core::Invocation::default())
        .await
        .expect("not a function error")
}
