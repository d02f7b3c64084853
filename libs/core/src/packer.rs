//! Packs serialized riders into bus bodies no larger than a byte budget as sent, with
//! deterministic bus ids: the same input always packs into the same buses.
//!
//! A body spanning several billed 64 KiB chunks is compressed when that takes fewer of them
//! ([`crate::compression`]), and the budget applies to the compressed body: a bus of
//! compressible passengers then carries several times more of them, up to a limit on its
//! uncompressed size that bounds a stop's memory. The packer measures the ratio on its first
//! riders, and again on every bus it compressed, so it sizes each bus to fill the budget.

use crate::compression::{BILLED_CHUNK, billed_chunks, compress_if_cheaper, compressed_len};
use crate::envelope::compact::Dictionary;
use crate::envelope::{Aboard, BusHeader, ENVELOPE_SUFFIX, Passenger};
use crate::id::stable_id;

/// Length of every bus id (see [`stable_id`]).
const BUS_ID_LEN: usize = 16;

/// What a packed bus is aimed at, of what the budget allows: room for a misjudged ratio.
const FILL: f64 = 0.92;

/// The share of the riders aboard compressed to measure the ratio (see [`Packer::probe`]): a
/// quarter of the default 4 MiB raw limit is 1 MiB, past which zstd's ratio on similar riders
/// moves by a few percent.
const PROBE_SHARE: usize = 4;

/// How buses are sized and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusSizing {
    /// Most bytes of a body as sent (compressed or not).
    pub budget: usize,
    /// Most bytes of a bus's envelope JSON before compression.
    pub raw_limit: usize,
    /// Whether bodies are compressed when that saves a billed chunk.
    pub compress: bool,
}

impl BusSizing {
    /// Uncompressed buses of at most `budget` bytes.
    pub fn plain(budget: usize) -> Self {
        BusSizing {
            budget,
            raw_limit: budget,
            compress: false,
        }
    }
}

/// One complete bus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBus {
    /// The bus id inside the body.
    pub bus: String,
    /// The body as sent: envelope JSON, or its compressed form.
    pub body: String,
    /// How many riders it carries.
    pub riders: usize,
}

/// Packs passengers into buses.
#[derive(Debug)]
pub struct Packer {
    header: BusHeader,
    origin_bus: String,
    sizing: BusSizing,
    overhead: usize,
    seq: u64,
    /// The riders of the bus being packed.
    aboard: Aboard,
    /// The envelope size at which the bus being packed is closed.
    raw_target: usize,
    /// Whether the compression ratio was measured (by a probe or a compressed bus).
    measured: bool,
    /// Bytes given to zstd so far, probes included.
    #[cfg(test)]
    compressed_bytes: usize,
    /// The origins and shapes compact riders refer to, and its JSON in each bus.
    dictionary: Dictionary,
    dictionary_json: String,
}

impl Packer {
    /// A packer for buses with `header`, derived from the bus `origin_bus`, each at most
    /// `sizing.budget` bytes as sent unless a single rider is larger than that on its own.
    pub fn new(header: BusHeader, origin_bus: impl Into<String>, sizing: BusSizing) -> Self {
        let overhead = overhead(&header, "");
        // Within one billed chunk compression cannot save one.
        let raw_target = if sizing.compress && sizing.budget > BILLED_CHUNK {
            sizing.raw_limit.max(sizing.budget)
        } else {
            sizing.budget
        };
        Packer {
            header,
            origin_bus: origin_bus.into(),
            sizing,
            overhead,
            seq: 0,
            aboard: Aboard::default(),
            raw_target,
            measured: false,
            #[cfg(test)]
            compressed_bytes: 0,
            dictionary: Dictionary::default(),
            dictionary_json: String::new(),
        }
    }

    /// Boards `passenger`, compactly when its id and fields allow ([`crate::envelope`]'s
    /// version 3 blocks). Buses that became complete are pushed to `out`: the bus being packed
    /// when `passenger` does not fit, and `passenger` alone when it is over the budget by
    /// itself (such a bus is larger than the budget and must be parked as a claim check).
    pub fn board(&mut self, passenger: &Passenger, out: &mut Vec<PackedBus>) -> Result<(), String> {
        let entries = self.dictionary.entries();
        self.aboard
            .board(&mut self.dictionary, passenger)
            .map_err(|err| err.to_string())?;
        if self.dictionary.entries() != entries {
            self.dictionary_json = self.dictionary.json_fields();
            self.overhead = overhead(&self.header, &self.dictionary_json);
        }
        self.fit_last(out);
        Ok(())
    }

