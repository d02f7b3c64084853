//! What a host hands the batch processor: deliveries (one per queue message) and the
//! invocation they arrived in; and what it hands back. No Lambda types: the Lambda host maps
//! `SqsEvent` and `SqsBatchResponse`, the embedded bus its own queues.

use crate::ports::Attribute;
use crate::processor::BatchError;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One queue message, as the processor needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue's message id (reported back when the message must be retried).
    pub id: String,
    /// The receipt handle of this receive (changes the message's visibility).
    pub receipt_handle: String,
    /// The body: an envelope, or a claim-check pointer to one. Shared, so a queue that keeps a
    /// message while it is in flight (the embedded bus) hands it out without a copy; a `String`
    /// inside, so a host that receives one (the Lambda event) keeps it without a copy either.
    pub body: Arc<String>,
    /// How many times the queue has handed this message out, this time included.
    pub receive_count: u32,
    /// When the message was first sent, if the queue said.
    pub sent_at: Option<SystemTime>,
    /// The message attributes.
    pub attributes: Vec<Attribute>,
}

/// When an invocation must be done by (Lambda's deadline, or the embedded bus's simulation of
/// the function timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(SystemTime);

impl Deadline {
    /// A deadline at `at`.
    pub fn at(at: SystemTime) -> Self {
        Deadline(at)
    }

    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Deadline(SystemTime::now() + timeout)
    }

    /// A deadline given as milliseconds since the Unix epoch, as Lambda's `Context` has it.
    pub fn from_epoch_millis(millis: u64) -> Self {
        Deadline(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
    }

    /// The moment itself.
    pub fn when(&self) -> SystemTime {
        self.0
    }

    /// Time left before the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.0
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// True when less than `margin` is left: time to start nothing new and checkpoint.
    pub fn within(&self, margin: Duration) -> bool {
        self.remaining() < margin
    }
}

/// The invocation a batch arrived in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The host's request id (Lambda's `requestId`), for logs.
    pub request_id: String,
    /// When the invocation must end, when there is such a limit.
    pub deadline: Option<Deadline>,
}

/// What the processor reports for one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Ids of the deliveries the queue must hand out again (in batch order); every other
    /// delivery is done and may be deleted.
    pub retry: Vec<String>,
}

/// What handles a batch: the [`BatchProcessor`](crate::BatchProcessor) in this process, or a
/// function reached elsewhere (the local driver's Lambda Invoke client).
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handles one batch: the deliveries to hand out again, or an error when all failed.
    async fn handle_batch(
        &self,
        deliveries: Vec<Delivery>,
        invocation: &Invocation,
    ) -> Result<BatchOutcome, BatchError>;
}
