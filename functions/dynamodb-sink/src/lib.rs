//! The dynamodb-sink stop: drops each bus's passengers off into a DynamoDB table with
//! `BatchWriteItem`, 25 items a request, items left unprocessed sent again with backoff. Items
//! are keyed by the declared key fields or by the passenger id, so a redelivered bus writes
//! the same items again and changes nothing. JSON values map to DynamoDB types with numbers'
//! digits kept; an item over 400 KB, a number DynamoDB would round, or an item DynamoDB
//! refuses is rejected with the reason while the rest of the bus is written. The table must
//! exist: the stop describes it at init and checks its key against the settings.

mod item;
mod settings;
mod table;
mod write;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType};
use busline_core::envelope::Passenger;
use busline_core::{InitError, Outbox, Stop, StopContext, StopError, StopKind};
use item::{Item, MAX_ITEM_BYTES};
pub use settings::SinkConfig;
use std::collections::HashSet;
use table::Table;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "dynamodb-sink";

/// The dynamodb-sink kind, as the registry builds it: a DynamoDB client from the host's AWS
/// configuration and the table's key at init.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = SinkConfig::from_vars(init.settings());
        let shared = init.require::<aws_config::SdkConfig>().cloned();
        async move { DynamoSink::connect(config?, aws_sdk_dynamodb::Client::new(&shared?)).await }
    })
}

/// The dynamodb-sink stop.
pub struct DynamoSink {
    config: SinkConfig,
    client: aws_sdk_dynamodb::Client,
    table: Table,
}

impl DynamoSink {
    /// Describes the table with `client`; the error names the table and what to change.
    pub async fn connect(
        config: SinkConfig,
        client: aws_sdk_dynamodb::Client,
    ) -> Result<Self, InitError> {
        let table = table::describe(&client, &config).await.map_err(|message| {
            InitError::resource(format!("DynamoDB table {}", config.table), message)
        })?;
        Ok(DynamoSink {
            config,
            client,
            table,
        })
    }

    /// The passenger's item and the text of its key, or why it has none.
    fn item(&self, passenger: &Passenger) -> Result<(String, Item), String> {
        let mut item = Item::with_capacity(passenger.data().len() + 1);
        for (field, value) in passenger.data() {
            let value =
                item::attribute(value).map_err(|reason| format!("field `{field}`: {reason}"))?;
            item.insert(field.clone(), value);
        }
        let key = if self.table.keyed_by_id {
            let name = &self.table.key[0].name;
            if item.contains_key(name) {
                return Err(format!(
                    "field `{name}` is the table's partition key, which holds the passenger id here \
                     (set KEY_FIELDS={name} to key items by the field)"
                ));
            }
            item.insert(name.clone(), AttributeValue::S(passenger.id().to_owned()));
            passenger.id().to_owned()
        } else {
            self.key_text(&item)?
        };
        let size = item::item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(format!(
                "the item is {size} bytes; DynamoDB stores items of at most {MAX_ITEM_BYTES} bytes (400 KB)"
            ));
        }
        Ok((key, item))
    }

    /// The key attributes' values joined, after checking each is there with the table's type.
    fn key_text(&self, item: &Item) -> Result<String, String> {
        let mut parts = Vec::with_capacity(self.table.key.len());
        for key in &self.table.key {
            let name = &key.name;
            let value = item
                .get(name)
                .ok_or_else(|| format!("key field `{name}` is missing"))?;
            let text = match (&key.kind, value) {
                (ScalarAttributeType::S, AttributeValue::S(text))
                | (ScalarAttributeType::N, AttributeValue::N(text)) => text,
                (ScalarAttributeType::N, _) => {
                    return Err(format!(
                        "key field `{name}` must be a number (the table's type N)"
                    ));
                }
                _ => {
                    return Err(format!(
                        "key field `{name}` must be a string (the table's type S)"
                    ));
                }
            };
            if text.is_empty() {
                return Err(format!("key field `{name}` is empty"));
            }
            parts.push(text.as_str());
        }
        Ok(parts.join("\u{1f}"))
    }
}

#[async_trait]
impl Stop for DynamoSink {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut keyed = Vec::with_capacity(passengers.len());
        for (index, passenger) in passengers.iter().enumerate() {
            match self.item(passenger) {
                Ok((key, item)) => keyed.push((key, index, item)),
                Err(reason) => refused.push((index, reason)),
            }
        }
        let items = last_per_key(keyed);
        let window = ctx.wait_limit(self.config.unprocessed_retry);
        let writer = write::Writer {
            client: &self.client,
            table: &self.table.name,
            concurrency: self.config.write_concurrency,
            window,
        };
        refused.extend(writer.write(&items).await?);
        outbox.written_but(&passengers, refused).await
    }
}

/// The items with one item per key, the last passenger's: DynamoDB refuses a request that
/// writes one key twice, and the last write is what a sequence of puts would leave.
fn last_per_key(keyed: Vec<(String, usize, Item)>) -> Vec<(usize, Item)> {
    let mut seen = HashSet::with_capacity(keyed.len());
    let mut items: Vec<(usize, Item)> = keyed
        .into_iter()
        .rev()
        .filter_map(|(key, index, item)| seen.insert(key).then_some((index, item)))
        .collect();
    items.reverse();
    items
}
