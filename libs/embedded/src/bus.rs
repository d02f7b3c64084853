//! The embedded bus: every stop of a route in one process, polling in-memory queues the way
//! Lambda's SQS poller does (receive a batch, invoke, delete what succeeded).

use crate::clock::ManualClock;
use crate::queue::{MemoryQueue, ReceivedMessage};
use busline_core::ports::SQS_MAX_BATCH_ENTRIES;
use busline_core::{BatchHandler, Deadline, Invocation, PortError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// One stop on the embedded bus.
pub struct BusStop {
    /// The stop's name.
    pub name: String,
    /// The queue it reads.
    pub queue: Arc<MemoryQueue>,
    /// Most messages per invocation (the SQS event source's BatchSize).
    pub batch_size: usize,
    /// Batches of this stop in flight at once (the event source's MaximumConcurrency).
    pub max_concurrency: usize,
    /// The function's timeout: an invocation still running then is ended, as Lambda ends it,
    /// and none of its messages is deleted. `None` when the function's own host keeps time
    /// (a function reached through the Invoke API).
    pub timeout: Option<Duration>,
    /// What handles its batches: the stop in this process, or a function elsewhere.
    pub processor: Arc<dyn BatchHandler>,
}

/// Why a ride stopped early.
#[derive(Debug, Error)]
pub enum RideError {
    /// A queue refused a receive.
    #[error(transparent)]
    Queue(#[from] PortError),
    /// A batch task died outside the processor's panic isolation.
    #[error("batch task failed: {message}")]
    Task {
        /// What happened.
        message: String,
    },
}

/// Runs the stops until every stop queue is empty.
pub struct EmbeddedBus {
    clock: Arc<ManualClock>,
    signal: Arc<Notify>,
    stops: Vec<BusStop>,
}

impl EmbeddedBus {
    /// A bus over `stops` (in riding order) whose queues read `clock` and notify `signal`
    /// (see [`MemoryQueue::with_signal`]). Each stop runs up to its own `max_concurrency`
    /// batches, so a stop blocked on a full downstream queue never starves that queue's reader.
    pub fn new(clock: Arc<ManualClock>, signal: Arc<Notify>, stops: Vec<BusStop>) -> Self {
        EmbeddedBus {
            clock,
            signal,
            stops,
        }
    }

    /// Polls every stop's queue until all are empty. `on_batch` runs after each batch.
    ///
    /// Downstream stops are polled first so the bus drains before it fills. When nothing is
    /// visible and nothing runs, the clock jumps to the next visibility timeout's end.
    pub async fn run(&self, mut on_batch: impl FnMut()) -> Result<(), RideError> {
        let mut running: JoinSet<usize> = JoinSet::new();
        let mut in_flight = vec![0usize; self.stops.len()];
        loop {
            let changed = self.signal.notified();
            tokio::pin!(changed);
            // Registered before polling, so a change while polling is not missed.
            changed.as_mut().enable();
            for (index, stop) in self.stops.iter().enumerate().rev() {
                while in_flight[index] < stop.max_concurrency.max(1) {
                    let messages = receive_batch(&stop.queue, stop.batch_size)?;
                    if messages.is_empty() {
                        break;
                    }
                    in_flight[index] += 1;
                    let processor = stop.processor.clone();
                    let queue = stop.queue.clone();
                    let (name, timeout) = (stop.name.clone(), stop.timeout);
                    running.spawn(async move {
                        invoke(&name, processor.as_ref(), &queue, messages, timeout).await;
                        index
                    });
                }
            }
            if running.is_empty() {
                // Nothing runs and nothing is visible: jump to the next hidden message, or finish.
                match self
                    .stops
                    .iter()
                    .filter_map(|s| s.queue.next_visible_at())
                    .min()
                {
                    Some(next) => self.clock.advance_to(next),
                    None => return Ok(()),
                }
                continue;
            }
            tokio::select! {
                joined = running.join_next() => match joined {
                    Some(Ok(index)) => {
                        in_flight[index] -= 1;
                        on_batch();
                    }
                    Some(Err(err)) => return Err(RideError::Task { message: err.to_string() }),
                    None => {}
                },
                // A queue changed: a downstream stop may have work while a long batch runs.
                () = &mut changed => {}
            }
        }
    }
}

/// One invocation, as Lambda's SQS poller makes it: the batch, then a delete of every message
/// not reported failed. A function error fails the whole batch; so does a timeout.
async fn invoke(
    stop: &str,
    processor: &dyn BatchHandler,
    queue: &MemoryQueue,
    messages: Vec<ReceivedMessage>,
    timeout: Option<Duration>,
) {
    let receipts: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.message_id.clone(), m.receipt_handle.clone()))
        .collect();
    let deliveries = messages
        .into_iter()
        .map(ReceivedMessage::into_delivery)
        .collect();
    let invocation = Invocation {
        request_id: String::new(),
        deadline: timeout.map(Deadline::after),
    };
    let handled = processor.handle_batch(deliveries, &invocation);
    let processed = match timeout {
        Some(limit) => tokio::time::timeout(limit, handled).await,
        None => Ok(handled.await),
    };
    let failed: HashSet<String> = match processed {
        Ok(Ok(outcome)) => outcome.retry.into_iter().collect(),
        Ok(Err(err)) => {
            tracing::warn!(stop, error = %err, "invocation failed: its batch returns to the queue");
            receipts.iter().map(|(id, _)| id.clone()).collect()
        }
        Err(_) => {
            tracing::warn!(
                stop,
                timeout_s = timeout.unwrap_or_default().as_secs_f64(),
                "invocation timed out: its messages return to the queue after their visibility timeout"
            );
            receipts.iter().map(|(id, _)| id.clone()).collect()
        }
    };
    for (_, receipt_handle) in receipts.iter().filter(|(id, _)| !failed.contains(id)) {
        queue.delete(receipt_handle);
    }
}

/// Receives up to `batch_size` messages, 10 per call as SQS allows.
fn receive_batch(
    queue: &MemoryQueue,
    batch_size: usize,
) -> Result<Vec<ReceivedMessage>, PortError> {
    let mut messages = Vec::new();
    while messages.len() < batch_size.max(1) {
        let want = (batch_size.max(1) - messages.len()).min(SQS_MAX_BATCH_ENTRIES);
        let got = queue.receive(want, None)?;
        let done = got.len() < want;
        messages.extend(got);
        if done {
            break;
        }
    }
    Ok(messages)
}
