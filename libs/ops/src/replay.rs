//! `bus quarantine replay` on a deployed stack: corrected passengers go to a stop's queue with
//! that stop's settings as its function runs with them (its route name, bus byte budget,
//! claim-check prefix, data bucket and trip ledger), so the replay is recorded in the same
//! ledger its trip is.

use crate::{DeployedStop, OpsClients, OpsError};
use busline_aws::error::classify;
use busline_aws::s3::S3Store;
use busline_aws::sqs::SqsQueues;
use busline_core::config::required;
use busline_core::ports::NoMetrics;
use busline_core::replay::{ReplayReport, replay};
use busline_core::{Passenger, Ports, RetryPolicy, StopConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// Replays `passengers` into `stop`'s queue under `trip`.
pub async fn replay_into(
    clients: &OpsClients,
    stop: &DeployedStop,
    trip: &str,
    passengers: &[Passenger],
) -> Result<ReplayReport, OpsError> {
    let vars = function_settings(clients, &stop.function).await?;
    let settings_error = |source| OpsError::FunctionSettings {
        function: stop.function.clone(),
        stop: stop.stop.clone(),
        source,
    };
    let mut target = StopConfig::from_vars(&vars).map_err(settings_error)?;
    // The stack's queue, whether or not the function names its own.
    target.queue_url = stop.queue.clone();
    let bucket = required(&vars, "DATA_BUCKET").map_err(settings_error)?;
    let ports = Ports {
        queues: Arc::new(SqsQueues::new(clients.sqs.clone())),
        objects: Arc::new(S3Store::new(clients.s3.clone(), bucket)),
        metrics: Arc::new(NoMetrics),
        retry: RetryPolicy::default(),
        trips: busline_aws::trip_book(&vars, &clients.shared).map_err(settings_error)?,
    };
    Ok(replay(&ports, &target, trip, passengers).await?)
}

/// The environment variables `function` runs with.
async fn function_settings(
    clients: &OpsClients,
    function: &str,
) -> Result<HashMap<String, String>, OpsError> {
    let configuration = clients
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|err| classify(err, &format!("function {function}")))?;
    Ok(configuration
        .environment
        .and_then(|environment| environment.variables)
        .unwrap_or_default())
}
