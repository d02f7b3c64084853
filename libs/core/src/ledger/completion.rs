//! Recording buses and completing trips: after its records, a stop reads its trip's totals;
//! the one stop whose record completed the trip writes `<output>trip=<trip>/_SUCCESS` (the
//! manifest) and announces it (an EventBridge event on AWS).

use super::{Completion, Ledger, LedgerEntry, Recorded, StopTally, TripState, TripTotals};
use crate::error::{ErrorClass, PortError};
use crate::forwarder::RetryPolicy;
use crate::ports::{ObjectInfo, ObjectStore};
use async_trait::async_trait;
use backon::Retryable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The manifest's name in a trip's output folder.
pub const MANIFEST_NAME: &str = "_SUCCESS";

/// A claimed completion not announced after this long is announced by whoever sees it next
/// (its claimer died between claim and announcement).
const STALE_CLAIM: Duration = Duration::from_secs(60);

/// What a completed trip wrote and counted: the body of `_SUCCESS`, and of the completion event
/// (without its object list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The trip.
    pub trip: String,
    /// The route.
    pub route: String,
    /// `completed` or `completed_with_failures`.
    pub state: TripState,
    /// When the trip's first bus was recorded (RFC 3339).
    pub started_at: String,
    /// When it completed.
    pub completed_at: String,
    /// The stop and bus whose record completed it.
    pub completed_by: String,
    /// Per stop, what its buses did.
    pub stops: BTreeMap<String, StopTally>,
    /// Passengers quarantined, over every stop.
    pub rejected: i64,
    /// Passengers on dead-lettered buses, over every stop. A sink's bus dead-lettered on its
    /// last receive may have written its part of the output on an earlier one (at least once):
    /// its redrive writes the same keys again.
    pub dead_lettered: i64,
    /// Passengers replayed from quarantine once corrected (also counted in `rejected`, where
    /// they were first refused).
    #[serde(default)]
    pub replayed: i64,
    /// Passengers that dead-lettered buses counted as sent without knowing they left, over
    /// every queue: they may still arrive after this manifest (a redrive completes the trip
    /// again either way).
    #[serde(default)]
    pub in_doubt: i64,
    /// The bucket the output is in.
    pub bucket: String,
    /// The manifest's own key.
    pub key: String,
    /// Every object under the trip's output folder but the manifest, in key order.
    pub objects: Vec<ManifestObject>,
}

/// One output object in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Manifest {
    /// The completion event's detail: the manifest with its object count instead of its
    /// objects (an EventBridge entry holds at most 256 KB).
    pub fn event_detail(&self) -> serde_json::Value {
        let mut detail = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = detail.as_object_mut() {
            fields.remove("objects");
            fields.insert("object_count".into(), self.objects.len().into());
        }
        detail
    }
}

/// Where a completed trip is announced: EventBridge on AWS, a list in the embedded bus.
#[async_trait]
pub trait TripEvents: Send + Sync {
    /// Announces that `manifest`'s trip completed (`busline Trip Completed`).
    async fn trip_completed(&self, manifest: &Manifest) -> Result<(), PortError>;
}

/// Keeps the announced manifests in memory (the embedded bus, tests).
#[derive(Debug, Default)]
pub struct CollectedEvents(Mutex<Vec<Manifest>>);

impl CollectedEvents {
    /// Every manifest announced so far, in order.
    pub fn announced(&self) -> Vec<Manifest> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl TripEvents for CollectedEvents {
    async fn trip_completed(&self, manifest: &Manifest) -> Result<(), PortError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(manifest.clone());
        Ok(())
    }
}

/// What a host gives its stops to keep the ledger: where it is, where completions are
/// announced, and where the output of trips goes.
#[derive(Clone)]
pub struct TripBook {
    /// The ledger.
    pub ledger: Arc<dyn Ledger>,
    /// Where completions are announced.
    pub events: Arc<dyn TripEvents>,
    /// The prefix load writes under (`output/`): the manifest goes to
    /// `<prefix>trip=<trip>/_SUCCESS`.
    pub output_prefix: String,
    /// How a failed announcement call is tried again (the ports' policy, as for a send).
    pub retry: RetryPolicy,
}

impl TripBook {
    /// Records each entry; then, once per trip, completes the trip when the records made it
    /// complete. One result per entry; a failed completion fails every entry of its trip, so
    /// the buses come back and the completion is tried again.
    pub async fn record(
        &self,
        entries: &[LedgerEntry],
        route: &str,
        objects: &dyn ObjectStore,
    ) -> Vec<Result<Recorded, PortError>> {
        let records = entries.iter().map(|entry| self.ledger.record(entry));
        let mut results = futures::future::join_all(records).await;
        let mut trips: BTreeMap<&str, String> = BTreeMap::new();
        for (entry, result) in entries.iter().zip(&results) {
            if result.is_ok() {
                trips.insert(&entry.trip, format!("{}/{}", entry.stop, entry.bus));
            }
        }
        for (trip, by) in trips {
            if let Err(err) = self.complete_if_done(trip, &by, route, objects).await {
                tracing::warn!(trip, error = %crate::error::chain(&err), "trip completion failed; the buses will be retried");
                let reason = err.to_string();
                for (entry, result) in entries.iter().zip(results.iter_mut()) {
                    if entry.trip == trip && result.is_ok() {
                        *result = Err(PortError::retryable("ledger", reason.clone()));
                    }
                }
            }
        }
        results
    }

