//! The PostgreSQL source against a real PostgreSQL 15 (samples/postgres-source): the depot
//! splits a query's rows into key ranges, the source stop reads each through a server-side
//! portal; every row arrives once with exact values and ids from its key, a re-ride writes the
//! same objects, and a read cut into many short invocations gives the output of one read.

use busline_cli::ride::ride;
use busline_tests::postgres::{connect, database_url, table};
use busline_tests::*;
use serde_json::Value;
use std::path::Path;

/// A table of `rows` orders: id 1..=rows, an amount with cents, a timestamp, some NULLs.
async fn orders(rows: u32) -> String {
    let name = table(
        "orders",
        "id bigint PRIMARY KEY, customer text, amount numeric(12,2), placed timestamptz, note text",
    )
    .await;
    connect()
        .await
        .batch_execute(&format!(
            "INSERT INTO {name} SELECT i, 'customer-' || (i % 97), (i * 1.25)::numeric(12,2), \
             timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', \
             CASE WHEN i % 10 = 0 THEN NULL ELSE 'n' || i END FROM generate_series(1, {rows}) i"
        ))
        .await
        .expect("rows inserted");
    name
}

/// Rides samples/postgres-source over `table` with `extra` parameters; the report and the
/// records under output/, sorted.
async fn ride_source(
    table: &str,
    out: &Path,
    extra: &[(&str, &str)],
) -> (busline_cli::report::RideReport, Vec<Value>) {
    let url = database_url();
    let query = format!("SELECT * FROM {table}");
    let mut parameters: Vec<(String, String)> = [
        ("SourceDatabaseUrl", url.as_str()),
        ("SourceQuery", query.as_str()),
        ("SourceKey", "id"),
        ("RangeRows", "700"),
        ("TransformOps", r#"[{"require": ["id"]}]"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    parameters.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let route = busline_template::read_route(
        &workspace_root().join("samples/postgres-source/template.yaml"),
        &parameters.into_iter().collect(),
    )
    .expect("the postgres source route");
    let input = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, input.path(), out);
    options.trip_id = Some("orders".into());
    let report = ride(options, |_| {}).await.expect("ride");
    assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let records = ndjson_records(&out.join("output/trip=orders"));
    (report, records)
}

#[tokio::test]
async fn every_row_arrives_once_in_key_ranges_with_exact_values_and_ids_from_its_key() {
    let name = orders(5_000).await;
    let out = tempfile::tempdir().expect("tempdir");
    let (report, records) = ride_source(&name, out.path(), &[]).await;
    assert_eq!(records.len(), 5_000);
    let depot = &report.stops[0];
    assert_eq!(
        depot.counts.forwarded, 8,
        "5000 rows in ranges of about 700"
    );
    let mut ids: Vec<i64> = records.iter().filter_map(|r| r["id"].as_i64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5_000);
    let order = records
        .iter()
        .find(|r| r["id"].as_i64() == Some(1234))
        .expect("order 1234");
    assert_eq!(
        order.to_string(),
        r#"{"id":1234,"customer":"customer-70","amount":1542.50,"placed":"2024-01-01T20:34:00+00:00","note":"n1234"}"#
    );
    assert!(records.iter().filter(|r| r["note"].is_null()).count() == 500);

    // A second ride of the trip writes the same objects, byte for byte.
    let again = tempfile::tempdir().expect("tempdir");
    ride_source(&name, again.path(), &[]).await;
    let objects = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        files_under(&dir.join("output"))
            .into_iter()
            .map(|f| {
                (
                    f.strip_prefix(dir).expect("under").display().to_string(),
                    std::fs::read(&f).expect("read"),
                )
            })
            .collect()
    };
    assert_eq!(objects(out.path()), objects(again.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_over_many_short_invocations_gives_the_output_of_one_read() {
    let name = orders(6_000).await;
    let whole = tempfile::tempdir().expect("tempdir");
    let (_, one_read) = ride_source(&name, whole.path(), &[("RangeRows", "6000")]).await;
    let pieces = tempfile::tempdir().expect("tempdir");
    let short = [
        ("RangeRows", "6000"),
        ("StopTimeout", "1"),
        ("DeadlineMarginMs", "1000"),
    ];
    let (report, many_reads) = ride_source(&name, pieces.path(), &short).await;
    let extract = &report.stops[1].counts;
    assert!(
        extract.continued >= 5,
        "read 1000 rows per invocation: {extract:?}"
    );
    assert!(many_reads == one_read, "the same records");
}
