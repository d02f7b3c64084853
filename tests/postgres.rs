//! The postgres-sink stop against a real PostgreSQL 15 server (samples/postgres: CSV in the
//! bucket to a table): a trip ridden twice leaves one row per record with exact values; a row
//! that breaks a constraint or does not fit its column is quarantined alone with the column and
//! the database's message; a missing table or a key without a unique index stops init.

use busline_cli::ride::ride;
use busline_core::Extensions;
use busline_template::add_stop::{NewStop, add_stop};
use busline_tests::postgres::{connect, database_url, root_cert, table};
use busline_tests::*;
use std::path::Path;

const FLIGHTS: &str = "date date, carrier text NOT NULL, flight integer, origin text, dest text, \
    scheduled timestamptz, dep_delay integer, arr_delay integer, distance integer, \
    fare numeric(6,2), cancelled integer, PRIMARY KEY (date, flight)";

/// Rides `input` on samples/postgres into `table` as trip `trip`.
async fn ride_into(table: &str, input: &Path, trip: &str) -> busline_cli::report::RideReport {
    let url = database_url();
    let parameters = [
        ("WarehouseDatabaseUrl", url.as_str()),
        ("WarehouseTable", table),
        ("WarehouseKeyColumns", "date,flight"),
        ("CsvNullValues", r#"["NA"]"#),
        ("CsvInferTypes", "true"),
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
    let mut options = ride_options(route, input, out.path());
    options.trip_id = Some(trip.into());
    let report = ride(options, |_| {}).await.expect("ride");
    assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    report
}

#[tokio::test]
async fn a_trip_ridden_twice_leaves_one_row_per_record_with_exact_values() {
    let name = table("flights", FLIGHTS).await;
    let flights = workspace_root().join("samples/flights");
    for trip in ["first", "again"] {
        let report = ride_into(&name, &flights, trip).await;
        assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
        let warehouse = report
            .stops
            .iter()
            .find(|s| s.stop == "warehouse")
            .expect("stop");
        assert_eq!(warehouse.counts.dropped_off, 48);
    }
    let db = connect().await;
    let row = db
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT (date, flight)), sum(fare)::text, \
                 count(*) FILTER (WHERE dep_delay IS NULL), min(scheduled)::text FROM {name}"
            ),
            &[],
        )
        .await
        .expect("counted");
    let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((rows, distinct), (48, 48));
    // Every fare's digits, summed in the database: what the CSV holds to the cent.
    let csv = csv_records(&flights.join("flights.csv"));
    let cents: i64 = csv
        .iter()
        .map(|r| {
            let fare = r["fare"].as_str().unwrap_or_default();
            let (whole, cents) = fare.split_once('.').unwrap_or((fare, "0"));
            whole.parse::<i64>().unwrap_or(0) * 100
                + format!("{cents:0<2}").parse::<i64>().unwrap_or(0)
        })
        .sum();
    assert_eq!(
        row.get::<_, String>(2),
        format!("{}.{:02}", cents / 100, cents % 100)
    );
    assert_eq!(row.get::<_, i64>(3), 4, "NA arrived as NULL");
    assert_eq!(row.get::<_, String>(4), "2024-01-01 05:00:00+00");
}

