//! The proof on the embedded bus: 100,000 generated records with bad rows ride under a chaos
//! spec that fails a share of every kind of call and aborts invocations, and every record is
//! accounted for by its id: in the output exactly once, in quarantine exactly once with its
//! reason, or on a dead-lettered bus in the dead-letter report with its reason.

use busline_chaos::ChaosSpec;
use busline_cli::report::RideReport;
use busline_cli::ride::{ChaosOptions, ride};
use busline_tests::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

const RECORDS: u64 = 100_000;
const FILES: u64 = 50;
const BAD_EVERY: u64 = 1000;
const TRIP: &str = "chaos-proof";

/// Small buses and ten receives: many calls to fail, and room to retry them.
const ROUTE: [(&str, &str); 2] = [("BusByteBudget", "16384"), ("MaxReceiveCount", "10")];

/// The generated input, plus one object no retry can read (a header naming a column twice).
fn input(dir: &Path) {
    let generated = busline_cli::generate::generate(&busline_cli::generate::GenOptions {
        schema: busline_cli::generate::Schema::Colors,
        records: RECORDS,
        files: FILES,
        ndjson: false,
        out: dir.to_owned(),
        seed: 3,
        bad_every: BAD_EVERY,
        compression: None,
    })
    .expect("generate");
    assert_eq!(generated.bad, RECORDS / BAD_EVERY);
    std::fs::write(dir.join("duplicate-header.csv"), "a,a\n1,2\n").expect("write");
}

async fn ride_with(input: &Path, out: &Path, chaos: Option<ChaosOptions>) -> RideReport {
    let mut options = ride_options(shipped_route(&ROUTE), input, out);
    options.trip_id = Some(TRIP.into());
    options.chaos = chaos;
    ride(options, |_| {}).await.expect("ride")
}

/// Every output object of the trip, by key.
fn output_objects(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let folder = out.join(format!("output/trip={TRIP}"));
    files_under(&folder)
        .into_iter()
        .map(|path| {
            let key = path
                .strip_prefix(&folder)
                .expect("under the folder")
                .to_string_lossy()
                .into_owned();
            (key, std::fs::read(&path).expect("readable"))
        })
        .collect()
}

