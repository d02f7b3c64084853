//! The trip ledger in a DynamoDB table (`LEDGER_TABLE`): partition key `trip`, sort key
//! `entry`. Each bus is an item `<stop>#<bus>` written only if absent, in one transaction with
//! the trip's totals item `#totals` (its counters added with `ADD`), so a redelivered bus
//! changes nothing and concurrent stops never lose a count. Items expire (TTL attribute
//! `expires`) after the route's retention.

use crate::error::classify;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use backon::{ExponentialBuilder, Retryable};
use busline_core::PortError;
use busline_core::ledger::{
    BusOutcome, Completion, Ledger, LedgerEntry, Recorded, TripState, TripTotals,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The sort key of a trip's totals item.
const TOTALS: &str = "#totals";
/// The prefix of a counter's attribute on the totals item.
const COUNTER: &str = "c:";

type Item = HashMap<String, AttributeValue>;

/// The ledger in one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    retention: Duration,
}

/// The condition on a bus's item: a first record, or the replacement of a dead letter.
struct Condition {
    expression: &'static str,
    name: (&'static str, &'static str),
    value: Option<(&'static str, AttributeValue)>,
}

/// How a transaction ended, when it did not go through.
enum Refused {
    /// The bus's record exists (its condition failed).
    Recorded,
    /// Another transaction touched the same items: worth trying again at once.
    Conflict,
    /// Anything else.
    Failed(PortError),
}

impl DynamoLedger {
    /// The ledger in `table`; items expire `retention` after their last write.
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
            retention,
        }
    }

    /// The ledger in `table`, with a client made from the shared configuration.
    pub fn from_config(
        shared: &aws_config::SdkConfig,
        table: impl Into<String>,
        retention: Duration,
    ) -> Self {
        Self::new(Client::new(shared), table, retention)
    }

    fn resource(&self) -> String {
        format!("dynamodb table {}", self.table)
    }

    fn expires(&self, at_ms: u64) -> AttributeValue {
        number(at_ms / 1000 + self.retention.as_secs())
    }

    /// Writes `entry`'s item (on the condition `condition`) and adds `deltas` to its trip's
    /// totals, in one transaction; transaction conflicts are tried again with backoff.
    async fn write(
        &self,
        entry: &LedgerEntry,
        condition: &Condition,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<bool, PortError> {
        if deltas.is_empty() {
            return self.put_alone(entry, condition).await;
        }
        let attempt = || async {
            match self.transact(entry, condition, deltas).await {
                Ok(()) => Ok(true),
                Err(Refused::Recorded) => Ok(false),
                Err(other) => Err(other),
            }
        };
        let retried = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_jitter()
                    .with_max_times(6),
            )
            .when(|refused| matches!(refused, Refused::Conflict))
            .await;
        match retried {
            Ok(written) => Ok(written),
            Err(Refused::Failed(err)) => Err(err),
            Err(_) => Err(PortError::retryable(
                self.resource(),
                "transaction conflicts on the trip's totals did not clear after 6 tries",
            )),
        }
    }

    /// Writes a record that changes no totals (a departure that left, a dead letter cleared)
    /// as one conditional put: a quarter of what a transaction with the totals costs.
    async fn put_alone(
        &self,
        entry: &LedgerEntry,
        condition: &Condition,
    ) -> Result<bool, PortError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.entry_item(entry)))
            .condition_expression(condition.expression)
            .expression_attribute_names(condition.name.0, condition.name.1);
        if let Some((placeholder, value)) = &condition.value {
            put = put.expression_attribute_values(*placeholder, value.clone());
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(err, &self.resource())),
        }
    }

    async fn transact(
        &self,
        entry: &LedgerEntry,
        condition: &Condition,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<(), Refused> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.entry_item(entry)))
            .condition_expression(condition.expression)
            .expression_attribute_names(condition.name.0, condition.name.1);
        if let Some((placeholder, value)) = &condition.value {
            put = put.expression_attribute_values(*placeholder, value.clone());
        }
        let put = put
            .build()
            .map_err(|err| Refused::Failed(self.invalid(err)))?;
        let update = self.totals_update(entry, deltas).map_err(Refused::Failed)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    service.err()
                else {
                    unreachable!("matched above")
                };
                let codes: Vec<&str> = cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None"))
                    .collect();
                match codes.as_slice() {
                    ["ConditionalCheckFailed", ..] => Err(Refused::Recorded),
                    codes if codes.contains(&"TransactionConflict") => Err(Refused::Conflict),
                    codes => Err(Refused::Failed(PortError::retryable(
                        self.resource(),
                        format!("transaction cancelled: {}", codes.join(", ")),
                    ))),
                }
            }
            Err(err) => Err(Refused::Failed(classify(err, &self.resource()))),
        }
    }

    fn entry_item(&self, entry: &LedgerEntry) -> Item {
        let counters = entry
            .counters
            .iter()
            .map(|(name, value)| (name.clone(), number(*value)))
            .collect();
        HashMap::from([
            ("trip".to_owned(), text(&entry.trip)),
            (
                "entry".to_owned(),
                text(&format!("{}#{}", entry.stop, entry.bus)),
            ),
            ("stop".to_owned(), text(&entry.stop)),
            ("bus".to_owned(), text(&entry.bus)),
            ("outcome".to_owned(), text(outcome_name(entry.outcome))),
            ("at_ms".to_owned(), number(entry.at_ms)),
            ("counters".to_owned(), AttributeValue::M(counters)),
            ("expires".to_owned(), self.expires(entry.at_ms)),
        ])
    }

    /// `ADD` each delta to its counter, and stamp the totals with the entry's time.
    fn totals_update(
        &self,
        entry: &LedgerEntry,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<Update, PortError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(totals_key(&entry.trip)))
            .expression_attribute_names("#first", "first_at_ms")
            .expression_attribute_names("#last", "last_at_ms")
            .expression_attribute_names("#expires", "expires")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":at", number(entry.at_ms))
            .expression_attribute_values(":ttl", self.expires(entry.at_ms))
            .expression_attribute_values(":kind", text("totals"));
        let mut adds = Vec::new();
        for (i, (name, delta)) in deltas.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#c{i}"), format!("{COUNTER}{name}"))
                .expression_attribute_values(format!(":c{i}"), number(*delta));
            adds.push(format!("#c{i} :c{i}"));
        }
        let set =
            "SET #first = if_not_exists(#first, :at), #last = :at, #expires = :ttl, #kind = :kind";
        let expression = match adds.is_empty() {
            true => set.to_owned(),
            false => format!("{set} ADD {}", adds.join(", ")),
        };
        update
            .update_expression(expression)
            .build()
            .map_err(|err| self.invalid(err))
    }

    /// The trip's bus records, in key order; only those whose key starts with `prefix` when
    /// one is given.
    async fn query_entries(
        &self,
        trip: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<LedgerEntry>, PortError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#trip", "trip")
            .expression_attribute_values(":trip", text(trip))
            .consistent_read(true);
        query = match prefix {
            None => query.key_condition_expression("#trip = :trip"),
            Some(prefix) => query
                .key_condition_expression("#trip = :trip AND begins_with(#entry, :prefix)")
                .expression_attribute_names("#entry", "entry")
                .expression_attribute_values(":prefix", text(prefix)),
        };
        let mut pages = query.into_paginator().items().send();
        let mut entries = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|err| classify(err, &self.resource()))?;
            if string(&item, "entry") != TOTALS {
                entries.push(parse_entry(&item));
            }
        }
        Ok(entries)
    }

    fn invalid(&self, err: impl std::error::Error + Send + Sync + 'static) -> PortError {
        PortError::permanent(self.resource(), err)
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, PortError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify(err, &self.resource()))?;
        Ok(got.item)
    }

    async fn replace_dead_letter(&self, entry: &LedgerEntry) -> Result<Recorded, PortError> {
        let key = HashMap::from([
            ("trip".to_owned(), text(&entry.trip)),
            (
                "entry".to_owned(),
                text(&format!("{}#{}", entry.stop, entry.bus)),
            ),
        ]);
        let Some(old) = self.get(key).await?.map(|item| parse_entry(&item)) else {
            return Ok(Recorded::AlreadyRecorded);
        };
        if old.outcome != BusOutcome::DeadLettered || entry.outcome != BusOutcome::Ridden {
            return Ok(Recorded::AlreadyRecorded);
        }
        let condition = Condition {
            expression: "#outcome = :dead",
            name: ("#outcome", "outcome"),
            value: Some((":dead", text(outcome_name(BusOutcome::DeadLettered)))),
        };
        Ok(
            match self
                .write(entry, &condition, &entry.replacing(&old))
                .await?
            {
                true => Recorded::Replaced,
                false => Recorded::AlreadyRecorded,
            },
        )
    }

    /// An `UpdateItem` on the trip's totals; false when its condition failed.
    async fn update_totals(
        &self,
        trip: &str,
        expression: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, PortError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(totals_key(trip)))
            .update_expression(expression)
            .condition_expression(condition);
        for (placeholder, name) in names {
            update = update.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            update = update.expression_attribute_values(placeholder, value);
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(err, &self.resource())),
        }
    }
}

