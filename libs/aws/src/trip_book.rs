//! The trip ledger a stop keeps on AWS, from its settings: `LEDGER_TABLE` (unset or empty: no
//! ledger), `TRIP_LEDGER` (`off` turns it off with the table in place), `LEDGER_RETENTION_DAYS` (default 30), `TRIP_EVENT_BUS` (default `default`) and
//! `TRIP_OUTPUT_PREFIX` (default `output/`).

use crate::events::EventBridgeEvents;
use crate::ledger::DynamoLedger;
use busline_core::config::{optional, parsed};
use busline_core::ledger::TripBook;
use busline_core::{ConfigError, RetryPolicy, Vars};
use std::sync::Arc;
use std::time::Duration;

/// Where a trip's output goes when `TRIP_OUTPUT_PREFIX` is unset: load's default.
pub const DEFAULT_TRIP_OUTPUT_PREFIX: &str = "output/";

/// The ledger and the completion events of a stop whose `LEDGER_TABLE` is set.
pub fn trip_book(
    vars: &dyn Vars,
    shared: &aws_config::SdkConfig,
) -> Result<Option<TripBook>, ConfigError> {
    let Some(table) = optional(vars, "LEDGER_TABLE") else {
        return Ok(None);
    };
    if !busline_core::ledger::ledger_on(vars)? {
        return Ok(None);
    }
    let days: u64 = parsed(vars, "LEDGER_RETENTION_DAYS", 30)?;
    if days == 0 {
        return Err(ConfigError::Invalid {
            var: "LEDGER_RETENTION_DAYS".into(),
            value: "0".into(),
            reason: "must be at least 1 (days the ledger keeps a trip)".into(),
        });
    }
    let ledger = DynamoLedger::from_config(shared, table, Duration::from_secs(days * 24 * 3600));
    let bus = optional(vars, "TRIP_EVENT_BUS").unwrap_or_else(|| "default".into());
    Ok(Some(TripBook {
        ledger: Arc::new(ledger),
        events: Arc::new(EventBridgeEvents::new(
            aws_sdk_eventbridge::Client::new(shared),
            bus,
        )),
        output_prefix: optional(vars, "TRIP_OUTPUT_PREFIX")
            .unwrap_or_else(|| DEFAULT_TRIP_OUTPUT_PREFIX.into()),
        retry: RetryPolicy::default(),
    }))
}
