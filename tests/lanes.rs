//! A route that branches (samples/lanes): transform's `route` operation sends each passenger on
//! one lane, to the lake's Parquet load or to the audit NDJSON load, and every count adds up
//! per lane.

use busline_cli::ride::ride;
use busline_template::add_stop::{NewStop, add_stop};
use busline_tests::readers::read;
use busline_tests::*;
use serde_json::{Value, json};

fn lanes_template() -> std::path::PathBuf {
    workspace_root().join("samples/lanes/template.yaml")
}

#[test]
fn the_lanes_sample_is_busline_s_route_plus_one_add_stop_on_a_lane() {
    let shipped =
        std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template");
    let stop = NewStop {
        name: "audit".into(),
        kind: "load".into(),
        after: "transform".into(),
        settings: vec![
            ("OUTPUT_PREFIX".into(), "audit/".into()),
            ("OUTPUT_FORMAT".into(), "ndjson".into()),
        ],
        lane: Some("audit".into()),
        writes: vec!["audit/".into()],
        ..NewStop::default()
    };
    let added = add_stop(&shipped, "template.yaml", &stop).expect("added");
    let committed = std::fs::read_to_string(lanes_template()).expect("sample");
    assert!(
        added == committed,
        "samples/lanes/template.yaml is not what its README's bus add-stop writes: run it again"
    );
}

#[tokio::test]
async fn each_passenger_takes_exactly_the_lane_its_condition_picks_and_counts_add_up_per_lane() {
    let parameters: Vec<(String, String)> = [
        ("CsvNullValues", r#"["NA"]"#),
        ("CsvInferTypes", "true"),
        ("OutputFormat", "parquet"),
        (
            "TransformOps",
            r#"[{"route": {"when": [{"lane": "audit", "field": "cancelled", "op": "eq", "value": 1}]}}]"#,
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let route = busline_template::read_route(&lanes_template(), &parameters.into_iter().collect())
        .expect("the lanes route");
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, &workspace_root().join("samples/flights"), out.path());
    options.trip_id = Some("lanes".into());
    let report = ride(options, |_| {}).await.expect("ride");
    assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
    assert!(report.quarantined.is_empty() && report.dead_letters.is_empty());

    let audit = ndjson_records(&out.path().join("audit/trip=lanes"));
    assert_eq!(audit.len(), 4);
    assert!(
        audit.iter().all(|r| r["cancelled"] == json!(1)),
        "{audit:?}"
    );
    let lake: Vec<String> = files_under(&out.path().join("output/trip=lanes"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .map(|f| f.display().to_string())
        .collect();
    let mut args = vec!["parquet"];
    args.extend(lake.iter().map(String::as_str));
    let table = read(&args);
    let flown = table["rows"].as_array().expect("rows");
    assert_eq!(flown.len(), 44);
    assert!(flown.iter().all(|r| r["cancelled"] == json!(0)));
    // Together they are the sample, each flight once.
    let mut flights: Vec<i64> = audit
        .iter()
        .chain(flown)
        .filter_map(|r| r["flight"].as_i64())
        .collect();
    flights.sort_unstable();
    flights.dedup();
    assert_eq!(flights.len(), 48);

    let counts = |stop: &str| {
        report
            .stops
            .iter()
            .find(|s| s.stop == stop)
            .map(|s| s.counts.clone())
            .expect("stop in the report")
    };
    let transform = counts("transform");
    assert_eq!(transform.forwarded, 48);
    assert_eq!(
        serde_json::to_value(&transform.lanes).expect("lanes"),
        json!({"audit": 4, "next": 44})
    );
    assert_eq!(
        (counts("load").passengers_in, counts("load").dropped_off),
        (44, 44)
    );
    assert_eq!(
        (counts("audit").passengers_in, counts("audit").dropped_off),
        (4, 4)
    );
    let table = report.table();
    assert!(
        table.contains("forwarded by lane at transform: audit 4, next 44"),
        "{table}"
    );
    assert!(
        table.contains("48 passengers dropped off at load and audit"),
        "{table}"
    );
    let _: Value = serde_json::to_value(&report).expect("the report as JSON");
}
