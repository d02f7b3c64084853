//! The depot kind: starts a trip by listing the input objects under a prefix and handing out
//! one ticket per object to the next stop, each on its own bus so extracts run side by side.

use async_trait::async_trait;
use busline_core::config::Vars;
use busline_core::id::stable_id;
use busline_core::{
    ConfigError, Depot, InitError, Outbox, Passenger, StopContext, StopError, StopKind, TripError,
    TripRequest,
};
use serde_json::Value;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "depot";

/// The depot kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::depot(KIND, |init| {
        let config = DepotConfig::from_vars(init.settings());
        async move { Ok::<_, InitError>(ObjectDepot::new(config?)) }
    })
}

/// The depot's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepotConfig {
    /// `INPUT_PREFIX`: where input objects are listed, e.g. `input/`.
    pub input_prefix: String,
}

impl DepotConfig {
    /// Reads `INPUT_PREFIX`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Ok(DepotConfig {
            input_prefix: busline_core::config::required(vars, "INPUT_PREFIX")?,
        })
    }
}

/// Hands out one ticket (`{"key", "size"}`) per object under the input prefix.
pub struct ObjectDepot {
    config: DepotConfig,
}

impl ObjectDepot {
    /// A depot with its settings.
    pub fn new(config: DepotConfig) -> Self {
        ObjectDepot { config }
    }

    /// The prefix a request asks for (`input_prefix`, inside `INPUT_PREFIX`), or `INPUT_PREFIX`.
    fn prefix(&self, request: &TripRequest) -> Result<String, TripError> {
        let mut prefix = self.config.input_prefix.clone();
        for (option, value) in &request.options {
            match (option.as_str(), value) {
                ("input_prefix", Value::String(asked)) => prefix = asked.clone(),
                ("input_prefix", other) => {
                    return Err(TripError::BadRequest(format!(
                        "input_prefix must be a string, found {other}"
                    )));
                }
                _ => {
                    return Err(TripError::BadRequest(format!(
                        "unknown field `{option}`, expected `trip_id` or `input_prefix`"
                    )));
                }
            }
        }
        if !prefix.starts_with(&self.config.input_prefix) {
            return Err(TripError::BadRequest(format!(
                "input_prefix {prefix:?} is outside INPUT_PREFIX {:?}",
                self.config.input_prefix
            )));
        }
        Ok(prefix)
    }
}

#[async_trait]
impl Depot for ObjectDepot {
    async fn hand_out(
        &self,
        ctx: &StopContext<'_>,
        request: &TripRequest,
        outbox: &mut Outbox,
    ) -> Result<(), TripError> {
        let prefix = self.prefix(request)?;
        let objects = ctx.objects.list(&prefix).await.map_err(StopError::from)?;
        for object in &objects {
            let mut data = serde_json::Map::new();
            data.insert("key".into(), object.key.clone().into());
            data.insert("size".into(), object.size.into());
            let ticket = Passenger::new(stable_id(&[ctx.trip, &object.key]), None, data);
            outbox.pick_up(1);
            outbox.board(&ticket).await?;
            outbox.depart().await?;
        }
        tracing::info!(
            trip = ctx.trip,
            tickets = objects.len(),
            prefix,
            "tickets handed out"
        );
        Ok(())
    }
}
