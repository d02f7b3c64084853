//! The embedded queues of one bus, addressed by name as queue URLs, behind the core's
//! [`QueueSender`] port.

use crate::queue::MemoryQueue;
use async_trait::async_trait;
use busline_core::PortError;
use busline_core::ports::{
    EntryFailure, OutgoingMessage, QueueSender, SQS_MAX_BATCH_ENTRIES, VisibilityChange,
};
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

    async fn change_visibility(
        &self,
        queue_url: &str,
        changes: &[VisibilityChange],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let queue = self.get(queue_url)?;
        if changes.is_empty() || changes.len() > SQS_MAX_BATCH_ENTRIES {
            return Err(PortError::permanent(
                queue_url,
                format!(
                    "ChangeMessageVisibilityBatch takes 1 to {SQS_MAX_BATCH_ENTRIES} entries, got {}",
                    changes.len()
                ),
            ));
        }
        Ok(changes
            .iter()
            .enumerate()
            .filter_map(|(index, change)| {
                let err = queue
                    .change_visibility(&change.receipt_handle, change.timeout)
                    .err()?;
                Some(EntryFailure {
                    index,
                    sender_fault: true,
                    code: "ReceiptHandleIsInvalid".into(),
                    message: err.to_string(),
                })
            })
            .collect())
    }
}
