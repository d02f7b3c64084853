//! Deadlines and backoff at the batch processor: unstarted buses are handed back at once, and a
//! retryable failure waits a backoff that grows with the bus's receive count.

use busline_core::{Deadline, Invocation};
use busline_tests::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_retryable_failure_backs_off_by_receive_count() {
    let h = Harness::with_max_receive_count(6);
    let flaky = send(
        h.queue("in"),
        &bus_body("b1", &[json!({"fail": "retryable"})]),
    );
    let processor = h
        .scripted(&[("QUEUE_URL", "in"), ("MAX_RECEIVE_COUNT", "6")])
        .await;
    let mut delays = Vec::new();
    for receive in 1..=5u32 {
        let (event, _) = h.receive(10);
        assert_eq!(message_ids(&event), std::slice::from_ref(&flaky));
        assert_eq!(event[0].receive_count, receive);
        let err = processor
            .process(event, &Invocation::default())
            .await
            .expect_err("alone in its batch, the failure is the invocation's");
        assert_eq!(err.count, 1);
        let visible_at = h.queue("in").next_visible_at().expect("hidden");
        let delay = visible_at - busline_embedded::Clock::now(h.clock.as_ref());
        delays.push(delay.as_secs());
        h.clock.advance_to(visible_at);
    }
    println!("visibility set for receive counts 1..5: {delays:?} s");
    // 2 s doubled per receive, the upper half jitter.
    for (receive, (delay, full)) in delays.iter().zip([2u64, 4, 8, 16, 32]).enumerate() {
        assert!(
            (full / 2..=full).contains(delay),
            "receive {}: {delay} s, expected {}..={full} s",
            receive + 1,
            full / 2
        );
    }
    assert!(h.queue("dlq").drain().is_empty());
}

#[tokio::test]
async fn backoff_stops_at_the_cap() {
    let h = Harness::with_max_receive_count(10);
    send(
        h.queue("in"),
        &bus_body("b1", &[json!({"fail": "retryable"})]),
    );
    let processor = h
        .scripted(&[
            ("QUEUE_URL", "in"),
            ("MAX_RECEIVE_COUNT", "10"),
            ("RETRY_BACKOFF_BASE_SECONDS", "10"),
            ("RETRY_BACKOFF_CAP_SECONDS", "30"),
        ])
        .await;
    for _ in 0..4 {
        let (event, _) = h.receive(10);
        let receive = event[0].receive_count;
        processor
            .process(event, &Invocation::default())
            .await
            .expect_err("fails");
        let visible_at = h.queue("in").next_visible_at().expect("hidden");
        let delay = (visible_at - busline_embedded::Clock::now(h.clock.as_ref())).as_secs();
        let full = (10u64 << (receive - 1)).min(30);
        assert!(
            (full / 2..=full).contains(&delay),
            "receive {receive}: {delay} s"
        );
        h.clock.advance_to(visible_at);
    }
}

#[tokio::test]
async fn buses_not_started_before_the_deadline_margin_are_handed_back_at_once() {
    let h = Harness::new();
    let ids: Vec<String> = (0..5)
        .map(|n| {
            send(
                h.queue("in"),
                &bus_body(&format!("b{n}"), &[json!({"n": n})]),
            )
        })
        .collect();
    let processor = h
        .scripted(&[
            ("QUEUE_URL", "in"),
            ("BATCH_CONCURRENCY", "1"),
            ("DEADLINE_MARGIN_MS", "5000"),
        ])
        .await;
    let (event, _) = h.receive(10);
    let invocation = Invocation {
        request_id: "r1".into(),
        deadline: Some(Deadline::after(Duration::from_secs(2))),
    };
    let outcome = processor
        .process(event, &invocation)
        .await
        .expect("handing back is not a function error");
    // The first bus started with the invocation; the others were never started.
    assert_eq!(outcome.retry, ids[1..]);
    assert_eq!(
        h.queue("in").depth(),
        (4, 1),
        "handed back: visible again at once; the first awaits its delete by the host"
    );
    assert_eq!(h.queue("next").drain().len(), 1);
    let metrics = h.metrics.0.lock().expect("lock");
    let counts = &metrics[0].counts;
    assert_eq!(
        (
            counts.buses_in,
            counts.buses_handed_back,
            counts.buses_failed,
            counts.forwarded
        ),
        (1, 4, 0, 1)
    );
    assert!(counts.adds_up());
    assert!(h.queue("dlq").drain().is_empty());
}
