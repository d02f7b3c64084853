//! What can go wrong operating a deployed route, each naming the stack, stop or queue at fault.

use busline_core::{ErrorClass, PortError};
use thiserror::Error;

/// Why an operation on a deployed route failed.
#[derive(Debug, Error)]
pub enum OpsError {
    /// CloudFormation knows no such stack.
    #[error(
        "no stack {stack} (check --stack-name and the region; AWS_ENDPOINT_URL for a local cloud)"
    )]
    MissingStack {
        /// The stack's name.
        stack: String,
    },
    /// The stack lacks a resource the template declares.
    #[error(
        "stack {stack} has no resource {logical_id} ({what}); was it deployed from this template?"
    )]
    MissingResource {
        /// The stack's name.
        stack: String,
        /// The resource's logical id in the template.
        logical_id: String,
        /// What it is for, e.g. `the queue of stop transform`.
        what: String,
    },
    /// No stop of that name.
    #[error("the route has no stop {stop}; its stops are {stops}")]
    UnknownStop {
        /// The stop asked for.
        stop: String,
        /// The stops there are, comma-separated.
        stops: String,
    },
    /// The stop has no dead-letter queue (the depot, or a queue without a redrive policy).
    #[error(
        "stop {stop} has no dead-letter queue (its queue has no RedrivePolicy in the template)"
    )]
    NoDeadLetterQueue {
        /// The stop.
        stop: String,
    },
    /// SQS's message move task out of a dead-letter queue ended without moving everything.
    #[error("the message move task out of {queue} failed: {reason}")]
    MoveTask {
        /// The dead-letter queue's URL.
        queue: String,
        /// SQS's failure reason.
        reason: String,
    },
    /// A stop's function has settings busline cannot read.
    #[error("function {function} of stop {stop}: {source}")]
    FunctionSettings {
        /// The function's name.
        function: String,
        /// Its stop.
        stop: String,
        /// The setting at fault.
        source: busline_core::ConfigError,
    },
    /// A quarantine replay did not happen or stopped part way.
    #[error(transparent)]
    Replay(#[from] busline_core::replay::ReplayError),
    /// An AWS call failed; the port error names the stack, queue URL or alarm.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl OpsError {
    /// Whether trying again may help (throttling, a timeout, a 5xx).
    pub fn class(&self) -> ErrorClass {
        match self {
            OpsError::Port(source) => source.class(),
            _ => ErrorClass::Permanent,
        }
    }
}
