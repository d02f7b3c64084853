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

use busline_core::ConfigError;
use busline_core::config::{Vars, optional, parsed, required};

/// The chaos a deployed function runs with: `None` unless [`CHAOS_VAR`] is set. Refused (an
/// init error naming the variable) outside the test stage, so a production function never
/// injects faults even when the variable is set by mistake.
pub fn from_vars(vars: &dyn Vars) -> Result<Option<StopChaos>, ConfigError> {
    let Some(text) = optional(vars, CHAOS_VAR) else {
        return Ok(None);
    };
    let stage = vars.var(STAGE_VAR).unwrap_or_default();
    if stage != TEST_STAGE {
        return Err(ConfigError::Invalid {
            var: CHAOS_VAR.into(),
            value: text,
            reason: format!(
                "fault injection runs only where {STAGE_VAR} is {TEST_STAGE}, and {STAGE_VAR} is {stage:?}"
            ),
        });
    }
    let spec: ChaosSpec = text
        .parse()
        .map_err(|err: ChaosSpecError| ConfigError::Invalid {
            var: CHAOS_VAR.into(),
            value: text.clone(),
            reason: err.to_string(),
        })?;
    let seed = parsed(vars, SEED_VAR, 0u64)?;
    Ok(Some(StopChaos::new(
        spec,
        seed,
        required(vars, "STOP_NAME")?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of as vars;

    #[test]
    fn chaos_is_off_by_default_and_refused_outside_the_test_stage() {
        assert!(
            from_vars(&vars(&[("STAGE", "prod")]))
                .expect("off")
                .is_none()
        );
        assert!(
            from_vars(&vars(&[(CHAOS_VAR, ""), ("STAGE", "prod")]))
                .expect("off")
                .is_none()
        );
        let refused = from_vars(&vars(&[(CHAOS_VAR, "send=5%"), ("STAGE", "prod")]))
            .err()
            .expect("refused");
        assert_eq!(
            refused.to_string(),
            "environment variable BUSLINE_CHAOS=\"send=5%\" is invalid: fault injection runs only where STAGE is test, and STAGE is \"prod\""
        );
        let on = from_vars(&vars(&[
            (CHAOS_VAR, "send=5%"),
            (SEED_VAR, "9"),
            ("STAGE", "test"),
            ("STOP_NAME", "load"),
        ]))
        .expect("valid")
        .expect("on");
        assert_eq!((on.stop(), on.spec().rate(Fault::Send)), ("load", 0.05));
        let bad = from_vars(&vars(&[(CHAOS_VAR, "send"), ("STAGE", "test")]))
            .err()
            .expect("bad spec");
        assert!(bad.to_string().contains("expected fault=rate"), "{bad}");
    }
}
