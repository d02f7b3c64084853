//! Runs a busline stop as a Lambda function: JSON logs per Lambda's logging controls, typed
//! config read once from the environment, SDK clients built once, and the SQS batch handler.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use busline_aws::{AwsClients, S3Store, SqsQueues, metrics_sink};
use busline_core::config::{ProcessEnv, Vars, required};
use busline_core::forwarder::RetryPolicy;
use busline_core::{BatchProcessor, ConfigError, Stop, StopConfig, StopRuntime};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

mod logs;

/// Every stop binary links this crate, so this sets their allocator: a stop allocates per
/// passenger, and mimalloc handles that about twice as fast as glibc's malloc (`bus bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use logs::{LogFormat, init_logs};

/// The ports and settings of a stop, from the process environment: `DATA_BUCKET`, the shared
/// stop settings, `METRICS_MODE`. The error names the variable at fault.
pub async fn init_runtime(vars: &dyn Vars) -> Result<StopRuntime, ConfigError> {
    let config = StopConfig::from_vars(vars)?;
    let bucket = required(vars, "DATA_BUCKET")?;
    let clients = AwsClients::load().await;
    let metrics = metrics_sink(vars, &clients.cloudwatch)?;
    Ok(StopRuntime {
        config,
        queues: Arc::new(SqsQueues::new(clients.sqs)),
        objects: Arc::new(S3Store::new(clients.s3, bucket)),
        metrics,
        retry: RetryPolicy::default(),
    })
}

/// Serves a queue-reading stop built by `build` from the environment, until Lambda stops it.
pub async fn serve_stop(
    build: impl FnOnce(&dyn Vars) -> Result<Arc<dyn Stop>, ConfigError>,
) -> Result<(), lambda_runtime::Error> {
    init_logs();
    let runtime = init_runtime(&ProcessEnv)
        .await
        .inspect_err(|err| tracing::error!(%err, "init failed"))?;
    let stop = build(&ProcessEnv).inspect_err(|err| tracing::error!(%err, "init failed"))?;
    let processor = Arc::new(BatchProcessor::new(stop, runtime));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move { handle_batch(&processor, event.payload).await }
    }))
    .await
}

/// One invocation: the batch response, or an error when every message failed so that Lambda
/// backs off.
pub async fn handle_batch(
    processor: &BatchProcessor,
    event: SqsEvent,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    processor
        .process(event)
        .await
        .map_err(lambda_runtime::Error::from)
}
