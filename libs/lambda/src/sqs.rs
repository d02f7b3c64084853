//! A stop behind an SQS trigger: `SqsEvent` in, deliveries to the processor, its outcome back
//! as `SqsBatchResponse` (`batchItemFailures`).

use crate::FunctionError;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use busline_core::ports::Attribute;
use busline_core::{BatchHandler, Delivery};
use lambda_runtime::{Context, LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Answers SQS batches with `processor` until Lambda stops the function.
pub async fn serve(processor: Arc<dyn BatchHandler>) -> Result<(), crate::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move { handle(processor.as_ref(), event.payload, &event.context).await }
    }))
    .await
}

/// One invocation: the batch response, or a function error (its `errorType` the class) when
/// every message failed, so that Lambda backs off.
pub async fn handle(
    processor: &dyn BatchHandler,
    event: SqsEvent,
    context: &Context,
) -> Result<SqsBatchResponse, FunctionError> {
    let invocation = crate::invocation(context);
    let deliveries = event.records.into_iter().map(delivery).collect();
    let outcome = processor.handle_batch(deliveries, &invocation).await?;
    let mut response = SqsBatchResponse::default();
    for id in outcome.retry {
        response.add_failure(id);
    }
    Ok(response)
}

/// What the processor needs of one SQS record.
pub fn delivery(record: SqsMessage) -> Delivery {
    let attribute = |name: &str| record.attributes.get(name);
    Delivery {
        receive_count: attribute("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1),
        sent_at: attribute("SentTimestamp")
            .and_then(|millis| millis.parse().ok())
            .map(|millis| SystemTime::UNIX_EPOCH + Duration::from_millis(millis)),
        attributes: record
            .message_attributes
            .iter()
            .filter_map(|(name, value)| {
                let text = value.string_value.clone()?;
                Some(match value.data_type.as_deref() {
                    Some(kind) if kind.starts_with("Number") => Attribute::number(name, text),
                    _ => Attribute::string(name, text),
                })
            })
            .collect(),
        id: record.message_id.unwrap_or_default(),
        receipt_handle: record.receipt_handle.unwrap_or_default(),
        body: Arc::new(record.body.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_s_body_becomes_the_delivery_s_without_a_copy() {
        // A bus body is up to 1 MiB, and every record of every invocation is one.
        let body = "x".repeat(4096);
        let at = body.as_ptr();
        let mut record = SqsMessage::default();
        record.body = Some(body);
        let delivery = delivery(record);
        assert_eq!(delivery.body.as_ptr(), at);
        assert_eq!(delivery.body.len(), 4096);
    }
}
