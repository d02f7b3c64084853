//! Envelope version 3: compact passengers ride in blocks. A block is a run of passengers of one
//! origin and one shape, written field by field: `[origin, shape, [numbers], [[the first
//! field's values], [the second's], ..]]`, where `numbers` holds the first passenger's number
//! and then each one's difference from the one before (`1` for consecutive lines). The values
//! of one field side by side, and numbers as small differences, compress several times better
//! than passengers written one by one, and SQS bills the bytes a bus is sent as. A passenger
//! that cannot ride compactly (see [`Dictionary`]) is written whole, as in versions 1 and 2.

use super::compact::{Dictionary, ValueSpans, ValueSpansVisitor, carried_values, read_dictionary};
use super::record::{Shape, Shaped};
use super::{Origin, Passenger, Place};
use crate::error::DecodeError;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::Arc;

/// JSON a block adds besides its riders' values: brackets, its origin, shape and first number,
/// and each field's list.
const BLOCK_BYTES: usize = 32;

/// The riders aboard the bus being packed, in order, with what each adds to the envelope.
#[derive(Debug, Default)]
pub(crate) struct Aboard {
    /// Each compact rider's values, and each whole rider's JSON, one after another.
    text: Vec<u8>,
    /// For each compact rider, where its values start in `text`, then where each ends.
    bounds: Vec<usize>,
    riders: Vec<Seat>,
    /// The envelope bytes the riders up to each one take, about (see [`Aboard::seat`]).
    sizes: Vec<usize>,
}

/// One rider aboard.
#[derive(Debug, Clone, Copy)]
struct Seat {
    /// Origin and shape of a compact rider; `None` for a whole one.
    block: Option<(usize, usize)>,
    /// Its number (compact).
    n: u64,
    /// True when it can ride in the block of the rider before it.
    joins: bool,
    /// Its JSON in `text` (whole), or its bounds in `bounds` (compact): `from..to`.
    from: usize,
    to: usize,
}

impl Aboard {
    /// Adds `passenger`, compactly when `dictionary` gives it an origin and shape.
    pub(crate) fn board(
        &mut self,
        dictionary: &mut Dictionary,
        passenger: &Passenger,
    ) -> serde_json::Result<()> {
        let Some((origin, n, shape)) = dictionary.compact(passenger) else {
            let from = self.text.len();
            serde_json::to_writer(&mut self.text, passenger)?;
            self.seat(None, 0, from, self.text.len(), 0);
            return Ok(());
        };
        let from = self.bounds.len();
        self.bounds.push(self.text.len());
        passenger.write_each_value(&mut self.text, &mut self.bounds)?;
        let values = self.bounds.len() - from - 1;
        self.seat(Some((origin, shape)), n, from, self.bounds.len(), values);
        Ok(())
    }

    /// Adds a whole rider already written as JSON.
    pub(crate) fn board_whole(&mut self, json: &str) {
        let from = self.text.len();
        self.text.extend_from_slice(json.as_bytes());
        self.seat(None, 0, from, self.text.len(), 0);
    }

    /// How many riders are aboard.
    pub(crate) fn len(&self) -> usize {
        self.riders.len()
    }

