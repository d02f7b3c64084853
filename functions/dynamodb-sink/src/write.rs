//! Writing a bus's items: `BatchWriteItem` in chunks of 25, several chunks at once, items left
//! unprocessed sent again with backoff; a chunk DynamoDB refuses as invalid is written item by
//! item so that only the items it refuses are rejected, each with DynamoDB's message.

use crate::item::Item;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use backon::{BackoffBuilder, ExponentialBuilder};
use busline_core::StopError;
use futures::{StreamExt, TryStreamExt};
use std::time::Duration;

/// The most requests one `BatchWriteItem` call takes.
pub const CHUNK: usize = 25;

/// Where and how to write.
pub struct Writer<'a> {
    /// The DynamoDB client.
    pub client: &'a Client,
    /// The table's name.
    pub table: &'a str,
    /// Chunks in flight at once.
    pub concurrency: usize,
    /// How long unprocessed items are sent again.
    pub window: Duration,
}

impl Writer<'_> {
    /// Writes `items` (each with the index of its passenger in the bus); returns the indexes
    /// DynamoDB refused, each with its message. A failure of the whole call is classified:
    /// throttling, 5xx and lost connections retryable, anything else permanent.
    pub async fn write(&self, items: &[(usize, Item)]) -> Result<Vec<(usize, String)>, StopError> {
        // The futures are made first: a closure making them inside the stream is not general
        // enough over their lifetimes for the stop's `Send` future.
        let chunks: Vec<_> = items
            .chunks(CHUNK)
            .map(|chunk| self.write_chunk(chunk))
            .collect();
        let refusals: Vec<Vec<(usize, String)>> = futures::stream::iter(chunks)
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(refusals.into_iter().flatten().collect())
    }

    async fn write_chunk(
        &self,
        chunk: &[(usize, Item)],
    ) -> Result<Vec<(usize, String)>, StopError> {
        let mut pending = chunk
            .iter()
            .map(|(_, item)| put_request(item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .with_total_delay(Some(self.window))
            .without_max_times()
            .build();
        loop {
            let sent = self
                .client
                .batch_write_item()
                .request_items(self.table, pending)
                .send()
                .await;
            pending = match sent {
                Ok(output) => output
                    .unprocessed_items()
                    .and_then(|left| left.get(self.table))
                    .cloned()
                    .unwrap_or_default(),
                Err(err) if err.code() == Some("ValidationException") => {
                    tracing::warn!(table = self.table, error = %err.message().unwrap_or_default(),
                        "a chunk was refused as invalid; writing its items one by one");
                    return self.put_each(chunk).await;
                }
                Err(err) => return Err(self.failed(err)),
            };
            if pending.is_empty() {
                return Ok(Vec::new());
            }
            match delays.next() {
                Some(delay) => {
                    tracing::warn!(
                        table = self.table,
                        unprocessed = pending.len(),
                        ?delay,
                        "DynamoDB left items unprocessed; sending them again"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(StopError::retryable(format!(
                        "DynamoDB table {}: {} items still unprocessed after {:?} of retries",
                        self.table,
                        pending.len(),
                        self.window
                    )));
                }
            }
        }
    }

    /// Each item with its own `PutItem`: the ones DynamoDB refuses as invalid, with its
    /// message; the rest written.
    async fn put_each(&self, chunk: &[(usize, Item)]) -> Result<Vec<(usize, String)>, StopError> {
        let mut refused = Vec::new();
        for (index, item) in chunk {
            let put = self
                .client
                .put_item()
                .table_name(self.table)
                .set_item(Some(item.clone()))
                .send()
                .await;
            match put {
                Ok(_) => {}
                Err(err) if err.code() == Some("ValidationException") => refused.push((
                    *index,
                    format!(
                        "DynamoDB refused the item: {}",
                        err.message().unwrap_or("ValidationException")
                    ),
                )),
                Err(err) => return Err(self.failed(err)),
            }
        }
        Ok(refused)
    }

    fn failed<E, R>(&self, err: SdkError<E, R>) -> StopError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        busline_aws::error::classify(err, &format!("DynamoDB table {}", self.table)).into()
    }
}

fn put_request(item: Item) -> Result<WriteRequest, StopError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(StopError::permanent)?;
    Ok(WriteRequest::builder().put_request(put).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemError, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;
    use std::collections::HashMap;

    const TABLE: &str = "orders";

    fn item(id: usize) -> (usize, Item) {
        (
            id,
            HashMap::from([("id".to_owned(), AttributeValue::S(format!("p{id}")))]),
        )
    }

    fn ids(requests: &[WriteRequest]) -> Vec<String> {
        requests
            .iter()
            .filter_map(|r| r.put_request()?.item().get("id")?.as_s().ok().cloned())
            .collect()
    }

    fn writer(client: &Client) -> Writer<'_> {
        Writer {
            client,
            table: TABLE,
            concurrency: 1,
            window: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn items_left_unprocessed_are_sent_again_until_written() {
        let first = mock!(Client::batch_write_item).then_output(|| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, vec![put_request(item(1).1).expect("request")])
                .build()
        });
        let again = mock!(Client::batch_write_item)
            .match_requests(|req| ids(&req.request_items().expect("items")[TABLE]) == ["p1"])
            .then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &again]);
        let refused = writer(&client)
            .write(&[item(0), item(1), item(2)])
            .await
            .expect("written");
        assert!(refused.is_empty());
        assert_eq!((first.num_calls(), again.num_calls()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn items_never_processed_fail_the_bus_as_retryable() {
        let never = mock!(Client::batch_write_item)
            .sequence()
            .output(|| {
                BatchWriteItemOutput::builder()
                    .unprocessed_items(TABLE, vec![put_request(item(0).1).expect("request")])
                    .build()
            })
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&never]);
        let err = writer(&client)
            .write(&[item(0)])
            .await
            .expect_err("gives up");
        assert!(matches!(err, StopError::Retryable(_)), "{err}");
        assert!(
            err.reason().contains("1 items still unprocessed"),
            "{}",
            err.reason()
        );
        assert!(never.num_calls() > 3, "{} calls", never.num_calls());
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_refused_as_invalid_is_written_item_by_item() {
        let invalid = mock!(Client::batch_write_item).then_error(|| {
            BatchWriteItemError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("Item size has exceeded the maximum allowed size")
                    .build(),
            )
        });
        let fits = mock!(Client::put_item)
            .match_requests(|req| {
                req.item().and_then(|i| i.get("id")) == Some(&AttributeValue::S("p4".into()))
            })
            .then_output(|| PutItemOutput::builder().build());
        let too_big = mock!(Client::put_item).then_error(|| {
            PutItemError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("Item size has exceeded the maximum allowed size")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&invalid, &fits, &too_big]
        );
        let refused = writer(&client)
            .write(&[item(4), item(7)])
            .await
            .expect("one written");
        assert_eq!(
            refused,
            [(
                7,
                "DynamoDB refused the item: Item size has exceeded the maximum allowed size"
                    .to_owned()
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_bus_goes_in_chunks_of_25_and_a_service_fault_is_retryable() {
        let chunk = |size: usize| {
            mock!(Client::batch_write_item)
                .match_requests(move |req| req.request_items().expect("items")[TABLE].len() == size)
                .then_output(|| BatchWriteItemOutput::builder().build())
        };
        let (full, again, rest) = (chunk(25), chunk(25), chunk(10));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&full, &again, &rest]
        );
        let items: Vec<_> = (0..60).map(item).collect();
        assert!(
            writer(&client)
                .write(&items)
                .await
                .expect("written")
                .is_empty()
        );
        assert_eq!(
            (full.num_calls(), again.num_calls(), rest.num_calls()),
            (1, 1, 1)
        );

        let fault = mock!(Client::batch_write_item).then_error(|| {
            BatchWriteItemError::generic(
                ErrorMetadata::builder()
                    .code("InternalServerError")
                    .message("try later")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&fault]);
        let err = writer(&client).write(&[item(0)]).await.expect_err("fails");
        assert!(matches!(err, StopError::Retryable(_)), "{err}");
        assert!(
            err.reason().contains("DynamoDB table orders"),
            "{}",
            err.reason()
        );
    }
}
