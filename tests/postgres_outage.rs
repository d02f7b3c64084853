//! The database killed mid-trip: buses in flight fail as retryable, the stop waits for the
//! database to come back, and the trip ends with every record once in the table, none lost
//! and none twice. Its own test binary: it stops the one test cluster other tests use.

use busline_cli::ride::ride;
use busline_tests::postgres::{connect, database_url, postgres, table};
use busline_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_database_mid_trip_ends_in_retries_and_then_success() {
    let name = table(
        "outage",
        r#"busline_id text PRIMARY KEY, "Name" text, "HEX" text, "RGB" text"#,
    )
    .await;
    let records = 20_000;
    let data = tempfile::tempdir().expect("tempdir");
    busline_cli::generate::generate(&busline_cli::generate::GenOptions {
        schema: busline_cli::generate::Schema::Colors,
        records,
        files: 4,
        ndjson: false,
        out: data.path().to_owned(),
        seed: 3,
        bad_every: 0,
        compression: None,
    })
    .expect("generated");
    let url = database_url();
    let parameters = [
        ("WarehouseDatabaseUrl", url.as_str()),
        ("WarehouseTable", name.as_str()),
        ("WarehouseKeyColumns", ""),
        ("BusByteBudget", "4096"),
        ("MaxReceiveCount", "10"),
        (
            "TransformOps",
            r#"[{"route": {"when": [], "default": "warehouse"}}]"#,
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let route = busline_template::read_route(
        &workspace_root().join("samples/postgres/template.yaml"),
        &parameters,
    )
    .expect("the postgres route");
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, data.path(), out.path());
    options.trip_id = Some("outage".into());
    let riding = tokio::spawn(ride(options, |_| {}));

    // Once rows arrive, hold the writes (a SHARE lock blocks INSERT) so that buses are surely
    // in flight, then kill the server as an outage would, and bring it back a second later.
    // Without the lock a fast machine finished the trip before the kill.
    let db = connect().await;
    let count = format!("SELECT count(*) FROM {name}");
    loop {
        let rows: i64 = db.query_one(&count, &[]).await.expect("count").get(0);
        if rows > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.batch_execute(&format!("BEGIN; LOCK TABLE {name} IN SHARE MODE"))
        .await
        .expect("lock");
    let held: i64 = db.query_one(&count, &[]).await.expect("count").get(0);
    assert!(
        held < records as i64,
        "the writes were held mid-trip: {held} rows"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The kill ends the lock's session too: released earlier, the held writes could all land
    // before the kill and the outage would not be felt.
    tokio::task::spawn_blocking(|| postgres("kill"))
        .await
        .expect("killed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(|| postgres("restart"))
        .await
        .expect("restarted");

    let report = riding.await.expect("joined").expect("ride");
    let warehouse = report
        .stops
        .iter()
        .find(|s| s.stop == "warehouse")
        .expect("stop");
    println!(
        "warehouse: {:?}, retried {}",
        warehouse.counts, warehouse.retried
    );
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let db = connect().await;
    let rows: i64 = db.query_one(&count, &[]).await.expect("count").get(0);
    assert_eq!(rows, records as i64, "every record once");
    assert!(
        warehouse.retried > 0 || warehouse.counts.buses_failed > 0,
        "the outage was felt: {:?}",
        warehouse.counts
    );
}
