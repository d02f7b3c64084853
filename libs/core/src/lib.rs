//! busline core: the envelope ("bus"), the [`Stop`] trait, the batch processor, the forwarder
//! and the ports. No AWS SDK here: adapters live beside this crate.

pub mod config;
pub mod envelope;
pub mod error;
pub mod forwarder;
pub mod id;
pub mod metrics;
pub mod outbox;
pub mod packer;
pub mod ports;
pub mod processor;
pub mod route;
pub mod stop;

pub use config::StopConfig;
pub use envelope::{Envelope, Passenger, Rejection};
pub use error::{ConfigError, ErrorClass, PortError, StopError};
pub use metrics::{InvocationMetrics, StopCounts};
pub use outbox::Outbox;
pub use processor::{BatchError, BatchProcessor, StopRuntime};
pub use stop::{Stop, StopContext};

/// The README's code examples, compiled as doctests so they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
