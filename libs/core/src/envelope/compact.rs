//! What a bus's passengers share, stated once, and envelope version 2's riders. The `origins`
//! are the `[id prefix, source key]` pairs passengers come from (the source key null for a
//! passenger without a source) and the `shapes` the lists of field names, in order, their
//! records have; versions 2 and 3 carry both. Version 2, read but no longer written, gives a
//! passenger whose id is `<prefix><n>` and whose source is `<key>:<n>` (or none) as
//! `[origin, n, shape, [values]]` and any other whole, as in version 1
//! (`{"id":..,"source":..,"data":{..}}`). Ids and sources read back exactly as written, so
//! redelivery and idempotent loads are unchanged.

use super::record::{Shape, Shaped, Span, Text};
use super::{Origin, Passenger, Place};
use crate::error::DecodeError;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Most origins or shapes one packer keeps; later ones are written whole.
const MOST_ENTRIES: usize = 256;

/// The origins and shapes of the buses one packer writes, grown as passengers board. Every
/// bus carries all of them, so a passenger encoded for one bus is valid on the next.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    /// `[id prefix, source key]` pairs.
    origins: Vec<Arc<Origin>>,
    /// Field names in order.
    shapes: Vec<Vec<String>>,
    /// The entries the last passenger used: the next one most likely uses them too.
    last_origin: usize,
    last_shape: usize,
    /// The last carried shape met and its index: the passengers of one bus share it.
    last_carried: Option<(Arc<Shape>, usize)>,
}

/// Dictionaries are equal when they hold the same entries.
impl PartialEq for Dictionary {
    fn eq(&self, other: &Self) -> bool {
        self.origins == other.origins && self.shapes == other.shapes
    }
}

impl Eq for Dictionary {}

impl Dictionary {
    /// The origin, number and shape `passenger` rides compactly under, added to the dictionary
    /// when new; `None` when it must ride whole (its id and source share no number, or the
    /// dictionary is full).
    pub(crate) fn compact(&mut self, passenger: &Passenger) -> Option<(usize, u64, usize)> {
        let (origin, n) = self.origin_of(passenger)?;
        let shape = match passenger.shaped_record() {
            Some(record) => self.shape_of_carried(record.shape()),
            None => self.shape_of(passenger.data().keys()),
        }?;
        Some((origin, n, shape))
    }

    /// How many origins and shapes it holds.
    pub(crate) fn entries(&self) -> (usize, usize) {
        (self.origins.len(), self.shapes.len())
    }

