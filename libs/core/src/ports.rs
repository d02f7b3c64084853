//! Ports: the small traits through which stops reach queues, object stores and metrics.
//! Each has an AWS adapter and an embedded adapter side by side.

use crate::error::PortError;
use crate::metrics::InvocationMetrics;
use async_trait::async_trait;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncRead;

/// SQS's limit on one message and on one SendMessageBatch call (body plus attributes).
pub const SQS_MAX_BYTES: usize = 1024 * 1024;
/// SQS's limit on entries in one SendMessageBatch or ReceiveMessage call.
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;

/// The data type of a message attribute, as SQS knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    /// `String`.
    String,
    /// `Number` (the value is its decimal text).
    Number,
}

impl AttributeType {
    /// The SQS name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::String => "String",
            AttributeType::Number => "Number",
        }
    }
}

/// One message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value as text.
    pub value: String,
    /// Attribute type.
    pub data_type: AttributeType,
}

impl Attribute {
    /// A `String` attribute.
    pub fn string(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: value.into(),
            data_type: AttributeType::String,
        }
    }

    /// A `Number` attribute.
    pub fn number(name: impl Into<String>, value: impl ToString) -> Self {
        Attribute {
            name: name.into(),
            value: value.to_string(),
            data_type: AttributeType::Number,
        }
    }
}

/// A message to send: the body and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body (an envelope, a claim-check pointer, or a dead-lettered original).
    pub body: String,
    /// Message attributes.
    pub attributes: Vec<Attribute>,
}

impl OutgoingMessage {
    /// The size SQS counts against its limits: body plus attribute names, types and values.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|a| a.name.len() + a.data_type.as_str().len() + a.value.len())
                .sum::<usize>()
    }
}

/// One entry of a batch send that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// Index of the entry in the batch passed to [`QueueSender::send_batch`].
    pub index: usize,
    /// True when the entry itself is at fault (too large, invalid): retrying cannot help.
    pub sender_fault: bool,
    /// Error code, e.g. `InternalError`, `ThrottlingException`.
    pub code: String,
    /// Error message.
    pub message: String,
}

/// A received message whose visibility timeout is to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityChange {
    /// The receipt handle of the receive that handed the message out.
    pub receipt_handle: String,
    /// How long the message stays hidden from now: zero hands it back at once.
    pub timeout: Duration,
}

/// Sends messages to a queue, and changes the visibility of messages received from one.
#[async_trait]
pub trait QueueSender: Send + Sync {
    /// Sends at most 10 messages of at most 1 MiB in all to `queue_url` in one call.
    /// Returns the entries that were not accepted; `Err` when the call as a whole failed.
    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, PortError>;

    /// Changes the visibility of at most 10 messages received from `queue_url` in one call
    /// (ChangeMessageVisibilityBatch). Returns the entries that were not changed.
    async fn change_visibility(
        &self,
        queue_url: &str,
        changes: &[VisibilityChange],
    ) -> Result<Vec<EntryFailure>, PortError>;
}

/// One object found by [`ObjectStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A streaming read of one object.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// Reads and writes objects in one bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The bucket's name (claim-check pointers carry it).
    fn bucket(&self) -> &str;
    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError>;
    /// Streams one object; never buffers the whole of it.
    async fn get(&self, key: &str) -> Result<ObjectReader, PortError> {
        self.get_from(key, 0).await
    }
    /// Streams one object from byte `offset` to its end (a ranged GET), so a long read can
    /// resume where an earlier invocation stopped. An offset at or past the end reads nothing.
    async fn get_from(&self, key: &str, offset: u64) -> Result<ObjectReader, PortError>;
    /// Streams `length` bytes of one object from byte `offset` (a ranged GET with an end), as
    /// Parquet's footer and row groups are read; fewer when the object ends first.
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<ObjectReader, PortError> {
        use tokio::io::AsyncReadExt;
        Ok(Box::pin(self.get_from(key, offset).await?.take(length)))
    }
    /// Writes one object, replacing any object with the same key.
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), PortError>;
    /// Writes one object only if no object has the key (S3's `If-None-Match: *`): true when
    /// written, false when another writer got there first. The first writer wins, even when
    /// two write at once.
    async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<bool, PortError>;
}

/// Receives each invocation's metrics.
///
/// Awaited before the invocation returns, so a sink that calls an API finishes before Lambda
/// freezes the process. Metrics are best-effort: a sink reports its own failures (logs) and
/// never fails the bus.
#[async_trait]
pub trait MetricsSink: Send + Sync {
    /// Records one batch's metrics.
    async fn record(&self, metrics: &InvocationMetrics);
}

/// A sink that keeps nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

#[async_trait]
impl MetricsSink for NoMetrics {
    async fn record(&self, _metrics: &InvocationMetrics) {}
}

/// Where a host keeps secrets a stop reads at init (a database password, an API token):
/// Secrets Manager on Lambda. Offered as an `Arc<dyn SecretStore>` extension; a stop never
/// logs what it reads.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret's text (a secret's `SecretString`), by name or ARN; `NotFound` when there is
    /// no such secret.
    async fn secret(&self, id: &str) -> Result<String, PortError>;
}
