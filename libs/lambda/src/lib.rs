//! The Lambda host: runs one stop kind as a Lambda function. It reads the settings from the
//! environment, loads the AWS configuration once and offers it to the stop's factory, then
//! answers SQS batches (a stop) or trip triggers (a depot).
//!
//! A function's `main.rs` is a few lines, and the binary chooses its own allocator:
//!
//! ```rust,ignore
//! #[global_allocator]
//! static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), busline_lambda::Error> {
//!     busline_lambda::run(busline_transform::kind()).await
//! }
//! ```

use busline_aws::{AwsClients, S3Store, SqsQueues, metrics_sink};
use busline_chaos::{ChaosHandler, StopChaos};
use busline_core::config::{ProcessEnv, Vars, required};
use busline_core::forwarder::RetryPolicy;
use busline_core::{
    BatchHandler, Deadline, InitError, Invocation, Ports, ReadyStop, Registry, StopKind,
};
use std::sync::Arc;

mod function_error;
mod logs;
pub mod sqs;
pub mod trigger;

pub use function_error::FunctionError;
pub use logs::{LogFormat, init_logs};

/// What `main` returns: any error, reported by the runtime.
pub type Error = lambda_runtime::Error;

/// Runs `kind` as this Lambda function until Lambda stops it: logs, settings from the
/// environment, the AWS configuration (offered to the factory as `aws_config::SdkConfig` and
/// `busline_aws::AwsClients`), the SQS, S3 and metrics ports, then the handler. An init
/// failure is logged with the variable or resource it names and ends the process.
pub async fn run(kind: StopKind) -> Result<(), Error> {
    init_logs();
    let (ready, chaos) = build(&kind)
        .await
        .inspect_err(|err| tracing::error!(kind = kind.name(), error = %busline_core::error::chain(err), "init failed"))?;
    match ready {
        ReadyStop::Bus(processor) => {
            let processor: Arc<dyn BatchHandler> = Arc::new(processor);
            match chaos {
                Some(chaos) => sqs::serve(Arc::new(ChaosHandler::new(processor, chaos))).await,
                None => sqs::serve(processor).await,
            }
        }
        ReadyStop::Depot(starter) => trigger::serve(starter).await,
    }
}

/// Runs the kind `STOP_KIND` names, from `registry`: for a binary that holds several kinds,
/// such as a user's repository that deploys the built-in kinds beside its own from one build.
pub async fn run_registry(registry: Registry) -> Result<(), Error> {
    match kind_named(&registry, &ProcessEnv) {
        Ok(kind) => run(kind).await,
        Err(err) => {
            init_logs();
            tracing::error!(error = %err, "init failed");
            Err(err.into())
        }
    }
}

/// The kind of `registry` that `STOP_KIND` names; the error names the variable or lists the
/// kinds there are.
pub fn kind_named(registry: &Registry, vars: &dyn Vars) -> Result<StopKind, InitError> {
    let name = required(vars, "STOP_KIND")?;
    registry.get(&name).cloned()
}

/// The invocation Lambda's context describes: its request id and deadline. A hand-made context
/// (tests, `cargo lambda invoke` without a deadline) has no deadline.
fn invocation(context: &lambda_runtime::Context) -> Invocation {
    Invocation {
        request_id: context.request_id.clone(),
        deadline: (context.deadline > 0).then(|| Deadline::from_epoch_millis(context.deadline)),
    }
}

/// Builds the stop of `kind` from the process environment over the AWS ports, with the chaos
/// `BUSLINE_CHAOS` switches on around a queue reader's (test stage only; a depot is left alone,
/// as whoever starts a trip retries a start that failed).
async fn build(kind: &StopKind) -> Result<(ReadyStop, Option<StopChaos>), InitError> {
    let chaos = if kind.reads_queue() {
        busline_chaos::from_vars(&ProcessEnv)?
    } else {
        None
    };
    let bucket = required(&ProcessEnv, "DATA_BUCKET")?;
    let shared = busline_aws::clients::load_config().await;
    let clients = AwsClients::from_config(&shared);
    let ports = Ports {
        queues: Arc::new(SqsQueues::new(clients.sqs.clone())),
        objects: Arc::new(S3Store::new(clients.s3.clone(), bucket)),
        metrics: metrics_sink(&ProcessEnv, &clients.cloudwatch)?,
        retry: RetryPolicy::default(),
        trips: busline_aws::trip_book(&ProcessEnv, &shared)?,
    };
    let ports = match &chaos {
        Some(chaos) => {
            tracing::warn!(spec = %chaos.spec(), "chaos is on: faults will be injected");
            chaos.ports(&ports)
        }
        None => ports,
    };
    let extensions = clients.extensions(&shared);
    let ready = kind.build(Arc::new(ProcessEnv), ports, extensions).await?;
    Ok((ready, chaos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn registry() -> Registry {
        Registry::new().with(StopKind::stop("noop", |_| async {
            Err::<Noop, _>(InitError::resource("nowhere", "never built here"))
        }))
    }

    struct Noop;

    #[async_trait::async_trait]
    impl busline_core::Stop for Noop {
        async fn handle(
            &self,
            _ctx: &busline_core::StopContext<'_>,
            _passengers: Vec<busline_core::Passenger>,
            _outbox: &mut busline_core::Outbox,
        ) -> Result<(), busline_core::StopError> {
            Ok(())
        }
    }

    #[test]
    fn stop_kind_picks_the_kind_and_names_what_is_wrong() {
        let vars = |kind: Option<&str>| -> HashMap<String, String> {
            kind.map(|k| ("STOP_KIND".to_owned(), k.to_owned()))
                .into_iter()
                .collect()
        };
        let picked = kind_named(&registry(), &vars(Some("noop"))).expect("known");
        assert_eq!(picked.name(), "noop");
        let err = kind_named(&registry(), &vars(Some("enrich")))
            .err()
            .expect("unknown");
        assert_eq!(
            err.to_string(),
            "unknown stop kind \"enrich\"; this build knows noop"
        );
        let err = kind_named(&registry(), &vars(None)).err().expect("unset");
        assert_eq!(
            err.to_string(),
            "environment variable STOP_KIND is required but not set"
        );
    }
}
