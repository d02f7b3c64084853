//! The chaos layer around the ports: each call may fail as the real service fails.

use crate::dice::{StopChaos, body_identity};
use crate::handler::work_sent;
use crate::spec::Fault;
use async_trait::async_trait;
use busline_core::ports::{
    EntryFailure, MetricsSink, ObjectInfo, ObjectReader, ObjectStore, OutgoingMessage, QueueSender,
    VisibilityChange,
};
use busline_core::{InvocationMetrics, PortError, Ports};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

impl StopChaos {
    /// `ports` with every queue, object and metrics call passing through this chaos.
    pub fn ports(&self, ports: &Ports) -> Ports {
        Ports {
            queues: Arc::new(ChaosQueues {
                inner: ports.queues.clone(),
                chaos: self.clone(),
            }),
            objects: Arc::new(ChaosObjects {
                inner: ports.objects.clone(),
                chaos: self.clone(),
            }),
            metrics: Arc::new(ChaosMetrics {
                inner: ports.metrics.clone(),
                chaos: self.clone(),
            }),
            retry: ports.retry,
            trips: ports.trips.clone(),
        }
    }
}

fn injected(resource: &str, what: &str) -> PortError {
    PortError::retryable(resource, format!("{what} (injected by chaos)"))
}

/// Queue calls that fail whole or per entry.
pub struct ChaosQueues {
    inner: Arc<dyn QueueSender>,
    chaos: StopChaos,
}

#[async_trait]
impl QueueSender for ChaosQueues {
    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let mut call: Vec<&[u8]> = vec![queue_url.as_bytes()];
        call.extend(messages.iter().map(|m| body_identity(&m.body)));
        if self.chaos.strikes(Fault::Send, &call) {
            return Err(injected(queue_url, "503 ServiceUnavailable"));
        }
        let mut failures = Vec::new();
        let mut passed = Vec::new();
        let mut passed_index = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            if self.chaos.strikes(
                Fault::SendEntry,
                &[queue_url.as_bytes(), body_identity(&message.body)],
            ) {
                failures.push(EntryFailure {
                    index,
                    sender_fault: false,
                    code: "InternalError".into(),
                    message: "entry failed (injected by chaos)".into(),
                });
            } else {
                passed.push(message.clone());
                passed_index.push(index);
            }
        }
        if !passed.is_empty() {
            let refused = self.inner.send_batch(queue_url, &passed).await?;
            failures.extend(refused.into_iter().map(|failure| EntryFailure {
                index: passed_index[failure.index],
                ..failure
            }));
            work_sent();
        }
        failures.sort_by_key(|failure| failure.index);
        Ok(failures)
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        changes: &[VisibilityChange],
    ) -> Result<Vec<EntryFailure>, PortError> {
        let mut call: Vec<&[u8]> = vec![queue_url.as_bytes()];
        call.extend(changes.iter().map(|c| c.receipt_handle.as_bytes()));
        if self.chaos.strikes(Fault::Visibility, &call) {
            return Err(injected(queue_url, "503 ServiceUnavailable"));
        }
        self.inner.change_visibility(queue_url, changes).await
    }
}

/// Object calls that fail, are throttled, or read slowly or only in part.
pub struct ChaosObjects {
    inner: Arc<dyn ObjectStore>,
    chaos: StopChaos,
}

impl ChaosObjects {
    /// An injected 5xx or throttle for `call` on `resource`, if one strikes.
    fn refused(&self, resource: &str, call: &[&[u8]]) -> Option<PortError> {
        if self.chaos.strikes(Fault::Object5xx, call) {
            Some(injected(resource, "500 InternalError"))
        } else if self.chaos.strikes(Fault::ObjectThrottle, call) {
            Some(injected(resource, "503 SlowDown"))
        } else {
            None
        }
    }

    /// A read from `offset` (of `length` bytes, or to the end) that may be refused, slowed or
    /// broken part way, each drawn from the call.
    async fn read(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ObjectReader, PortError> {
        let offset_bytes = offset.to_le_bytes();
        let call: [&[u8]; 3] = [b"get", key.as_bytes(), &offset_bytes];
        if let Some(err) = self.refused(key, &call) {
            return Err(err);
        }
        let reader = match length {
            None => self.inner.get_from(key, offset).await?,
            Some(length) => self.inner.get_range(key, offset, length).await?,
        };
        let delay = self
            .chaos
            .strikes(Fault::SlowRead, &call)
            .then(|| Box::pin(tokio::time::sleep(self.chaos.spec().slow_read)));
        // A broken read delivers some bytes first, drawn from the same call.
        let break_after = self
            .chaos
            .strikes(Fault::TruncatedRead, &call)
            .then(|| (self.chaos.draw(Fault::TruncatedRead, &call) * 256.0 * 1024.0) as usize);
        if delay.is_none() && break_after.is_none() {
            return Ok(reader);
        }
        Ok(Box::pin(ChaosReader {
            inner: reader,
            delay,
            break_after,
        }))
    }
}

#[async_trait]
impl ObjectStore for ChaosObjects {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        if let Some(err) = self.refused(prefix, &[b"list", prefix.as_bytes()]) {
            return Err(err);
        }
        self.inner.list(prefix).await
    }

    async fn get_from(&self, key: &str, offset: u64) -> Result<ObjectReader, PortError> {
        self.read(key, offset, None).await
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<ObjectReader, PortError> {
        self.read(key, offset, Some(length)).await
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), PortError> {
        if let Some(err) = self.refused(key, &[b"put", key.as_bytes()]) {
            return Err(err);
        }
        self.inner.put(key, body, content_type).await?;
        work_sent();
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<bool, PortError> {
        if let Some(err) = self.refused(key, &[b"put", key.as_bytes()]) {
            return Err(err);
        }
        let written = self.inner.put_if_absent(key, body, content_type).await?;
        work_sent();
        Ok(written)
    }
}

/// A read that may wait before its first byte and may break after some bytes.
struct ChaosReader {
    inner: ObjectReader,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
    break_after: Option<usize>,
}

impl AsyncRead for ChaosReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(delay) = self.delay.as_mut() {
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.delay = None;
        }
        match self.break_after {
            Some(0) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset mid-object (injected by chaos)",
            ))),
            Some(left) => {
                // Only broken reads pass through this copy.
                let mut part = vec![0; left.min(buf.remaining())];
                let mut limited = ReadBuf::new(&mut part);
                let poll = self.inner.as_mut().poll_read(cx, &mut limited);
                let read = limited.filled().len();
                buf.put_slice(limited.filled());
                self.break_after = Some(left - read);
                poll
            }
            None => self.inner.as_mut().poll_read(cx, buf),
        }
    }
}

/// Metrics calls that fail (their invocation's metrics are lost, as with a failed API call).
pub struct ChaosMetrics {
    inner: Arc<dyn MetricsSink>,
    chaos: StopChaos,
}

#[async_trait]
impl MetricsSink for ChaosMetrics {
    async fn record(&self, metrics: &InvocationMetrics) {
        let call = format!("{:?}", metrics.counts);
        if self
            .chaos
            .strikes(Fault::Metrics, &[metrics.stop.as_bytes(), call.as_bytes()])
        {
            tracing::warn!(
                stop = metrics.stop,
                "metrics not recorded: 500 InternalError (injected by chaos)"
            );
            return;
        }
        self.inner.record(metrics).await;
    }
}
