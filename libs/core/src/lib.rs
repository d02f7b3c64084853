//! busline core: the envelope ("bus"), the [`Stop`] and [`PassengerStop`] traits, the
//! [`Depot`], the batch processor, the forwarder, the ports and the [`Registry`] of stop kinds.
//! No AWS SDK and no Lambda types here: hosts and adapters live beside this crate.

pub mod backoff;
pub mod compression;
pub mod config;
pub mod delivery;
pub mod depot;
pub mod envelope;
pub mod error;
pub mod forwarder;
pub mod id;
pub mod ledger;
pub mod metrics;
pub mod outbox;
pub mod packer;
pub mod ports;
pub mod processor;
pub mod quarantine;
pub mod registry;
pub mod replay;
pub mod route;
pub mod runtime;
pub mod stop;

pub use backoff::Backoff;
pub use config::{StopConfig, Vars};
pub use delivery::{BatchHandler, BatchOutcome, Deadline, Delivery, Invocation};
pub use depot::{Depot, TripError, TripHandler, TripRequest, TripStarted, TripStarter};
pub use envelope::{Envelope, Fields, Passenger, Rejection};
pub use error::{BoxError, ConfigError, ErrorClass, InitError, PortError, StopError};
pub use forwarder::RetryPolicy;
pub use metrics::{InvocationMetrics, StopCounts};
pub use outbox::Outbox;
pub use ports::SecretStore;
pub use processor::{BatchError, BatchProcessor};
pub use registry::{Extensions, InitContext, ReadyStop, Registry, StopKind};
pub use runtime::Ports;
pub use stop::{EachPassenger, PassengerStop, Stop, StopContext, Verdict};

/// The README's code examples, compiled as doctests so they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