    /// Lets every rider off.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.bounds.clear();
        self.riders.clear();
        self.sizes.clear();
    }

    /// Lets the riders before `first` off; the rest start the next bus, in order, their text
    /// and bounds moved to the front of the buffers they are in (which keep their room).
    pub(crate) fn keep_from(&mut self, first: usize) {
        let kept = self.riders.split_off(first.min(self.riders.len()));
        // The kept riders' text begins with the first one's; their bounds with the first
        // compact one's (a whole rider has none).
        let text_start = kept
            .first()
            .map_or(self.text.len(), |seat| match seat.block {
                None => seat.from,
                Some(_) => self.bounds[seat.from],
            });
        let bounds_start = kept
            .iter()
            .find(|seat| seat.block.is_some())
            .map_or(self.bounds.len(), |seat| seat.from);
        self.text.drain(..text_start);
        self.bounds.drain(..bounds_start);
        self.bounds
            .iter_mut()
            .for_each(|bound| *bound -= text_start);
        self.riders.clear();
        self.sizes.clear();
        for seat in kept {
            let values = self.values_of(&seat);
            let start = match seat.block {
                None => text_start,
                Some(_) => bounds_start,
            };
            self.seat(
                seat.block,
                seat.n,
                seat.from - start,
                seat.to - start,
                values,
            );
        }
    }

    /// About how many envelope bytes riders `first..first + count` take.
    pub(crate) fn size(&self, first: usize, count: usize) -> usize {
        if count == 0 {
            return 0;
        }
        let before = first.checked_sub(1).map_or(0, |i| self.sizes[i]);
        // A range that starts inside a block opens a block of its own.
        let opening = match self.riders.get(first) {
            Some(seat) if seat.joins => block_bytes(seat.n, self.values_of(seat)),
            _ => 0,
        };
        self.sizes[first + count - 1] - before + opening
    }

    /// How many riders from `first` take at most `bytes` of envelope.
    pub(crate) fn within(&self, first: usize, bytes: usize) -> usize {
        // `size` grows with the count: find the largest count that fits.
        let (mut low, mut high) = (0, self.riders.len() - first);
        while low < high {
            let mid = (low + high).div_ceil(2);
            if self.size(first, mid) <= bytes {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        low
    }

    /// Writes riders `first..first + count` as the elements of an envelope's passenger list.
    pub(crate) fn write(&self, first: usize, count: usize, out: &mut Vec<u8>) {
        let end = first + count;
        let mut at = first;
        while at < end {
            if at > first {
                out.push(b',');
            }
            let seat = &self.riders[at];
            match seat.block {
                None => {
                    out.extend_from_slice(&self.text[seat.from..seat.to]);
                    at += 1;
                }
                Some(block) => {
                    let last = (at + 1..end)
                        .find(|&i| !self.riders[i].joins)
                        .unwrap_or(end);
                    self.write_block(block, &self.riders[at..last], out);
                    at = last;
                }
            }
        }
    }

    fn write_block(&self, (origin, shape): (usize, usize), seats: &[Seat], out: &mut Vec<u8>) {
        let mut number = itoa::Buffer::new();
        out.push(b'[');
        out.extend_from_slice(number.format(origin).as_bytes());
        out.push(b',');
        out.extend_from_slice(number.format(shape).as_bytes());
        out.extend_from_slice(b",[");
        let mut previous = None;
        for (i, seat) in seats.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match previous {
                None => out.extend_from_slice(number.format(seat.n).as_bytes()),
                Some(before) => {
                    let step = i128::from(seat.n) - i128::from(before);
                    out.extend_from_slice(number.format(step).as_bytes());
                }
            }
            previous = Some(seat.n);
        }
        out.extend_from_slice(b"],[");
        self.write_columns(seats, out);
        out.extend_from_slice(b"]]");
    }

    /// Writes the field lists of `seats`, `[a1,a2],[b1,b2]`, each value copied once straight
    /// to its place: each list's length is known from the bounds, and the room for them is
    /// filled with commas first, so only brackets and values are written over it.
    fn write_columns(&self, seats: &[Seat], out: &mut Vec<u8>) {
        let fields = seats.first().map_or(0, |seat| self.values_of(seat));
        // Each list takes its values, a comma or bracket before each, and a closing bracket.
        let mut lengths = vec![1; fields];
        for seat in seats {
            let bounds = &self.bounds[seat.from..seat.to];
            for (length, ends) in lengths.iter_mut().zip(bounds.windows(2)) {
                *length += ends[1] - ends[0] + 1;
            }
        }
        let start = out.len();
        let mut cursors = Vec::with_capacity(fields);
        let mut at = start;
        for length in &lengths {
            cursors.push(at);
            at += length + 1;
        }
        // The lists and a comma between each two.
        let end = start + lengths.iter().sum::<usize>() + fields.saturating_sub(1);
        out.resize(end, b',');
        for (cursor, length) in cursors.iter().zip(&lengths) {
            out[*cursor] = b'[';
            out[cursor + length - 1] = b']';
        }
        for seat in seats {
            let bounds = &self.bounds[seat.from..seat.to];
            for (cursor, ends) in cursors.iter_mut().zip(bounds.windows(2)) {
                let value = &self.text[ends[0]..ends[1]];
                *cursor += 1;
                out[*cursor..*cursor + value.len()].copy_from_slice(value);
                *cursor += value.len();
            }
        }
    }

    /// Seats a rider: a whole one's JSON at `text[from..to]`, or a compact one's `values`
    /// bounded by `bounds[from..to]`, noting what it adds to the envelope: a comma, and a
    /// compact rider's values and difference (its block too when it starts one), or a whole
    /// rider's JSON.
    fn seat(
        &mut self,
        block: Option<(usize, usize)>,
        n: u64,
        from: usize,
        to: usize,
        values: usize,
    ) {
        let step = self
            .riders
            .last()
            .filter(|last| block.is_some() && last.block == block)
            .map(|last| i128::from(n) - i128::from(last.n))
            .filter(|step| i64::try_from(*step).is_ok());
        let joins = step.is_some();
        let bytes = match block {
            None => to - from + 1,
            Some(_) => {
                let text = self.bounds[to - 1] - self.bounds[from];
                let number = step.map_or(digits(n), |step| {
                    digits(step.unsigned_abs() as u64) + usize::from(step < 0)
                });
                let own = text + values + number + 1;
                if joins {
                    own
                } else {
                    own + block_bytes(n, values)
                }
            }
        };
        let before = self.sizes.last().copied().unwrap_or(0);
        self.sizes.push(before + bytes);
        self.riders.push(Seat {
            block,
            n,
            joins,
            from,
            to,
        });
    }

    fn values_of(&self, seat: &Seat) -> usize {
        match seat.block {
            Some(_) => seat.to - seat.from - 1,
            None => 0,
        }
    }
}

