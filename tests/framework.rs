//! The framework's seams as a user's stop meets them: the registry and its init context, the
//! per-passenger form, the counting rule, cause chains into the dead-letter queue, and the
//! class as the Lambda `errorType`.

use async_trait::async_trait;
use busline_core::processor::dead_letter_attributes as attr;
use busline_core::{
    Extensions, InitError, Invocation, Outbox, Passenger, PassengerStop, Registry, Stop,
    StopContext, StopError, StopKind, Verdict,
};
use busline_embedded::queue::attribute;
use busline_tests::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn settings(extra: &[(&str, &str)]) -> Arc<HashMap<String, String>> {
    let mut vars = Harness::vars(&[("STOP_NAME", "custom")]);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Arc::new(vars)
}

fn error_text(err: &InitError) -> String {
    busline_core::error::chain(err)
}

/// A stop whose factory opens a connection to `ENRICH_ADDR` at init, as a stop that builds its
/// own client would, and keeps it.
struct Connected {
    _peer: tokio::net::TcpStream,
}

#[async_trait]
impl PassengerStop for Connected {
    async fn ride(
        &self,
        _ctx: &StopContext<'_>,
        _passenger: &mut Passenger,
    ) -> Result<Verdict, StopError> {
        Ok(Verdict::Board)
    }
}

fn connected_kind() -> StopKind {
    StopKind::each_passenger("connected", |init| {
        let addr = init.required("ENRICH_ADDR");
        async move {
            let addr = addr?;
            let peer = tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|err| InitError::resource(format!("tcp://{addr}"), err))?;
            Ok(Connected { _peer: peer })
        }
    })
}