    /// The dictionary's fields of an envelope: `"origins":[..],"shapes":[..],`.
    pub fn json_fields(&self) -> String {
        let origins: Vec<(&str, Option<&str>)> = self
            .origins
            .iter()
            .map(|origin| (origin.prefix(), origin.key()))
            .collect();
        let origins = serde_json::to_string(&origins).unwrap_or_else(|_| "[]".into());
        let shapes = serde_json::to_string(&self.shapes).unwrap_or_else(|_| "[]".into());
        format!(r#""origins":{origins},"shapes":{shapes},"#)
    }

    /// The origin index and number of a numbered passenger, or of one whose id and source
    /// share a trailing number.
    fn origin_of(&mut self, passenger: &Passenger) -> Option<(usize, u64)> {
        if let Some((origin, n)) = passenger.number() {
            return Some((
                self.origin_index(origin.prefix(), origin.key(), Some(origin))?,
                n,
            ));
        }
        let id = passenger.id();
        let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, number) = id.split_at(id.len() - digits);
        if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
            return None;
        }
        let n: u64 = number.parse().ok()?;
        let key = match passenger.source() {
            None => None,
            Some(source) => Some(source.strip_suffix(number)?.strip_suffix(':')?),
        };
        Some((self.origin_index(prefix, key, None)?, n))
    }

    /// The index of the origin of `prefix` and `key`, added when new (as `shared`, the
    /// passenger's own origin, when it has one); `None` when the dictionary is full.
    fn origin_index(
        &mut self,
        prefix: &str,
        key: Option<&str>,
        shared: Option<&Arc<Origin>>,
    ) -> Option<usize> {
        let matches = |known: &Arc<Origin>| {
            shared.is_some_and(|shared| Arc::ptr_eq(known, shared))
                || (known.prefix() == prefix && known.key() == key)
        };
        if self.origins.get(self.last_origin).is_some_and(matches) {
            return Some(self.last_origin);
        }
        let index = match self.origins.iter().position(matches) {
            Some(index) => index,
            None if self.origins.len() < MOST_ENTRIES => {
                let origin = shared.cloned();
                self.origins
                    .push(origin.unwrap_or_else(|| Origin::new(prefix, key.map(str::to_owned))));
                self.origins.len() - 1
            }
            None => return None,
        };
        self.last_origin = index;
        Some(index)
    }

    /// The shape index of a carried record's shape: the last one's when it is the same shape.
    fn shape_of_carried(&mut self, shape: &Arc<Shape>) -> Option<usize> {
        if let Some((last, index)) = &self.last_carried
            && Arc::ptr_eq(last, shape)
        {
            return Some(*index);
        }
        let index = self.shape_of(shape.names().iter())?;
        self.last_carried = Some((shape.clone(), index));
        Some(index)
    }

    /// The shape index of these field names, in order.
    fn shape_of<'n>(
        &mut self,
        names: impl ExactSizeIterator<Item = &'n String> + Clone,
    ) -> Option<usize> {
        let matches = |shape: &Vec<String>| {
            shape.len() == names.len() && shape.iter().zip(names.clone()).all(|(a, b)| a == b)
        };
        if self.shapes.get(self.last_shape).is_some_and(matches) {
            return Some(self.last_shape);
        }
        let index = match self.shapes.iter().position(matches) {
            Some(index) => index,
            None if self.shapes.len() < MOST_ENTRIES => {
                self.shapes.push(names.cloned().collect());
                self.shapes.len() - 1
            }
            None => return None,
        };
        self.last_shape = index;
        Some(index)
    }
}

/// A version 2 rider as read: compact, where its values' JSON text lies, or a whole passenger.
pub(crate) enum Rider {
    Compact {
        origin: usize,
        n: u64,
        shape: usize,
        values: ValueSpans,
    },
    /// Boxed: a bus's riders are mostly compact, and a list of them grows as it is read.
    Whole(Box<Passenger>),
}

/// Where each value of a compact rider lies as read: the memory range of its text in the body
/// being parsed ([`carried_text`] makes each a span within that body).
pub(crate) struct ValueSpans(pub(crate) Vec<Range<usize>>);

impl<'de> Deserialize<'de> for ValueSpans {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Room for most records without growing; a list of values has no size hint.
        deserializer.deserialize_seq(ValueSpansVisitor(8))
    }
}

/// Reads a list of values, expecting about this many.
pub(crate) struct ValueSpansVisitor(pub(crate) usize);

impl<'de> de::DeserializeSeed<'de> for ValueSpansVisitor {
    type Value = ValueSpans;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ValueSpans, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ValueSpansVisitor {
    type Value = ValueSpans;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ValueSpans, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(self.0));
        while let Some(value) = seq.next_element::<&'de RawValue>()? {
            let start = value.get().as_ptr() as usize;
            values.push(start..start + value.get().len());
        }
        Ok(ValueSpans(values))
    }
}

impl<'de> Deserialize<'de> for Rider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RiderVisitor)
    }
}

struct RiderVisitor;

