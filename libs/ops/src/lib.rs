//! Operating a deployed route from a terminal: the queues its CloudFormation stack gave each
//! stop, its dead-letter queues (list, show, redrive) and its status. The `bus` command's
//! `dlq`, `status` and `quarantine` sit on this; it reaches AWS (or a local cloud through
//! `AWS_ENDPOINT_URL`) with the environment's configuration.

pub mod dead_letters;
pub mod error;
mod move_task;
pub mod quarantine;
pub mod queue;
pub mod redrive;
pub mod replay;
pub mod stack;
pub mod status;

pub use dead_letters::{BusContents, DeadLetter, dead_letters};
pub use error::OpsError;
pub use quarantine::{QuarantinedAt, quarantine_list, quarantine_show};
pub use queue::QueueDepth;
pub use redrive::{RedriveFilter, RedriveMethod, RedriveReport, redrive};
pub use replay::replay_into;
pub use stack::{DeployedAlarm, DeployedRoute, DeployedStop};
pub use status::{AlarmState, RouteStatus, StopStatus, status};

/// The SDK clients the operations use, from one loaded configuration.
#[derive(Debug, Clone)]
pub struct OpsClients {
    /// CloudFormation: the stack's resources.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// SQS: queue depths, dead letters, redrive.
    pub sqs: aws_sdk_sqs::Client,
    /// CloudWatch: alarm states.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// S3: quarantine files (path-style with an endpoint override, as for a local cloud).
    pub s3: aws_sdk_s3::Client,
    /// Lambda: the settings a stop's function runs with (a quarantine replay uses them).
    pub lambda: aws_sdk_lambda::Client,
    /// The configuration they were made from (a replay's trip ledger is built from it).
    pub shared: aws_config::SdkConfig,
}

impl OpsClients {
    /// Clients from the environment's configuration (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn load() -> Self {
        Self::from_config(&busline_aws::clients::load_config().await)
    }

    /// Clients from an already loaded configuration.
    pub fn from_config(shared: &aws_config::SdkConfig) -> Self {
        OpsClients {
            cloudformation: aws_sdk_cloudformation::Client::new(shared),
            sqs: aws_sdk_sqs::Client::new(shared),
            cloudwatch: aws_sdk_cloudwatch::Client::new(shared),
            s3: busline_aws::clients::s3_client(shared),
            lambda: aws_sdk_lambda::Client::new(shared),
            shared: shared.clone(),
        }
    }
}