/// The bytes a block adds to its riders'.
fn block_bytes(n: u64, fields: usize) -> usize {
    BLOCK_BYTES + digits(n) + 3 * fields
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// A version 3 passenger list's element as read: a block, or a whole passenger.
pub(crate) enum Item {
    Block {
        origin: usize,
        shape: usize,
        numbers: Vec<i128>,
        fields: Vec<ValueSpans>,
    },
    /// Boxed: most elements are blocks.
    Whole(Box<Passenger>),
}

impl Item {
    /// How many passengers it holds.
    fn passengers(&self) -> usize {
        match self {
            Item::Block { numbers, .. } => numbers.len(),
            Item::Whole(_) => 1,
        }
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a block [origin, shape, [numbers], [[values]..]] or a passenger {\"id\", \"data\"}",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        let missing = |what| de::Error::custom(format!("a block lacks its {what}"));
        let origin = seq.next_element()?.ok_or_else(|| missing("origin"))?;
        let shape = seq.next_element()?.ok_or_else(|| missing("shape"))?;
        let numbers: Vec<i128> = seq.next_element()?.ok_or_else(|| missing("numbers"))?;
        // Each field holds a value per number: its list is allocated once.
        let fields = seq
            .next_element_seed(FieldsSeed(numbers.len()))?
            .ok_or_else(|| missing("fields"))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a block has four elements"));
        }
        Ok(Item::Block {
            origin,
            shape,
            numbers,
            fields,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        Passenger::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(|passenger| Item::Whole(Box::new(passenger)))
    }
}

/// A block's fields, each a list of about this many values.
struct FieldsSeed(usize);

impl<'de> de::DeserializeSeed<'de> for FieldsSeed {
    type Value = Vec<ValueSpans>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed {
    type Value = Vec<ValueSpans>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of fields, each a list of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(values) = seq.next_element_seed(ValueSpansVisitor(self.0))? {
            fields.push(values);
        }
        Ok(fields)
    }
}

/// The passengers of a version 3 bus, from its list's elements (parsed from `body` itself:
/// their value spans are memory ranges in it) and dictionary; the error names the passenger
/// (by position) and what is wrong with it.
pub(crate) fn passengers(
    body: &Arc<str>,
    items: Vec<Item>,
    origins: &[(String, Option<String>)],
    shapes: &[Vec<String>],
) -> Result<Vec<Passenger>, DecodeError> {
    let entries = read_dictionary(origins, shapes)?;
    let count = items.iter().map(Item::passengers).sum();
    let mut passengers = Vec::with_capacity(count);
    for item in items {
        let position = passengers.len() + 1;
        match item {
            Item::Whole(passenger) => passengers.push(*passenger),
            Item::Block {
                origin,
                shape,
                numbers,
                fields,
            } => {
                let block = Block {
                    body,
                    origin: entries.origin(origin).map_err(|what| bad(position, what))?,
                    shape: entries.shape(shape).map_err(|what| bad(position, what))?,
                };
                block.board(position, numbers, fields, &mut passengers)?;
            }
        }
    }
    Ok(passengers)
}

fn bad(position: usize, what: String) -> DecodeError {
    DecodeError::Compact(format!("passenger {position}: {what}"))
}

/// What the passengers of one block share.
struct Block<'a> {
    body: &'a Arc<str>,
    origin: &'a Arc<Origin>,
    shape: &'a Arc<Shape>,
}

impl Block<'_> {
    /// Adds to `passengers` one per number, each with its value from every field's list,
    /// the first being passenger `position` of the bus.
    fn board(
        &self,
        position: usize,
        numbers: Vec<i128>,
        fields: Vec<ValueSpans>,
        passengers: &mut Vec<Passenger>,
    ) -> Result<(), DecodeError> {
        let names = self.shape.names();
        if fields.len() != names.len() {
            let what = format!(
                "a block of {} fields for a shape of {}",
                fields.len(),
                names.len()
            );
            return Err(bad(position, what));
        }
        for (name, ValueSpans(values)) in names.iter().zip(&fields) {
            if values.len() != numbers.len() {
                let what = format!(
                    "field `{name}` has {} values for {} passengers",
                    values.len(),
                    numbers.len()
                );
                return Err(bad(position, what));
            }
        }
        let mut columns: Vec<_> = fields
            .into_iter()
            .map(|field| field.0.into_iter())
            .collect();
        let mut n: i128 = 0;
        for (i, step) in numbers.into_iter().enumerate() {
            let at = position + i;
            n = if i == 0 { step } else { n + step };
            let number =
                u64::try_from(n).map_err(|_| bad(at, format!("number {n} is out of range")))?;
            let reads = (names.iter().zip(&mut columns))
                .filter_map(|(name, column)| Some((name, column.next()?)));
            let values =
                carried_values(self.body, names.len(), reads).map_err(|why| bad(at, why))?;
            let record = Shaped::new(self.shape.clone(), self.body.clone(), values);
            let place = Place::numbered(self.origin.clone(), number);
            passengers.push(Passenger::shaped(place, record));
        }
        Ok(())
    }
}

/// A version 3 passenger list's element, counted without reading it: a block's passengers,
/// or one.
pub(crate) struct Counted(pub(crate) usize);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountedVisitor)
    }
}

