//! An in-memory queue with SQS semantics: visibility timeout, ApproximateReceiveCount,
//! redrive to a dead-letter queue after maxReceiveCount, retention, the 1 MiB message limit
//! and at most 10 messages per send or receive batch.

use crate::clock::Clock;
use busline_core::ports::{
    Attribute, EntryFailure, OutgoingMessage, SQS_MAX_BATCH_ENTRIES, SQS_MAX_BYTES,
};
use busline_core::{Delivery, PortError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// How a queue behaves, as its CloudFormation properties say.
#[derive(Clone)]
pub struct QueueSettings {
    /// Default visibility timeout of a receive.
    pub visibility_timeout: Duration,
    /// How long a message is kept before SQS deletes it.
    pub retention: Duration,
    /// Redrive policy: after this many receives the next receive moves the message to `dead_letter`.
    pub max_receive_count: Option<u32>,
    /// The dead-letter queue of the redrive policy.
    pub dead_letter: Option<Arc<MemoryQueue>>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            retention: Duration::from_secs(4 * 24 * 3600),
            max_receive_count: None,
            dead_letter: None,
        }
    }
}

/// A message as a receive returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Stable across receives.
    pub message_id: String,
    /// New on every receive; only the latest one deletes.
    pub receipt_handle: String,
    /// The body, shared with the queue that keeps it while it is in flight.
    pub body: Arc<String>,
    /// System attributes: ApproximateReceiveCount, SentTimestamp, ApproximateFirstReceiveTimestamp.
    pub attributes: HashMap<String, String>,
    /// Message attributes as sent.
    pub message_attributes: Vec<Attribute>,
}

impl ReceivedMessage {
    /// The message as the batch processor takes it.
    pub fn delivery(&self) -> Delivery {
        self.clone().into_delivery()
    }

    /// The message as the batch processor takes it, its body shared with the queue rather than
    /// copied (a batch of big buses would otherwise be held twice while it is handled).
    pub fn into_delivery(self) -> Delivery {
        let attribute = |name: &str| {
            self.attributes
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
        };
        Delivery {
            receive_count: attribute("ApproximateReceiveCount").map_or(1, |n| n as u32),
            sent_at: attribute("SentTimestamp")
                .map(|millis| SystemTime::UNIX_EPOCH + Duration::from_millis(millis)),
            id: self.message_id,
            receipt_handle: self.receipt_handle,
            body: self.body,
            attributes: self.message_attributes,
        }
    }
}

#[derive(Debug)]
struct Stored {
    message_id: String,
    body: Arc<String>,
    attributes: Vec<Attribute>,
    sent_at: Duration,
    sent_epoch_ms: u64,
    first_received_epoch_ms: Option<u64>,
    visible_at: Duration,
    receive_count: u32,
    receipt_handle: Option<String>,
}

/// Counters of one queue since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages accepted.
    pub sent: u64,
    /// Receives of a message (first deliveries and redeliveries).
    pub received: u64,
    /// Receives of a message that had been received before.
    pub redelivered: u64,
    /// Messages deleted by their current receipt handle.
    pub deleted: u64,
    /// Messages moved to the dead-letter queue by the redrive policy.
    pub redriven: u64,
    /// Messages dropped because they outlived the retention period.
    pub expired: u64,
    /// Most body bytes held at once (visible and in flight).
    pub peak_bytes: usize,
}

#[derive(Default)]
struct Inner {
    messages: BTreeMap<u64, Stored>,
    bytes: usize,
    next_seq: u64,
    next_receipt: u64,
    stats: QueueStats,
}

impl Inner {
    fn insert(&mut self, message: Stored) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += message.body.len();
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);
        self.stats.sent += 1;
        self.messages.insert(seq, message);
    }

    fn remove(&mut self, seq: u64) -> Option<Stored> {
        let message = self.messages.remove(&seq)?;
        self.bytes -= message.body.len();
        Some(message)
    }
}

/// One in-memory queue.
pub struct MemoryQueue {
    name: String,
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    signal: Arc<Notify>,
    backlog_limit: Option<usize>,
}

impl MemoryQueue {
    /// A new empty queue.
    pub fn new(name: impl Into<String>, settings: QueueSettings, clock: Arc<dyn Clock>) -> Self {
        MemoryQueue {
            name: name.into(),
            settings,
            clock,
            inner: Mutex::new(Inner::default()),
            signal: Arc::new(Notify::new()),
            backlog_limit: None,
        }
    }

    /// Notifies `signal` whenever a message arrives, is received or leaves (the embedded bus
    /// waits on one signal shared by all its queues).
    pub fn with_signal(mut self, signal: Arc<Notify>) -> Self {
        self.signal = signal;
        self
    }

    /// Embedded flow control, not an SQS feature: [`MemoryQueue::wait_for_room`] waits while
    /// the queue holds more than `bytes` of visible messages, so a fast producer cannot fill
    /// memory. Hidden (in-flight) messages do not count, so a failing consumer cannot block it.
    pub fn with_backlog_limit(mut self, bytes: usize) -> Self {
        self.backlog_limit = Some(bytes);
        self
    }