/// The totals item's completion attributes, by their expression names.
const COMPLETION_NAMES: [(&str, &str); 6] = [
    ("#state", "completion_state"),
    ("#dead", "completion_dead_lettered"),
    ("#replayed", "completion_replayed"),
    ("#by", "completion_by"),
    ("#at", "completion_at_ms"),
    ("#announced", "completion_announced"),
];

#[async_trait]
impl Ledger for DynamoLedger {
    async fn record(&self, entry: &LedgerEntry) -> Result<Recorded, PortError> {
        let first = Condition {
            expression: "attribute_not_exists(#entry)",
            name: ("#entry", "entry"),
            value: None,
        };
        if self.write(entry, &first, &entry.deltas()).await? {
            return Ok(Recorded::New);
        }
        self.replace_dead_letter(entry).await
    }

    async fn totals(&self, trip: &str) -> Result<Option<TripTotals>, PortError> {
        Ok(self
            .get(totals_key(trip))
            .await?
            .map(|item| parse_totals(&item)))
    }

    async fn claim_completion(&self, trip: &str, claim: &Completion) -> Result<bool, PortError> {
        // Completion::supersedes, as a condition; a completion from before replays were
        // counted has no #replayed and is superseded by any replay.
        self.update_totals(
            trip,
            "SET #state = :state, #dead = :dead, #replayed = :replayed, #by = :by, #at = :at, \
             #announced = :no",
            "attribute_exists(#entry) AND (attribute_not_exists(#dead) OR #dead > :dead \
             OR #replayed < :replayed OR (attribute_not_exists(#replayed) AND :replayed > :zero))",
            &[&[("#entry", "entry")], COMPLETION_NAMES.as_slice()].concat(),
            vec![
                (":state", text(state_name(claim.state))),
                (":dead", number(claim.dead_lettered)),
                (":replayed", number(claim.replayed)),
                (":zero", number(0u64)),
                (":by", text(&claim.by)),
                (":at", number(claim.at_ms)),
                (":no", AttributeValue::Bool(false)),
            ],
        )
        .await
    }