#[tokio::test]
async fn init_builds_an_async_client_or_fails_naming_the_resource() {
    let h = Harness::new();
    let ports = h.ports(Arc::new(h.queues.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let open = listener.local_addr().expect("addr").to_string();
    let built = connected_kind()
        .build(
            settings(&[("ENRICH_ADDR", &open)]),
            ports.clone(),
            Extensions::default(),
        )
        .await;
    assert!(built.is_ok(), "a reachable resource builds");

    drop(listener);
    let err = connected_kind()
        .build(
            settings(&[("ENRICH_ADDR", &open)]),
            ports.clone(),
            Extensions::default(),
        )
        .await
        .err()
        .expect("a closed port fails init");
    assert!(
        matches!(&err, InitError::Resource { resource, .. } if *resource == format!("tcp://{open}"))
    );
    assert!(
        error_text(&err).starts_with(&format!("tcp://{open}: Connection refused")),
        "{}",
        error_text(&err)
    );

    let err = connected_kind()
        .build(settings(&[]), ports, Extensions::default())
        .await
        .err()
        .expect("no address");
    assert_eq!(
        error_text(&err),
        "environment variable ENRICH_ADDR is required but not set"
    );
}

#[derive(Debug, PartialEq)]
struct ApiKey(String);

#[tokio::test]
async fn a_stop_takes_what_the_host_offers_by_type_and_names_what_is_missing() {
    let h = Harness::new();
    let kind = StopKind::each_passenger("keyed", |init| {
        let key = init.require::<ApiKey>().map(|key| key.0.clone());
        async move {
            key?;
            Ok(Sorter)
        }
    });
    let err = kind
        .build(
            settings(&[]),
            h.ports(Arc::new(h.queues.clone())),
            Extensions::default(),
        )
        .await
        .err()
        .expect("the host offers no key");
    assert_eq!(
        error_text(&err),
        "stop kind keyed needs framework::ApiKey, which this host does not provide"
    );
    let mut offered = Extensions::default();
    offered.insert(ApiKey("k".into()));
    assert_eq!(offered.get::<ApiKey>(), Some(&ApiKey("k".into())));
}

#[tokio::test]
async fn the_registry_names_unknown_kinds_and_kinds_in_the_wrong_part() {
    let h = Harness::new();
    let ports = h.ports(Arc::new(h.queues.clone()));
    let registry = busline_builtin::registry();
    assert_eq!(
        registry.names(),
        [
            "depot",
            "dynamodb-sink",
            "extract",
            "http-source",
            "load",
            "postgres-ranges",
            "postgres-sink",
            "postgres-source",
            "tickets",
            "transform"
        ]
    );
    // Known before building, so a host can choose what to wrap (chaos: queue readers only).
    let reads_queue: Vec<bool> = registry
        .names()
        .iter()
        .map(|name| registry.get(name).expect("known").reads_queue())
        .collect();
    assert_eq!(
        reads_queue,
        [
            false, true, true, true, true, false, true, true, false, true
        ]
    );
    let wrapped = wrap_kind("transform", |stop| stop);
    assert!(wrapped.get("transform").expect("known").reads_queue());
    assert!(
        !wrap_kind("depot", |stop| stop)
            .get("depot")
            .expect("known")
            .reads_queue()
    );
    let err = registry
        .build(
            "enrich",
            settings(&[]),
            ports.clone(),
            Extensions::default(),
        )
        .await
        .err()
        .expect("unknown");
    assert_eq!(
        error_text(&err),
        "unknown stop kind \"enrich\"; this build knows depot, dynamodb-sink, extract, http-source, load, postgres-ranges, postgres-sink, postgres-source, tickets, transform"
    );
    let depot = registry
        .build(
            "depot",
            settings(&[("INPUT_PREFIX", "input/")]),
            ports,
            Extensions::default(),
        )
        .await
        .expect("builds");
    let err = depot
        .into_bus("depot")
        .err()
        .expect("a depot reads no queue");
    assert_eq!(
        error_text(&err),
        "stop kind depot is a depot (it starts trips), but here a stop reading a queue is needed"
    );
    // A user's kind of the same name replaces the built-in one: the built-in transform would
    // need TRANSFORM_OPS, the replacement does not.
    let replaced = Registry::new()
        .with(busline_transform::kind())
        .with(StopKind::stop("transform", |_| async {
            Ok::<_, InitError>(DropAll)
        }));
    assert_eq!(replaced.names(), ["transform"]);
    let built = replaced
        .build(
            "transform",
            settings(&[]),
            h.ports(Arc::new(h.queues.clone())),
            Extensions::default(),
        )
        .await;
    assert!(built.is_ok(), "the replacement was built");
}

/// Boards `keep`, drops `skip`, rejects `bad`: a per-passenger stop with no counting of its own.
struct Sorter;

#[async_trait]
impl PassengerStop for Sorter {
    async fn ride(
        &self,
        _ctx: &StopContext<'_>,
        passenger: &mut Passenger,
    ) -> Result<Verdict, StopError> {
        Ok(match passenger.get_str("what") {
            Some("keep") => {
                passenger.insert("seen", true);
                Verdict::Board
            }
            Some("skip") => Verdict::DropOff,
            _ => Verdict::Reject("no `what`".into()),
        })
    }
}

#[tokio::test]
async fn a_per_passenger_stop_gets_its_boarding_and_counts_done_for_it() {
    let h = Harness::new();
    let kind = StopKind::each_passenger("sorter", |_| async { Ok::<_, InitError>(Sorter) });
    let processor = h.bus_stop(&kind, &[]).await;
    send(
        h.queue("in"),
        &bus_body(
            "b1",
            &[
                json!({"what": "keep"}),
                json!({"what": "skip"}),
                json!({"other": 1}),
                json!({"what": "keep"}),
            ],
        ),
    );
    h.process_all_ok(&processor, 10).await;
    let forwarded: Vec<Passenger> = h
        .queue("next")
        .drain()
        .iter()
        .flat_map(|m| {
            busline_core::envelope::decode_envelope::<Passenger>(&m.body)
                .expect("bus")
                .passengers
        })
        .collect();
    assert_eq!(forwarded.len(), 2);
    assert!(
        forwarded
            .iter()
            .all(|p| p.get("seen") == Some(&json!(true)))
    );
    let quarantined = h.quarantined().await;
    assert!(
        quarantined[0]
            .rejection
            .reason
            .contains("passenger b1-2: no `what`")
    );
    let counts = h.metrics.0.lock().expect("lock")[0].counts.clone();
    assert_eq!(
        (
            counts.passengers_in,
            counts.forwarded,
            counts.dropped_off,
            counts.rejected
        ),
        (4, 2, 1, 1)
    );
    assert!(counts.adds_up());
}

/// Boards every passenger but the last, which it forgets.
struct Forgetful;

#[async_trait]
impl Stop for Forgetful {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        mut passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        passengers.pop();
        for passenger in &passengers {
            outbox.board(passenger).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_loses_a_passenger_fails_its_bus_with_the_reason() {
    let h = Harness::new();
    send(
        h.queue("in"),
        &bus_body("b1", &[json!({"n": 1}), json!({"n": 2})]),
    );
    let processor = h
        .processor(
            Arc::new(Forgetful),
            &[("STOP_NAME", "forgetful")],
            Arc::new(h.queues.clone()),
        )
        .await;
    h.process_all_ok(&processor, 10).await;
    assert!(h.queue("next").drain().is_empty(), "nothing of it rides on");
    let dead = h.queue("dlq").drain();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::REASON),
        Some(
            "stop forgetful did not account for every passenger: 2 arrived or were picked up, \
             1 were boarded, continued, dropped off or rejected (a handler must do one of these to each)"
        )
    );
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::CLASS),
        Some("permanent")
    );
    let counts = h.metrics.0.lock().expect("lock")[0].counts.clone();
    assert_eq!((counts.passengers_failed, counts.forwarded), (2, 0));
    assert!(counts.adds_up());
}

