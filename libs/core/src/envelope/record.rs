//! A passenger's record: a map of parsed values, or shaped. A shaped record holds its field
//! names as one [`Shape`], shared by every passenger of that shape, and per passenger only its
//! values: built by a stop ([`Fields`]), or carried, each value's JSON text as the version 2
//! bus it was read from holds it. Nothing carried is parsed until a field is read, and fields
//! that are only moved, dropped or renamed are written on as the same text.

use super::JsonValues;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

/// Most derived shapes one shape remembers; a route's operations make a handful.
const MOST_DERIVED: usize = 32;

/// Field names in order, shared by the carried passengers of one shape, with the shapes that
/// `select`, `drop` and `rename` made of it, so each is worked out once per bus, not once per
/// passenger.
#[derive(Debug)]
pub(crate) struct Shape {
    names: Vec<String>,
    /// Each name as a JSON object key with its colon (`"Name":`).
    keys: Vec<String>,
    derived: Mutex<Vec<Derived>>,
}

/// A shape made of another by a [`Change`]: its names, and the index in the other of each.
#[derive(Debug)]
struct Derived {
    change: OwnedChange,
    shape: Arc<Shape>,
    picks: Arc<[usize]>,
}

impl Shape {
    /// A shape of `names`; the name that repeats when one does (a record cannot hold it).
    pub(crate) fn checked(names: Vec<String>) -> Result<Arc<Shape>, String> {
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(name.clone());
            }
        }
        Ok(Shape::of(names))
    }

    /// A shape of `names`, which do not repeat.
    fn of(names: Vec<String>) -> Arc<Shape> {
        let keys = names
            .iter()
            .map(|name| format!("{}:", Value::from(name.as_str())))
            .collect();
        Arc::new(Shape {
            names,
            keys,
            derived: Mutex::new(Vec::new()),
        })
    }

    /// Its field names, in order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    fn index(&self, field: &str) -> Option<usize> {
        self.names.iter().position(|name| name == field)
    }

    /// The shape `change` makes of this one, and where each of its values comes from.
    fn derive(self: &Arc<Self>, change: Change<'_>) -> (Arc<Shape>, Arc<[usize]>) {
        // A poisoned lock only means another thread panicked mid-lookup: the list is intact.
        let mut derived = self
            .derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = derived.iter().find(|d| change.is(&d.change)) {
            return (known.shape.clone(), known.picks.clone());
        }
        let (names, picks) = change.apply(&self.names);
        let shape = Shape::of(names);
        let picks: Arc<[usize]> = picks.into();
        if derived.len() < MOST_DERIVED {
            derived.push(Derived {
                change: change.to_owned(),
                shape: shape.clone(),
                picks: picks.clone(),
            });
        }
        (shape, picks)
    }
}

/// Field names shared by the passengers a stop builds ([`super::Passenger::with_fields`]), so
/// each passenger holds its values alone, in the names' order.
#[derive(Debug, Clone)]
pub struct Fields {
    shape: Arc<Shape>,
}

impl Fields {
    /// Fields named `names`, in order; the error names a name given twice.
    pub fn new(names: Vec<String>) -> Result<Self, String> {
        let shape =
            Shape::checked(names).map_err(|name| format!("field `{name}` is named twice"))?;
        Ok(Fields { shape })
    }

    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.shape.names
    }

    /// A record of these fields with `values`, one per name.
    pub(crate) fn record(&self, values: &[Value]) -> Result<Shaped, String> {
        let mut text = JsonValues::new();
        for value in values {
            text.push_value(value);
        }
        self.record_of_text(&text)
    }

    /// A record of these fields whose values are the JSON texts of `values`, one per name.
    pub(crate) fn record_of_text(&self, values: &JsonValues) -> Result<Shaped, String> {
        if values.len() != self.shape.names.len() {
            return Err(format!(
                "{} values for {} fields",
                values.len(),
                self.shape.names.len()
            ));
        }
        let mut carried = Vec::with_capacity(values.len());
        for span in values.spans() {
            let span = Span::of(span).ok_or("the values' text is over 4 GiB")?;
            carried.push(Text::Carried(span));
        }
        Ok(Shaped::new(
            self.shape.clone(),
            values.text().into(),
            carried,
        ))
    }
}