    async fn release_claim(&self, trip: &str, claim: &Completion) -> Result<(), PortError> {
        self.update_totals(
            trip,
            "REMOVE #state, #dead, #replayed, #by, #at, #announced",
            "#by = :by AND #at = :at AND #dead = :dead AND #replayed = :replayed \
             AND #announced = :no",
            &COMPLETION_NAMES,
            vec![
                (":by", text(&claim.by)),
                (":at", number(claim.at_ms)),
                (":dead", number(claim.dead_lettered)),
                (":replayed", number(claim.replayed)),
                (":no", AttributeValue::Bool(false)),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn mark_announced(&self, trip: &str, claim: &Completion) -> Result<(), PortError> {
        self.update_totals(
            trip,
            "SET #announced = :yes",
            "#dead = :dead AND #replayed = :replayed",
            &[
                ("#announced", "completion_announced"),
                ("#dead", "completion_dead_lettered"),
                ("#replayed", "completion_replayed"),
            ],
            vec![
                (":yes", AttributeValue::Bool(true)),
                (":dead", number(claim.dead_lettered)),
                (":replayed", number(claim.replayed)),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn recent_trips(&self, limit: usize) -> Result<Vec<TripTotals>, PortError> {
        // A scan of the totals items: `bus trips` is an operator's command, and the table
        // holds only the trips of the retention period.
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("#entry = :totals")
            .expression_attribute_names("#entry", "entry")
            .expression_attribute_values(":totals", text(TOTALS))
            .into_paginator()
            .items()
            .send();
        let mut trips = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|err| classify(err, &self.resource()))?;
            trips.push(parse_totals(&item));
        }
        trips.sort_by(|a, b| b.last_at_ms.cmp(&a.last_at_ms).then(a.trip.cmp(&b.trip)));
        trips.truncate(limit);
        Ok(trips)
    }

    async fn entries(&self, trip: &str) -> Result<Vec<LedgerEntry>, PortError> {
        self.query_entries(trip, None).await
    }

    async fn bus_entries(
        &self,
        trip: &str,
        stop: &str,
        bus: &str,
    ) -> Result<Vec<LedgerEntry>, PortError> {
        let own = format!("{stop}#{bus}");
        let key = HashMap::from([
            ("trip".to_owned(), text(trip)),
            ("entry".to_owned(), text(&own)),
        ]);
        let mut entries: Vec<LedgerEntry> = self.get(key).await?.iter().map(parse_entry).collect();
        // Its departures and dead letters, and not the buses whose ids merely start with its.
        let derived = self.query_entries(trip, Some(&format!("{own}~"))).await?;
        entries.extend(derived);
        Ok(entries)
    }
}

fn totals_key(trip: &str) -> Item {
    HashMap::from([
        ("trip".to_owned(), text(trip)),
        ("entry".to_owned(), text(TOTALS)),
    ])
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn string(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn integer<T: std::str::FromStr + Default>(value: Option<&AttributeValue>) -> T {
    value
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

fn outcome_name(outcome: BusOutcome) -> &'static str {
    match outcome {
        BusOutcome::Ridden => "ridden",
        BusOutcome::DeadLettered => "dead_lettered",
    }
}

fn state_name(state: TripState) -> &'static str {
    match state {
        TripState::Starting => "starting",
        TripState::InProgress => "in_progress",
        TripState::Completed => "completed",
        TripState::CompletedWithFailures => "completed_with_failures",
    }
}

fn parse_entry(item: &Item) -> LedgerEntry {
    let counters = item
        .get("counters")
        .and_then(|v| v.as_m().ok())
        .map(|map| {
            map.iter()
                .map(|(name, value)| (name.clone(), integer(Some(value))))
                .collect()
        })
        .unwrap_or_default();
    LedgerEntry {
        trip: string(item, "trip"),
        stop: string(item, "stop"),
        bus: string(item, "bus"),
        outcome: match string(item, "outcome").as_str() {
            "dead_lettered" => BusOutcome::DeadLettered,
            _ => BusOutcome::Ridden,
        },
        at_ms: integer(item.get("at_ms")),
        counters,
    }
}

fn parse_totals(item: &Item) -> TripTotals {
    let counters = item
        .iter()
        .filter_map(|(name, value)| {
            let counter = name.strip_prefix(COUNTER)?;
            Some((counter.to_owned(), integer(Some(value))))
        })
        .collect();
    let completion = item.get("completion_state").map(|_| Completion {
        state: match string(item, "completion_state").as_str() {
            "completed_with_failures" => TripState::CompletedWithFailures,
            _ => TripState::Completed,
        },
        dead_lettered: integer(item.get("completion_dead_lettered")),
        replayed: integer(item.get("completion_replayed")),
        by: string(item, "completion_by"),
        at_ms: integer(item.get("completion_at_ms")),
        announced: item
            .get("completion_announced")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or_default(),
    });
    TripTotals {
        trip: string(item, "trip"),
        counters,
        first_at_ms: integer(item.get("first_at_ms")),
        last_at_ms: integer(item.get("last_at_ms")),
        completion,
    }
}
