//! The chaos layer around a batch handler: an invocation that dies after part of its work
//! was sent, so that nothing of its batch is acknowledged and every bus comes back.

use crate::dice::{StopChaos, body_identity, on_receive};
use crate::spec::Fault;
use async_trait::async_trait;
use busline_core::{BatchError, BatchHandler, BatchOutcome, Delivery, ErrorClass, Invocation};
use std::sync::Arc;
use tokio::sync::Notify;

tokio::task_local! {
    /// The armed abort of the invocation running in this task, if any.
    static ABORT: Arc<Notify>;
}

/// Called by the chaos ports after a call that sent work on succeeded: fires the running
/// invocation's armed abort.
pub(crate) fn work_sent() {
    let _unarmed = ABORT.try_with(|abort| abort.notify_one());
}

/// A batch handler whose invocations may die part way.
pub struct ChaosHandler {
    inner: Arc<dyn BatchHandler>,
    chaos: StopChaos,
}

impl ChaosHandler {
    /// `inner`, aborted as `chaos` draws.
    pub fn new(inner: Arc<dyn BatchHandler>, chaos: StopChaos) -> Self {
        ChaosHandler { inner, chaos }
    }

    /// Handles the batch, or dies part way as the chaos draws.
    async fn handle_or_abort(
        &self,
        deliveries: Vec<Delivery>,
        invocation: &Invocation,
    ) -> Result<BatchOutcome, BatchError> {
        let call: Vec<&[u8]> = deliveries.iter().map(|d| body_identity(&d.body)).collect();
        if self.chaos.draw(Fault::Abort, &call) >= self.chaos.spec().rate(Fault::Abort) {
            return self.inner.handle_batch(deliveries, invocation).await;
        }
        let count = deliveries.len();
        let abort = Arc::new(Notify::new());
        let handled = ABORT.scope(
            abort.clone(),
            self.inner.handle_batch(deliveries, invocation),
        );
        tokio::select! {
            outcome = handled => outcome,
            () = abort.notified() => {
                // The handler's future is dropped where it stands, as a killed process stops.
                self.chaos.count(Fault::Abort);
                tracing::warn!(stop = self.chaos.stop(), "invocation aborted after part of its work was sent (injected by chaos)");
                Err(BatchError {
                    count,
                    class: ErrorClass::Retryable,
                    first_reason: "invocation aborted after part of its work was sent (injected by chaos)".into(),
                })
            }
        }
    }
}

#[async_trait]
impl BatchHandler for ChaosHandler {
    async fn handle_batch(
        &self,
        deliveries: Vec<Delivery>,
        invocation: &Invocation,
    ) -> Result<BatchOutcome, BatchError> {
        let receive_count = deliveries.iter().map(|d| d.receive_count).max();
        on_receive(
            receive_count.unwrap_or_default(),
            self.handle_or_abort(deliveries, invocation),
        )
        .await
    }
}