    /// Waits until the visible backlog is within the limit (at once when there is no limit).
    pub async fn wait_for_room(&self) {
        let Some(limit) = self.backlog_limit else {
            return;
        };
        loop {
            let changed = self.signal.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between check and wait is not missed.
            changed.as_mut().enable();
            if self.visible_bytes() <= limit {
                return;
            }
            changed.await;
        }
    }

    fn visible_bytes(&self) -> usize {
        let now = self.clock.now();
        self.lock()
            .messages
            .values()
            .filter(|m| m.visible_at <= now)
            .map(|m| m.body.len())
            .sum()
    }

    /// The queue's name (its URL in embedded mode).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-call; the map is still whole.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends one message; returns its id.
    pub fn send(&self, message: &OutgoingMessage) -> Result<String, PortError> {
        self.check_message(message)?;
        Ok(self.store(message))
    }

    /// SendMessageBatch: at most 10 entries and 1 MiB in all, or the whole call fails.
    pub fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<EntryFailure>, PortError> {
        if messages.is_empty() {
            return Err(PortError::permanent(
                &self.name,
                "EmptyBatchRequest: a batch needs at least one entry",
            ));
        }
        if messages.len() > SQS_MAX_BATCH_ENTRIES {
            return Err(PortError::permanent(
                &self.name,
                format!(
                    "TooManyEntriesInBatchRequest: {} entries, at most {SQS_MAX_BATCH_ENTRIES}",
                    messages.len()
                ),
            ));
        }
        let total: usize = messages.iter().map(OutgoingMessage::size).sum();
        if total > SQS_MAX_BYTES {
            return Err(PortError::permanent(
                &self.name,
                format!("BatchRequestTooLong: {total} bytes in all, at most {SQS_MAX_BYTES}"),
            ));
        }
        let mut failures = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match self.check_message(message) {
                Ok(()) => {
                    self.store(message);
                }
                Err(err) => failures.push(EntryFailure {
                    index,
                    sender_fault: true,
                    code: "InvalidMessageContents".into(),
                    message: err.to_string(),
                }),
            }
        }
        Ok(failures)
    }

    fn check_message(&self, message: &OutgoingMessage) -> Result<(), PortError> {
        if message.body.is_empty() {
            return Err(PortError::permanent(
                &self.name,
                "a message body must not be empty",
            ));
        }
        if let Some(bad) = message.body.chars().find(|&c| !sqs_allows(c)) {
            return Err(PortError::permanent(
                &self.name,
                format!(
                    "InvalidMessageContents: character U+{:04X} is not allowed in a message body",
                    u32::from(bad)
                ),
            ));
        }
        let size = message.size();
        if size > SQS_MAX_BYTES {
            return Err(PortError::permanent(
                &self.name,
                format!("message of {size} bytes is over the limit of {SQS_MAX_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    fn store(&self, message: &OutgoingMessage) -> String {
        let now = self.clock.now();
        let epoch = self.clock.epoch_millis();
        let mut inner = self.lock();
        let message_id = format!("{}-{:08}", self.name, inner.next_seq);
        inner.insert(Stored {
            message_id: message_id.clone(),
            body: Arc::new(message.body.clone()),
            attributes: message.attributes.clone(),
            sent_at: now,
            sent_epoch_ms: epoch,
            first_received_epoch_ms: None,
            visible_at: now,
            receive_count: 0,
            receipt_handle: None,
        });
        drop(inner);
        self.signal.notify_waiters();
        message_id
    }

    /// ReceiveMessage: up to `max` (1-10) visible messages, oldest first, each hidden for
    /// `visibility_timeout` (the queue's default when `None`). A message already received
    /// maxReceiveCount times is moved to the dead-letter queue instead of being returned.
    pub fn receive(
        &self,
        max: usize,
        visibility_timeout: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        if !(1..=SQS_MAX_BATCH_ENTRIES).contains(&max) {
            return Err(PortError::permanent(
                &self.name,
                format!(
                    "MaxNumberOfMessages must be between 1 and {SQS_MAX_BATCH_ENTRIES}, got {max}"
                ),
            ));
        }
        let now = self.clock.now();
        let epoch = self.clock.epoch_millis();
        let hide_for = visibility_timeout.unwrap_or(self.settings.visibility_timeout);
        let mut moved = Vec::new();
        let mut received = Vec::new();
        {
            let mut inner = self.lock();
            let expired: Vec<u64> = inner
                .messages
                .iter()
                .filter(|(_, m)| now.saturating_sub(m.sent_at) >= self.settings.retention)
                .map(|(seq, _)| *seq)
                .collect();
            for seq in expired {
                inner.remove(seq);
                inner.stats.expired += 1;
            }
            let visible: Vec<u64> = inner
                .messages
                .iter()
                .filter(|(_, m)| m.visible_at <= now)
                .map(|(seq, _)| *seq)
                .collect();
            let redrive_after = match (&self.settings.dead_letter, self.settings.max_receive_count)
            {
                (Some(_), Some(limit)) => Some(limit),
                _ => None,
            };
            for seq in visible {
                if received.len() == max {
                    break;
                }
                let count = inner
                    .messages
                    .get(&seq)
                    .map(|m| m.receive_count)
                    .unwrap_or_default();
                if redrive_after.is_some_and(|limit| count >= limit) {
                    if let Some(message) = inner.remove(seq) {
                        inner.stats.redriven += 1;
                        moved.push(message);
                    }
                    continue;
                }
                inner.next_receipt += 1;
                let receipt_number = inner.next_receipt;
                let Inner {
                    messages, stats, ..
                } = &mut *inner;
                let Some(message) = messages.get_mut(&seq) else {
                    continue;
                };
                if message.receive_count > 0 {
                    stats.redelivered += 1;
                }
                stats.received += 1;
                message.receive_count += 1;
                message.visible_at = now + hide_for;
                message.first_received_epoch_ms.get_or_insert(epoch);
                let receipt = format!("{}#{receipt_number}", message.message_id);
                message.receipt_handle = Some(receipt.clone());
                received.push(ReceivedMessage {
                    message_id: message.message_id.clone(),
                    receipt_handle: receipt,
                    body: message.body.clone(),
                    attributes: HashMap::from([
                        (
                            "ApproximateReceiveCount".to_owned(),
                            message.receive_count.to_string(),
                        ),
                        (
                            "SentTimestamp".to_owned(),
                            message.sent_epoch_ms.to_string(),
                        ),
                        (
                            "ApproximateFirstReceiveTimestamp".to_owned(),
                            message.first_received_epoch_ms.unwrap_or(epoch).to_string(),
                        ),
                    ]),
                    message_attributes: message.attributes.clone(),
                });
            }
        }
        if let Some(dead_letter) = &self.settings.dead_letter {
            for message in moved {
                // SQS keeps the message id, body and attributes when it redrives a message.
                dead_letter.store_moved(message);
            }
        }
        if !received.is_empty() {
            self.signal.notify_waiters();
        }
        Ok(received)
    }

    fn store_moved(&self, mut message: Stored) {
        message.visible_at = self.clock.now();
        message.receive_count = 0;
        message.receipt_handle = None;
        self.lock().insert(message);
        self.signal.notify_waiters();
    }

    /// DeleteMessage. Returns whether a message was deleted: like SQS, a stale receipt handle
    /// (the message was received again since) succeeds but deletes nothing.
    pub fn delete(&self, receipt_handle: &str) -> bool {
        let mut inner = self.lock();
        let found = inner
            .messages
            .iter()
            .find(|(_, m)| m.receipt_handle.as_deref() == Some(receipt_handle))
            .map(|(seq, _)| *seq);
        match found {
            Some(seq) => {
                inner.remove(seq);
                inner.stats.deleted += 1;
                drop(inner);
                self.signal.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// ChangeMessageVisibility: hides (or, with zero, releases) a received message.
    pub fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), PortError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner
            .messages
            .values_mut()
            .find(|m| m.receipt_handle.as_deref() == Some(receipt_handle))
        {
            Some(message) => {
                message.visible_at = now + timeout;
                Ok(())
            }
            None => Err(PortError::permanent(
                &self.name,
                format!("ReceiptHandleIsInvalid: {receipt_handle}"),
            )),
        }
    }

    /// (visible, in flight) message counts.
    pub fn depth(&self) -> (usize, usize) {
        let now = self.clock.now();
        let inner = self.lock();
        let visible = inner
            .messages
            .values()
            .filter(|m| m.visible_at <= now)
            .count();
        (visible, inner.messages.len() - visible)
    }

    /// When the next hidden message becomes visible, if any is hidden.
    pub fn next_visible_at(&self) -> Option<Duration> {
        let now = self.clock.now();
        self.lock()
            .messages
            .values()
            .map(|m| m.visible_at)
            .filter(|&t| t > now)
            .min()
    }

    /// Counters since creation.
    pub fn stats(&self) -> QueueStats {
        self.lock().stats
    }

    /// Removes and returns every message (visible or not), oldest first: for reports at the end of a ride.
    pub fn drain(&self) -> Vec<ReceivedMessage> {
        let mut inner = self.lock();
        inner.bytes = 0;
        std::mem::take(&mut inner.messages)
            .into_values()
            .map(|m| ReceivedMessage {
                message_id: m.message_id,
                receipt_handle: String::new(),
                body: m.body,
                attributes: HashMap::from([(
                    "ApproximateReceiveCount".to_owned(),
                    m.receive_count.to_string(),
                )]),
                message_attributes: m.attributes,
            })
            .collect()
    }
}

/// The value of a message attribute, if present.
pub fn attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.value.as_str())
}

/// The characters SQS accepts in a message body: #x9 | #xA | #xD | #x20 to #xD7FF |
/// #xE000 to #xFFFD | #x10000 to #x10FFFF (a Rust `char` is never a surrogate).
fn sqs_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (' '..='\u{FFFD}').contains(&c) || c >= '\u{10000}'
}