/// Checks the trip's `_SUCCESS` manifest against what the ride left in the bucket: it lists
/// exactly the output objects, load dropped off every output record, and a trip with dead
/// letters completed "with failures".
fn assert_manifest(out: &Path, report: &RideReport, objects: &BTreeMap<String, Vec<u8>>) {
    let path = out.join(format!("output/trip={TRIP}/_SUCCESS"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("JSON");
    let listed: Vec<&str> = manifest["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["key"].as_str().expect("key"))
        .collect();
    let keys: Vec<String> = objects
        .keys()
        .map(|key| format!("output/trip={TRIP}/{key}"))
        .collect();
    assert_eq!(listed, keys);
    let records = output_names(objects).values().sum::<u32>();
    assert_eq!(manifest["stops"]["load"]["dropped_off"], records);
    assert_eq!(manifest["rejected"], report.quarantined.len());
    let state = if report.dead_letters.is_empty() {
        "completed"
    } else {
        "completed_with_failures"
    };
    assert_eq!(manifest["state"], state);
    let trip = report.trip.as_ref().expect("the ride kept the ledger");
    assert_eq!(trip.completion.as_ref().map(|c| c.announced), Some(true));
}

/// How often each record (its generated `Name`, one per source position) is in the output.
fn output_names(objects: &BTreeMap<String, Vec<u8>>) -> HashMap<String, u32> {
    let mut names = HashMap::new();
    for bytes in objects.values() {
        for line in std::str::from_utf8(bytes).expect("UTF-8").lines() {
            let record: Value = serde_json::from_str(line).expect("NDJSON");
            let name = record["Name"].as_str().expect("Name").to_owned();
            *names.entry(name).or_default() += 1;
        }
    }
    names
}

/// The file a generated record `i` is in (the depot hands out one ticket per file).
fn file_of(i: u64) -> String {
    format!("input/part-{:05}.csv", i / RECORDS.div_ceil(FILES))
}

/// Checks every record's fate against the report: returns how many were dead-lettered.
fn account_for_every_record(report: &RideReport, objects: &BTreeMap<String, Vec<u8>>) -> u64 {
    let dead_files: HashSet<String> = report
        .dead_letters
        .iter()
        .filter_map(|letter| {
            let bus =
                busline_core::envelope::decode_envelope::<busline_core::Passenger>(&letter.body)
                    .ok()?;
            bus.passengers.first()?.get_str("key").map(str::to_owned)
        })
        .collect();
    for letter in &report.dead_letters {
        assert!(!letter.reason.is_empty(), "{letter:?}");
    }
    let names = output_names(objects);
    let quarantined: HashMap<String, &busline_core::Rejection> = report
        .quarantined
        .iter()
        .map(|q| {
            let name = q.rejection.data["raw"][0]
                .as_str()
                .expect("raw Name")
                .to_owned();
            (name, &q.rejection)
        })
        .collect();
    assert_eq!(
        quarantined.len(),
        report.quarantined.len(),
        "each reject once"
    );
    let mut on_dead_buses = 0;
    for i in 0..RECORDS {
        let name = format!("color-{i:08}");
        let bad = (i + 1) % BAD_EVERY == 0;
        let seen = names.get(&name).copied().unwrap_or_default();
        let rejected = quarantined.get(&name);
        assert!(seen <= 1, "{name} is in the output {seen} times");
        match (bad, seen, rejected) {
            (false, 1, None) => {}
            (true, 0, Some(rejection)) => assert!(
                rejection
                    .reason
                    .ends_with(": expected 3 fields as in the header, found 2"),
                "{rejection:?}"
            ),
            (_, 0, None) if dead_files.contains(&file_of(i)) => on_dead_buses += 1,
            other => panic!("{name} (bad: {bad}) ended as {other:?}"),
        }
    }
    assert_eq!(
        names.values().sum::<u32>() as u64 + report.quarantined.len() as u64 + on_dead_buses,
        RECORDS,
        "nothing else is in the output or quarantine"
    );
    let duplicate_header = report
        .dead_letters
        .iter()
        .filter(|letter| {
            letter.reason == "input/duplicate-header.csv:1: header names column `a` twice"
        })
        .count();
    assert_eq!(duplicate_header, 1, "{:?}", report.dead_letters);
    for stop in &report.stops {
        assert!(stop.adds_up, "{stop:?}");
    }
    on_dead_buses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_accounted_for_exactly_once_under_injected_faults() {
    let data = tempfile::tempdir().expect("tempdir");
    input(data.path());

    let calm_out = tempfile::tempdir().expect("tempdir");
    let calm = ride_with(data.path(), calm_out.path(), None).await;
    let calm_objects = output_objects(calm_out.path());
    assert_eq!(account_for_every_record(&calm, &calm_objects), 0);
    assert_manifest(calm_out.path(), &calm, &calm_objects);
    assert_eq!(calm.quarantined.len() as u64, RECORDS / BAD_EVERY);
    assert_eq!(calm.dead_letters.len(), 1);

    let stormy_out = tempfile::tempdir().expect("tempdir");
    let spec: ChaosSpec = "all=10%,slow-read=10%@5ms".parse().expect("spec");
    let stormy = ride_with(
        data.path(),
        stormy_out.path(),
        Some(ChaosOptions { spec, seed: 7 }),
    )
    .await;
    let stormy_objects = output_objects(stormy_out.path());
    let lost_to_dead_letters = account_for_every_record(&stormy, &stormy_objects);
    assert_manifest(stormy_out.path(), &stormy, &stormy_objects);

    let mut injected: BTreeMap<&str, u64> = BTreeMap::new();
    for stop in &stormy.stops {
        for (fault, count) in stop.faults.iter().flatten() {
            *injected.entry(fault).or_default() += count;
        }
    }
    println!(
        "faults injected: {injected:?}; calm ride {:?}, stormy ride {:?}; {} records on dead-lettered buses",
        calm.elapsed, stormy.elapsed, lost_to_dead_letters
    );
    for (fault, count) in &injected {
        assert!(*count > 0, "no {fault} fault was injected: {injected:?}");
    }
    assert_eq!(injected.len(), busline_chaos::Fault::ALL.len());

    // Every object written under chaos is the object written without it, byte for byte; with
    // nothing but the unreadable object dead-lettered, the whole output is.
    for (key, bytes) in &stormy_objects {
        assert_eq!(Some(bytes), calm_objects.get(key), "{key}");
    }
    if stormy.dead_letters.len() == 1 {
        assert_eq!(stormy_objects.len(), calm_objects.len());
        assert_eq!(reject_lines(&stormy), reject_lines(&calm));
    }
    // The reports are in the bucket too.
    let reports = stormy_out
        .path()
        .join(format!("dead-letter/trip={TRIP}/extract.ndjson"));
    let text = std::fs::read_to_string(reports).expect("dead-letter report");
    assert!(text.contains("header names column `a` twice"), "{text}");
}
