//! The forwarder: sends complete buses with SendMessageBatch (at most 10 entries and 1 MiB per
//! call), retries only the entries that failed, and maps what still failed back to the input
//! message that produced it.

use crate::error::ErrorClass;
use crate::ports::{OutgoingMessage, QueueSender, SQS_MAX_BATCH_ENTRIES, SQS_MAX_BYTES};
use backon::BackoffBuilder;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// A message to send, tagged with the input message (its index in the batch) that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parcel {
    /// Index of the input message in its batch.
    pub origin: usize,
    /// The message.
    pub message: OutgoingMessage,
}

/// A parcel that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undelivered {
    /// Index of the input message that produced it.
    pub origin: usize,
    /// Retryable (throttled, unavailable) or permanent (rejected by the queue).
    pub class: ErrorClass,
    /// What the queue said.
    pub reason: String,
}

/// How failed entries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: usize,
    /// First delay.
    pub min_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The delays between tries: exponential from `min_delay` to `max_delay`, `retries` of
    /// them, with jitter.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retries)
            .with_jitter()
    }
}

/// Calls in flight at once for one [`Forwarder::send`].
const CONCURRENT_CALLS: usize = 4;

/// Sends parcels to queues in batches.
#[derive(Clone)]
pub(crate) struct Forwarder {
    sender: Arc<dyn QueueSender>,
    policy: RetryPolicy,
}

impl Forwarder {
    /// A forwarder over `sender`.
    pub(crate) fn new(sender: Arc<dyn QueueSender>, policy: RetryPolicy) -> Self {
        Forwarder { sender, policy }
    }

    /// Sends every parcel to `queue_url`; returns those that could not be delivered.
    pub(crate) async fn send(&self, queue_url: &str, parcels: Vec<Parcel>) -> Vec<Undelivered> {
        let (batches, mut undelivered) = plan_batches(parcels);
        // Collected first, as in the processor, to keep the future `Send`.
        let calls: Vec<_> = batches
            .into_iter()
            .map(|batch| self.send_batch(queue_url, batch))
            .collect();
        let results: Vec<Vec<Undelivered>> = futures::stream::iter(calls)
            .buffer_unordered(CONCURRENT_CALLS)
            .collect()
            .await;
        undelivered.extend(results.into_iter().flatten());
        undelivered
    }

    /// Sends one planned batch, retrying the entries that failed with a retryable error.
    async fn send_batch(&self, queue_url: &str, batch: Vec<Parcel>) -> Vec<Undelivered> {
        let (mut origins, mut messages): (Vec<usize>, Vec<OutgoingMessage>) =
            batch.into_iter().map(|p| (p.origin, p.message)).unzip();
        let mut delays = self.policy.backoff().build();
        let mut undelivered = Vec::new();
        loop {
            let (retry, reason) = match self.sender.send_batch(queue_url, &messages).await {
                Ok(failures) => {
                    let mut retry = vec![false; messages.len()];
                    let mut reason = String::new();
                    for failure in failures {
                        let Some(origin) = origins.get(failure.index) else {
                            tracing::error!(
                                queue_url,
                                index = failure.index,
                                "queue reported a failure for an entry it was not sent"
                            );
                            continue;
                        };
                        let text = format!("{}: {} ({})", queue_url, failure.message, failure.code);
                        if failure.sender_fault {
                            undelivered.push(Undelivered {
                                origin: *origin,
                                class: ErrorClass::Permanent,
                                reason: text,
                            });
                        } else {
                            retry[failure.index] = true;
                            reason = text;
                        }
                    }
                    (retry, reason)
                }
                Err(err) if err.class() == ErrorClass::Retryable => {
                    (vec![true; messages.len()], err.to_string())
                }
                Err(err) => {
                    let reason = err.to_string();
                    undelivered.extend(origins.iter().map(|&origin| Undelivered {
                        origin,
                        class: ErrorClass::Permanent,
                        reason: reason.clone(),
                    }));
                    return undelivered;
                }
            };
            let mut keep = retry.iter().copied();
            messages.retain(|_| keep.next().unwrap_or(false));
            let mut keep = retry.iter().copied();
            origins.retain(|_| keep.next().unwrap_or(false));
            if messages.is_empty() {
                return undelivered;
            }
            match delays.next() {
                Some(delay) => {
                    tracing::warn!(queue_url, entries = messages.len(), ?delay, %reason, "retrying failed entries");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    undelivered.extend(origins.iter().map(|&origin| Undelivered {
                        origin,
                        class: ErrorClass::Retryable,
                        reason: format!("{reason} (after {} retries)", self.policy.retries),
                    }));
                    return undelivered;
                }
            }
        }
    }
}

/// Groups parcels, in order, into batches of at most 10 entries and 1 MiB. A parcel over
/// 1 MiB on its own cannot be sent and is returned as undelivered.
pub(crate) fn plan_batches(parcels: Vec<Parcel>) -> (Vec<Vec<Parcel>>, Vec<Undelivered>) {
    let mut batches: Vec<Vec<Parcel>> = Vec::new();
    let mut too_large = Vec::new();
    let mut current: Vec<Parcel> = Vec::new();
    let mut current_bytes = 0;
    for parcel in parcels {
        let size = parcel.message.size();
        if size > SQS_MAX_BYTES {
            too_large.push(Undelivered {
                origin: parcel.origin,
                class: ErrorClass::Permanent,
                reason: format!(
                    "message of {size} bytes is over SQS's limit of {SQS_MAX_BYTES} bytes"
                ),
            });
            continue;
        }
        if current.len() == SQS_MAX_BATCH_ENTRIES || current_bytes + size > SQS_MAX_BYTES {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push(parcel);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parcel(origin: usize, bytes: usize) -> Parcel {
        Parcel {
            origin,
            message: OutgoingMessage {
                body: "x".repeat(bytes),
                attributes: Vec::new(),
            },
        }
    }

    proptest! {
        /// No batch has more than 10 entries or 1 MiB; every parcel is in exactly one batch
        /// or reported too large, in order.
        #[test]
        fn batches_respect_sqs_limits(sizes in proptest::collection::vec(1usize..1_200_000, 0..40)) {
            let parcels: Vec<Parcel> = sizes.iter().enumerate().map(|(i, &n)| parcel(i, n)).collect();
            let (batches, too_large) = plan_batches(parcels);
            let mut seen: Vec<usize> = Vec::new();
            for batch in &batches {
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.len() <= SQS_MAX_BATCH_ENTRIES);
                prop_assert!(batch.iter().map(|p| p.message.size()).sum::<usize>() <= SQS_MAX_BYTES);
                seen.extend(batch.iter().map(|p| p.origin));
            }
            for undelivered in &too_large {
                prop_assert!(sizes[undelivered.origin] > SQS_MAX_BYTES);
            }
            let expected: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] <= SQS_MAX_BYTES).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