    /// Adds a rider already written whole as JSON (`{"id":..,"data":..}`), as
    /// [`Packer::board`] adds a passenger.
    pub fn push(&mut self, rider: &str, out: &mut Vec<PackedBus>) {
        self.aboard.board_whole(rider);
        self.fit_last(out);
    }

    /// Closes the bus before the rider that just boarded when it made the bus too large, and
    /// that rider's bus when it is too large alone. The first time the riders pass the
    /// target before the compression ratio is known, a sample of them measures it.
    fn fit_last(&mut self, out: &mut Vec<PackedBus>) {
        if !self.measured && self.raw_len() > self.raw_target {
            self.probe();
        }
        while self.aboard.len() > 1 && self.raw_len() > self.raw_target {
            let room = self.raw_target.saturating_sub(self.overhead);
            let fit = self.aboard.within(0, room).clamp(1, self.aboard.len() - 1);
            self.pack_first(fit, out);
            self.aboard.keep_from(fit);
        }
        if self.raw_len() > self.raw_target {
            self.finish(out);
        }
    }

    /// Completes the bus being packed, if it has riders, into `out`: one bus, or several when
    /// its compressed body is over the budget. The next rider starts a new bus.
    pub fn finish(&mut self, out: &mut Vec<PackedBus>) {
        self.pack_first(self.aboard.len(), out);
        self.aboard.clear();
    }

    /// Packs the first `riders` aboard into as many buses as the budget takes.
    fn pack_first(&mut self, riders: usize, out: &mut Vec<PackedBus>) {
        let mut first = 0;
        while first < riders {
            first += self.pack(first, riders - first, out);
        }
    }

    /// Measures the compression ratio on the first quarter of the riders aboard, when a bus
    /// would be compressed: sized on the ratio guessed at the start, that bus would be
    /// compressed once too large and again smaller.
    fn probe(&mut self) {
        self.measured = true;
        if self.raw_target <= self.sizing.budget {
            return;
        }
        let count = self.aboard.within(0, self.raw_target / PROBE_SHARE).max(1);
        let mut riders = Vec::with_capacity(self.aboard.size(0, count));
        self.aboard.write(0, count, &mut riders);
        #[cfg(test)]
        {
            self.compressed_bytes += riders.len();
        }
        if let Some(sent) = compressed_len(&riders) {
            self.learn(sent, riders.len());
        }
    }

    /// The byte budget of one bus.
    pub fn budget(&self) -> usize {
        self.sizing.budget
    }

    fn raw_len(&self) -> usize {
        self.overhead + self.aboard.size(0, self.aboard.len())
    }

    /// Packs one bus of riders `first..first + count`, as many of them as fit the budget;
    /// returns how many.
    fn pack(&mut self, first: usize, mut count: usize, out: &mut Vec<PackedBus>) -> usize {
        let bus = self.bus_id(self.seq);
        loop {
            let (json, head) = self.json(&bus, first, count);
            let raw = json.len();
            // compress_if_cheaper gives up on a body of one chunk before it calls zstd.
            let tried = self.sizing.compress && billed_chunks(raw) > 1;
            #[cfg(test)]
            if tried {
                self.compressed_bytes += raw;
            }
            let compressed = tried.then(|| compress_if_cheaper(&json, head)).flatten();
            let body = compressed.unwrap_or_else(|| {
                String::from_utf8(json)
                    .expect("a bus is written from str slices and serde_json's output: UTF-8")
            });
            if body.len() <= self.sizing.budget || count == 1 {
                if tried {
                    self.learn(body.len(), raw);
                }
                self.seq += 1;
                out.push(PackedBus {
                    bus,
                    body,
                    riders: count,
                });
                return count;
            }
            // Over the budget: keep the riders the measured ratio says fit, at least one fewer.
            let ratio = body.len() as f64 / raw as f64;
            let fits = (self.sizing.budget as f64 * FILL / ratio) as usize;
            let room = fits.saturating_sub(self.overhead);
            count = self.aboard.within(first, room).clamp(1, count - 1);
        }
    }

    /// The envelope JSON of bus `bus` with riders `first..first + count`, and the length of
    /// its head (up to the passenger list), which differs between packings of the same riders.
    fn json(&self, bus: &str, first: usize, count: usize) -> (Vec<u8>, usize) {
        let head = self.header.json_prefix_with(bus, &self.dictionary_json);
        let head_len = head.len();
        let mut json = head.into_bytes();
        json.reserve(self.aboard.size(first, count) + ENVELOPE_SUFFIX.len());
        self.aboard.write(first, count, &mut json);
        json.extend_from_slice(ENVELOPE_SUFFIX.as_bytes());
        (json, head_len)
    }