struct CountedVisitor;

impl<'de> Visitor<'de> for CountedVisitor {
    type Value = Counted;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a block or a passenger")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counted, A::Error> {
        let _origin: Option<IgnoredAny> = seq.next_element()?;
        let _shape: Option<IgnoredAny> = seq.next_element()?;
        let numbers: Vec<IgnoredAny> = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("a block lacks its numbers"))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Counted(numbers.len()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counted, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Counted(1))
    }
}

#[cfg(test)]
mod tests {
    use crate::envelope::{Envelope, Passenger, decode_envelope};
    use serde::de::IgnoredAny;

    fn bus(passengers: &str) -> String {
        format!(
            r#"{{"v":3,"bus":"b","trip":"t","route":"r","from":"s","hop":1,"created":"c","origins":[["t:","in.csv"]],"shapes":[["a","b"]],"passengers":[{passengers}]}}"#
        )
    }

    #[test]
    fn a_block_reads_as_its_passengers_in_order_beside_whole_ones() {
        let body = bus(
            r#"[0,0,[5,1,2,-4],[["x","y",null,1.50],[1,2,3,{"k":[]}]]],{"id":"w","data":{"z":true}},[0,0,[9],[["q"],[0]]]"#,
        );
        let envelope: Envelope<Passenger> = decode_envelope(&body).expect("decodes");
        let read: Vec<String> = envelope
            .passengers
            .iter()
            .map(|p| {
                let mut json = Vec::new();
                p.write_json(&mut json).expect("writes");
                format!(
                    "{} {:?} {}",
                    p.id(),
                    p.source(),
                    String::from_utf8_lossy(&json)
                )
            })
            .collect();
        assert_eq!(
            read,
            [
                r#"t:5 Some("in.csv:5") {"a":"x","b":1}"#,
                r#"t:6 Some("in.csv:6") {"a":"y","b":2}"#,
                r#"t:8 Some("in.csv:8") {"a":null,"b":3}"#,
                r#"t:4 Some("in.csv:4") {"a":1.50,"b":{"k":[]}}"#,
                r#"w None {"z":true}"#,
                r#"t:9 Some("in.csv:9") {"a":"q","b":0}"#,
            ]
        );
        let counted: Envelope<IgnoredAny> = decode_envelope(&body).expect("counts");
        assert_eq!(counted.passengers.len(), 6);
    }

