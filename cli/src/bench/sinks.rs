//! Ports for the benchmark: a queue sink that counts SQS calls and billed requests (and can
//! keep what it was sent, to feed the next stop), and an object store that counts requests.

use async_trait::async_trait;
use busline_core::PortError;
use busline_core::ports::{
    EntryFailure, ObjectInfo, ObjectReader, ObjectStore, OutgoingMessage, QueueSender,
    VisibilityChange,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// SQS bills each 64 KiB chunk of a request's payload as one request.
pub const BILLING_CHUNK: usize = 64 * 1024;

/// Requests SQS bills for one call carrying `payload` bytes.
pub fn billed_requests(payload: usize) -> u64 {
    payload.div_ceil(BILLING_CHUNK).max(1) as u64
}

/// What a queue sink was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendTally {
    /// SendMessageBatch calls.
    pub calls: u64,
    /// Messages in them.
    pub messages: u64,
    /// Bytes in them (bodies and attributes).
    pub bytes: u64,
    /// Requests SQS bills for them.
    pub billed: u64,
}

/// A [`QueueSender`] that accepts everything and counts it; with `keep`, it also keeps the
/// messages by queue so a stop's output can become the next stop's input.
#[derive(Debug, Default)]
pub struct CountingQueues {
    keep: bool,
    state: Mutex<(SendTally, HashMap<String, Vec<OutgoingMessage>>)>,
}

impl CountingQueues {
    /// A sink that only counts.
    pub fn counting() -> Self {
        CountingQueues::default()
    }

    /// A sink that counts and keeps every message.
    pub fn keeping() -> Self {
        CountingQueues {
            keep: true,
            ..CountingQueues::default()
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> SendTally {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Takes the messages kept for `queue`.
    pub fn take(&self, queue: &str) -> Vec<OutgoingMessage> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1.remove(queue).unwrap_or_default()
    }
}

#[async_trait]
impl QueueSender for CountingQueues {
    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let bytes: usize = messages.iter().map(OutgoingMessage::size).sum();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let tally = &mut state.0;
        tally.calls += 1;
        tally.messages += messages.len() as u64;
        tally.bytes += bytes as u64;
        tally.billed += billed_requests(bytes);
        if self.keep {
            state
                .1
                .entry(queue_url.to_owned())
                .or_default()
                .extend_from_slice(messages);
        }
        Ok(Vec::new())
    }

    async fn change_visibility(
        &self,
        _queue_url: &str,
        _changes: &[VisibilityChange],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0.calls += 1;
        state.0.billed += 1;
        Ok(Vec::new())
    }
}

/// S3 requests an [`ObjectStore`] was asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTally {
    /// ListObjectsV2 calls (one per 1,000 keys).
    pub lists: u64,
    /// GetObject calls.
    pub gets: u64,
    /// PutObject calls.
    pub puts: u64,
    /// Bytes put.
    pub put_bytes: u64,
}

/// Reads from `inner` and counts every request. Only puts under `keep_prefix` reach `inner`
/// (claim checks, which stops read back); the rest, such as load's output, are counted and
/// dropped.
pub struct CountingStore<S> {
    inner: S,
    keep_prefix: String,
    tally: Mutex<StoreTally>,
}

impl<S: ObjectStore> CountingStore<S> {
    /// Counts requests to `inner`, dropping puts outside `keep_prefix`.
    pub fn new(inner: S, keep_prefix: impl Into<String>) -> Self {
        CountingStore {
            inner,
            keep_prefix: keep_prefix.into(),
            tally: Mutex::new(StoreTally::default()),
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> StoreTally {
        *self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, update: impl FnOnce(&mut StoreTally)) {
        update(&mut self.tally.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for CountingStore<S> {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let listed = self.inner.list(prefix).await?;
        let pages = listed.len().div_ceil(1000).max(1) as u64;
        self.count(|t| t.lists += pages);
        Ok(listed)
    }

    async fn get_from(&self, key: &str, offset: u64) -> Result<ObjectReader, PortError> {
        self.count(|t| t.gets += 1);
        self.inner.get_from(key, offset).await
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), PortError> {
        self.count(|t| {
            t.puts += 1;
            t.put_bytes += body.len() as u64;
        });
        if !key.starts_with(&self.keep_prefix) {
            return Ok(());
        }
        self.inner.put(key, body, content_type).await
    }

    /// Kept whatever the prefix: what a stop writes only if absent (a trip's schema) it reads
    /// back.
    async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<bool, PortError> {
        self.count(|t| {
            t.puts += 1;
            t.put_bytes += body.len() as u64;
        });
        self.inner.put_if_absent(key, body, content_type).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_bills_every_started_64_kib_chunk() {
        assert_eq!(billed_requests(0), 1);
        assert_eq!(billed_requests(1), 1);
        assert_eq!(billed_requests(BILLING_CHUNK), 1);
        assert_eq!(billed_requests(BILLING_CHUNK + 1), 2);
        assert_eq!(billed_requests(256 * 1024), 4);
    }

    #[tokio::test]
    async fn a_keeping_sink_counts_and_hands_over_what_it_was_sent() {
        let queues = CountingQueues::keeping();
        let message = |body: &str| OutgoingMessage {
            body: body.into(),
            attributes: Vec::new(),
        };
        queues
            .send_batch("next", &[message("a"), message("bc")])
            .await
            .expect("sent");
        queues
            .send_batch("other", &[message("d")])
            .await
            .expect("sent");
        assert_eq!(
            queues.tally(),
            SendTally {
                calls: 2,
                messages: 3,
                bytes: 4,
                billed: 2
            }
        );
        assert_eq!(queues.take("next"), [message("a"), message("bc")]);
        assert_eq!(queues.take("next"), []);
    }
}
