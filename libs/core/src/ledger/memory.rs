//! The ledger in memory, for the embedded bus and unit tests: the same semantics as the
//! DynamoDB ledger (one record per bus, totals updated with it, one claim per completion),
//! kept whole under a lock. It saves to and loads from JSON, so `bus trip` can read a ride's.

use super::{BusOutcome, Completion, Ledger, LedgerEntry, Recorded, TripTotals};
use crate::error::PortError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One trip's book: its totals and its buses' records by stop and bus.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Book {
    totals: TripTotals,
    entries: BTreeMap<String, LedgerEntry>,
}

/// A ledger held in memory.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    trips: Mutex<BTreeMap<String, Book>>,
}

impl MemoryLedger {
    /// The whole ledger as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&*self.lock()).unwrap_or_default()
    }

    /// A ledger from what [`MemoryLedger::to_json`] wrote.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        Ok(MemoryLedger {
            trips: Mutex::new(serde_json::from_str(json)?),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Book>> {
        // A panic while holding the lock cannot leave a book half-written: every write below
        // computes first and assigns last.
        self.trips
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn record(&self, entry: &LedgerEntry) -> Result<Recorded, PortError> {
        let mut trips = self.lock();
        let book = trips.entry(entry.trip.clone()).or_insert_with(|| Book {
            totals: TripTotals {
                trip: entry.trip.clone(),
                ..TripTotals::default()
            },
            ..Book::default()
        });
        let key = format!("{}#{}", entry.stop, entry.bus);
        let (deltas, recorded) = match book.entries.get(&key) {
            None => (entry.deltas(), Recorded::New),
            Some(old)
                if old.outcome == BusOutcome::DeadLettered
                    && entry.outcome == BusOutcome::Ridden =>
            {
                (entry.replacing(old), Recorded::Replaced)
            }
            Some(_) => return Ok(Recorded::AlreadyRecorded),
        };
        book.totals.add(&deltas, entry.at_ms);
        book.entries.insert(key, entry.clone());
        Ok(recorded)
    }

    async fn totals(&self, trip: &str) -> Result<Option<TripTotals>, PortError> {
        Ok(self.lock().get(trip).map(|book| book.totals.clone()))
    }

    async fn claim_completion(&self, trip: &str, claim: &Completion) -> Result<bool, PortError> {
        let mut trips = self.lock();
        let Some(book) = trips.get_mut(trip) else {
            return Err(PortError::NotFound {
                resource: format!("ledger trip {trip}"),
            });
        };
        let free = book
            .totals
            .completion
            .as_ref()
            .is_none_or(|last| claim.supersedes(last));
        if free {
            book.totals.completion = Some(claim.clone());
        }
        Ok(free)
    }

    async fn release_claim(&self, trip: &str, claim: &Completion) -> Result<(), PortError> {
        if let Some(totals) = self.lock().get_mut(trip).map(|book| &mut book.totals)
            && totals.completion.as_ref() == Some(claim)
        {
            totals.completion = None;
        }
        Ok(())
    }

    async fn mark_announced(&self, trip: &str, claim: &Completion) -> Result<(), PortError> {
        if let Some(completion) = self
            .lock()
            .get_mut(trip)
            .and_then(|book| book.totals.completion.as_mut())
            .filter(|c| c.dead_lettered == claim.dead_lettered && c.replayed == claim.replayed)
        {
            completion.announced = true;
        }
        Ok(())
    }

    async fn recent_trips(&self, limit: usize) -> Result<Vec<TripTotals>, PortError> {
        let mut trips: Vec<TripTotals> = self.lock().values().map(|b| b.totals.clone()).collect();
        trips.sort_by(|a, b| b.last_at_ms.cmp(&a.last_at_ms).then(a.trip.cmp(&b.trip)));
        trips.truncate(limit);
        Ok(trips)
    }

    async fn entries(&self, trip: &str) -> Result<Vec<LedgerEntry>, PortError> {
        Ok(self
            .lock()
            .get(trip)
            .map(|book| book.entries.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn bus_entries(
        &self,
        trip: &str,
        stop: &str,
        bus: &str,
    ) -> Result<Vec<LedgerEntry>, PortError> {
        let trips = self.lock();
        let Some(book) = trips.get(trip) else {
            return Ok(Vec::new());
        };
        let own = format!("{stop}#{bus}");
        Ok(book
            .entries
            .range(own.clone()..)
            .take_while(|(key, _)| key.starts_with(&own))
            .filter(|(_, entry)| super::is_of_bus(&entry.bus, bus))
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::TripState;
    use super::*;

    fn entry(bus: &str, outcome: BusOutcome, counters: &[(&str, u64)]) -> LedgerEntry {
        LedgerEntry {
            trip: "t".into(),
            stop: "load".into(),
            bus: bus.into(),
            outcome,
            at_ms: 7,
            counters: counters.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
        }
    }

    fn claim(dead_lettered: u64, replayed: u64) -> Completion {
        Completion {
            state: TripState::Completed,
            dead_lettered,
            replayed,
            by: "load/b".into(),
            at_ms: 8,
            announced: false,
        }
    }

    #[tokio::test]
    async fn a_bus_counts_once_and_a_redrive_replaces_its_dead_letter() {
        let ledger = MemoryLedger::default();
        let dead = entry(
            "b",
            BusOutcome::DeadLettered,
            &[("arrived:q", 3), ("stop:load:dead_lettered", 3)],
        );
        assert_eq!(ledger.record(&dead).await.expect("record"), Recorded::New);
        assert_eq!(
            ledger.record(&dead).await.expect("again"),
            Recorded::AlreadyRecorded
        );
        let ridden = entry(
            "b",
            BusOutcome::Ridden,
            &[("arrived:q", 3), ("stop:load:dropped_off", 3)],
        );
        assert_eq!(
            ledger.record(&ridden).await.expect("redrive"),
            Recorded::Replaced
        );
        assert_eq!(
            ledger.record(&ridden).await.expect("redelivery"),
            Recorded::AlreadyRecorded
        );
        let totals = ledger.totals("t").await.expect("read").expect("trip");
        assert_eq!(
            totals.counters,
            BTreeMap::from([
                ("arrived:q".to_owned(), 3),
                ("stop:load:dead_lettered".to_owned(), 0),
                ("stop:load:dropped_off".to_owned(), 3),
            ])
        );
        let saved = MemoryLedger::from_json(&ledger.to_json()).expect("json");
        assert_eq!(saved.totals("t").await.expect("read"), Some(totals));
    }

    #[tokio::test]
    async fn a_completion_is_claimed_once_and_again_only_after_a_redrive_or_a_replay() {
        let ledger = MemoryLedger::default();
        ledger
            .record(&entry("b", BusOutcome::Ridden, &[]))
            .await
            .expect("record");
        let claims = [
            (claim(2, 0), true, "first"),
            (claim(2, 0), false, "the same again"),
            (claim(0, 0), true, "after a redrive"),
            (claim(0, 0), false, "the redrive's again"),
            (claim(0, 1), true, "after a replay"),
            (claim(0, 1), false, "the replay's again"),
            (claim(1, 1), false, "more dead letters"),
        ];
        for (claim, won, what) in claims {
            assert_eq!(
                ledger.claim_completion("t", &claim).await.expect("claim"),
                won,
                "{what}"
            );
        }
        // Only the claim that is the trip's last is marked; an older one marks nothing.
        for (marked, announced) in [(claim(2, 0), false), (claim(0, 1), true)] {
            ledger.mark_announced("t", &marked).await.expect("mark");
            let last = ledger.totals("t").await.expect("read");
            let last = last.and_then(|t| t.completion).expect("claimed");
            assert_eq!(last.announced, announced, "{marked:?}");
        }
    }
}
