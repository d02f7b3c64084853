//! The postgres-source stop: for each range ticket of the postgres-ranges depot, reads the rows
//! of `SOURCE_QUERY` whose `SOURCE_KEY` falls in the range, in key order, through a server-side
//! portal `FETCH_ROWS` rows at a time (never the whole result in memory), and boards each row,
//! as PostgreSQL's `row_to_json` writes it (numbers keep their digits), as a passenger whose id
//! comes from its key: a re-read yields the same ids. Near the deadline the ticket goes back to
//! the stop's queue to continue after the last key read.

use async_trait::async_trait;
use busline_core::envelope::Passenger;
use busline_core::{InitError, Outbox, SecretStore, Stop, StopContext, StopError, StopKind};
use busline_postgres::{SourceQuery, classify};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "postgres-source";

/// The postgres-source kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let source = SourceQuery::from_vars(init.settings());
        let secrets = init.extension::<Arc<dyn SecretStore>>().cloned();
        let fetch_rows = init.parsed("FETCH_ROWS", 1000i32);
        async move {
            let source = source?;
            let pool = busline_postgres::open(KIND, &source.database, secrets.as_ref(), 2)
                .await?
                .pool;
            Ok::<_, InitError>(PostgresSource {
                source,
                fetch_rows: fetch_rows?.max(1),
                pool,
            })
        }
    })
}

/// One range of keys: from `from` (exclusive when `after`, as a continuation resumes) up to
/// `to` (exclusive; open when absent), of type `key_type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The first key, as text.
    pub from: String,
    /// The key after the last, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The key's type, as PostgreSQL names it (`bigint`, `timestamp with time zone`).
    pub key_type: String,
    /// True when `from` was already read (a continuation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after: bool,
}

/// The postgres-source stop.
pub struct PostgresSource {
    source: SourceQuery,
    fetch_rows: i32,
    pool: busline_postgres::Pool,
}

impl PostgresSource {
    /// The statement that reads `range` in key order: each row's key and its JSON.
    fn sql(&self, range: &Range) -> Result<String, String> {
        // The type comes from the depot's pg_typeof; refuse anything that is not a type name.
        let well_formed = range
            .key_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _(),".contains(c));
        if !well_formed {
            return Err(format!("key_type {:?} is not a type name", range.key_type));
        }
        let (from, key) = self.source.from_clause();
        let t = &range.key_type;
        let lower = if range.after { ">" } else { ">=" };
        let upper = match range.to {
            Some(_) => format!(" AND {key} < $2::text::{t}"),
            None => String::new(),
        };
        Ok(format!(
            "SELECT {key}::text, row_to_json(q)::text FROM {from} WHERE {key} {lower} $1::text::{t}{upper} ORDER BY {key}"
        ))
    }

    /// Reads one range ticket's rows until its end (`None`) or until the deadline is near:
    /// then the range that continues after the last key boarded.
    async fn read(
        &self,
        ctx: &StopContext<'_>,
        range: &Range,
        sql: &str,
        outbox: &mut Outbox,
    ) -> Result<Option<Range>, StopError> {
        let what = format!("SOURCE_QUERY {}", self.source.query);
        let fail = |err| classify(&what, err);
        let mut client =
            busline_postgres::client(&self.pool, Duration::from_secs(10), &what).await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(fail)?;
        let statement = tx.prepare(sql).await.map_err(fail)?;
        let portal = match &range.to {
            Some(to) => tx.bind(&statement, &[&range.from, to]).await,
            None => tx.bind(&statement, &[&range.from]).await,
        }
        .map_err(fail)?;
        loop {
            let rows = tx
                .query_portal(&portal, self.fetch_rows)
                .await
                .map_err(fail)?;
            let Some(last) = rows.last().map(|row| row.get::<_, String>(0)) else {
                return Ok(None);
            };
            outbox.pick_up(rows.len() as u64);
            for row in &rows {
                let key: String = row.get(0);
                let json: String = row.get(1);
                match serde_json::from_str::<Map<String, Value>>(&json) {
                    Ok(record) => outbox.board(&self.passenger(&key, record)).await?,
                    Err(err) => {
                        let raw = Passenger::new(self.id(&key), Some(self.place(&key)), Map::new());
                        outbox
                            .reject(&raw.reject(format!("row_to_json gave no object: {err}")))
                            .await?;
                    }
                }
            }
            if rows.len() < self.fetch_rows as usize {
                return Ok(None);
            }
            if ctx.deadline_near() {
                return Ok(Some(Range {
                    from: last,
                    after: true,
                    ..range.clone()
                }));
            }
        }
    }

    fn id(&self, key: &str) -> String {
        format!("{}:{key}", self.source.name)
    }

    /// Where a row came from, for reasons: the source's name and the row's key.
    fn place(&self, key: &str) -> String {
        format!("{} {}={key}", self.source.name, self.source.key)
    }

    fn passenger(&self, key: &str, record: Map<String, Value>) -> Passenger {
        Passenger::new(self.id(key), Some(self.place(key)), record)
    }
}

#[async_trait]
impl Stop for PostgresSource {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        tickets: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let mut tickets = tickets.into_iter();
        while let Some(ticket) = tickets.next() {
            let range: Range = match serde_json::from_value(Value::Object(ticket.data().clone())) {
                Ok(range) => range,
                Err(err) => {
                    outbox
                        .reject(&ticket.reject(format!("not a range ticket: {err}")))
                        .await?;
                    continue;
                }
            };
            let sql = match self.sql(&range) {
                Ok(sql) => sql,
                Err(reason) => {
                    outbox.reject(&ticket.reject(reason)).await?;
                    continue;
                }
            };
            match self.read(ctx, &range, &sql, outbox).await? {
                None => outbox.drop_off(1),
                Some(rest) => {
                    let data = match serde_json::to_value(rest) {
                        Ok(Value::Object(data)) => data,
                        _ => return Err(StopError::permanent("a range that is not an object")),
                    };
                    outbox
                        .ride_again(&Passenger::new(ticket.id(), None, data))
                        .await?;
                    // Tickets not yet started go back unchanged, behind the continuation.
                    for ticket in tickets.by_ref() {
                        outbox.ride_again(&ticket).await?;
                    }
                }
            }
        }
        Ok(())
    }
}
