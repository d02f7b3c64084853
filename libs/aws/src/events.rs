//! Trip completions announced on EventBridge: one `busline Trip Completed` event per
//! completion, on the bus `TRIP_EVENT_BUS` (the account's default bus unless set).

use crate::error::classify;
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use busline_core::PortError;
use busline_core::ledger::{Manifest, TripEvents};

/// The event's `source`.
pub const EVENT_SOURCE: &str = "busline";
/// The event's `detail-type`.
pub const TRIP_COMPLETED: &str = "busline Trip Completed";

/// Puts completion events on one event bus.
#[derive(Clone, Debug)]
pub struct EventBridgeEvents {
    client: Client,
    bus: String,
}

impl EventBridgeEvents {
    /// Events on the bus named `bus` (`default` for the account's default bus).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeEvents {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl TripEvents for EventBridgeEvents {
    async fn trip_completed(&self, manifest: &Manifest) -> Result<(), PortError> {
        let resource = format!("event bus {}", self.bus);
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(TRIP_COMPLETED)
            .detail(manifest.event_detail().to_string())
            .event_bus_name(&self.bus)
            .resources(format!("arn:aws:s3:::{}/{}", manifest.bucket, manifest.key))
            .build();
        let sent = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|err| classify(err, &resource))?;
        // PutEvents answers 200 with the entries it refused.
        match sent.entries().iter().find(|e| e.error_code().is_some()) {
            None => Ok(()),
            Some(refused) => {
                let code = refused.error_code().unwrap_or_default();
                let text = format!("{code}: {}", refused.error_message().unwrap_or_default());
                Err(match code {
                    "InternalFailure" | "ThrottlingException" => {
                        PortError::retryable(resource, text)
                    }
                    _ => PortError::permanent(resource, text),
                })
            }
        }
    }
}
