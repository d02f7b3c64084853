//! The depot as a Lambda function: an EventBridge schedule or an HTTP API call starts a trip.

use busline_core::config::ProcessEnv;
use busline_depot::{Depot, DepotConfig, trigger};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    busline_lambda::init_logs();
    let runtime = busline_lambda::init_runtime(&ProcessEnv).await?;
    let depot = Arc::new(Depot::new(DepotConfig::from_vars(&ProcessEnv)?, runtime));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let depot = depot.clone();
        async move {
            trigger::respond(&depot, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
