//! busline AWS adapters: the core's ports over the AWS SDK for Rust. The same binary talks to
//! AWS, LocalStack or MiniStack: `AWS_ENDPOINT_URL` picks the endpoint, no code changes.

pub mod clients;
pub mod error;
pub mod metrics;
pub mod s3;
pub mod secrets;
pub mod sqs;

pub use clients::AwsClients;
pub use metrics::{CloudWatchMetrics, EmfMetrics, MetricsMode, metrics_sink};
pub use s3::S3Store;
pub use secrets::SecretsManagerStore;
pub use sqs::SqsQueues;
