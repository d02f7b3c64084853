//! `bus trip` and `bus trips`: a trip's progress and the recent trips, from the ledger a ride
//! left in its output folder or from a deployed route's ledger table.

use crate::ride::embedded_ledger_key;
use busline_core::PortError;
use busline_core::ledger::{Ledger, MemoryLedger, TripProgress, TripTotals, rfc3339};
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where the ledger is.
#[derive(Debug, Clone)]
pub enum LedgerSource {
    /// The output folder of `bus ride`, holding `ledger/trip=<id>.json`.
    Folder(PathBuf),
    /// A deployed route's DynamoDB table (the stack's `TripLedgerTableName` output), reached
    /// with the environment's AWS configuration (`AWS_ENDPOINT_URL` for a local cloud).
    Table(String),
}

/// Why the ledger could not be read.
#[derive(Debug, Error)]
pub enum TripsError {
    /// No trip of that id.
    #[error("trip {trip} is not in {place}")]
    UnknownTrip {
        /// The trip asked for.
        trip: String,
        /// Where it was looked for.
        place: String,
    },
    /// A ledger file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The table could not be read.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// One trip as `bus trip --json` prints it.
#[derive(Debug, Serialize)]
pub struct TripView {
    /// The ledger's totals.
    pub totals: TripTotals,
    /// What they say.
    pub progress: TripProgress,
}

impl LedgerSource {
    fn place(&self) -> String {
        match self {
            LedgerSource::Folder(folder) => format!(
                "{} (where bus ride leaves each trip's ledger)",
                folder.join("ledger").display()
            ),
            LedgerSource::Table(table) => format!("ledger table {table}"),
        }
    }

    async fn open(&self) -> Result<Box<dyn Ledger>, TripsError> {
        Ok(match self {
            LedgerSource::Folder(folder) => Box::new(folder_ledger(folder)?),
            LedgerSource::Table(table) => {
                let shared = busline_aws::clients::load_config().await;
                // Reading only: the retention applies to what a stop writes.
                Box::new(busline_aws::DynamoLedger::from_config(
                    &shared,
                    table.clone(),
                    std::time::Duration::ZERO,
                ))
            }
        })
    }
}

/// Every ride's ledger file in the folder, as one ledger.
fn folder_ledger(folder: &Path) -> Result<MemoryLedger, TripsError> {
    let dir = folder.join("ledger");
    let mut merged = serde_json::Map::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(MemoryLedger::default());
        }
        Err(err) => return Err(file_error(&dir, err)),
    };
    for entry in entries {
        let path = entry.map_err(|err| file_error(&dir, err))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|err| file_error(&path, err))?;
        let trips: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|err| file_error(&path, err))?;
        merged.extend(trips);
    }
    let json = serde_json::Value::Object(merged).to_string();
    MemoryLedger::from_json(&json).map_err(|err| file_error(&dir, err))
}

fn file_error(path: &Path, err: impl std::fmt::Display) -> TripsError {
    TripsError::File {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

/// The trip's totals and progress.
pub async fn trip(source: &LedgerSource, trip: &str) -> Result<TripView, TripsError> {
    let totals =
        source
            .open()
            .await?
            .totals(trip)
            .await?
            .ok_or_else(|| TripsError::UnknownTrip {
                trip: trip.to_owned(),
                place: source.place(),
            })?;
    Ok(TripView {
        progress: totals.progress(),
        totals,
    })
}

/// The trip for a terminal: its table, and where its manifest and reports are.
pub fn trip_text(view: &TripView, source: &LedgerSource) -> String {
    let trip = &view.totals.trip;
    let mut places = Vec::new();
    let manifest = format!("output/trip={trip}/_SUCCESS");
    match (source, view.totals.completion.is_some()) {
        (LedgerSource::Folder(folder), true) => {
            places.push(("manifest", folder.join(manifest).display().to_string()))
        }
        (LedgerSource::Table(_), true) => places.push(("manifest", manifest)),
        _ => {}
    }
    if let LedgerSource::Folder(folder) = source {
        for (what, key) in [
            ("quarantine", format!("quarantine/trip={trip}/")),
            ("dead letters", format!("dead-letter/trip={trip}/")),
        ] {
            if folder.join(&key).exists() {
                places.push((what, folder.join(key).display().to_string()));
            }
        }
        places.push((
            "ledger",
            folder.join(embedded_ledger_key(trip)).display().to_string(),
        ));
    }
    crate::trip_view::trip_table(&view.totals, &places)
}

/// The `limit` most recently updated trips.
pub async fn trips(source: &LedgerSource, limit: usize) -> Result<Vec<TripView>, TripsError> {
    let recent = source.open().await?.recent_trips(limit).await?;
    Ok(recent
        .into_iter()
        .map(|totals| TripView {
            progress: totals.progress(),
            totals,
        })
        .collect())
}

/// The trips for a terminal, one line each.
pub fn trips_text(views: &[TripView]) -> String {
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|view| {
            let buses: i64 = view.progress.stops.values().map(|s| s.buses).sum();
            vec![
                view.totals.trip.clone(),
                view.progress.state.to_string(),
                rfc3339(view.totals.first_at_ms),
                rfc3339(view.totals.last_at_ms),
                buses.to_string(),
                view.progress.rejected.to_string(),
                view.progress.dead_lettered.to_string(),
            ]
        })
        .collect();
    let headers = [
        "trip",
        "state",
        "first bus",
        "last bus",
        "buses",
        "rejected",
        "dead-lettered",
    ];
    crate::table::render(&headers, &rows)
}
