//! The target table as the stop needs it: its key attributes and their types, read once at
//! init with `DescribeTable` and checked against `KEY_FIELDS`.

use crate::SinkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType};

/// A key attribute of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// Its name.
    pub name: String,
    /// Its type (`S`, `N` or `B`).
    pub kind: ScalarAttributeType,
}

/// The table's name and key (partition key first, then the sort key if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// Its key attributes.
    pub key: Vec<KeyAttribute>,
    /// True when each passenger's id is the partition key (no `KEY_FIELDS`).
    pub keyed_by_id: bool,
}

/// Describes the table and checks that the settings can key its items; the message says what
/// to change.
pub async fn describe(client: &Client, config: &SinkConfig) -> Result<Table, String> {
    let output = client
        .describe_table()
        .table_name(&config.table)
        .send()
        .await
        .map_err(|err| match err.code() {
            Some("ResourceNotFoundException") => "the table does not exist".to_owned(),
            _ => busline_core::error::chain(&err),
        })?;
    let description = output
        .table()
        .ok_or("DescribeTable returned no table description")?;
    let type_of = |name: &str| {
        description
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == name)
            .map(|d| d.attribute_type().clone())
    };
    let mut key = Vec::new();
    for wanted in [KeyType::Hash, KeyType::Range] {
        for element in description.key_schema() {
            if *element.key_type() == wanted {
                let name = element.attribute_name().to_owned();
                let kind = type_of(&name)
                    .ok_or_else(|| format!("key attribute {name} has no attribute definition"))?;
                key.push(KeyAttribute { name, kind });
            }
        }
    }
    check_key(&config.key_fields, &key)?;
    Ok(Table {
        name: config.table.clone(),
        keyed_by_id: config.key_fields.is_empty(),
        key,
    })
}

/// Whether `key_fields` can key a table whose key is `key`.
fn check_key(key_fields: &[String], key: &[KeyAttribute]) -> Result<(), String> {
    let names: Vec<&str> = key.iter().map(|k| k.name.as_str()).collect();
    let listed = names.join(",");
    if key.iter().any(|k| k.kind == ScalarAttributeType::B) {
        return Err(format!(
            "the table's key ({listed}) has a binary attribute; the sink writes string and number keys"
        ));
    }
    if key_fields.is_empty() {
        return match key {
            [only] if only.kind == ScalarAttributeType::S => Ok(()),
            [only] => Err(format!(
                "the partition key {} is a number, and passenger ids are strings: set KEY_FIELDS={} to key items by that field",
                only.name, only.name
            )),
            _ => Err(format!(
                "the table's key is {listed} (with a sort key): set KEY_FIELDS={listed} to key items by those fields"
            )),
        };
    }
    let mut declared: Vec<&str> = key_fields.iter().map(String::as_str).collect();
    let mut expected = names.clone();
    declared.sort_unstable();
    expected.sort_unstable();
    if declared == expected {
        Ok(())
    } else {
        Err(format!(
            "KEY_FIELDS={} does not match the table's key {listed}",
            key_fields.join(",")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(name: &str, kind: ScalarAttributeType) -> KeyAttribute {
        KeyAttribute {
            name: name.to_owned(),
            kind,
        }
    }

    #[test]
    fn the_passenger_id_keys_a_table_with_one_string_key() {
        assert!(check_key(&[], &[attribute("id", ScalarAttributeType::S)]).is_ok());
        let number = check_key(&[], &[attribute("id", ScalarAttributeType::N)])
            .expect_err("ids are strings");
        assert!(number.contains("set KEY_FIELDS=id"), "{number}");
        let sorted = check_key(
            &[],
            &[
                attribute("pk", ScalarAttributeType::S),
                attribute("sk", ScalarAttributeType::N),
            ],
        )
        .expect_err("a sort key needs fields");
        assert!(sorted.contains("set KEY_FIELDS=pk,sk"), "{sorted}");
    }

    #[test]
    fn declared_key_fields_must_be_the_tables_key() {
        let key = [
            attribute("pk", ScalarAttributeType::S),
            attribute("sk", ScalarAttributeType::N),
        ];
        assert!(check_key(&["sk".into(), "pk".into()], &key).is_ok());
        let wrong = check_key(&["pk".into()], &key).expect_err("sort key missing");
        assert!(
            wrong.contains("KEY_FIELDS=pk does not match the table's key pk,sk"),
            "{wrong}"
        );
    }
}
