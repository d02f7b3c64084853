//! Passengers' JSON values as DynamoDB attribute values, and an item's size as DynamoDB
//! counts it against its 400 KB limit.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;

/// One DynamoDB item: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

/// The largest item DynamoDB stores: 400 KB, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The most significant digits a DynamoDB number keeps.
const MAX_NUMBER_DIGITS: usize = 38;

/// `value` as an attribute value: null, booleans, strings, lists and maps as themselves, and
/// numbers as `N` with the digits the passenger holds (never through a float). A number with
/// more significant digits than DynamoDB keeps is refused rather than rounded.
pub fn attribute(value: &Value) -> Result<AttributeValue, String> {
    Ok(match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => {
            let text = n.to_string();
            let digits = significant_digits(&text);
            if digits > MAX_NUMBER_DIGITS {
                return Err(format!(
                    "number {text} has {digits} significant digits; DynamoDB keeps {MAX_NUMBER_DIGITS}"
                ));
            }
            AttributeValue::N(text)
        }
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(values) => {
            AttributeValue::L(values.iter().map(attribute).collect::<Result<_, _>>()?)
        }
        Value::Object(fields) => AttributeValue::M(
            fields
                .iter()
                .map(|(name, value)| Ok((name.clone(), attribute(value)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// The item's size in bytes as DynamoDB counts it: names and strings by their UTF-8 bytes,
/// numbers by one byte per two significant digits plus one, booleans and nulls one byte,
/// lists and maps three bytes plus one per element.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(values) => 3 + values.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::M(fields) => {
            3 + fields
                .iter()
                .map(|(name, v)| name.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::B(bytes) => bytes.as_ref().len(),
        AttributeValue::Ss(values) => values.iter().map(String::len).sum(),
        AttributeValue::Ns(values) => values.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(values) => values.iter().map(|b| b.as_ref().len()).sum(),
        // A type this SDK version does not know: the sink never writes one.
        _ => 0,
    }
}

fn number_size(text: &str) -> usize {
    significant_digits(text).div_ceil(2) + 1
}

/// The digits of a number's mantissa without leading and trailing zeros (at least one).
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_matches('0').len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_map_to_dynamodb_types_with_their_digits() {
        let value: Value = serde_json::from_str(
            r#"{"id": "a", "amount": 12345678901234567890.123456789, "ok": true, "none": null,
               "tags": ["x", 1], "nested": {"k": "v"}}"#,
        )
        .expect("json");
        let AttributeValue::M(map) = attribute(&value).expect("fits") else {
            panic!("an object is a map")
        };
        assert_eq!(
            map["amount"],
            AttributeValue::N("12345678901234567890.123456789".into())
        );
        assert_eq!(map["ok"], AttributeValue::Bool(true));
        assert_eq!(map["none"], AttributeValue::Null(true));
        assert_eq!(
            map["tags"],
            AttributeValue::L(vec![
                AttributeValue::S("x".into()),
                AttributeValue::N("1".into())
            ])
        );
        assert_eq!(
            map["nested"],
            AttributeValue::M(HashMap::from([("k".into(), AttributeValue::S("v".into()))]))
        );
    }

    #[test]
    fn a_number_dynamodb_would_round_is_refused() {
        let value: Value =
            serde_json::from_str("12345678901234567890123456789012345678901").expect("json");
        let err = attribute(&value).expect_err("41 digits");
        assert!(err.contains("41 significant digits"), "{err}");
        let fits: Value =
            serde_json::from_str("1000000000000000000000000000000000000000000").expect("json");
        assert!(
            attribute(&fits).is_ok(),
            "trailing zeros are not significant"
        );
    }

    #[test]
    fn sizes_count_as_dynamodb_counts() {
        let item: Item = [
            (
                "name".to_owned(),
                attribute(&json!("héllo")).expect("string"),
            ),
            ("n".to_owned(), attribute(&json!(12345)).expect("number")),
            ("flag".to_owned(), attribute(&json!(false)).expect("bool")),
            (
                "list".to_owned(),
                attribute(&json!(["ab", null])).expect("list"),
            ),
        ]
        .into_iter()
        .collect();
        // name 4 + 6 bytes; n 1 + (5 digits: 3 + 1); flag 4 + 1; list 4 + 3 + (2 + 1) + (1 + 1)
        assert_eq!(item_size(&item), 10 + 5 + 5 + 12);
    }
}
