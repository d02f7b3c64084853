//! The queue port over SQS SendMessageBatch, with per-entry failures surfaced.

use crate::error::classify;
use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use busline_core::PortError;
use busline_core::ports::{EntryFailure, OutgoingMessage, QueueSender};

/// Entry error codes that no retry can fix. Some emulators (LocalStack 4.13) report them with
/// `SenderFault=false`; the code decides, so such an entry is never retried in vain.
const PERMANENT_ENTRY_CODES: [&str; 5] = [
    "InvalidMessageContents",
    "InvalidParameterValue",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "MessageTooLong",
];

/// Sends to SQS queues by URL.
#[derive(Clone, Debug)]
pub struct SqsQueues {
    client: aws_sdk_sqs::Client,
}

impl SqsQueues {
    /// Queues reached through `client`.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsQueues { client }
    }
}

#[async_trait]
impl QueueSender for SqsQueues {
    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let invalid =
            |err: aws_sdk_sqs::error::BuildError| PortError::permanent(queue_url, err.to_string());
        let mut entries = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(&message.body);
            for attribute in &message.attributes {
                let value = MessageAttributeValue::builder()
                    .data_type(attribute.data_type.as_str())
                    .string_value(&attribute.value)
                    .build()
                    .map_err(invalid)?;
                entry = entry.message_attributes(&attribute.name, value);
            }
            entries.push(entry.build().map_err(invalid)?);
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| classify(err, queue_url))?;
        output
            .failed()
            .iter()
            .map(|failed| {
                let index = failed.id().parse().map_err(|_| {
                    PortError::permanent(
                        queue_url,
                        format!(
                            "SQS reported a failure for unknown entry id {:?}",
                            failed.id()
                        ),
                    )
                })?;
                Ok(EntryFailure {
                    index,
                    sender_fault: failed.sender_fault()
                        || PERMANENT_ENTRY_CODES.contains(&failed.code()),
                    code: failed.code().to_owned(),
                    message: failed.message().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }
}