/// A change of a record's fields that leaves its values alone.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// Keep only these fields, in this order.
    Select(&'a [String]),
    /// Remove these fields.
    Drop(&'a [String]),
    /// Rename fields in place.
    Rename(&'a BTreeMap<String, String>),
}

#[derive(Debug)]
enum OwnedChange {
    Select(Vec<String>),
    Drop(Vec<String>),
    Rename(BTreeMap<String, String>),
}

impl Change<'_> {
    fn is(&self, owned: &OwnedChange) -> bool {
        match (self, owned) {
            (Change::Select(a), OwnedChange::Select(b))
            | (Change::Drop(a), OwnedChange::Drop(b)) => *a == b.as_slice(),
            (Change::Rename(a), OwnedChange::Rename(b)) => *a == b,
            _ => false,
        }
    }

    fn to_owned(self) -> OwnedChange {
        match self {
            Change::Select(fields) => OwnedChange::Select(fields.to_vec()),
            Change::Drop(fields) => OwnedChange::Drop(fields.to_vec()),
            Change::Rename(names) => OwnedChange::Rename(names.clone()),
        }
    }

    /// The names after the change, none repeated, and the index in `names` of each one's
    /// value: what [`Change::apply_to_map`] does to a map's keys.
    fn apply(self, names: &[String]) -> (Vec<String>, Vec<usize>) {
        let position = |field: &String| names.iter().position(|name| name == field);
        match self {
            Change::Select(fields) => {
                let mut out: (Vec<String>, Vec<usize>) = (Vec::new(), Vec::new());
                for field in fields {
                    if let Some(i) = position(field)
                        && !out.1.contains(&i)
                    {
                        out.0.push(field.clone());
                        out.1.push(i);
                    }
                }
                out
            }
            Change::Drop(fields) => names
                .iter()
                .enumerate()
                .filter(|(_, name)| !fields.contains(name))
                .map(|(i, name)| (name.clone(), i))
                .unzip(),
            Change::Rename(renames) => {
                // As a map collects them: a name met again keeps its first place and takes the
                // later value.
                let mut out: (Vec<String>, Vec<usize>) = (Vec::new(), Vec::new());
                for (i, name) in names.iter().enumerate() {
                    let name = renames.get(name).unwrap_or(name);
                    match out.0.iter().position(|seen| seen == name) {
                        Some(at) => out.1[at] = i,
                        None => {
                            out.0.push(name.clone());
                            out.1.push(i);
                        }
                    }
                }
                out
            }
        }
    }

    fn apply_to_map(self, data: &mut Map<String, Value>) {
        match self {
            Change::Select(fields) => {
                let mut kept = Map::with_capacity(fields.len());
                for field in fields {
                    if let Some(value) = data.remove(field) {
                        kept.insert(field.clone(), value);
                    }
                }
                *data = kept;
            }
            Change::Drop(fields) => {
                for field in fields {
                    data.shift_remove(field);
                }
            }
            Change::Rename(names) => {
                if names.keys().any(|old| data.contains_key(old)) {
                    *data = std::mem::take(data)
                        .into_iter()
                        .map(|(key, value)| (names.get(&key).cloned().unwrap_or(key), value))
                        .collect();
                }
            }
        }
    }
}

/// Where a carried value's JSON text lies in its record's body: 8 bytes where a `Range` takes
/// 16, as a batch of buses holds millions of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The span of `range`, when it starts within the body's first 4 GiB and is shorter.
    pub(crate) fn of(range: Range<usize>) -> Option<Span> {
        Some(Span {
            start: u32::try_from(range.start).ok()?,
            len: u32::try_from(range.len()).ok()?,
        })
    }

    fn range(self) -> Range<usize> {
        let start = self.start as usize;
        start..start + self.len as usize
    }
}

/// One value of a shaped record.
#[derive(Debug, Clone)]
pub(crate) enum Text {
    /// Its JSON text in the bus body, as carried.
    Carried(Span),
    /// A value set by a stop (boxed: a carried span is the common case, and a value is large).
    Value(Box<Value>),
}

/// A record of one shape, its values' JSON text carried from a version 2 bus or written by a
/// stop ([`JsonValues`]), and any value a stop set since.
#[derive(Debug, Clone)]
pub(crate) struct Shaped {
    shape: Arc<Shape>,
    body: Arc<str>,
    values: Vec<Text>,
    /// The whole record, parsed the first time a stop asks for it (boxed: most records are
    /// never parsed whole, and a bus holds many).
    parsed: OnceLock<Box<Map<String, Value>>>,
}

