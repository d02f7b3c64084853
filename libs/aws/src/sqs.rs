//! The queue port over SQS SendMessageBatch, with per-entry failures surfaced.

use crate::error::classify;
use async_trait::async_trait;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue,
    SendMessageBatchRequestEntry,
};
use busline_core::PortError;
use busline_core::ports::{EntryFailure, OutgoingMessage, QueueSender, VisibilityChange};

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
        entry_failures(queue_url, output.failed())
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        changes: &[VisibilityChange],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let entries = changes
            .iter()
            .enumerate()
            .map(|(index, change)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(&change.receipt_handle)
                    // SQS counts whole seconds, at most 12 hours.
                    .visibility_timeout(change.timeout.as_secs().min(43_200) as i32)
                    .build()
                    .map_err(|err| PortError::permanent(queue_url, err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| classify(err, queue_url))?;
        entry_failures(queue_url, output.failed())
    }
}

/// A batch call's failed entries, mapped back to the index each entry's id carries.
fn entry_failures(
    queue_url: &str,
    failed: &[BatchResultErrorEntry],
) -> Result<Vec<EntryFailure>, PortError> {
    failed
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::Client;
    use aws_sdk_sqs::error::ErrorMetadata;
    use aws_sdk_sqs::operation::send_message_batch::{
        SendMessageBatchError, SendMessageBatchOutput,
    };
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{mock, mock_client};
    use busline_core::ErrorClass;
    use busline_core::ports::Attribute;

    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/transform";

    fn messages() -> Vec<OutgoingMessage> {
        let mut first = OutgoingMessage {
            body: "a".into(),
            attributes: vec![],
        };
        first
            .attributes
            .push(Attribute::string("busline.reason", "why"));
        first
            .attributes
            .push(Attribute::number("ExtendedPayloadSize", 7));
        vec![
            first,
            OutgoingMessage {
                body: "b".into(),
                attributes: vec![],
            },
            OutgoingMessage {
                body: "c".into(),
                attributes: vec![],
            },
        ]
    }

    fn failed(id: &str, sender_fault: bool, code: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .sender_fault(sender_fault)
            .code(code)
            .message("no")
            .build()
            .expect("entry")
    }

    #[tokio::test]
    async fn entries_carry_index_ids_and_typed_attributes_and_failures_map_back() {
        let rule = mock!(Client::send_message_batch)
            .match_requests(|req| {
                let entries = req.entries();
                let attributes = entries[0].message_attributes().expect("attributes");
                entries.iter().map(|e| e.id()).collect::<Vec<_>>() == ["0", "1", "2"]
                    && attributes["busline.reason"].data_type() == "String"
                    && attributes["ExtendedPayloadSize"].data_type() == "Number"
                    && attributes["ExtendedPayloadSize"].string_value() == Some("7")
            })
            .then_output(|| {
                SendMessageBatchOutput::builder()
                    .successful(
                        SendMessageBatchResultEntry::builder()
                            .id("0")
                            .message_id("m0")
                            .md5_of_message_body("x")
                            .build()
                            .expect("ok"),
                    )
                    // LocalStack reports this code as no sender fault; it can never succeed.
                    .failed(failed("1", false, "InvalidMessageContents"))
                    .failed(failed("2", false, "InternalError"))
                    .build()
                    .expect("output")
            });
        let sqs = SqsQueues::new(mock_client!(aws_sdk_sqs, [&rule]));
        let failures = sqs
            .send_batch(QUEUE, &messages())
            .await
            .expect("call succeeds");
        let summary: Vec<(usize, bool, &str)> = failures
            .iter()
            .map(|f| (f.index, f.sender_fault, f.code.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, true, "InvalidMessageContents"),
                (2, false, "InternalError")
            ]
        );
        assert_eq!(rule.num_calls(), 1);
    }

    async fn call_failing_with(code: &'static str) -> PortError {
        let rule = mock!(Client::send_message_batch).then_error(move || {
            SendMessageBatchError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("from the service")
                    .build(),
            )
        });
        let sqs = SqsQueues::new(mock_client!(aws_sdk_sqs, [&rule]));
        sqs.send_batch(QUEUE, &messages())
            .await
            .expect_err("the call fails")
    }

    #[tokio::test]
    async fn whole_call_errors_are_classified_and_name_the_queue() {
        let throttled = call_failing_with("ThrottlingException").await;
        assert_eq!(throttled.class(), ErrorClass::Retryable);
        assert!(throttled.to_string().starts_with(QUEUE), "{throttled}");
        let missing = call_failing_with("AWS.SimpleQueueService.NonExistentQueue").await;
        assert!(
            matches!(&missing, PortError::NotFound { resource } if resource == QUEUE),
            "{missing}"
        );
        let denied = call_failing_with("AccessDenied").await;
        assert_eq!(denied.class(), ErrorClass::Permanent);
        assert!(denied.to_string().contains("from the service"), "{denied}");
        // The SDK error itself is kept as the cause.
        let cause = denied.cause().expect("a cause");
        assert!(std::error::Error::source(cause).is_some(), "{denied}");
    }
}
