//! The depot: starts a trip. It lists the input objects under a prefix and sends one ticket
//! per object to the extract stop, each on its own bus so extracts run side by side.

use busline_core::config::{Vars, required};
use busline_core::envelope::Passenger;
use busline_core::forwarder::Forwarder;
use busline_core::id::{stable_id, trip_id, validate_trip_id};
use busline_core::metrics::{InvocationMetrics, StopCounts};
use busline_core::{ConfigError, Outbox, StopError, StopRuntime};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use thiserror::Error;

pub mod trigger;

/// The depot's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepotConfig {
    /// `INPUT_PREFIX`: where input objects are listed, e.g. `input/`.
    pub input_prefix: String,
}

impl DepotConfig {
    /// Reads `INPUT_PREFIX`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Ok(DepotConfig {
            input_prefix: required(vars, "INPUT_PREFIX")?,
        })
    }
}

/// What starts a trip (the body of the API call; empty for the schedule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TripRequest {
    /// Reuse this trip id (a replay writes the same output keys); a new id when absent.
    #[serde(default)]
    pub trip_id: Option<String>,
    /// Read only objects under this prefix, which must lie inside `INPUT_PREFIX`.
    #[serde(default)]
    pub input_prefix: Option<String>,
}

/// The answer to a trip request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TripStarted {
    /// The trip's id.
    pub trip_id: String,
    /// Tickets sent to the next stop (one per input object).
    pub tickets: u64,
}

/// Why a trip could not start.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DepotError {
    /// The request is unusable (rejected: nothing was sent).
    #[error("bad trip request: {0}")]
    BadRequest(String),
    /// Listing or sending failed.
    #[error(transparent)]
    Stop(#[from] StopError),
}

/// The depot stop.
pub struct Depot {
    config: DepotConfig,
    runtime: StopRuntime,
    forwarder: Forwarder,
}

impl Depot {
    /// A depot with its settings and ports.
    pub fn new(config: DepotConfig, runtime: StopRuntime) -> Self {
        let forwarder = Forwarder::new(runtime.queues.clone(), runtime.retry);
        Depot {
            config,
            runtime,
            forwarder,
        }
    }

    /// Starts a trip: one ticket per input object, sent to `NEXT_QUEUE_URL`.
    pub async fn start_trip(&self, request: TripRequest) -> Result<TripStarted, DepotError> {
        let started = Instant::now();
        let trip = match request.trip_id {
            Some(trip) => {
                validate_trip_id(&trip).map_err(DepotError::BadRequest)?;
                trip
            }
            None => trip_id(chrono::Utc::now(), &std::process::id().to_string()),
        };
        let prefix = request
            .input_prefix
            .unwrap_or_else(|| self.config.input_prefix.clone());
        if !prefix.starts_with(&self.config.input_prefix) {
            return Err(DepotError::BadRequest(format!(
                "input_prefix {prefix:?} is outside INPUT_PREFIX {:?}",
                self.config.input_prefix
            )));
        }
        let objects = self
            .runtime
            .objects
            .list(&prefix)
            .await
            .map_err(StopError::from)?;
        let mut outbox = Outbox::new(
            &self.runtime.config,
            &trip,
            "depot",
            1,
            0,
            self.forwarder.clone(),
            self.runtime.objects.clone(),
        );
        for object in &objects {
            let mut data = serde_json::Map::new();
            data.insert("key".into(), object.key.clone().into());
            data.insert("size".into(), object.size.into());
            let ticket = Passenger {
                id: stable_id(&[&trip, &object.key]),
                source: None,
                data,
            };
            outbox.pick_up(1);
            outbox.board(&ticket).await?;
            outbox.depart().await?;
        }
        let counts = outbox.close().await?;
        tracing::info!(trip, tickets = objects.len(), prefix, "trip started");
        self.runtime
            .metrics
            .record(&InvocationMetrics {
                stop: self.runtime.config.stop.clone(),
                route: self.runtime.config.route.clone(),
                counts: StopCounts {
                    picked_up: counts.picked_up,
                    forwarded: counts.forwarded,
                    buses_out: counts.buses_out,
                    bytes_out: counts.bytes_out,
                    ..StopCounts::default()
                },
                duration: started.elapsed(),
                oldest_message_age: None,
            })
            .await;
        Ok(TripStarted {
            trip_id: trip,
            tickets: objects.len() as u64,
        })
    }
}
