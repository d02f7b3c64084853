//! The bus: a versioned JSON envelope carrying many passengers, and the claim-check pointer
//! (the AWS SQS extended client's format) used when a bus is parked in the object store.
//! Version 3 ([`blocks`]) is written; versions 1, 2 ([`compact`]) and 3 are read.

mod blocks;
pub mod compact;
mod json_values;
mod place;
mod record;

use crate::error::DecodeError;
pub(crate) use blocks::Aboard;
use blocks::{Counted, Item};
use compact::Rider;
pub use json_values::JsonValues;
pub use place::Origin;
pub(crate) use place::Place;
pub use record::Fields;
use record::{Change, Record, Shaped};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The envelope format this build writes.
pub const ENVELOPE_VERSION: u32 = 3;

/// The oldest envelope format this build reads.
pub const OLDEST_READ_VERSION: u32 = 1;

/// One record riding the bus: a JSON object with a stable id.
///
/// A passenger read from a version 2 bus carries its values as the bus's JSON text (and one
/// built [`Passenger::with_fields`] shares its field names with the others): a field is
/// parsed when a stop reads it ([`Passenger::value`] parses that field alone, [`Passenger::get`]
/// and [`Passenger::data`] the whole record, once), and [`Passenger::select`],
/// [`Passenger::remove_fields`], [`Passenger::rename`] and [`Passenger::set`] change it
/// without parsing the rest, so a stop that only moves fields writes them on as they came.
#[derive(Clone)]
pub struct Passenger {
    /// Its deterministic id, derived from the trip and the source position, and where it was
    /// picked up, as `file:line`, so later stops can name it in a rejection.
    place: Place,
    /// The record.
    record: Record,
}

/// A passenger as JSON: `{"id", "source" (when known), "data"}`.
#[derive(Serialize, Deserialize)]
struct PassengerJson<'p> {
    id: Cow<'p, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<Cow<'p, str>>,
    data: Cow<'p, Map<String, Value>>,
}

impl Serialize for Passenger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PassengerJson {
            id: Cow::Borrowed(self.id()),
            source: self.source().map(Cow::Borrowed),
            data: Cow::Borrowed(self.data()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Passenger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = PassengerJson::deserialize(deserializer)?;
        Ok(Passenger::new(
            json.id,
            json.source.map(Cow::into_owned),
            json.data.into_owned(),
        ))
    }
}

/// Shows the id, source and record, not how the record is held (a carried one would show
/// its whole bus).
impl std::fmt::Debug for Passenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passenger")
            .field("id", &self.id())
            .field("source", &self.source())
            .field("data", self.data())
            .finish()
    }
}

/// Passengers are equal when their ids, sources and records are, however they are held.
impl PartialEq for Passenger {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id() && self.source() == other.source() && self.data() == other.data()
    }
}

impl Passenger {
    /// A passenger with a deterministic `id`, where it was picked up (`file:line`), and its record.
    pub fn new(id: impl Into<String>, source: Option<String>, data: Map<String, Value>) -> Self {
        Passenger {
            place: Place::Named {
                id: id.into(),
                source,
            },
            record: Record::Parsed(data),
        }
    }

    /// A passenger of `fields` with `values`, one per field in their order: it holds no field
    /// names of its own (cheaper to build and to write for wide records than [`Passenger::new`]).
    /// The error says when the counts differ.
    pub fn with_fields(
        id: impl Into<String>,
        source: Option<String>,
        fields: &Fields,
        values: Vec<Value>,
    ) -> Result<Self, String> {
        let place = Place::Named {
            id: id.into(),
            source,
        };
        Ok(Passenger::shaped(place, fields.record(&values)?))
    }

    /// Passenger `n` of `origin` (id `<prefix><n>`, source `<key>:<n>`, written out only when
    /// read) whose values are the JSON text of `values`, one per field of `fields` in their
    /// order: the cheapest passenger to build and to send on, as extract makes one per CSV
    /// line. The error says when the counts differ.
    pub fn numbered(
        origin: &Arc<Origin>,
        n: u64,
        fields: &Fields,
        values: &JsonValues,
    ) -> Result<Self, String> {
        let place = Place::numbered(origin.clone(), n);
        Ok(Passenger::shaped(place, fields.record_of_text(values)?))
    }

    /// A passenger whose record is shaped.
    pub(crate) fn shaped(place: Place, record: Shaped) -> Self {
        Passenger {
            place,
            record: Record::Shaped(record),
        }
    }