#[tokio::test]
async fn a_row_that_breaks_a_constraint_or_its_column_is_quarantined_alone() {
    let name = table(
        "checked",
        &format!("{FLIGHTS}, CONSTRAINT short_hops CHECK (distance < 2500)"),
    )
    .await;
    let input = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        input.path().join("few.csv"),
        "date,carrier,flight,origin,dest,scheduled,dep_delay,arr_delay,distance,fare,cancelled\n\
         2024-01-01,AA,1,LAX,ORD,2024-01-01T05:00:00Z,1,2,600,10.5,0\n\
         2024-01-01,AA,2,LAX,JFK,2024-01-01T06:00:00Z,1,2,2600,10.5,0\n\
         2024-01-01,AA,3x,LAX,SFO,2024-01-01T07:00:00Z,1,2,300,10.5,0\n\
         2024-01-01,NA,4,SEA,SFO,2024-01-01T08:00:00Z,1,2,700,10.5,0\n\
         2024-01-01,AA,5,SEA,BOS,2024-01-01T09:00:00Z,1,2,900,10.5,0\n",
    )
    .expect("input");
    let report = ride_into(&name, input.path(), "checked").await;
    let mut reasons: Vec<String> = report
        .quarantined
        .iter()
        .map(|q| format!("{} {}", q.stop, q.rejection.reason))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            format!("warehouse input/few.csv:3: constraint `short_hops`: new row for relation \"{name}\" violates check constraint \"short_hops\" (Failing row contains (2024-01-01, AA, 2, LAX, JFK, 2024-01-01 06:00:00+00, 1, 2, 2600, 10.50, 0).)"),
            "warehouse input/few.csv:4: column `flight` (integer): invalid input syntax for type integer: \"3x\"".to_owned(),
            format!("warehouse input/few.csv:5: column `carrier`: null value in column \"carrier\" of relation \"{name}\" violates not-null constraint (Failing row contains (2024-01-01, null, 4, SEA, SFO, 2024-01-01 08:00:00+00, 1, 2, 700, 10.50, 0).)"),
        ]
    );
    let db = connect().await;
    let flights: Vec<i32> = db
        .query(&format!("SELECT flight FROM {name} ORDER BY flight"), &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(flights, [1, 5], "the rest of the bus committed");
    let warehouse = report
        .stops
        .iter()
        .find(|s| s.stop == "warehouse")
        .expect("stop");
    assert_eq!(
        (warehouse.counts.dropped_off, warehouse.counts.rejected),
        (2, 3)
    );
}

/// Builds the postgres-sink kind with `settings`; the init error's text.
async fn init_error(settings: &[(&str, &str)]) -> String {
    let harness = Harness::new();
    let ports = harness.ports(std::sync::Arc::new(harness.queues.clone()));
    let mut vars = Harness::vars(&[]);
    vars.insert("DATABASE_URL".into(), database_url());
    for (k, v) in settings {
        vars.insert(k.to_string(), v.to_string());
    }
    match busline_builtin::registry()
        .build(
            "postgres-sink",
            std::sync::Arc::new(vars),
            ports,
            Extensions::default(),
        )
        .await
    {
        Ok(_) => panic!("built"),
        Err(err) => busline_core::error::chain(&err),
    }
}

#[tokio::test]
async fn a_missing_table_or_a_key_without_a_unique_index_stops_init_naming_it() {
    let missing = init_error(&[("TABLE", "no_such_table")]).await;
    assert!(
        missing.ends_with("table no_such_table does not exist in database busline: create it first (busline writes rows, it does not create tables)"),
        "{missing}"
    );
    let name = table("unkeyed", "flight integer, date date").await;
    let unkeyed = init_error(&[("TABLE", name.as_str()), ("KEY_COLUMNS", "flight")]).await;
    assert!(
        unkeyed.ends_with(&format!(
            "KEY_COLUMNS: table {name} has no unique index on (flight), which an upsert needs (CREATE UNIQUE INDEX ON {name} (flight))"
        )),
        "{unkeyed}"
    );
    let no_id = init_error(&[("TABLE", name.as_str())]).await;
    assert!(
        no_id.ends_with(&format!("ID_COLUMN: table {name} has no column busline_id")),
        "{no_id}"
    );
}