impl Shaped {
    /// A record of `shape` with `values`, whose carried spans lie in `body` and are each valid
    /// JSON that parses to a [`Value`] (the reader checks, see `compact`).
    pub(crate) fn new(shape: Arc<Shape>, body: Arc<str>, values: Vec<Text>) -> Self {
        Shaped {
            shape,
            body,
            values,
            parsed: OnceLock::new(),
        }
    }

    /// How many values its list has room for (a bus's values are most of what it holds).
    #[cfg(test)]
    pub(crate) fn values_capacity(&self) -> usize {
        self.values.capacity()
    }

    /// Its shape.
    pub(crate) fn shape(&self) -> &Arc<Shape> {
        &self.shape
    }

    /// Writes its values one after another into `text`, carried text as it came, and where
    /// each ends into `ends`.
    pub(crate) fn write_each_value(
        &self,
        text: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> serde_json::Result<()> {
        // Carried values side by side in the body (as a reader writes a record's) are copied
        // in one piece: `run` is the part of the body not copied yet.
        let mut run: Option<Range<usize>> = None;
        for value in &self.values {
            match value {
                Text::Carried(span) => {
                    let range = span.range();
                    let joined = match run.take() {
                        Some(run) if run.end == range.start => run.start..range.end,
                        Some(run) => {
                            text.extend_from_slice(self.body[run].as_bytes());
                            range
                        }
                        None => range,
                    };
                    ends.push(text.len() + joined.len());
                    run = Some(joined);
                }
                Text::Value(value) => {
                    if let Some(run) = run.take() {
                        text.extend_from_slice(self.body[run].as_bytes());
                    }
                    serde_json::to_writer(&mut *text, value)?;
                    ends.push(text.len());
                }
            }
        }
        if let Some(run) = run {
            text.extend_from_slice(self.body[run].as_bytes());
        }
        Ok(())
    }

    fn write_value(&self, value: &Text, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match value {
            Text::Carried(span) => out.extend_from_slice(self.body[span.range()].as_bytes()),
            Text::Value(value) => serde_json::to_writer(&mut *out, value)?,
        }
        Ok(())
    }

    fn parse(&self, value: &Text) -> Value {
        match value {
            Text::Carried(span) => serde_json::from_str(&self.body[span.range()])
                .expect("a carried value was checked to parse when its bus was read"),
            Text::Value(value) => Value::clone(value),
        }
    }

    fn map(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| {
            let names = self.shape.names.iter().cloned();
            Box::new(
                names
                    .zip(self.values.iter().map(|value| self.parse(value)))
                    .collect(),
            )
        })
    }

    /// The whole record, parsed; its values are moved out.
    fn take_map(&mut self) -> Map<String, Value> {
        if let Some(map) = self.parsed.take() {
            return *map;
        }
        let values = std::mem::take(&mut self.values)
            .into_iter()
            .map(|value| match value {
                Text::Value(value) => *value,
                carried => self.parse(&carried),
            });
        self.shape.names.iter().cloned().zip(values).collect()
    }
}

/// A passenger's record: parsed, or carried as its bus held it.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    Parsed(Map<String, Value>),
    Shaped(Shaped),
}

impl Record {
    /// The whole record, parsed (once) if carried.
    pub(crate) fn map(&self) -> &Map<String, Value> {
        match self {
            Record::Parsed(map) => map,
            Record::Shaped(carried) => carried.map(),
        }
    }

    /// The whole record to change in place: a carried one is parsed and is carried no more.
    pub(crate) fn map_mut(&mut self) -> &mut Map<String, Value> {
        if let Record::Shaped(carried) = self {
            let map = carried.take_map();
            *self = Record::Parsed(map);
        }
        match self {
            Record::Parsed(map) => map,
            Record::Shaped(_) => unreachable!("made parsed above"),
        }
    }

    /// The record, taken out.
    pub(crate) fn into_map(self) -> Map<String, Value> {
        match self {
            Record::Parsed(map) => map,
            Record::Shaped(mut carried) => carried.take_map(),
        }
    }

