//! The depot: the first stop of a route. A schedule, an API call or a direct invoke asks it to
//! start a trip; it hands out tickets (units of source work) to the next stop.

use crate::delivery::Invocation;
use crate::error::StopError;
use crate::forwarder::Forwarder;
use crate::id::{trip_id, validate_trip_id};
use crate::ledger::depot_entry;
use crate::metrics::{InvocationMetrics, StopCounts};
use crate::outbox::Outbox;
use crate::runtime::StopRuntime;
use crate::stop::StopContext;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

/// What starts a trip: the body of the API call or direct invoke (empty for a schedule).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TripRequest {
    /// Reuse this trip id (a replay writes the same output keys); a new id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip_id: Option<String>,
    /// Everything else in the request, for the depot to read (e.g. `input_prefix`).
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

// By hand, not `#[serde(flatten)]`: flattening buffers the options, and buffered numbers lose
// serde_json's exact digits (`arbitrary_precision`).
impl<'de> Deserialize<'de> for TripRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut options = Map::deserialize(deserializer)?;
        let trip_id = match options.remove("trip_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id),
            Some(other) => {
                return Err(serde::de::Error::custom(format!(
                    "trip_id must be a string, not {other}"
                )));
            }
        };
        Ok(TripRequest { trip_id, options })
    }
}

/// The answer to a trip request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripStarted {
    /// The trip's id.
    pub trip_id: String,
    /// Tickets handed out to the next stop.
    pub tickets: u64,
}

/// Why a trip could not start.
#[derive(Debug, Error)]
pub enum TripError {
    /// The request is unusable (nothing was sent); the text says what to change.
    #[error("bad trip request: {0}")]
    BadRequest(String),
    /// Reading the source or sending the tickets failed.
    #[error(transparent)]
    Stop(#[from] StopError),
}

/// What a depot kind implements: hand out the tickets of one trip.
///
/// Board one passenger per ticket ([`Outbox::board`], after [`Outbox::pick_up`]); call
/// [`Outbox::depart`] after each to give every ticket its own bus, so the next stop's
/// invocations run side by side. Read the request's options for the depot's own parameters
/// and refuse what it does not know with [`TripError::BadRequest`].
#[async_trait]
pub trait Depot: Send + Sync {
    /// Hands out the tickets of the trip in `ctx`.
    async fn hand_out(
        &self,
        ctx: &StopContext<'_>,
        request: &TripRequest,
        outbox: &mut Outbox,
    ) -> Result<(), TripError>;
}

/// What starts a trip: the [`TripStarter`] in this process, or a depot function reached
/// elsewhere (the local driver's Lambda Invoke client).
#[async_trait]
pub trait TripHandler: Send + Sync {
    /// Starts a trip for `request`.
    async fn handle_trip(
        &self,
        request: TripRequest,
        invocation: &Invocation,
    ) -> Result<TripStarted, TripError>;
}

#[async_trait]
impl TripHandler for TripStarter {
    async fn handle_trip(
        &self,
        request: TripRequest,
        invocation: &Invocation,
    ) -> Result<TripStarted, TripError> {
        self.start_trip(request, invocation).await
    }
}

/// Runs a [`Depot`]: picks the trip id, keeps the counts and metrics, sends the tickets.
pub struct TripStarter {
    depot: Arc<dyn Depot>,
    runtime: StopRuntime,
    forwarder: Forwarder,
}

impl TripStarter {
    /// A starter running `depot` with `runtime` (the registry builds it).
    pub(crate) fn new(depot: Arc<dyn Depot>, runtime: StopRuntime) -> Self {
        let forwarder = Forwarder::new(runtime.ports.queues.clone(), runtime.ports.retry);
        TripStarter {
            depot,
            runtime,
            forwarder,
        }
    }

    /// Starts a trip: a new id unless the request names one, then the depot's tickets.
    pub async fn start_trip(
        &self,
        request: TripRequest,
        invocation: &Invocation,
    ) -> Result<TripStarted, TripError> {
        let started = Instant::now();
        let config = &self.runtime.config;
        let trip = match &request.trip_id {
            Some(trip) => {
                validate_trip_id(trip).map_err(TripError::BadRequest)?;
                trip.clone()
            }
            None => trip_id(chrono::Utc::now(), &invocation.request_id),
        };
        let mut outbox = Outbox::new(
            config,
            &trip,
            &config.stop,
            1,
            0,
            self.forwarder.clone(),
            self.runtime.ports.objects.clone(),
        );
        let ctx = StopContext {
            trip: &trip,
            bus: &config.stop,
            message_id: "",
            request_id: &invocation.request_id,
            deadline: invocation.deadline,
            config,
            objects: self.runtime.ports.objects.as_ref(),
        };
        self.depot.hand_out(&ctx, &request, &mut outbox).await?;
        let counts = outbox.close().await?;
        if let Some(book) = &self.runtime.ports.trips {
            let entry = depot_entry(config, &trip, &counts);
            let objects = self.runtime.ports.objects.as_ref();
            for recorded in book.record(&[entry], &config.route, objects).await {
                recorded.map_err(StopError::from)?;
            }
        }
        let tickets = counts.forwarded;
        tracing::info!(trip, tickets, "trip started");
        self.runtime
            .ports
            .metrics
            .record(&InvocationMetrics {
                stop: config.stop.clone(),
                route: config.route.clone(),
                counts: StopCounts::from(counts),
                duration: started.elapsed(),
                oldest_message_age: None,
            })
            .await;
        Ok(TripStarted {
            trip_id: trip,
            tickets,
        })
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn a_trip_request_keeps_its_options_digits_and_names_a_bad_trip_id() {
        let request: TripRequest =
            serde_json::from_str(r#"{"trip_id":"t1","limit":123456789012345678901234567890}"#)
                .expect("valid");
        assert_eq!(request.trip_id.as_deref(), Some("t1"));
        assert_eq!(
            serde_json::to_string(&request).expect("json"),
            r#"{"trip_id":"t1","limit":123456789012345678901234567890}"#
        );
        let err = serde_json::from_str::<TripRequest>(r#"{"trip_id":7}"#).expect_err("bad");
        assert_eq!(err.to_string(), "trip_id must be a string, not 7");
        assert_eq!(
            serde_json::from_str::<TripRequest>("{}").expect("empty"),
            TripRequest::default()
        );
    }
}
