//! Formats end to end on the embedded bus, checked by independent tools (pyarrow and DuckDB,
//! pinned): the compressed, JSON array and Parquet samples ride to the records of their plain
//! CSV twin; Parquet written by pyarrow rides with its columns typed; what load writes as
//! Parquet (declared or inferred schema, Hive partitions) and as compressed NDJSON reads back
//! exactly.

use busline_cli::ride::ride;
use busline_tests::readers::read;
use busline_tests::*;
use serde_json::{Value, json};
use std::path::Path;

/// The settings a data engineer sets for the flights sample: `NA` is null, numbers are numbers.
const FLIGHTS: [(&str, &str); 2] = [("CsvNullValues", r#"["NA"]"#), ("CsvInferTypes", "true")];

/// The flights schema declared for Parquet output.
const FLIGHTS_SCHEMA: &str = r#"{"date":"date","carrier":"string not null","flight":"int32","origin":"string","dest":"string","scheduled":"timestamp","dep_delay":"int64","arr_delay":"int64","distance":"int64","fare":"decimal(6,2)","cancelled":"bool"}"#;

/// Rides `input` on the shipped template with `parameters` and trip `trip`.
async fn ride_with(
    input: &Path,
    out: &Path,
    parameters: &[(&str, &str)],
    trip: &str,
) -> busline_cli::report::RideReport {
    let mut options = ride_options(shipped_route(parameters), input, out);
    options.trip_id = Some(trip.into());
    let report = ride(options, |_| {}).await.expect("ride");
    assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    report
}

fn samples(name: &str) -> std::path::PathBuf {
    workspace_root().join("samples").join(name)
}

#[tokio::test]
async fn compressed_json_array_and_parquet_samples_ride_to_the_records_of_their_csv_twin() {
    let out = tempfile::tempdir().expect("tempdir");
    ride_with(&samples("flights"), out.path(), &FLIGHTS, "twin").await;
    let twin = ndjson_records(&out.path().join("output/trip=twin"));
    assert_eq!(twin.len(), 48);
    // NA arrived as null, and numbers as numbers with their digits.
    let cancelled: Vec<&Value> = twin.iter().filter(|r| r["cancelled"] == json!(1)).collect();
    assert_eq!(cancelled.len(), 4);
    assert!(
        cancelled
            .iter()
            .all(|r| r["dep_delay"].is_null() && r["arr_delay"].is_null())
    );
    assert_eq!(
        twin[0]["fare"]
            .to_string()
            .parse::<f64>()
            .ok()
            .map(|f| f > 0.0),
        Some(true)
    );
    for format in [
        "formats/csv-gzip",
        "formats/ndjson-zstd",
        "formats/json-array",
        "formats/parquet",
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        let report = ride_with(&samples(format), out.path(), &FLIGHTS, "twin").await;
        assert!(
            report.quarantined.is_empty(),
            "{format}: {:?}",
            report.quarantined
        );
        let records = ndjson_records(&out.path().join("output/trip=twin"));
        assert_eq!(records, twin, "{format}");
    }
}

#[tokio::test]
async fn parquet_written_by_pyarrow_rides_with_columns_typed_from_its_schema() {
    let input = tempfile::tempdir().expect("tempdir");
    let file = input.path().join("typed.parquet");
    read(&["write-typed-parquet", file.to_str().expect("utf-8")]);
    let out = tempfile::tempdir().expect("tempdir");
    ride_with(input.path(), out.path(), &[], "typed").await;
    let records: Vec<String> = ndjson_records(&out.path().join("output/trip=typed"))
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(
        records,
        [
            r#"{"id":1,"small":7,"ratio":0.25,"price":12.50,"name":"Red","day":"2024-01-05","at_utc":"2024-01-05T06:15:00.123456Z","at_local":"2024-01-05T06:15:00","flag":true,"tags":["a","b"],"point":{"x":1,"y":2}}"#,
            r#"{"id":2,"small":null,"ratio":null,"price":-0.07,"name":null,"day":null,"at_utc":null,"at_local":null,"flag":false,"tags":[],"point":null}"#,
            r#"{"id":3,"small":-3,"ratio":1e-7,"price":null,"name":"Ünïcode","day":"1969-12-31","at_utc":"2024-01-06T00:00:00Z","at_local":null,"flag":null,"tags":null,"point":{"x":3,"y":null}}"#,
        ]
    );
}

/// Parquet output of the flights sample under `parameters` (with the flights CSV settings).
async fn flights_as_parquet(
    out: &Path,
    parameters: &[(&str, &str)],
) -> busline_cli::report::RideReport {
    let mut all = FLIGHTS.to_vec();
    all.push(("OutputFormat", "parquet"));
    all.extend_from_slice(parameters);
    ride_with(&samples("flights"), out, &all, "lake").await
}

#[tokio::test]
async fn parquet_output_reads_back_in_pyarrow_with_the_declared_types_and_nulls() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = flights_as_parquet(
        out.path(),
        &[
            ("ParquetSchema", FLIGHTS_SCHEMA),
            ("TransformOps", r#"[{"cast": {"cancelled": "bool"}}]"#),
        ],
    )
    .await;
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let files = files_under(&out.path().join("output/trip=lake"));
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "parquet")),
        "{files:?}"
    );
    let paths: Vec<&str> = files.iter().filter_map(|f| f.to_str()).collect();
    let mut args = vec!["parquet"];
    args.extend(&paths);
    let table = read(&args);
    assert_eq!(
        table["schema"],
        json!([
            ["date", "date32[day]", true],
            ["carrier", "string", false],
            ["flight", "int32", true],
            ["origin", "string", true],
            ["dest", "string", true],
            ["scheduled", "timestamp[us, tz=UTC]", true],
            ["dep_delay", "int64", true],
            ["arr_delay", "int64", true],
            ["distance", "int64", true],
            ["fare", "decimal128(6, 2)", true],
            ["cancelled", "bool", true]
        ])
    );
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 48);
    let csv = csv_records(&samples("flights/flights.csv"));
    for (row, source) in rows.iter().zip(&csv) {
        // Every row as the CSV has it, typed: NA is null, the fare's digits are exact.
        let text = |field: &str| source[field].as_str().unwrap_or_default().to_owned();
        let nullable = |field: &str| match text(field).as_str() {
            "NA" => Value::Null,
            digits => json!(digits.parse::<i64>().expect("a delay")),
        };
        assert_eq!(
            *row,
            json!({
                "date": text("date"),
                "carrier": text("carrier"),
                "flight": text("flight").parse::<i64>().expect("flight"),
                "origin": text("origin"),
                "dest": text("dest"),
                "scheduled": text("scheduled").replace('Z', "+00:00"),
                "dep_delay": nullable("dep_delay"),
                "arr_delay": nullable("arr_delay"),
                "distance": text("distance").parse::<i64>().expect("distance"),
                "fare": text("fare"),
                "cancelled": text("cancelled") == "1",
            }),
            "{source:?}"
        );
    }
}

