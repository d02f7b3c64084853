//! The `Stop` trait: what every stop's handler implements.

use crate::config::StopConfig;
use crate::envelope::Passenger;
use crate::error::StopError;
use crate::outbox::Outbox;
use crate::ports::ObjectStore;
use async_trait::async_trait;

/// What a handler knows about the bus it is handling.
pub struct StopContext<'a> {
    /// The trip this bus belongs to.
    pub trip: &'a str,
    /// The id of the bus being handled.
    pub bus: &'a str,
    /// The SQS message id of the bus (for logs).
    pub message_id: &'a str,
    /// The stop's shared settings.
    pub config: &'a StopConfig,
    /// The data bucket (sources, destinations, claim checks).
    pub objects: &'a dyn ObjectStore,
}

/// One stop of a route: picks up, transforms and/or drops off passengers.
///
/// For each bus the handler accounts for every passenger: it boards it for the next stop
/// ([`Outbox::board`]), drops it off ([`Outbox::drop_off`]) or rejects it with a reason
/// ([`Outbox::reject`]). New passengers from a source are declared with [`Outbox::pick_up`].
/// Returning an error fails the whole bus: [`StopError::Retryable`] lets SQS retry it,
/// [`StopError::Permanent`] dead-letters it with the reason.
#[async_trait]
pub trait Stop: Send + Sync {
    /// Handles the passengers of one bus.
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError>;
}
