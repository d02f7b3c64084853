//! The embedded queues of one bus, addressed by name as queue URLs, behind the core's
//! [`QueueSender`] port; and the conversion of received messages into a Lambda SQS event.

use crate::queue::{MemoryQueue, ReceivedMessage};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use busline_core::PortError;
use busline_core::ports::{EntryFailure, OutgoingMessage, QueueSender};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every queue of a bus, by name.
#[derive(Default, Clone)]
pub struct EmbeddedQueues {
    queues: BTreeMap<String, Arc<MemoryQueue>>,
}

impl EmbeddedQueues {
    /// Adds a queue under its name.
    pub fn insert(&mut self, queue: Arc<MemoryQueue>) {
        self.queues.insert(queue.name().to_owned(), queue);
    }

    /// The queue named `name`.
    pub fn get(&self, name: &str) -> Result<&Arc<MemoryQueue>, PortError> {
        self.queues.get(name).ok_or_else(|| PortError::NotFound {
            resource: format!("queue {name}"),
        })
    }

    /// Every queue, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<MemoryQueue>> {
        self.queues.values()
    }
}

#[async_trait]
impl QueueSender for EmbeddedQueues {
    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let queue = self.get(queue_url)?;
        queue.wait_for_room().await;
        queue.send_batch(messages)
    }
}

/// The event Lambda's SQS poller would deliver for `messages` received from `queue`.
pub fn sqs_event(queue: &str, messages: &[ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|received| {
            let mut message = SqsMessage::default();
            message.message_id = Some(received.message_id.clone());
            message.receipt_handle = Some(received.receipt_handle.clone());
            message.body = Some(received.body.clone());
            message.attributes = received.attributes.clone().into_iter().collect();
            message.message_attributes = received
                .message_attributes
                .iter()
                .map(|a| {
                    let mut value = SqsMessageAttribute::default();
                    value.string_value = Some(a.value.clone());
                    value.data_type = Some(a.data_type.as_str().to_owned());
                    (a.name.clone(), value)
                })
                .collect();
            message.event_source = Some("aws:sqs".to_owned());
            message.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{queue}"));
            message.aws_region = Some("local".to_owned());
            message
        })
        .collect();
    event
}