#[tokio::test]
async fn an_inferred_schema_holds_for_the_whole_trip_and_hive_partitions_read_back_in_pyarrow() {
    let out = tempfile::tempdir().expect("tempdir");
    // Small buses: several loads, the first one's schema holds for all.
    let report = flights_as_parquet(
        out.path(),
        &[("OutputPartitions", "carrier"), ("BusByteBudget", "2048")],
    )
    .await;
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let lake = out.path().join("output/trip=lake");
    let schema = std::fs::read_to_string(lake.join("_schema.json")).expect("the trip's schema");
    assert_eq!(
        schema,
        r#"{"date":"string","flight":"int64","origin":"string","dest":"string","scheduled":"string","dep_delay":"int64","arr_delay":"int64","distance":"int64","fare":"double","cancelled":"int64"}"#
    );
    let mut partitions: Vec<String> = std::fs::read_dir(&lake)
        .expect("lake")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    partitions.sort();
    assert_eq!(
        partitions,
        ["carrier=AA", "carrier=DL", "carrier=UA", "carrier=WN"]
    );
    std::fs::remove_file(lake.join("_schema.json")).expect("schema aside");
    let table = read(&["dataset", lake.to_str().expect("utf-8")]);
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 48);
    let per_carrier = |carrier: &str| {
        rows.iter()
            .filter(|r| r["carrier"] == json!(carrier))
            .count()
    };
    assert_eq!(["AA", "DL", "UA", "WN"].map(per_carrier), [12, 12, 12, 12]);
    assert!(rows.iter().any(|r| r["dep_delay"].is_null()));
    assert_eq!(table["schema"][8], json!(["fare", "double", true]));
}

#[tokio::test]
async fn a_passenger_that_does_not_fit_the_schema_is_quarantined_with_field_and_reason() {
    let out = tempfile::tempdir().expect("tempdir");
    // cancelled is 0 or 1: a bool column refuses it rather than guess.
    let report = flights_as_parquet(out.path(), &[("ParquetSchema", FLIGHTS_SCHEMA)]).await;
    assert_eq!(report.quarantined.len(), 48);
    assert_eq!(
        report.quarantined[0].rejection.reason,
        "input/flights.csv:2: field `cancelled`: 0 does not fit a bool column"
    );
    let load = report
        .stops
        .iter()
        .find(|s| s.stop == "load")
        .expect("load");
    assert_eq!((load.counts.rejected, load.counts.dropped_off), (48, 0));
}