/// Picks up `count` passengers per ticket, boarding each, then fails: its full buses have left.
struct FailsLate;

#[async_trait]
impl Stop for FailsLate {
    async fn handle(
        &self,
        _ctx: &StopContext<'_>,
        tickets: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        for ticket in &tickets {
            for i in 0..400 {
                let mut data = serde_json::Map::new();
                data.insert("n".into(), json!(i));
                data.insert("pad".into(), json!("x".repeat(100)));
                outbox.pick_up(1);
                outbox
                    .board(&Passenger::new(format!("{}:{i}", ticket.id()), None, data))
                    .await?;
            }
        }
        Err(StopError::retryable("the source went away"))
    }
}

#[tokio::test]
async fn a_failed_bus_counts_the_buses_it_already_sent() {
    let h = Harness::new();
    send(h.queue("in"), &bus_body("t", &[json!({})]));
    let processor = h
        .processor(
            Arc::new(FailsLate),
            &[("BUS_BYTE_BUDGET", "2048")],
            Arc::new(h.queues.clone()),
        )
        .await;
    let (batch, _) = h.receive(10);
    processor
        .process(batch, &Invocation::default())
        .await
        .expect_err("its only message failed");
    let sent: usize = h
        .queue("next")
        .drain()
        .iter()
        .map(|m| {
            busline_core::envelope::decode_envelope::<Passenger>(&m.body)
                .expect("bus")
                .passengers
                .len()
        })
        .sum();
    assert!(sent > 0 && sent < 400, "full buses left early: {sent}");
    let counts = h.metrics.0.lock().expect("lock")[0].counts.clone();
    assert_eq!(counts.picked_up, 400);
    assert_eq!(counts.forwarded, sent as u64, "what left is counted");
    assert_eq!(counts.passengers_failed, 401 - sent as u64);
    assert!(counts.buses_out > 0);
    assert!(counts.adds_up(), "{counts:?}");
}

/// A cause with a cause of its own, as a user's client error has.
#[derive(Debug, thiserror::Error)]
#[error("enriching passenger {id}")]
struct EnrichFailed {
    id: String,
    #[source]
    source: std::io::Error,
}

struct Enriches;

#[async_trait]
impl PassengerStop for Enriches {
    async fn ride(
        &self,
        _ctx: &StopContext<'_>,
        passenger: &mut Passenger,
    ) -> Result<Verdict, StopError> {
        Err(StopError::retryable(EnrichFailed {
            id: passenger.id().to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset"),
        }))
    }
}

#[tokio::test]
async fn a_user_errors_cause_chain_reaches_the_dead_letter_reason_and_the_error_type() {
    let h = Harness::new();
    send(h.queue("in"), &bus_body("b1", &[json!({"n": 1})]));
    let kind = StopKind::each_passenger("enrich", |_| async { Ok::<_, InitError>(Enriches) });
    let processor = h.bus_stop(&kind, &[]).await;
    for receive in 1..=3 {
        let messages = h.queue("in").receive(10, None).expect("receive");
        let event = lambda_event(&messages);
        let result = busline_lambda::sqs::handle(&processor, event, &Default::default()).await;
        if receive < 3 {
            // Alone in its batch and retryable: a function error whose errorType is the class.
            let err = result.expect_err("a function error");
            let diagnostic = lambda_runtime::Diagnostic::from(err);
            assert_eq!(diagnostic.error_type, "Retryable");
            assert!(
                diagnostic
                    .error_message
                    .ends_with("first failure: enriching passenger b1-0: connection reset"),
                "{}",
                diagnostic.error_message
            );
            h.clock.advance(std::time::Duration::from_secs(30));
        } else {
            let response = result.expect("dead-lettered on its last receive, and acknowledged");
            assert!(response.batch_item_failures.is_empty());
        }
    }
    let dead = h.queue("dlq").drain();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::REASON),
        Some("enriching passenger b1-0: connection reset")
    );
    assert_eq!(
        attribute(&dead[0].message_attributes, attr::CLASS),
        Some("retryable")
    );
}

/// The SQS event Lambda's poller would make of embedded messages.
fn lambda_event(
    messages: &[busline_embedded::ReceivedMessage],
) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.to_string());
            record.attributes = m.attributes.clone().into_iter().collect();
            record
        })
        .collect();
    event
}
