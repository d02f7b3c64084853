//! busline AWS adapters: the core's ports over the AWS SDK for Rust. The same binary talks to
//! AWS, LocalStack or MiniStack: `AWS_ENDPOINT_URL` picks the endpoint, no code changes.

pub mod clients;
pub mod error;
pub mod events;
pub mod ledger;
pub mod metrics;
pub mod s3;
pub mod secrets;
pub mod sqs;
pub mod trip_book;

pub use clients::AwsClients;
pub use events::EventBridgeEvents;
pub use ledger::DynamoLedger;
pub use metrics::{CloudWatchMetrics, EmfMetrics, MetricsMode, metrics_sink};
pub use s3::S3Store;
pub use secrets::SecretsManagerStore;
pub use sqs::SqsQueues;
pub use trip_book::trip_book;
