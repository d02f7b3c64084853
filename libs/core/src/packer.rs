//! Packs serialized riders into bus bodies no larger than a byte budget, with deterministic
//! bus ids: the same input always packs into the same buses.

use crate::envelope::{BusHeader, ENVELOPE_SUFFIX};
use crate::id::stable_id;

/// Length of every bus id (see [`stable_id`]).
const BUS_ID_LEN: usize = 16;

/// One complete bus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBus {
    /// The bus id inside the body.
    pub bus: String,
    /// The envelope JSON.
    pub body: String,
    /// How many riders it carries.
    pub riders: usize,
}

/// Packs riders (already serialized as JSON) into buses.
#[derive(Debug)]
pub struct Packer {
    header: BusHeader,
    origin_bus: String,
    budget: usize,
    overhead: usize,
    seq: u64,
    riders: String,
    count: usize,
}

impl Packer {
    /// A packer for buses with `header`, derived from the bus `origin_bus`, each at most
    /// `budget` bytes unless a single rider is larger than that on its own.
    pub fn new(header: BusHeader, origin_bus: impl Into<String>, budget: usize) -> Self {
        let overhead = header.json_prefix(&"0".repeat(BUS_ID_LEN)).len() + ENVELOPE_SUFFIX.len();
        Packer {
            header,
            origin_bus: origin_bus.into(),
            budget,
            overhead,
            seq: 0,
            riders: String::new(),
            count: 0,
        }
    }

    /// Adds one rider. Buses that became complete are pushed to `out`: the bus being packed
    /// when `rider` does not fit, and `rider` alone when it is over the budget by itself
    /// (such a bus is larger than the budget and must be parked as a claim check).
    pub fn push(&mut self, rider: &str, out: &mut Vec<PackedBus>) {
        let separator = usize::from(self.count > 0);
        if self.count > 0
            && self.overhead + self.riders.len() + separator + rider.len() > self.budget
        {
            out.extend(self.finish());
        }
        if self.count > 0 {
            self.riders.push(',');
        }
        self.riders.push_str(rider);
        self.count += 1;
        if self.overhead + self.riders.len() > self.budget {
            out.extend(self.finish());
        }
    }

    /// Completes the bus being packed, if it has riders; the next rider starts a new bus.
    pub fn finish(&mut self) -> Option<PackedBus> {
        if self.count == 0 {
            return None;
        }
        let seq = self.seq.to_string();
        let bus = stable_id(&[&self.header.trip, &self.header.from, &self.origin_bus, &seq]);
        self.seq += 1;
        let mut body = self.header.json_prefix(&bus);
        body.reserve(self.riders.len() + ENVELOPE_SUFFIX.len());
        body.push_str(&self.riders);
        body.push_str(ENVELOPE_SUFFIX);
        self.riders.clear();
        let riders = std::mem::take(&mut self.count);
        Some(PackedBus { bus, body, riders })
    }

    /// The byte budget of one bus.
    pub fn budget(&self) -> usize {
        self.budget
    }
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

    fn pack(budget: usize, riders: &[String]) -> Vec<PackedBus> {
        let mut packer = Packer::new(header(), "origin", budget);
        let mut out = Vec::new();
        for rider in riders {
            packer.push(rider, &mut out);
        }
        out.extend(packer.finish());
        out
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
        ) {
            let riders: Vec<String> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| serde_json::json!({"id": i.to_string(), "data": {"f": "a".repeat(*n)}}).to_string())
                .collect();
            let buses = pack(budget, &riders);
            let mut seen = Vec::new();
            for bus in &buses {
                let envelope: Envelope<serde_json::Value> = decode_envelope(&bus.body).expect("valid envelope");
                prop_assert_eq!(envelope.bus.as_str(), bus.bus.as_str());
                prop_assert_eq!(envelope.passengers.len(), bus.riders);
                if bus.body.len() > budget {
                    prop_assert_eq!(bus.riders, 1, "an over-budget bus must carry a single rider");
                }
                seen.extend(envelope.passengers.into_iter().map(|p| p["id"].as_str().unwrap_or_default().to_owned()));
            }
            let expected: Vec<String> = (0..riders.len()).map(|i| i.to_string()).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
