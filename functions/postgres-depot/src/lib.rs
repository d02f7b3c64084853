//! The postgres-ranges depot: starts a trip by splitting the rows of `SOURCE_QUERY` into
//! ranges of `SOURCE_KEY` of about `RANGE_ROWS` rows each, and hands out one ticket per range
//! (`{"from": ..., "to": ..., "key_type": ...}`, `to` absent on the last), each on its own bus
//! so the source stop reads ranges side by side.

use async_trait::async_trait;
use busline_core::id::stable_id;
use busline_core::{
    Depot, InitError, Outbox, Passenger, SecretStore, StopContext, StopError, StopKind, TripError,
    TripRequest,
};
use busline_postgres::{SourceQuery, classify};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "postgres-ranges";

/// The postgres-ranges kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::depot(KIND, |init| {
        let source = SourceQuery::from_vars(init.settings());
        let secrets = init.extension::<Arc<dyn SecretStore>>().cloned();
        let range_rows = init.parsed("RANGE_ROWS", 100_000u64);
        async move {
            let source = source?;
            let range_rows = range_rows?.max(1);
            let pool = busline_postgres::open(KIND, &source.database, secrets.as_ref(), 1)
                .await?
                .pool;
            Ok::<_, InitError>(RangeDepot {
                source,
                range_rows,
                pool,
            })
        }
    })
}

/// Hands out one ticket per key range.
pub struct RangeDepot {
    source: SourceQuery,
    range_rows: u64,
    pool: busline_postgres::Pool,
}

impl RangeDepot {
    /// The key's type and the first key of each range, in order.
    async fn boundaries(&self) -> Result<(String, Vec<String>), StopError> {
        let what = format!("SOURCE_QUERY {}", self.source.query);
        let client = busline_postgres::client(&self.pool, Duration::from_secs(5), &what).await?;
        let fail = |err| classify(&what, err);
        let (from, key) = self.source.from_clause();
        let counted = client
            .query_one(
                &format!("SELECT count(*), pg_typeof(min({key}))::text FROM {from}"),
                &[],
            )
            .await
            .map_err(fail)?;
        let rows: i64 = counted.get(0);
        let key_type: String = counted.get(1);
        if rows == 0 {
            return Ok((key_type, Vec::new()));
        }
        let parts = (rows as u64).div_ceil(self.range_rows);
        let starts = client
            .query(
                &format!(
                    "SELECT min(k)::text FROM (SELECT {key} AS k, ntile({parts}) OVER (ORDER BY {key}) AS part FROM {from}) s \
                     GROUP BY part ORDER BY min(k)"
                ),
                &[],
            )
            .await
            .map_err(fail)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok((key_type, starts))
    }
}

#[async_trait]
impl Depot for RangeDepot {
    async fn hand_out(
        &self,
        ctx: &StopContext<'_>,
        _request: &TripRequest,
        outbox: &mut Outbox,
    ) -> Result<(), TripError> {
        let (key_type, starts) = self.boundaries().await?;
        for (index, from) in starts.iter().enumerate() {
            let mut ticket = Map::new();
            ticket.insert("from".into(), Value::from(from.as_str()));
            if let Some(to) = starts.get(index + 1) {
                ticket.insert("to".into(), Value::from(to.as_str()));
            }
            ticket.insert("key_type".into(), Value::from(key_type.as_str()));
            let id = stable_id(&[ctx.trip, &self.source.query, from]);
            outbox.pick_up(1);
            outbox.board(&Passenger::new(id, None, ticket)).await?;
            outbox.depart().await?;
        }
        tracing::info!(
            trip = ctx.trip,
            tickets = starts.len(),
            key_type,
            "ranges handed out"
        );
        Ok(())
    }
}