#[tokio::test]
async fn compressed_ndjson_output_reads_back_in_duckdb_as_the_plain_records() {
    let plain = tempfile::tempdir().expect("tempdir");
    ride_with(&samples("flights"), plain.path(), &FLIGHTS, "t").await;
    let expected = ndjson_records(&plain.path().join("output/trip=t"));
    for (compression, extension) in [("gzip", "ndjson.gz"), ("zstd", "ndjson.zst")] {
        let out = tempfile::tempdir().expect("tempdir");
        let mut parameters = FLIGHTS.to_vec();
        parameters.push(("OutputCompression", compression));
        ride_with(&samples("flights"), out.path(), &parameters, "t").await;
        let files = files_under(&out.path().join("output/trip=t"));
        assert!(
            files
                .iter()
                .all(|f| f.to_string_lossy().ends_with(extension)),
            "{files:?}"
        );
        let glob = out.path().join(format!("output/trip=t/*.{extension}"));
        let query = format!(
            "SELECT * FROM read_json('{}', format = 'newline_delimited', compression = '{compression}', hive_partitioning = false, columns = {{date: 'VARCHAR', carrier: 'VARCHAR', flight: 'BIGINT', origin: 'VARCHAR', dest: 'VARCHAR', scheduled: 'VARCHAR', dep_delay: 'BIGINT', arr_delay: 'BIGINT', distance: 'BIGINT', fare: 'DOUBLE', cancelled: 'BIGINT'}})",
            glob.display()
        );
        let mut read_back: Vec<Value> = read(&["duckdb", &query]).as_array().expect("rows").clone();
        read_back.sort_by_key(Value::to_string);
        assert_eq!(read_back, expected, "{compression}");
    }
}

#[tokio::test]
async fn a_redelivered_parquet_bus_writes_the_same_bytes_under_the_same_key() {
    let first = tempfile::tempdir().expect("tempdir");
    let again = tempfile::tempdir().expect("tempdir");
    let parameters = [
        ("ParquetSchema", FLIGHTS_SCHEMA),
        ("TransformOps", r#"[{"cast": {"cancelled": "bool"}}]"#),
    ];
    flights_as_parquet(first.path(), &parameters).await;
    flights_as_parquet(again.path(), &parameters).await;
    let objects = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        files_under(dir)
            .into_iter()
            .map(|f| {
                let key = f.strip_prefix(dir).expect("under").display().to_string();
                (key, std::fs::read(&f).expect("readable"))
            })
            .collect()
    };
    let written = objects(&first.path().join("output"));
    assert!(!written.is_empty());
    assert_eq!(written, objects(&again.path().join("output")));
}

/// Generated colors records (with bad rows) in one object per format: gzip CSV, zstd NDJSON,
/// and a JSON array and Parquet (row groups of 1000) that DuckDB writes from the CSV.
fn generated_formats(records: u64) -> tempfile::TempDir {
    let data = tempfile::tempdir().expect("tempdir");
    let generate = |folder: &str, ndjson: bool, compression| {
        busline_cli::generate::generate(&busline_cli::generate::GenOptions {
            schema: busline_cli::generate::Schema::Colors,
            records,
            files: 1,
            ndjson,
            out: data.path().join(folder),
            seed: 7,
            bad_every: 0,
            compression: Some(compression),
        })
        .expect("generated");
    };
    generate("csv-gzip", false, busline_formats::Compression::Gzip);
    generate("ndjson-zstd", true, busline_formats::Compression::Zstd);
    let csv = data.path().join("csv-gzip/part-00000.csv.gz");
    for (folder, file, options) in [
        ("json-array", "part.json", "FORMAT json, ARRAY true"),
        (
            "parquet",
            "part.parquet",
            "FORMAT parquet, ROW_GROUP_SIZE 1000",
        ),
    ] {
        std::fs::create_dir_all(data.path().join(folder)).expect("folder");
        let target = data.path().join(folder).join(file);
        read(&[
            "duckdb",
            &format!(
                "COPY (SELECT * FROM read_csv('{}', all_varchar = true)) TO '{}' ({options})",
                csv.display(),
                target.display()
            ),
        ]);
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_read_over_many_short_invocations_gives_the_output_of_one_read() {
    let records = 6_000;
    let data = generated_formats(records);
    for format in ["csv-gzip", "ndjson-zstd", "json-array", "parquet"] {
        let input = data.path().join(format);
        let whole_out = tempfile::tempdir().expect("tempdir");
        ride_with(&input, whole_out.path(), &[], "pieces").await;
        let whole = ndjson_records(&whole_out.path().join("output/trip=pieces"));
        assert_eq!(whole.len() as u64, records, "{format}");
        // A margin as long as the timeout: each invocation reads one chunk of 512 rows.
        let out = tempfile::tempdir().expect("tempdir");
        let short = [("StopTimeout", "1"), ("DeadlineMarginMs", "1000")];
        let report = ride_with(&input, out.path(), &short, "pieces").await;
        let extract = &report.stops[1].counts;
        assert!(
            extract.continued >= records / 512 - 1,
            "{format}: read 512 rows per invocation: {extract:?}"
        );
        let pieces = ndjson_records(&out.path().join("output/trip=pieces"));
        assert!(pieces == whole, "{format}: the same records");
    }
}