    /// Its deterministic id.
    pub fn id(&self) -> &str {
        self.place.id()
    }

    /// Where it was picked up (`file:line`), when known.
    pub fn source(&self) -> Option<&str> {
        self.place.source()
    }

    /// The origin and number of a numbered passenger ([`Passenger::numbered`]).
    pub(crate) fn number(&self) -> Option<(&Arc<Origin>, u64)> {
        self.place.number()
    }

    /// The value of `field`, if present (a carried record is parsed whole, once).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data().get(field)
    }

    /// The value of `field` when it is a string.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    /// The value of `field`, if present, parsing only that field of a carried record.
    pub fn value(&self, field: &str) -> Option<Cow<'_, Value>> {
        self.record.value(field)
    }

    /// Sets `field`, in place when present, else appended; other fields are not parsed.
    pub fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.record.set(field, value.into());
    }

    /// Keeps only `fields`, in that order (those it lacks are skipped).
    pub fn select(&mut self, fields: &[String]) {
        self.record.change(Change::Select(fields));
    }

    /// Removes `fields`, keeping the order of the others.
    pub fn remove_fields(&mut self, fields: &[String]) {
        self.record.change(Change::Drop(fields));
    }

    /// Renames fields in place (`old` to `new`, all at once).
    pub fn rename(&mut self, names: &BTreeMap<String, String>) {
        self.record.change(Change::Rename(names));
    }

    /// Sets `field` (appended when new, in place when present); returns the old value.
    pub fn insert(&mut self, field: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.data_mut().insert(field.into(), value.into())
    }

    /// Removes `field`, keeping the order of the others; returns its value.
    pub fn remove(&mut self, field: &str) -> Option<Value> {
        self.data_mut().shift_remove(field)
    }

    /// The whole record, in field order (a carried record is parsed whole, once).
    pub fn data(&self) -> &Map<String, Value> {
        self.record.map()
    }

    /// The whole record, to change in place (a shaped record becomes a map of its own).
    pub fn data_mut(&mut self) -> &mut Map<String, Value> {
        self.record.map_mut()
    }

    /// The record, taken out of the passenger.
    pub fn into_data(self) -> Map<String, Value> {
        self.record.into_map()
    }

    /// Writes the record as one JSON object into `out`; carried values are copied as they came.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.record.write_json(out)
    }

    /// Writes its record's values in field order one after another into `text` (carried text
    /// as it came), and where each ends into `ends`.
    pub(crate) fn write_each_value(
        &self,
        text: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> serde_json::Result<()> {
        if let Some(record) = self.shaped_record() {
            return record.write_each_value(text, ends);
        }
        for value in self.data().values() {
            serde_json::to_writer(&mut *text, value)?;
            ends.push(text.len());
        }
        Ok(())
    }

    /// The shaped record, for writing it on unparsed.
    pub(crate) fn shaped_record(&self) -> Option<&Shaped> {
        match &self.record {
            Record::Shaped(carried) => Some(carried),
            Record::Parsed(_) => None,
        }
    }

    /// A rejection of this passenger, its reason prefixed with where it was picked up.
    pub fn reject(self, reason: impl std::fmt::Display) -> Rejection {
        let (id, source) = self.place.into_text();
        let reason = match source {
            Some(source) => format!("{source}: {reason}"),
            None => format!("passenger {id}: {reason}"),
        };
        Rejection {
            id,
            reason,
            data: Value::Object(self.record.into_map()),
        }
    }
}

/// A passenger (or raw input) that a stop refused, with the reason. Rides to quarantine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// The passenger's id, or an id derived from the source position for unparsed input.
    pub id: String,
    /// Why it was refused, naming the file, line and field where known.
    pub reason: String,
    /// The passenger's data, or what is known of the raw input.
    pub data: Value,
}

/// One bus: the envelope carried by one SQS message.
///
/// `T` is [`Passenger`] on the route and [`Rejection`] on the quarantine queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Format version ([`ENVELOPE_VERSION`]).
    pub v: u32,
    /// Deterministic bus id (trip, sending stop, the bus it came from, sequence).
    pub bus: String,
    /// The trip this bus belongs to.
    pub trip: String,
    /// The route's name.
    pub route: String,
    /// The stop that sent this bus.
    pub from: String,
    /// Stops travelled so far; guards against loops.
    pub hop: u32,
    /// When the bus was packed (RFC 3339, UTC).
    pub created: String,
    /// The riders.
    pub passengers: Vec<T>,
}

