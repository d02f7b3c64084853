//! The forwarder against a queue that fails some SendMessageBatch entries.

use busline_tests::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

fn flaky(h: &Harness, plan: Vec<(&str, u32, bool)>) -> Arc<FlakyQueues> {
    Arc::new(FlakyQueues {
        inner: h.queues.clone(),
        plan: Mutex::new(
            plan.into_iter()
                .map(|(n, l, s)| (n.to_owned(), l, s))
                .collect(),
        ),
        calls: Mutex::new(Vec::new()),
    })
}

#[tokio::test]
async fn a_partial_batch_failure_is_retried_entry_by_entry() {
    let h = Harness::new();
    for i in 0..3 {
        send(
            h.queue("in"),
            &bus_body(&format!("b{i}"), &[json!({"n": i})]),
        );
    }
    // The bus carrying b1's passenger (its origin names "b1-") fails twice with a server error, then goes through.
    let queues = flaky(&h, vec![("\"b1-\"", 2, false)]);
    let processor = h
        .processor(Arc::new(ScriptedStop), &[], queues.clone())
        .await;
    let (event, _) = h.receive(10);
    let response = processor
        .process(event, &busline_core::Invocation::default())
        .await
        .expect("ok");
    assert!(response.retry.is_empty());
    // One pooled call with all three buses, then two retries carrying only the failed entry.
    assert_eq!(*queues.calls.lock().expect("lock"), [3, 1, 1]);
    let delivered = h.queue("next").drain();
    assert_eq!(delivered.len(), 3, "each bus delivered exactly once");
}

#[tokio::test]
async fn a_failure_that_remains_is_mapped_back_to_the_message_that_produced_it() {
    let h = Harness::new();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            send(
                h.queue("in"),
                &bus_body(&format!("b{i}"), &[json!({"n": i})]),
            )
        })
        .collect();
    // b2's bus is refused for good (sender fault); b0's keeps failing past every retry.
    let queues = flaky(&h, vec![("\"b2-\"", 1, true), ("\"b0-\"", 100, false)]);
    let processor = h
        .processor(Arc::new(ScriptedStop), &[], queues.clone())
        .await;
    let (event, _) = h.receive(10);
    let response = processor
        .process(event, &busline_core::Invocation::default())
        .await
        .expect("b1 succeeded");
    // b0 is retryable and not on its last receive: reported for SQS to retry.
    assert_eq!(failure_ids(&response), HashSet::from([ids[0].clone()]));
    // b2 is permanent: dead-lettered with the queue's reason, and acknowledged.
    let dead = h.queue("dlq").drain();
    assert_eq!(dead.len(), 1);
    let reason = busline_embedded::queue::attribute(&dead[0].message_attributes, "busline.reason")
        .expect("reason");
    assert_eq!(
        reason,
        "forwarding failed: next: injected (InvalidParameterValue)"
    );
    assert!(dead[0].body.contains("\"bus\":\"b2\""));
    assert_eq!(h.queue("next").drain().len(), 1, "only b1's bus arrived");
}
