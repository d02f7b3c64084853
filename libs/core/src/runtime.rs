//! What a stop runs with: the host's ports, and the stop's settings.

use crate::config::StopConfig;
use crate::forwarder::RetryPolicy;
use crate::ledger::TripBook;
use crate::ports::{MetricsSink, ObjectStore, QueueSender};
use std::sync::Arc;

/// The ports a host gives every stop it runs: SQS or in-memory queues, S3 or a folder,
/// CloudWatch or a metrics board.
#[derive(Clone)]
pub struct Ports {
    /// Where buses are sent.
    pub queues: Arc<dyn QueueSender>,
    /// The data bucket.
    pub objects: Arc<dyn ObjectStore>,
    /// Where metrics go.
    pub metrics: Arc<dyn MetricsSink>,
    /// How failed sends are retried.
    pub retry: RetryPolicy,
    /// The trip ledger, when the route keeps one: every bus is recorded in it, and the stop
    /// that completes a trip writes its manifest.
    pub trips: Option<TripBook>,
}

/// The settings and ports one stop runs with, built once at init by the registry.
#[derive(Clone)]
pub(crate) struct StopRuntime {
    /// Shared settings.
    pub(crate) config: StopConfig,
    /// The host's ports.
    pub(crate) ports: Ports,
}