/// Everything in an envelope except the passengers, as a bus is packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusHeader {
    /// Trip id.
    pub trip: String,
    /// Route name.
    pub route: String,
    /// Sending stop.
    pub from: String,
    /// Hop count of the buses being packed.
    pub hop: u32,
    /// Creation time (RFC 3339).
    pub created: String,
}

impl BusHeader {
    /// The JSON of an envelope with this header and bus id, up to and including the `[` that
    /// opens the passenger list. Appending passengers written whole and `]}` completes the body.
    pub fn json_prefix(&self, bus: &str) -> String {
        self.json_prefix_with(bus, "")
    }

    /// [`BusHeader::json_prefix`] with a dictionary's fields ([`compact::Dictionary::json_fields`]), for
    /// passengers it encoded.
    pub fn json_prefix_with(&self, bus: &str, dictionary: &str) -> String {
        // Value's Display escapes strings and cannot fail.
        let text = |s: &str| Value::from(s).to_string();
        format!(
            r#"{{"v":{},"bus":{},"trip":{},"route":{},"from":{},"hop":{},"created":{},{dictionary}"passengers":["#,
            ENVELOPE_VERSION,
            text(bus),
            text(&self.trip),
            text(&self.route),
            text(&self.from),
            self.hop,
            text(&self.created),
        )
    }
}

/// The closing bytes of an envelope body after the passengers.
pub const ENVELOPE_SUFFIX: &str = "]}";

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// A version 2 or 3 envelope as read, before its passengers are built from its dictionary.
#[derive(Deserialize)]
struct CompactEnvelope<T> {
    v: u32,
    bus: String,
    trip: String,
    route: String,
    from: String,
    hop: u32,
    created: String,
    #[serde(default)]
    origins: Vec<(String, Option<String>)>,
    #[serde(default)]
    shapes: Vec<Vec<String>>,
    passengers: Vec<T>,
}

impl<T> CompactEnvelope<T> {
    fn into_envelope<P>(self, passengers: Vec<P>) -> Envelope<P> {
        Envelope {
            v: self.v,
            bus: self.bus,
            trip: self.trip,
            route: self.route,
            from: self.from,
            hop: self.hop,
            created: self.created,
            passengers,
        }
    }
}

/// What an envelope is decoded with: its [`Passenger`]s, or nothing (`IgnoredAny`, to read a
/// bus's header alone).
pub trait Riders: serde::de::DeserializeOwned + Sized {
    /// The envelope of a version 2 body.
    fn from_compact(body: &str) -> Result<Envelope<Self>, DecodeError>;

    /// The envelope of a version 3 body.
    fn from_blocks(body: &str) -> Result<Envelope<Self>, DecodeError>;
}

impl Riders for Passenger {
    fn from_compact(body: &str) -> Result<Envelope<Self>, DecodeError> {
        // The passengers carry their values as text in the body, which they share.
        let body: std::sync::Arc<str> = body.into();
        let mut raw: CompactEnvelope<Rider> = serde_json::from_str(&body)?;
        let riders = std::mem::take(&mut raw.passengers);
        let passengers = compact::passengers(&body, riders, &raw.origins, &raw.shapes)?;
        Ok(raw.into_envelope(passengers))
    }

    fn from_blocks(body: &str) -> Result<Envelope<Self>, DecodeError> {
        // As version 2: the passengers share the body their values' text lies in.
        let body: Arc<str> = body.into();
        let mut raw: CompactEnvelope<Item> = serde_json::from_str(&body)?;
        let items = std::mem::take(&mut raw.passengers);
        let passengers = blocks::passengers(&body, items, &raw.origins, &raw.shapes)?;
        Ok(raw.into_envelope(passengers))
    }
}

impl Riders for IgnoredAny {
    fn from_compact(body: &str) -> Result<Envelope<Self>, DecodeError> {
        let raw: CompactEnvelope<IgnoredAny> = serde_json::from_str(body)?;
        let passengers = raw.passengers.iter().map(|_| IgnoredAny).collect();
        Ok(raw.into_envelope(passengers))
    }

    fn from_blocks(body: &str) -> Result<Envelope<Self>, DecodeError> {
        let raw: CompactEnvelope<Counted> = serde_json::from_str(body)?;
        let count = raw.passengers.iter().map(|counted| counted.0).sum();
        Ok(raw.into_envelope(vec![IgnoredAny; count]))
    }
}

