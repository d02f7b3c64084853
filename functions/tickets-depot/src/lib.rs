//! The tickets depot: starts a trip by handing out the tickets its `TICKETS` setting lists (a
//! JSON list of objects; one empty ticket by default), each on its own bus, for a source stop
//! whose work its settings describe: an API to page through, say, or one ticket per endpoint.

use async_trait::async_trait;
use busline_core::id::stable_id;
use busline_core::{
    ConfigError, Depot, InitError, Outbox, Passenger, StopContext, StopKind, TripError, TripRequest,
};
use serde_json::{Map, Value};

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "tickets";

/// The tickets kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::depot(KIND, |init| {
        let tickets = tickets(init.optional("TICKETS"));
        async move { Ok::<_, InitError>(TicketsDepot { tickets: tickets? }) }
    })
}

/// The tickets `TICKETS` lists.
fn tickets(text: Option<String>) -> Result<Vec<Map<String, Value>>, ConfigError> {
    let Some(text) = text else {
        return Ok(vec![Map::new()]);
    };
    serde_json::from_str(&text).map_err(|err| ConfigError::Invalid {
        var: "TICKETS".into(),
        value: text.clone(),
        reason: format!("{err} (expected a JSON list of objects, e.g. [{{\"url\": \"https://api.example.com/colors\"}}])"),
    })
}

/// Hands out the configured tickets.
pub struct TicketsDepot {
    tickets: Vec<Map<String, Value>>,
}

#[async_trait]
impl Depot for TicketsDepot {
    async fn hand_out(
        &self,
        ctx: &StopContext<'_>,
        _request: &TripRequest,
        outbox: &mut Outbox,
    ) -> Result<(), TripError> {
        for (index, ticket) in self.tickets.iter().enumerate() {
            let id = stable_id(&[ctx.trip, &index.to_string()]);
            outbox.pick_up(1);
            outbox
                .board(&Passenger::new(id, None, ticket.clone()))
                .await?;
            outbox.depart().await?;
        }
        tracing::info!(
            trip = ctx.trip,
            tickets = self.tickets.len(),
            "tickets handed out"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_default_to_one_empty_and_a_bad_list_is_named() {
        assert_eq!(tickets(None).expect("default"), vec![Map::new()]);
        assert_eq!(
            tickets(Some(r#"[{"url": "u"}, {}]"#.into()))
                .expect("two")
                .len(),
            2
        );
        assert!(
            tickets(Some("{}".into()))
                .unwrap_err()
                .to_string()
                .starts_with("environment variable TICKETS=\"{}\" is invalid: invalid type: map")
        );
    }
}
