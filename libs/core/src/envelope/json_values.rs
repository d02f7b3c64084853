//! The values of one record written as JSON text, in its fields' order: what a reader of text
//! input (CSV) builds instead of a [`Value`] per field, so a passenger costs one allocation for
//! its values, and a stop writes them on as they are.

use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt::Write;
use std::ops::Range;

/// The values of one record as JSON text, in order; cleared and reused from record to record.
#[derive(Debug, Default, Clone)]
pub struct JsonValues {
    /// A `String`, so a record takes it as text without checking its UTF-8 again.
    text: String,
    ends: Vec<usize>,
}

impl JsonValues {
    /// No values.
    pub fn new() -> Self {
        JsonValues::default()
    }

    /// Forgets the values, keeping the room they took.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Adds a string.
    pub fn push_str(&mut self, text: &str) {
        // Most text needs no escape: a check that vectorizes, then one copy.
        if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.text.push('"');
            self.text.push_str(text);
            self.text.push('"');
            return self.end();
        }
        self.push_value(&Value::from(text));
    }

    /// Adds `null`.
    pub fn push_null(&mut self) {
        self.push_json("null");
    }

    /// Adds `true` or `false`.
    pub fn push_bool(&mut self, flag: bool) {
        self.push_json(if flag { "true" } else { "false" });
    }

    /// Adds `text` as a number, digits as written, when it is a JSON number (surrounding
    /// whitespace aside); false, adding nothing, when it is not.
    pub fn push_number_text(&mut self, text: &str) -> bool {
        let is_number = |raw: &RawValue| {
            raw.get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit())
        };
        match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) if is_number(raw) => {
                self.push_json(raw.get());
                true
            }
            _ => false,
        }
    }

    /// Adds any value.
    pub fn push_value(&mut self, value: &Value) {
        // `Value`'s `Display` is serde_json's compact JSON, written straight into the text.
        write!(self.text, "{value}").expect("a Value serializes (its keys are strings)");
        self.end();
    }

    /// The text of all the values, one after another.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Where each value lies in [`JsonValues::text`].
    pub(crate) fn spans(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| start..end)
    }

    fn push_json(&mut self, json: &str) {
        self.text.push_str(json);
        self.end();
    }

    fn end(&mut self) {
        self.ends.push(self.text.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_json_and_numbers_keep_their_digits() {
        let mut values = JsonValues::new();
        values.push_str("a \"b\"\n");
        values.push_null();
        values.push_bool(false);
        assert!(values.push_number_text("12.50"));
        assert!(values.push_number_text(" -0.0e+3 "));
        assert!(!values.push_number_text("007"));
        assert!(!values.push_number_text("\"7\""));
        assert!(!values.push_number_text("12 apples"));
        values.push_value(&serde_json::json!({"k": [1, null]}));
        let text = values.text();
        let spans: Vec<&str> = values.spans().map(|span| &text[span]).collect();
        assert_eq!(
            spans,
            [
                r#""a \"b\"\n""#,
                "null",
                "false",
                "12.50",
                "-0.0e+3",
                r#"{"k":[1,null]}"#
            ]
        );
        assert_eq!(values.len(), 6);
        values.clear();
        assert!(values.is_empty());
    }

    proptest::proptest! {
        /// Text with or without characters to escape is written as serde_json writes it.
        #[test]
        fn a_string_is_written_as_serde_json_writes_it(texts in proptest::collection::vec(".*|[a-z\"\\\\\\x00-\\x1f\u{7f}é]{0,12}", 1..8)) {
            let mut values = JsonValues::new();
            texts.iter().for_each(|text| values.push_str(text));
            let written: Vec<&str> = values.spans().map(|span| &values.text()[span]).collect();
            let expected: Vec<String> = texts.iter().map(|text| serde_json::to_string(text).expect("a str serializes")).collect();
            proptest::prop_assert_eq!(written, expected);
        }
    }
}
