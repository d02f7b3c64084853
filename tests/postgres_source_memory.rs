//! The PostgreSQL source reads a 1,000,000-row table in key ranges in bounded memory: the
//! streaming check of `bus bench` (the source stop over every range ticket, into a sink that
//! only counts) stays under 64 MiB of peak RSS. Its own test binary, so nothing else shares the
//! process's memory.

use busline_tests::postgres::{connect, database_url, table};
use busline_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_table_is_read_in_ranges_under_64_mib() {
    let name = table(
        "million",
        "id bigint PRIMARY KEY, customer text, amount numeric(12,2), placed timestamptz, note text",
    )
    .await;
    connect()
        .await
        .batch_execute(&format!(
            "INSERT INTO {name} SELECT i, 'customer-' || (i % 97), (i * 1.25)::numeric(12,2), \
             timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', 'n' || i \
             FROM generate_series(1, 1000000) i"
        ))
        .await
        .expect("a million rows");
    let url = database_url();
    let query = format!("SELECT * FROM {name}");
    let parameters = [
        ("SourceDatabaseUrl", url.as_str()),
        ("SourceQuery", query.as_str()),
        ("SourceKey", "id"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let route = busline_template::read_route(
        &workspace_root().join("samples/postgres-source/template.yaml"),
        &parameters,
    )
    .expect("the postgres source route");
    let work = tempfile::tempdir().expect("tempdir");
    // 1 MB of generated CSV: the ticket the depot hands out (the rows come from the table).
    let input = busline_cli::bench::Input {
        records: 1_000_000 / busline_cli::generate::Schema::Colors.bytes_per_record(),
        files: 1,
        compression: None,
        schema: busline_cli::generate::Schema::Colors,
    };
    let report = busline_cli::bench::stream::stream(
        &route,
        &busline_builtin::registry(),
        &input,
        work.path(),
    )
    .await
    .expect("streamed");
    println!("{}", report.line());
    assert_eq!(report.records, 1_000_000);
    assert!(report.peak_rss_mib < 64.0, "{}", report.line());
}