#[test]
fn the_postgres_sample_is_busline_s_route_plus_one_add_stop_on_a_lane() {
    let shipped =
        std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template");
    let stop = NewStop {
        name: "warehouse".into(),
        kind: "postgres-sink".into(),
        after: "transform".into(),
        settings: vec![
            (
                "DATABASE_URL".into(),
                "postgres://busline@127.0.0.1:5432/busline".into(),
            ),
            ("DATABASE_SECRET".into(), String::new()),
            ("TABLE".into(), "flights".into()),
            ("KEY_COLUMNS".into(), "date,flight".into()),
        ],
        lane: Some("warehouse".into()),
        secrets: vec!["warehouse-db".into()],
        ..NewStop::default()
    };
    let added = add_stop(&shipped, "template.yaml", &stop).expect("added");
    let committed =
        std::fs::read_to_string(workspace_root().join("samples/postgres/template.yaml"))
            .expect("sample");
    assert!(
        added == committed,
        "samples/postgres/template.yaml is not what its README's bus add-stop writes: run it again"
    );
}

#[tokio::test]
async fn tls_when_asked_with_the_servers_certificate_checked() {
    let url = format!("{}?sslmode=require", database_url());
    let name = table("tls_rows", "busline_id text PRIMARY KEY").await;
    let settings = |root_cert: Option<String>| busline_postgres::DatabaseSettings {
        location: busline_postgres::Location::Url(url.clone()),
        sslmode: None,
        root_cert,
    };
    let database = busline_postgres::open("postgres-sink", &settings(Some(root_cert())), None, 1)
        .await
        .expect("opened");
    let client = database.pool.get().await.expect("a TLS connection");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("asked");
    assert!(row.get::<_, bool>(0), "the connection is encrypted");

    // Without the authority's certificate the server is a stranger: init says so.
    let untrusted = init_error(&[("DATABASE_URL", url.as_str()), ("TABLE", name.as_str())]).await;
    assert!(
        untrusted.contains("invalid peer certificate: UnknownIssuer"),
        "{untrusted}"
    );
}

#[tokio::test]
async fn a_database_secret_from_secrets_manager_connects_the_sink() {
    let cloud = busline_tests::cloud::cloud("ministack").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&cloud.config);
    let url: tokio_postgres::Config = database_url().parse().expect("the test URL");
    let secret = busline_tests::cloud::unique("warehouse-db");
    let fields = serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": url.get_ports()[0],
        "username": "busline", "password": "trusted-locally", "dbname": "busline"
    });
    secrets
        .create_secret()
        .name(&secret)
        .secret_string(fields.to_string())
        .send()
        .await
        .expect("secret created");
    let name = table("secret_rows", "busline_id text PRIMARY KEY, n integer").await;
    let build = |secret: String| {
        let h = Harness::new();
        let vars = Harness::vars(&[
            ("DATABASE_SECRET", secret.as_str()),
            ("TABLE", name.as_str()),
        ]);
        let extensions =
            busline_aws::AwsClients::from_config(&cloud.config).extensions(&cloud.config);
        async move {
            let built = busline_builtin::registry()
                .build(
                    "postgres-sink",
                    std::sync::Arc::new(vars),
                    h.ports(std::sync::Arc::new(h.queues.clone())),
                    extensions,
                )
                .await;
            (h, built)
        }
    };
    let (h, built) = build(secret).await;
    let processor = built
        .expect("built from the secret")
        .into_bus("postgres-sink")
        .expect("a stop");
    send(
        h.queue("in"),
        &bus_body(
            "b1",
            &[serde_json::json!({"n": 1}), serde_json::json!({"n": 2})],
        ),
    );
    h.process_all_ok(&processor, 10).await;
    let rows: Vec<(String, i32)> = connect()
        .await
        .query(&format!("SELECT busline_id, n FROM {name} ORDER BY n"), &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [("b1-0".to_owned(), 1), ("b1-1".to_owned(), 2)]);

    let missing = busline_tests::cloud::unique("no-such-secret");
    let (_, built) = build(missing.clone()).await;
    let err = busline_core::error::chain(&built.err().expect("no secret"));
    assert!(
        err.contains(&format!("DATABASE_SECRET: secret {missing}: not found")),
        "{err}"
    );
}