    #[test]
    fn a_block_passenger_holds_room_for_its_values_and_no_more() {
        let shape: Vec<String> = (0..20).map(|i| format!("\"f{i}\"")).collect();
        let columns: Vec<&str> = vec!["[1,2]"; 20];
        let body = bus(&format!("[0,0,[1,1],[{}]]", columns.join(",")))
            .replace(r#"[["a","b"]]"#, &format!("[[{}]]", shape.join(",")));
        let envelope: Envelope<Passenger> = decode_envelope(&body).expect("decodes");
        let room: Vec<Option<usize>> = envelope
            .passengers
            .iter()
            .map(|p| p.shaped_record().map(|r| r.values_capacity()))
            .collect();
        assert_eq!(room, [Some(20), Some(20)]);
    }

    #[test]
    fn a_block_that_does_not_add_up_is_refused_naming_the_passenger() {
        let cases = [
            (
                r#"[0,1,[1],[["x"],[1]]]"#,
                "passenger 1: shape 1 is not among the bus's 1",
            ),
            (
                r#"[1,0,[1],[["x"],[1]]]"#,
                "passenger 1: origin 1 is not among the bus's 1",
            ),
            (
                r#"[0,0,[1],[["x"]]]"#,
                "passenger 1: a block of 1 fields for a shape of 2",
            ),
            (
                r#"{"id":"w","data":{}},[0,0,[1,1],[["x","y"],[1]]]"#,
                "passenger 2: field `b` has 1 values for 2 passengers",
            ),
            (
                r#"[0,0,[1,-2],[["x","y"],[1,2]]]"#,
                "passenger 2: number -1 is out of range",
            ),
            (
                r#"[0,0,[1,1],[["x","\ud800"],[1,2]]]"#,
                "passenger 2: field `a`: unexpected end of hex escape",
            ),
        ];
        for (passengers, expected) in cases {
            let err = decode_envelope::<Passenger>(&bus(passengers))
                .expect_err(passengers)
                .to_string();
            assert!(
                err.starts_with(&format!("bus envelope: {expected}")),
                "{passengers}: {err}"
            );
        }
    }
}