    /// Writes the manifest and announces the trip when its totals say it is complete and this
    /// caller wins the claim; the manifest when it did.
    pub async fn complete_if_done(
        &self,
        trip: &str,
        by: &str,
        route: &str,
        objects: &dyn ObjectStore,
    ) -> Result<Option<Manifest>, PortError> {
        let Some(totals) = self.ledger.totals(trip).await? else {
            return Ok(None);
        };
        let progress = totals.progress();
        if !progress.is_complete() {
            return Ok(None);
        }
        let claim = Completion {
            state: progress.state,
            dead_lettered: progress.dead_lettered.max(0) as u64,
            replayed: progress.replayed.max(0) as u64,
            by: by.to_owned(),
            at_ms: now_ms(),
            announced: false,
        };
        let won = self.ledger.claim_completion(trip, &claim).await?;
        let claim = match (won, &totals.completion) {
            (true, _) => claim,
            (false, Some(last)) if abandoned(last, &claim) => last.clone(),
            (false, _) => return Ok(None),
        };
        let manifest = match self.announce(&totals, &claim, route, objects).await {
            Ok(manifest) => manifest,
            Err(err) => {
                // Nothing was announced: give the claim up, so the bus that comes back (the
                // caller fails it) claims and announces it, not only a stale-claim sweep.
                if let Err(release) = self.ledger.release_claim(trip, &claim).await {
                    tracing::warn!(trip, error = %crate::error::chain(&release), "could not release the completion claim; it is announced once it is stale");
                }
                return Err(err);
            }
        };
        self.ledger.mark_announced(trip, &claim).await?;
        tracing::info!(trip, state = %manifest.state, key = manifest.key, "trip completed");
        Ok(Some(manifest))
    }

    /// Writes the manifest of `claim` and sends its event, each call tried again after a
    /// retryable failure: the bus whose record completed the trip would otherwise ride again,
    /// redoing its work, only to announce.
    async fn announce(
        &self,
        totals: &TripTotals,
        claim: &Completion,
        route: &str,
        objects: &dyn ObjectStore,
    ) -> Result<Manifest, PortError> {
        let retry = &self.retry;
        let manifest = retried(retry, || self.manifest(totals, claim, route, objects)).await?;
        let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        retried(retry, || {
            objects.put(&manifest.key, body.clone(), "application/json")
        })
        .await?;
        retried(retry, || self.events.trip_completed(&manifest)).await?;
        Ok(manifest)
    }

    async fn manifest(
        &self,
        totals: &TripTotals,
        claim: &Completion,
        route: &str,
        objects: &dyn ObjectStore,
    ) -> Result<Manifest, PortError> {
        let folder = format!("{}trip={}/", self.output_prefix, totals.trip);
        let key = format!("{folder}{MANIFEST_NAME}");
        let listed: Vec<ObjectInfo> = objects.list(&folder).await?;
        let progress = totals.progress();
        Ok(Manifest {
            trip: totals.trip.clone(),
            route: route.to_owned(),
            state: claim.state,
            started_at: rfc3339(totals.first_at_ms),
            completed_at: rfc3339(claim.at_ms),
            completed_by: claim.by.clone(),
            stops: progress.stops,
            rejected: progress.rejected,
            dead_lettered: progress.dead_lettered,
            replayed: progress.replayed,
            in_doubt: progress.flows.values().map(|flow| flow.in_doubt).sum(),
            bucket: objects.bucket().to_owned(),
            objects: listed
                .into_iter()
                .filter(|o| o.key != key)
                .map(|o| ManifestObject {
                    key: o.key,
                    size: o.size,
                })
                .collect(),
            key,
        })
    }
}

/// `call`, tried again by `policy` after a retryable failure.
async fn retried<T, F, Fut>(policy: &RetryPolicy, call: F) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PortError>>,
{
    call.retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|err: &PortError| err.class() == ErrorClass::Retryable)
        .notify(|err, delay| {
            tracing::warn!(error = %crate::error::chain(err), ?delay, "trip announcement failed; retrying");
        })
        .await
}

/// True when `last` was claimed for the same completion as `claim` but never announced, and
/// its claimer is gone: it is this same bus back again (its invocation died or failed before
/// announcing; a bus is redelivered only once its last invocation ended), or the claim is old
/// enough that its claimer must have died. Either may announce a trip twice when only the
/// claim's mark was lost: a completion is announced at least once.
fn abandoned(last: &Completion, claim: &Completion) -> bool {
    let stale = now_ms().saturating_sub(last.at_ms) > STALE_CLAIM.as_millis() as u64;
    !last.announced
        && last.dead_lettered == claim.dead_lettered
        && last.replayed == claim.replayed
        && (last.by == claim.by || stale)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A time in ms since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