    /// The value of `field`; of a carried record only that field is parsed.
    pub(crate) fn value(&self, field: &str) -> Option<Cow<'_, Value>> {
        match self {
            Record::Parsed(map) => map.get(field).map(Cow::Borrowed),
            Record::Shaped(carried) => match carried.parsed.get() {
                Some(map) => map.get(field).map(Cow::Borrowed),
                None => {
                    let value = &carried.values[carried.shape.index(field)?];
                    Some(match value {
                        Text::Value(value) => Cow::Borrowed(value),
                        Text::Carried(_) => Cow::Owned(carried.parse(value)),
                    })
                }
            },
        }
    }

    /// Sets `field` to `value`; a carried record stays carried when it has the field.
    pub(crate) fn set(&mut self, field: &str, value: Value) {
        if let Record::Shaped(carried) = self
            && let Some(i) = carried.shape.index(field)
        {
            carried.values[i] = Text::Value(Box::new(value));
            carried.parsed = OnceLock::new();
            return;
        }
        self.map_mut().insert(field.to_owned(), value);
    }

    /// Applies `change`; a carried record moves its values' text without parsing them.
    pub(crate) fn change(&mut self, change: Change<'_>) {
        match self {
            Record::Parsed(map) => change.apply_to_map(map),
            Record::Shaped(carried) => {
                let (shape, picks) = carried.shape.derive(change);
                carried.values = picks.iter().map(|&i| carried.values[i].clone()).collect();
                carried.shape = shape;
                carried.parsed = OnceLock::new();
            }
        }
    }

    /// Writes the record as one JSON object; carried values are copied as they came.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Record::Parsed(map) => serde_json::to_writer(out, map),
            Record::Shaped(carried) => {
                out.push(b'{');
                for (i, (key, value)) in carried.shape.keys.iter().zip(&carried.values).enumerate()
                {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key.as_bytes());
                    carried.write_value(value, out)?;
                }
                out.push(b'}');
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Span, Text};
    use crate::envelope::Aboard;
    use crate::envelope::compact::Dictionary;
    use crate::envelope::{Envelope, Fields, Passenger, decode_envelope};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};
    use std::collections::BTreeMap;

    /// `data` as a version 2 bus carries it, read back.
    fn carried(data: &Map<String, Value>) -> Passenger {
        let names: Vec<&String> = data.keys().collect();
        let values: Vec<&Value> = data.values().collect();
        let body = format!(
            r#"{{"v":2,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["p:","in.csv"]],"shapes":[{}],"passengers":[[0,2,0,{}]]}}"#,
            json!(names),
            json!(values)
        );
        let mut envelope: Envelope<Passenger> = decode_envelope(&body).expect("decodes");
        let passenger = envelope.passengers.remove(0);
        assert!(passenger.shaped_record().is_some());
        passenger
    }

    fn record(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn json_of(passenger: &Passenger) -> String {
        let mut out = Vec::new();
        passenger.write_json(&mut out).expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    /// The passenger as the only rider of a bus's passenger list.
    fn rider_of(passenger: &Passenger) -> Vec<u8> {
        let mut aboard = Aboard::default();
        aboard
            .board(&mut Dictionary::default(), passenger)
            .expect("boards");
        let mut out = Vec::new();
        aboard.write(0, 1, &mut out);
        out
    }

    #[test]
    fn a_shaped_record_writes_its_values_as_the_bus_held_them_and_parses_only_what_is_read() {
        let mut passenger = carried(&record(
            json!({"Name": "Red", "HEX": "#FF0000", "n": 12.50, "note": "a \"quoted\" word"}),
        ));
        assert_eq!(passenger.value("n").as_deref(), Some(&json!(12.50)));
        assert!(
            passenger
                .shaped_record()
                .is_some_and(|c| c.parsed.get().is_none())
        );
        passenger.remove_fields(&["HEX".to_owned()]);
        passenger.rename(&BTreeMap::from([("Name".to_owned(), "name".to_owned())]));
        passenger.set("n", json!(7));
        assert_eq!(
            json_of(&passenger),
            r#"{"name":"Red","n":7,"note":"a \"quoted\" word"}"#
        );
        assert_eq!(
            rider_of(&passenger),
            br#"[0,0,[2],[["Red"],[7],["a \"quoted\" word"]]]"#
        );
        assert!(passenger.shaped_record().is_some());
        assert_eq!(passenger.get_str("name"), Some("Red"));
    }

    #[test]
    fn passengers_of_one_shape_share_what_a_change_makes_of_it() {
        let body = r#"{"v":2,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["p:",null]],"shapes":[["a","b","c"]],"passengers":[[0,1,0,[1,2,3]],[0,2,0,[4,5,6]]]}"#;
        let envelope: Envelope<Passenger> = decode_envelope(body).expect("decodes");
        let [mut first, mut second] = <[Passenger; 2]>::try_from(envelope.passengers).expect("two");
        let drop = ["b".to_owned()];
        first.remove_fields(&drop);
        second.remove_fields(&drop);
        let (Some(a), Some(b)) = (first.shaped_record(), second.shaped_record()) else {
            panic!("both still carried");
        };
        assert!(std::sync::Arc::ptr_eq(a.shape(), b.shape()));
        assert_eq!(a.shape().names(), ["a", "c"]);
        assert_eq!(
            (json_of(&first), json_of(&second)),
            (r#"{"a":1,"c":3}"#.to_owned(), r#"{"a":4,"c":6}"#.to_owned())
        );
    }

    #[test]
    fn a_bus_whose_shape_names_a_field_twice_is_refused() {
        let body = r#"{"v":2,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["p:",null]],"shapes":[["x","x"]],"passengers":[[0,1,0,[1,2]]]}"#;
        let err = decode_envelope::<Passenger>(body).expect_err("refused");
        assert_eq!(err.to_string(), "bus envelope: shape 0 names `x` twice");
    }

    #[test]
    fn a_carried_value_that_would_not_parse_is_refused_when_the_bus_is_read() {
        let body = r#"{"v":2,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["p:",null]],"shapes":[["x"]],"passengers":[[0,1,0,["\ud800"]]]}"#;
        let err = decode_envelope::<Passenger>(body).expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("bus envelope: passenger 1: field `x`: unexpected end of hex escape"),
            "{err}"
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Select(Vec<String>),
        Drop(Vec<String>),
        Rename(BTreeMap<String, String>),
        Set(String, Value),
        Insert(String, Value),
        Remove(String),
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")].prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\é ]{0,6}".prop_map(Value::from),
            Just(json!({"nested": [1.50, "two", null]})),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        let names = || proptest::collection::vec(name(), 0..4);
        prop_oneof![
            names().prop_map(Step::Select),
            names().prop_map(Step::Drop),
            proptest::collection::btree_map(name(), name(), 1..3).prop_map(Step::Rename),
            (name(), value()).prop_map(|(n, v)| Step::Set(n, v)),
            (name(), value()).prop_map(|(n, v)| Step::Insert(n, v)),
            name().prop_map(Step::Remove),
        ]
    }

    fn take(step: &Step, passenger: &mut Passenger) {
        match step.clone() {
            Step::Select(fields) => passenger.select(&fields),
            Step::Drop(fields) => passenger.remove_fields(&fields),
            Step::Rename(names) => passenger.rename(&names),
            Step::Set(field, value) => passenger.set(&field, value),
            Step::Insert(field, value) => {
                passenger.insert(field, value);
            }
            Step::Remove(field) => {
                passenger.remove(&field);
            }
        }
    }

    proptest! {
        /// Whatever a stop does to a record, parsed, carried or built with shared fields, it
        /// reads, writes and rides on alike.
        #[test]
        fn a_shaped_record_behaves_as_the_parsed_one(
            fields in proptest::collection::btree_map(name(), value(), 0..4),
            steps in proptest::collection::vec(step(), 0..6),
        ) {
            let data: Map<String, Value> = fields.into_iter().collect();
            let mut parsed = Passenger::new("p:2", Some("in.csv:2".into()), data.clone());
            let fields = Fields::new(data.keys().cloned().collect()).expect("distinct names");
            let built = Passenger::with_fields("p:2", Some("in.csv:2".into()), &fields, data.values().cloned().collect());
            let mut others = [carried(&data), built.expect("one value per field")];
            for step in &steps {
                take(step, &mut parsed);
                for other in &mut others {
                    take(step, other);
                    prop_assert_eq!(parsed.data(), other.data());
                    for field in ["a", "b", "c", "d"] {
                        prop_assert_eq!(parsed.value(field), other.value(field));
                    }
                    prop_assert_eq!(json_of(&parsed), json_of(other));
                    prop_assert_eq!(rider_of(&parsed), rider_of(other));
                }
            }
        }
    }

    #[test]
    fn a_carried_value_takes_sixteen_bytes_and_spans_stop_at_4_gib() {
        assert_eq!(std::mem::size_of::<Text>(), 16);
        let last = u32::MAX as usize;
        assert_eq!(Span::of(5..9).map(Span::range), Some(5..9));
        assert_eq!(
            Span::of(last..last + 1).map(Span::range),
            Some(last..last + 1)
        );
        assert_eq!(Span::of(last + 1..last + 2), None);
        assert_eq!(Span::of(0..last + 1), None);
    }
}
