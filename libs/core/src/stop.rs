//! What a stop implements: [`Stop`] for a whole bus at a time, or [`PassengerStop`] for one
//! passenger at a time, where the framework does all the boarding and counting.

use crate::config::StopConfig;
use crate::delivery::Deadline;
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
    /// The queue message id of the bus (for logs).
    pub message_id: &'a str,
    /// The invocation's request id (Lambda's `requestId`), for logs.
    pub request_id: &'a str,
    /// When the invocation must end, if it has a limit: see [`StopContext::deadline_near`].
    pub deadline: Option<Deadline>,
    /// The stop's shared settings.
    pub config: &'a StopConfig,
    /// The data bucket (sources, destinations, claim checks).
    pub objects: &'a dyn ObjectStore,
}

impl StopContext<'_> {
    /// True when less than the stop's `DEADLINE_MARGIN_MS` is left of the invocation: a stop
    /// working through a long source checkpoints now ([`Outbox::ride_again`]).
    pub fn deadline_near(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| deadline.within(self.config.deadline_margin))
    }

    /// `limit`, or less when the deadline (less its margin) comes first: how long a stop may
    /// wait for an outside resource within this invocation.
    pub fn wait_limit(&self, limit: std::time::Duration) -> std::time::Duration {
        match self.deadline {
            Some(deadline) => limit.min(
                deadline
                    .remaining()
                    .saturating_sub(self.config.deadline_margin),
            ),
            None => limit,
        }
    }
}

/// One stop of a route, a bus at a time: picks up, transforms and/or drops off passengers.
///
/// For each bus the handler accounts for every passenger: it boards it for the next stop
/// ([`Outbox::board`]), drops it off ([`Outbox::drop_off`]) or rejects it with a reason
/// ([`Outbox::reject`]). New passengers from a source are declared with [`Outbox::pick_up`].
/// Returning an error fails the whole bus: [`StopError::retryable`] lets the queue retry it,
/// [`StopError::permanent`] dead-letters it with the reason. A handler that loses or invents
/// passengers fails its bus (permanent): the counts must add up.
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

/// A shared stop (or a `dyn Stop`) is a stop: register one instance, or wrap another kind's.
#[async_trait]
impl<S: Stop + ?Sized> Stop for std::sync::Arc<S> {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        self.as_ref().handle(ctx, passengers, outbox).await
    }
}

/// What becomes of one passenger at a [`PassengerStop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Rides on to the next stop (the default lane, `next`), as the handler left it.
    Board,
    /// Rides on to the stop at the end of this lane (one its `LANE_<NAME>_QUEUE_URL` declares).
    BoardTo(String),
    /// Leaves the bus here: written to a destination, or filtered out.
    DropOff,
    /// Goes to quarantine with this reason (prefixed with where it was picked up).
    Reject(String),
}

/// One stop of a route, a passenger at a time: the common case. The framework boards, drops
/// off or rejects each passenger by its [`Verdict`] and keeps the counts.
#[async_trait]
pub trait PassengerStop: Send + Sync {
    /// Decides what becomes of `passenger`, changing it in place if it rides on. An error
    /// fails the whole bus, as in [`Stop::handle`].
    async fn ride(
        &self,
        ctx: &StopContext<'_>,
        passenger: &mut Passenger,
    ) -> Result<Verdict, StopError>;
}

/// A [`PassengerStop`] as a [`Stop`].
pub struct EachPassenger<P>(pub P);

#[async_trait]
impl<P: PassengerStop> Stop for EachPassenger<P> {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        for mut passenger in passengers {
            match self.0.ride(ctx, &mut passenger).await? {
                Verdict::Board => outbox.board(&passenger).await?,
                Verdict::BoardTo(lane) => outbox.board_to(&lane, &passenger).await?,
                Verdict::DropOff => outbox.drop_off(1),
                Verdict::Reject(reason) => outbox.reject(&passenger.reject(reason)).await?,
            }
        }
        Ok(())
    }
}