impl<'de> Visitor<'de> for RiderVisitor {
    type Value = Rider;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a passenger: [origin, number, shape, [values]] or {\"id\", \"data\"}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rider, A::Error> {
        let missing = |what| de::Error::custom(format!("a compact passenger lacks its {what}"));
        let origin = seq.next_element()?.ok_or_else(|| missing("origin"))?;
        let n = seq.next_element()?.ok_or_else(|| missing("number"))?;
        let shape = seq.next_element()?.ok_or_else(|| missing("shape"))?;
        let values = seq.next_element()?.ok_or_else(|| missing("values"))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a compact passenger has four elements"));
        }
        Ok(Rider::Compact {
            origin,
            n,
            shape,
            values,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Rider, A::Error> {
        Passenger::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(|passenger| Rider::Whole(Box::new(passenger)))
    }
}

/// The passengers of a version 2 bus, from its riders (parsed from `body` itself: their value
/// spans are memory ranges in it) and dictionary; the error names the passenger (by
/// position) and what it refers to that the bus lacks.
pub(crate) fn passengers(
    body: &Arc<str>,
    riders: Vec<Rider>,
    origins: &[(String, Option<String>)],
    shapes: &[Vec<String>],
) -> Result<Vec<Passenger>, DecodeError> {
    let entries = read_dictionary(origins, shapes)?;
    riders
        .into_iter()
        .enumerate()
        .map(|(i, rider)| match rider {
            Rider::Whole(passenger) => Ok(*passenger),
            Rider::Compact {
                origin,
                n,
                shape,
                values,
            } => {
                let bad =
                    |what: String| DecodeError::Compact(format!("passenger {}: {what}", i + 1));
                let origin = entries.origin(origin).map_err(bad)?;
                let fields = entries.shape(shape).map_err(bad)?;
                let ValueSpans(values) = values;
                if fields.names().len() != values.len() {
                    return Err(bad(format!(
                        "{} values for a shape of {} fields",
                        values.len(),
                        fields.names().len()
                    )));
                }
                let names = fields.names();
                let values = carried_values(body, names.len(), names.iter().zip(values));
                let record = Shaped::new(fields.clone(), body.clone(), values.map_err(bad)?);
                Ok(Passenger::shaped(
                    Place::numbered(origin.clone(), n),
                    record,
                ))
            }
        })
        .collect()
}

/// A bus's dictionary as read.
pub(crate) struct Entries {
    /// Its origins.
    origins: Vec<Arc<Origin>>,
    /// Its shapes, each naming no field twice.
    shapes: Vec<Arc<Shape>>,
}

impl Entries {
    /// Origin `index`, or why the bus lacks it.
    pub(crate) fn origin(&self, index: usize) -> Result<&Arc<Origin>, String> {
        let known = self.origins.len();
        (self.origins.get(index))
            .ok_or_else(|| format!("origin {index} is not among the bus's {known}"))
    }

    /// Shape `index`, or why the bus lacks it.
    pub(crate) fn shape(&self, index: usize) -> Result<&Arc<Shape>, String> {
        let known = self.shapes.len();
        (self.shapes.get(index))
            .ok_or_else(|| format!("shape {index} is not among the bus's {known}"))
    }
}

/// A bus's origins, and its shapes checked to name no field twice.
pub(crate) fn read_dictionary(
    origins: &[(String, Option<String>)],
    shapes: &[Vec<String>],
) -> Result<Entries, DecodeError> {
    let origins = origins
        .iter()
        .map(|(prefix, key)| Origin::new(prefix.clone(), key.clone()))
        .collect();
    let shapes = shapes
        .iter()
        .enumerate()
        .map(|(i, names)| {
            Shape::checked(names.clone())
                .map_err(|name| DecodeError::Compact(format!("shape {i} names `{name}` twice")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Entries { origins, shapes })
}

/// The value of field `name` read at memory range `read` of `body`, as a carried text of
/// `body`, checked to parse; else why not, naming the field.
pub(crate) fn carried_text(read: Range<usize>, body: &str, name: &str) -> Result<Text, String> {
    let base = body.as_ptr() as usize;
    let range = read.start.wrapping_sub(base)..read.end.wrapping_sub(base);
    let text = body
        .get(range.clone())
        .ok_or_else(|| format!("field `{name}` was not read from this bus's body"))?;
    check_parses(text).map_err(|err| format!("field `{name}`: {err}"))?;
    let span = Span::of(range)
        .ok_or_else(|| format!("field `{name}` lies past the first 4 GiB of its bus's body"))?;
    Ok(Text::Carried(span))
}

/// A record's values, one per `(field name, memory range)` of `reads`, as carried texts of
/// `body` (see [`carried_text`]). The list is allocated at its final size, `fields`:
/// collecting a `Result` grows a list by doubling, and a bus's values are most of what its
/// passengers hold.
pub(crate) fn carried_values<'n>(
    body: &str,
    fields: usize,
    reads: impl Iterator<Item = (&'n String, Range<usize>)>,
) -> Result<Vec<Text>, String> {
    let mut values = Vec::with_capacity(fields);
    for (name, read) in reads {
        values.push(carried_text(read, body, name)?);
    }
    Ok(values)
}

/// Checks a carried value parses as a [`Value`] will when a stop reads it. The reader's raw
/// scan already checked its syntax; only escapes (a lone surrogate) and nesting (the
/// parser's depth limit) can still fail, so only values with either are parsed now.
pub(crate) fn check_parses(text: &str) -> Result<(), serde_json::Error> {
    if text.starts_with(['[', '{']) || text.contains('\\') {
        serde_json::from_str::<Value>(text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{BusHeader, Envelope, Fields, JsonValues, decode_envelope};
    use crate::packer::{BusSizing, PackedBus, Packer};
    use proptest::prelude::*;

    fn header() -> BusHeader {
        BusHeader {
            trip: "t".into(),
            route: "r".into(),
            from: "extract".into(),
            hop: 1,
            created: "2026-12-02T00:00:00.000Z".into(),
        }
    }

    fn pack(passengers: &[Passenger], budget: usize) -> Vec<PackedBus> {
        let mut packer = Packer::new(header(), "origin", BusSizing::plain(budget));
        let mut out = Vec::new();
        for passenger in passengers {
            packer.board(passenger, &mut out).expect("boards");
        }
        packer.finish(&mut out);
        out
    }

    fn unpack(buses: &[PackedBus]) -> Vec<Passenger> {
        buses
            .iter()
            .flat_map(|bus| {
                let envelope: Envelope<Passenger> = decode_envelope(&bus.body).expect("decodes");
                envelope.passengers
            })
            .collect()
    }

    fn row(id: &str, source: Option<&str>, data: serde_json::Value) -> Passenger {
        let data = data.as_object().cloned().unwrap_or_default();
        Passenger::new(id, source.map(str::to_owned), data)
    }

    #[test]
    fn passengers_from_one_source_are_written_once_each_and_read_back_exactly() {
        let passengers: Vec<Passenger> = (2..2002)
            .map(|n| {
                row(
                    &format!("0123456789abcdef:{n}"),
                    Some(&format!("input/part-00000.csv:{n}")),
                    serde_json::json!({"Name": format!("color-{n:08}"), "RGB": "(1, 2, 3)", "n": 12.50}),
                )
            })
            .collect();
        let compact = pack(&passengers, 1 << 20);
        assert_eq!(compact.len(), 1);
        assert!(compact[0].body.contains(r#""origins":[["0123456789abcdef:","input/part-00000.csv"]],"shapes":[["Name","RGB","n"]]"#));
        assert!(compact[0].body.contains(r#""passengers":[[0,0,[2,1,1,1,"#));
        assert!(
            compact[0]
                .body
                .contains(r#"[["color-00000002","color-00000003","#)
        );
        assert!(compact[0].body.contains(r#"],["(1, 2, 3)","(1, 2, 3)","#));
        assert_eq!(unpack(&compact), passengers);
        let whole: usize = passengers
            .iter()
            .map(|p| serde_json::to_string(p).expect("json").len() + 1)
            .sum();
        assert!(
            compact[0].body.len() * 2 < whole,
            "{} against {whole}",
            compact[0].body.len()
        );
    }

    #[test]
    fn a_bus_of_version_1_is_still_read() {
        let body = r#"{"v":1,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","passengers":[{"id":"a:1","source":"f:1","data":{"x":1}}]}"#;
        let envelope: Envelope<Passenger> = decode_envelope(body).expect("v1");
        assert_eq!(
            envelope.passengers,
            vec![row("a:1", Some("f:1"), serde_json::json!({"x": 1}))]
        );
    }

    #[test]
    fn a_compact_passenger_that_refers_to_what_its_bus_lacks_is_named() {
        let body = r#"{"v":2,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["a:",null]],"shapes":[["x"]],"passengers":[[0,1,0,[1]],[0,2,1,[2]]]}"#;
        let err = decode_envelope::<Passenger>(body)
            .expect_err("refused")
            .to_string();
        assert_eq!(
            err,
            "bus envelope: passenger 2: shape 1 is not among the bus's 1"
        );
        let body = body.replace("[0,2,1,[2]]", "[0,2,0,[2,3]]");
        let err = decode_envelope::<Passenger>(&body)
            .expect_err("refused")
            .to_string();
        assert_eq!(
            err,
            "bus envelope: passenger 2: 2 values for a shape of 1 fields"
        );
    }

    fn passenger_strategy() -> impl Strategy<Value = Passenger> {
        let id = prop_oneof![
            (0u64..5000).prop_map(|n| format!("ticket:{n}")),
            (0u64..50).prop_map(|n| format!("other-{n}")),
            Just("no-number".to_owned()),
            Just("x:007".to_owned()),
        ];
        let source = prop_oneof![
            Just(None),
            Just(Some("a.csv".to_owned())),
            Just(Some("b.csv".to_owned()))
        ];
        let fields = proptest::collection::vec(
            (
                prop_oneof![Just("a"), Just("b"), Just("c")],
                prop_oneof![
                    Just(serde_json::Value::Null),
                    any::<i64>().prop_map(serde_json::Value::from),
                    "[a-z ]{0,8}".prop_map(serde_json::Value::from),
                    Just(serde_json::json!({"nested": [1, "two", null]})),
                ],
            ),
            0..4,
        );
        (id, source, fields, any::<bool>()).prop_map(|(id, source, fields, numbered)| {
            // A source that names the id's number, as extract writes it, or another one.
            let number = id.rsplit(':').next().unwrap_or_default().to_owned();
            let source = source.map(|key| {
                if key == "a.csv" {
                    format!("{key}:{number}")
                } else {
                    format!("{key}:9")
                }
            });
            let data: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            // A passenger numbered from its origin, as extract makes one, where its id and
            // source say it could be.
            let origin = id.strip_prefix("ticket:").and_then(|n| {
                let n: u64 = n.parse().ok()?;
                let key = match source.as_deref() {
                    None => None,
                    Some(source) => Some(source.strip_suffix(&format!(":{n}"))?.to_owned()),
                };
                Some((Origin::new("ticket:", key), n))
            });
            match origin {
                Some((origin, n)) if numbered => numbered_passenger(&origin, n, &data),
                _ => Passenger::new(id, source, data),
            }
        })
    }

    fn numbered_passenger(
        origin: &Arc<Origin>,
        n: u64,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Passenger {
        let fields = Fields::new(data.keys().cloned().collect()).expect("distinct names");
        let mut values = JsonValues::new();
        data.values().for_each(|value| values.push_value(value));
        Passenger::numbered(origin, n, &fields, &values).expect("one value per field")
    }

    #[test]
    fn a_numbered_passenger_rides_compact_and_reads_back_as_its_origin_says() {
        // An id prefix ending in a digit: parsing the id would take it for the number.
        let origin = Origin::new("t7", Some("in/a.csv".to_owned()));
        let data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"x": "é\"", "n": 1.50}"#).expect("a record");
        let passenger = numbered_passenger(&origin, 12, &data);
        let buses = pack(std::slice::from_ref(&passenger), 1 << 16);
        assert!(buses[0].body.contains(r#""origins":[["t7","in/a.csv"]]"#));
        assert!(
            buses[0].body.contains(r#"[0,0,[12],[["é\""],[1.50]]]"#),
            "{}",
            buses[0].body
        );
        let read = unpack(&buses);
        assert_eq!(read, [passenger]);
        assert_eq!(
            (read[0].id(), read[0].source()),
            ("t712", Some("in/a.csv:12"))
        );
    }

    proptest! {
        /// Whatever mix of ids, sources and fields, every passenger reads back exactly as it
        /// boarded, in order, over however many buses.
        #[test]
        fn every_passenger_reads_back_exactly(
            passengers in proptest::collection::vec(passenger_strategy(), 0..200),
            budget in 1024usize..8192,
        ) {
            prop_assert_eq!(unpack(&pack(&passengers, budget)), passengers);
        }
    }
}
