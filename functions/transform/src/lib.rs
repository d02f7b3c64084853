//! The transform stop: applies declarative operations from `TRANSFORM_OPS` to each passenger.
//! A passenger that fails an operation is rejected with the reason; a passenger a filter
//! does not match is dropped off.

mod ops;

use async_trait::async_trait;
use busline_core::config::{StopConfig, Vars, lane_variable, required};
use busline_core::{
    ConfigError, InitError, Passenger, PassengerStop, StopContext, StopError, StopKind, Verdict,
};
pub use ops::{CastTo, Comparison, Condition, LaneCase, Op, Routing};

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "transform";

/// The transform kind, as the registry builds it: a passenger at a time.
pub fn kind() -> StopKind {
    StopKind::each_passenger(KIND, |init| {
        let config = TransformConfig::from_vars(init.settings(), init.config());
        async move { Ok::<_, InitError>(Transform::new(config?)) }
    })
}
/// The transform stop's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformConfig {
    /// `TRANSFORM_OPS`: a JSON array of operations, applied in order.
    pub ops: Vec<Op>,
}

impl TransformConfig {
    /// Reads and checks `TRANSFORM_OPS`: every lane a `route` operation names must be one of
    /// `stop`'s lanes.
    pub fn from_vars(vars: &dyn Vars, stop: &StopConfig) -> Result<Self, ConfigError> {
        let text = required(vars, "TRANSFORM_OPS")?;
        let invalid = |reason: String| ConfigError::Invalid {
            var: "TRANSFORM_OPS".into(),
            value: text.clone(),
            reason,
        };
        let ops: Vec<Op> = serde_json::from_str(&text)
            .map_err(|err| invalid(format!("{err} (expected e.g. [{{\"drop\": [\"HEX\"]}}, {{\"cast\": {{\"age\": \"number\"}}}}])")))?;
        for (index, op) in ops.iter().enumerate() {
            op.check()
                .and_then(|()| check_lanes(op, stop))
                .map_err(|reason| invalid(format!("operation {}: {reason}", index + 1)))?;
        }
        Ok(TransformConfig { ops })
    }
}

/// Every lane `op` may send passengers on must have a queue among `stop`'s lanes.
fn check_lanes(op: &Op, stop: &StopConfig) -> Result<(), String> {
    match op
        .lanes()
        .into_iter()
        .find(|lane| stop.lane_url(lane).is_none())
    {
        None => Ok(()),
        Some(lane) => Err(format!(
            "lane `{lane}` has no queue: set {} (this stop's lanes: {})",
            lane_variable(lane),
            match stop.lane_names().join(", ") {
                names if names.is_empty() => "none".to_owned(),
                names => names,
            }
        )),
    }
}

/// The transform stop.
pub struct Transform {
    config: TransformConfig,
}

impl Transform {
    /// A transform with its operations.
    pub fn new(config: TransformConfig) -> Self {
        Transform { config }
    }
}

#[async_trait]
impl PassengerStop for Transform {
    async fn ride(
        &self,
        _ctx: &StopContext<'_>,
        passenger: &mut Passenger,
    ) -> Result<Verdict, StopError> {
        Ok(ops::apply_all(&self.config.ops, passenger))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of as vars;

    #[test]
    fn a_route_to_a_lane_the_stop_lacks_is_refused_at_init_with_the_variable_to_set() {
        let shared = [
            ("STOP_NAME", "transform"),
            ("ROUTE_NAME", "r"),
            ("QUARANTINE_PREFIX", "quarantine/"),
            ("NEXT_QUEUE_URL", "load"),
        ];
        let ops = r#"[{"drop": ["x"]}, {"route": {"when": [{"lane": "audit", "field": "a", "op": "exists"}]}}]"#;
        let stop = StopConfig::from_vars(&vars(&shared)).expect("shared settings");
        let err = TransformConfig::from_vars(&vars(&[("TRANSFORM_OPS", ops)]), &stop)
            .expect_err("no audit lane");
        assert!(
            err.to_string().ends_with(
                "operation 2: lane `audit` has no queue: set LANE_AUDIT_QUEUE_URL (this stop's lanes: next)"
            ),
            "{err}"
        );
        let mut with_lane = vars(&shared);
        with_lane.insert("LANE_AUDIT_QUEUE_URL".into(), "audit".into());
        let stop = StopConfig::from_vars(&with_lane).expect("shared settings");
        assert!(TransformConfig::from_vars(&vars(&[("TRANSFORM_OPS", ops)]), &stop).is_ok());
    }
}
