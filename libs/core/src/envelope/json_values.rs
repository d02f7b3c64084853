//! The values of one record written as JSON text, in its fields' order: what a reader of text
//! input (CSV) builds instead of a [`Value`] per field, so a passenger costs one allocation for
//! its values, and a stop writes them on as they are.

use serde_json::Value;
use serde_json::value::RawValue;
use std::ops::Range;

/// The values of one record as JSON text, in order; cleared and reused from record to record.
#[derive(Debug, Default, Clone)]
pub struct JsonValues {
    text: Vec<u8>,
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
        serde_json::to_writer(&mut self.text, text)
            .expect("a str serializes, and a Vec takes every write");
        self.end();
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
        serde_json::to_writer(&mut self.text, value)
            .expect("a Value serializes (its keys are strings), and a Vec takes every write");
        self.end();
    }

    /// The text of all the values, one after another.
    pub(crate) fn text(&self) -> &[u8] {
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
        self.text.extend_from_slice(json.as_bytes());
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
        let text = std::str::from_utf8(values.text()).expect("utf-8");
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
}
