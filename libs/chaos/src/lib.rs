//! Fault injection for busline: a chaos layer around a stop's ports (queue sends, visibility
//! changes, object reads and writes, metrics) and its batch handler (invocations that die after
//! part of their work was sent).
//!
//! Faults are drawn from a seed and from what each call is about (the queue and bodies sent,
//! the key read, the messages of a batch) and how often that same call was made before, so a
//! ride with the same seed injects the same faults into the same calls, whatever the order
//! concurrent invocations make them in. Every fault is one a real service produces and busline
//! must survive; the counts say how many were injected, per stop and kind.
//!
//! The spec is a comma-separated list of `fault=rate` (a percentage or a fraction):
//!
//! ```
//! let spec: busline_chaos::ChaosSpec = "send=10%,send-entry=5%,object-5xx=5%,slow-read=2%@50ms,abort=3%"
//!     .parse()
//!     .expect("a valid spec");
//! assert_eq!(spec.rate(busline_chaos::Fault::SendEntry), 0.05);
//! ```
//!
//! `all=R` sets every fault at once; later items override earlier ones.

mod dice;
mod handler;
mod ports;
mod spec;

pub use dice::{FaultCounts, StopChaos};
pub use handler::ChaosHandler;
pub use ports::{ChaosMetrics, ChaosObjects, ChaosQueues};
pub use spec::{ChaosSpec, ChaosSpecError, Fault};

/// The environment variable that switches chaos on in a deployed function (off when unset or
/// empty), with [`SEED_VAR`] for its seed. Refused unless [`STAGE_VAR`] is `test`.
pub const CHAOS_VAR: &str = "BUSLINE_CHAOS";
/// The chaos seed's variable (0 when unset).
pub const SEED_VAR: &str = "BUSLINE_CHAOS_SEED";
/// The deployment stage's variable; chaos runs only where it is [`TEST_STAGE`].
pub const STAGE_VAR: &str = "STAGE";
/// The only stage chaos may run in.
pub const TEST_STAGE: &str = "test";
