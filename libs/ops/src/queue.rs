//! The SQS calls the operations share: a queue's depth, receiving what it holds, and handing
//! received messages back or deleting them, ten at a time.

use crate::OpsError;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use busline_aws::SqsQueues;
use busline_aws::error::classify;
use busline_core::ports::{QueueSender, VisibilityChange};
use serde::Serialize;
use std::time::Duration;

/// SQS's largest batch.
pub(crate) const BATCH: usize = 10;

/// How many messages a queue holds (SQS's approximate counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and not yet deleted (being handled, or waiting out a visibility timeout).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

impl QueueDepth {
    /// Every message the queue holds.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// The queue's approximate counts.
pub async fn depth(sqs: &Client, url: &str) -> Result<QueueDepth, OpsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|err| classify(err, url))?;
    let count = |name: QueueAttributeName| {
        out.attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(QueueDepth {
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}

/// Receives up to `max` (at most ten) messages with their attributes, each hidden for `hold`;
/// empty once the queue has nothing visible (a one-second long poll, so that every SQS server
/// is asked).
pub(crate) async fn receive(
    sqs: &Client,
    url: &str,
    max: usize,
    hold: Duration,
) -> Result<Vec<Message>, OpsError> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, BATCH) as i32)
        .visibility_timeout(hold.as_secs() as i32)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|err| classify(err, url))?;
    Ok(out.messages.unwrap_or_default())
}

/// Makes received messages visible again at once (the queue port's
/// ChangeMessageVisibilityBatch); the ids SQS did not hand back, with its reason: those stay
/// hidden until their hold ends.
pub(crate) async fn release(
    sqs: &Client,
    url: &str,
    messages: &[Message],
) -> Result<Vec<(String, String)>, OpsError> {
    let queues = SqsQueues::new(sqs.clone());
    let mut refused = Vec::new();
    for chunk in messages.chunks(BATCH) {
        let changes: Vec<VisibilityChange> = chunk
            .iter()
            .map(|m| VisibilityChange {
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                timeout: Duration::ZERO,
            })
            .collect();
        for failure in queues.change_visibility(url, &changes).await? {
            let id = chunk.get(failure.index).and_then(|m| m.message_id());
            let why = format!("{}: {}", failure.code, failure.message);
            refused.push((id.unwrap_or_default().to_owned(), why));
        }
    }
    Ok(refused)
}

/// Deletes received messages (at most ten); the ids SQS did not delete, with its reason.
pub(crate) async fn delete(
    sqs: &Client,
    url: &str,
    messages: &[&Message],
) -> Result<Vec<(String, String)>, OpsError> {
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| busline_core::PortError::permanent(url, err))?;
    let out = sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|err| classify(err, url))?;
    Ok(out
        .failed()
        .iter()
        .map(|f| {
            let index: usize = f.id().parse().unwrap_or(usize::MAX);
            let id = messages
                .get(index)
                .and_then(|m| m.message_id())
                .unwrap_or_default();
            (id.to_owned(), f.message().unwrap_or(f.code()).to_owned())
        })
        .collect())
}