    /// Sizes the next buses from one that compression was tried on: `sent` bytes for `raw`.
    fn learn(&mut self, sent: usize, raw: usize) {
        self.measured = true;
        let ratio = sent as f64 / raw as f64;
        let target = (self.sizing.budget as f64 * FILL / ratio) as usize;
        self.raw_target = target.clamp(
            self.sizing.budget,
            self.sizing.raw_limit.max(self.sizing.budget),
        );
    }

    fn bus_id(&self, seq: u64) -> String {
        let seq = seq.to_string();
        stable_id(&[&self.header.trip, &self.header.from, &self.origin_bus, &seq])
    }
}

/// The bytes of an envelope around its riders: header, dictionary and closing brackets.
fn overhead(header: &BusHeader, dictionary: &str) -> usize {
    header
        .json_prefix_with(&"0".repeat(BUS_ID_LEN), dictionary)
        .len()
        + ENVELOPE_SUFFIX.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Envelope, decode_envelope};
    use proptest::prelude::*;

    fn header() -> BusHeader {
        BusHeader {
            trip: "t".into(),
            route: "r".into(),
            from: "s".into(),
            hop: 1,
            created: "2026-11-22T00:00:00.000Z".into(),
        }
    }

    fn pack_with(sizing: BusSizing, riders: &[String]) -> Vec<PackedBus> {
        let mut packer = Packer::new(header(), "origin", sizing);
        let mut out = Vec::new();
        for rider in riders {
            packer.push(rider, &mut out);
        }
        packer.finish(&mut out);
        out
    }

    fn pack(budget: usize, riders: &[String]) -> Vec<PackedBus> {
        pack_with(BusSizing::plain(budget), riders)
    }

    /// Every rider's id, in bus order, checking each bus's id and count on the way.
    fn ids_in(buses: &[PackedBus]) -> Vec<String> {
        let mut ids = Vec::new();
        for bus in buses {
            let envelope: Envelope<Passenger> = decode_envelope(&bus.body).expect("valid envelope");
            assert_eq!(envelope.bus, bus.bus);
            assert_eq!(envelope.passengers.len(), bus.riders);
            ids.extend(envelope.passengers.iter().map(|p| p.id().to_owned()));
        }
        ids
    }

    fn colors(count: usize) -> Vec<String> {
        let names = ["Red", "Green", "Blue", "Gold", "White", "Black", "Teal"];
        (0..count)
            .map(|i| {
                serde_json::json!({"id": format!("ticket-{i}"), "source": format!("input/part-00000.csv:{}", i + 2),
                    "data": {"name": names[i % 7], "hex": format!("#{:06X}", (i * 7919) % 0xFFFFFF), "stock": i % 50}})
                .to_string()
            })
            .collect()
    }

    #[test]
    fn compressed_buses_carry_several_budgets_of_riders_within_the_budget_as_sent() {
        let riders = colors(60_000);
        let budget = 256 * 1024;
        let sizing = BusSizing {
            budget,
            raw_limit: 4 * budget,
            compress: true,
        };
        let compressed = pack_with(sizing, &riders);
        let plain = pack(budget, &riders);
        assert!(compressed.iter().all(|bus| bus.body.len() <= budget));
        assert!(
            compressed
                .iter()
                .all(|bus| bus.body.starts_with(crate::compression::COMPRESSED_PREFIX))
        );
        let expected: Vec<String> = (0..riders.len()).map(|i| format!("ticket-{i}")).collect();
        assert_eq!(ids_in(&compressed), expected);
        assert_eq!(ids_in(&plain), expected);
        // Several times fewer buses, each under the budget with room to spare.
        assert!(
            compressed.len() * 3 <= plain.len(),
            "{} against {}",
            compressed.len(),
            plain.len()
        );
        assert_eq!(compressed, pack_with(sizing, &riders), "deterministic");
    }

    #[test]
    fn riders_are_compressed_about_once_the_first_bus_included() {
        // Random hex compresses to about half as sent: a first bus packed to the raw limit on
        // a guess would be over the budget, compressed, and compressed again smaller.
        let noise = crate::compression::tests::noise(40_000 * 16);
        let riders: Vec<String> = noise
            .chunks(16)
            .enumerate()
            .map(|(i, bytes)| {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                serde_json::json!({"id": format!("t:{i}"), "data": {"hex": hex}}).to_string()
            })
            .collect();
        let budget = 256 * 1024;
        let sizing = BusSizing {
            budget,
            raw_limit: 4 * budget,
            compress: true,
        };
        let mut packer = Packer::new(header(), "origin", sizing);
        let mut buses = Vec::new();
        for rider in &riders {
            packer.push(rider, &mut buses);
        }
        packer.finish(&mut buses);
        let raw: usize = riders.iter().map(String::len).sum();
        assert!(raw > 6 * budget, "{raw} bytes of riders");
        assert!(
            packer.compressed_bytes * 10 <= raw * 12,
            "{} bytes compressed for {raw} bytes of riders",
            packer.compressed_bytes
        );
        assert!(buses.iter().all(|bus| bus.body.len() <= budget));
        let expected: Vec<String> = (0..riders.len()).map(|i| format!("t:{i}")).collect();
        assert_eq!(ids_in(&buses), expected);
    }

    /// The riders of each bus and each body's length, packed under a header created at
    /// `created`.
    fn packed_at(created: &str, sizing: BusSizing, riders: &[String]) -> Vec<(usize, usize)> {
        let header = BusHeader {
            created: created.into(),
            ..header()
        };
        let mut packer = Packer::new(header, "origin", sizing);
        let mut out = Vec::new();
        for rider in riders {
            packer.push(rider, &mut out);
        }
        packer.finish(&mut out);
        out.iter().map(|bus| (bus.riders, bus.body.len())).collect()
    }

    #[test]
    fn a_bus_packs_the_same_whenever_it_is_created() {
        // A redelivered bus is packed again later: its buses must hold the same riders, or an
        // output keyed by bus id would differ between deliveries.
        let riders = colors(40_000);
        let sizing = BusSizing {
            budget: 64 * 1024 + 1,
            raw_limit: 1 << 20,
            compress: true,
        };
        let first = packed_at("2026-11-22T00:00:00.000Z", sizing, &riders);
        assert!(first.len() > 10, "{} buses", first.len());
        for created in [
            "2031-07-15T13:47:09.512Z",
            "2026-12-03T16:59:59.999Z",
            "1999-01-01T08:31:46.207Z",
            "2026-11-22T00:00:00.001Z",
        ] {
            assert_eq!(
                packed_at(created, sizing, &riders),
                first,
                "created {created}"
            );
        }
    }

    #[test]
    fn a_bus_that_compression_does_not_save_a_chunk_goes_as_json() {
        let riders = colors(100);
        let sizing = BusSizing {
            budget: 1 << 20,
            raw_limit: 4 << 20,
            compress: true,
        };
        let buses = pack_with(sizing, &riders);
        assert_eq!(buses.len(), 1);
        assert!(buses[0].body.starts_with('{'));
    }

    fn rider(n: usize) -> String {
        serde_json::json!({"id": format!("p{n}"), "data": {"x": "y".repeat(n % 97)}}).to_string()
    }

    #[test]
    fn bus_ids_are_deterministic_and_distinct() {
        let riders: Vec<String> = (0..200).map(rider).collect();
        let a = pack(2048, &riders);
        let b = pack(2048, &riders);
        assert_eq!(a, b);
        let mut ids: Vec<&str> = a.iter().map(|bus| bus.bus.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), a.len());
    }

    proptest! {
        /// Every rider arrives exactly once, in order, and no bus is over the budget
        /// unless it carries one rider that is over the budget alone.
        #[test]
        fn packs_within_budget_and_loses_nothing(
            sizes in proptest::collection::vec(0usize..3000, 0..300),
            budget in 1024usize..8192,
            compress in proptest::bool::ANY,
        ) {
            let riders: Vec<String> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| serde_json::json!({"id": i.to_string(), "data": {"f": "a".repeat(*n)}}).to_string())
                .collect();
            let sizing = BusSizing { budget, raw_limit: budget * 8, compress };
            let buses = pack_with(sizing, &riders);
            let mut seen = Vec::new();
            for bus in &buses {
                let envelope: Envelope<Passenger> = decode_envelope(&bus.body).expect("valid envelope");
                prop_assert_eq!(envelope.bus.as_str(), bus.bus.as_str());
                prop_assert_eq!(envelope.passengers.len(), bus.riders);
                if bus.body.len() > budget {
                    prop_assert_eq!(bus.riders, 1, "an over-budget bus must carry a single rider");
                }
                seen.extend(envelope.passengers.iter().map(|p| p.id().to_owned()));
            }
            let expected: Vec<String> = (0..riders.len()).map(|i| i.to_string()).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
