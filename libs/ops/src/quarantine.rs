//! What a route's stops quarantined: the NDJSON files under `<QUARANTINE_PREFIX>trip=<trip>/
//! <stop>/` of its data bucket (or of `bus ride`'s output folder), listed per trip and stop,
//! and read back line by line.

use crate::OpsError;
use busline_core::ports::ObjectStore;
use busline_core::quarantine::{QuarantineLine, read_files, trip_folder};
use serde::Serialize;
use std::collections::BTreeMap;

/// One trip's quarantine files at one stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedAt {
    /// The trip.
    pub trip: String,
    /// The stop that rejected the passengers.
    pub stop: String,
    /// Its files.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The folder they are in.
    pub folder: String,
}

/// The quarantine files under `prefix` (of one trip when `trip` is given), per trip and stop.
pub async fn quarantine_list(
    objects: &dyn ObjectStore,
    prefix: &str,
    trip: Option<&str>,
) -> Result<Vec<QuarantinedAt>, OpsError> {
    let under = trip.map_or_else(|| format!("{prefix}trip="), |t| trip_folder(prefix, t));
    let mut at: BTreeMap<(String, String), QuarantinedAt> = BTreeMap::new();
    for object in objects.list(&under).await? {
        let Some((trip, stop)) = trip_and_stop(prefix, &object.key) else {
            continue;
        };
        let entry = at
            .entry((trip.clone(), stop.clone()))
            .or_insert_with(|| QuarantinedAt {
                folder: format!("{}{stop}/", trip_folder(prefix, &trip)),
                trip,
                stop,
                files: 0,
                bytes: 0,
            });
        entry.files += 1;
        entry.bytes += object.size;
    }
    Ok(at.into_values().collect())
}

/// Up to `limit` rejections of `trip` (at `stop` only, when given), in key order.
pub async fn quarantine_show(
    objects: &dyn ObjectStore,
    prefix: &str,
    trip: &str,
    stop: Option<&str>,
    limit: usize,
) -> Result<Vec<QuarantineLine>, OpsError> {
    let folder = match stop {
        Some(stop) => format!("{}{stop}/", trip_folder(prefix, trip)),
        None => trip_folder(prefix, trip),
    };
    Ok(read_files(objects, &folder, limit).await?)
}

/// The trip and stop a quarantine file's key names: `<prefix>trip=<trip>/<stop>/<file>`.
fn trip_and_stop(prefix: &str, key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("trip=")?;
    let (trip, rest) = rest.split_once('/')?;
    let (stop, _) = rest.split_once('/')?;
    Some((trip.to_owned(), stop.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_names_its_trip_and_stop() {
        assert_eq!(
            super::trip_and_stop("quarantine/", "quarantine/trip=t-1/extract/ab.ndjson"),
            Some(("t-1".into(), "extract".into()))
        );
        assert_eq!(
            super::trip_and_stop("quarantine/", "quarantine/trip=t-1/x"),
            None
        );
    }
}