/// The version of an envelope body: read from its first bytes as this build writes them, else
/// by parsing.
fn version_of(body: &str) -> Result<u32, DecodeError> {
    if let Some(rest) = body.strip_prefix(r#"{"v":"#)
        && let Some((digits, _)) = rest.split_once(',')
        && let Ok(v) = digits.parse()
    {
        return Ok(v);
    }
    Ok(serde_json::from_str::<VersionOnly>(body)?.v)
}

/// Decodes a bus body, compressed ([`crate::compression`]) or not, of version 1, 2 or 3, with a
/// clear error for bad JSON or an unknown version.
pub fn decode_envelope<T: Riders>(body: &str) -> Result<Envelope<T>, DecodeError> {
    let body = crate::compression::expand(body)?;
    let body = body.as_ref();
    let unsupported = |found| DecodeError::UnsupportedVersion {
        found,
        oldest: OLDEST_READ_VERSION,
        newest: ENVELOPE_VERSION,
    };
    match version_of(body) {
        Ok(1) => Ok(serde_json::from_str::<Envelope<T>>(body)?),
        Ok(2) => T::from_compact(body),
        Ok(3) => T::from_blocks(body),
        Ok(other) => Err(unsupported(other)),
        // Not JSON with a version: name the parser's complaint about the whole envelope.
        Err(err) => match serde_json::from_str::<Envelope<T>>(body) {
            Err(json) => Err(json.into()),
            Ok(_) => Err(err),
        },
    }
}

/// The class name that marks an SQS extended-client pointer body.
pub const POINTER_CLASS: &str = "software.amazon.payloadoffloading.PayloadS3Pointer";

/// The message attribute carrying the parked payload's size (SQS extended client v2).
pub const EXTENDED_PAYLOAD_SIZE: &str = "ExtendedPayloadSize";

/// Where a parked bus lives, as the SQS extended client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadPointer {
    /// Bucket holding the payload.
    pub s3_bucket_name: String,
    /// Key of the payload.
    pub s3_key: String,
}

impl PayloadPointer {
    /// The message body for this pointer: `["<class>",{"s3BucketName":..,"s3Key":..}]`.
    pub fn to_body(&self) -> String {
        serde_json::json!([POINTER_CLASS, {"s3BucketName": self.s3_bucket_name, "s3Key": self.s3_key}])
            .to_string()
    }

    /// Reads a pointer body; `None` when the body is not a pointer.
    pub fn from_body(body: &str) -> Option<Result<Self, DecodeError>> {
        let trimmed = body.trim_start();
        if !trimmed.starts_with('[') || !trimmed.contains(POINTER_CLASS) {
            return None;
        }
        Some(
            serde_json::from_str::<(String, PayloadPointer)>(trimmed)
                .map(|(_, pointer)| pointer)
                .map_err(DecodeError::from),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BusHeader {
        BusHeader {
            trip: "t1".into(),
            route: "colors".into(),
            from: "extract".into(),
            hop: 2,
            created: "2026-11-22T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn prefix_plus_passengers_is_a_valid_envelope() {
        let passenger = Passenger::new(
            "p1",
            Some("input/a.csv:2".into()),
            serde_json::json!({"Name": "Red"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let body = format!(
            "{}{}{}",
            header().json_prefix("b1"),
            serde_json::to_string(&passenger).unwrap_or_default(),
            ENVELOPE_SUFFIX
        );
        let envelope: Envelope<Passenger> = decode_envelope(&body).expect("decodes");
        assert_eq!(envelope.bus, "b1");
        assert_eq!(envelope.hop, 2);
        assert_eq!(envelope.passengers, vec![passenger]);
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = decode_envelope::<Passenger>("{\"v\":1,\n\"bus\":").unwrap_err();
        assert!(matches!(err, DecodeError::Json { line: 2, .. }), "{err}");
    }

    #[test]
    fn other_version_is_named() {
        let err = decode_envelope::<Passenger>(r#"{"v":4,"cargo":[]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bus envelope version 4 is not supported (this stop reads versions 1 to 3)"
        );
    }

    #[test]
    fn pointer_round_trips_in_extended_client_format() {
        let pointer = PayloadPointer {
            s3_bucket_name: "data".into(),
            s3_key: "claim-check/t1/b1.json".into(),
        };
        let body = pointer.to_body();
        assert_eq!(
            body,
            r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"data","s3Key":"claim-check/t1/b1.json"}]"#
        );
        assert_eq!(PayloadPointer::from_body(&body), Some(Ok(pointer)));
        assert_eq!(PayloadPointer::from_body(r#"{"v":1}"#), None);
    }
}
