//! The whole route in one process (`bus ride`'s engine) on the shipped template.

use busline_cli::ride::ride;
use busline_core::ErrorClass;
use busline_tests::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const TRANSFORM_OPS: &str = "TRANSFORM_OPS";

fn colors_input() -> std::path::PathBuf {
    workspace_root().join("samples/colors")
}

/// The colors sample's records as NDJSON would carry them, minus HEX, sorted.
fn colors_minus_hex() -> Vec<Value> {
    let mut expected: Vec<Value> = csv_records(&colors_input().join("colors.csv"))
        .into_iter()
        .map(|mut record| {
            record.shift_remove("HEX");
            Value::Object(record)
        })
        .collect();
    expected.sort_by_key(Value::to_string);
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colors_ride_writes_input_minus_hex_and_counts_add_up() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = ride(
        ride_options(shipped_route(&[]), &colors_input(), out.path()),
        |_| {},
    )
    .await
    .expect("ride");

    let output = ndjson_records(&out.path().join(format!("output/trip={}", report.trip_id)));
    assert_eq!(output.len(), 30);
    assert_eq!(output, colors_minus_hex());

    let names: Vec<&str> = report.stops.iter().map(|s| s.stop.as_str()).collect();
    assert_eq!(names, ["depot", "extract", "transform", "load"]);
    for stop in &report.stops {
        assert!(stop.adds_up, "{stop:?}");
        let c = &stop.counts;
        assert_eq!(
            c.passengers_in + c.picked_up,
            c.forwarded + c.dropped_off + c.rejected + c.passengers_failed
        );
    }
    let [depot, extract, transform, load] = [0, 1, 2, 3].map(|i| report.stops[i].counts.clone());
    assert_eq!((depot.picked_up, depot.forwarded), (1, 1));
    assert_eq!(
        (
            extract.passengers_in,
            extract.picked_up,
            extract.forwarded,
            extract.dropped_off
        ),
        (1, 30, 30, 1)
    );
    assert_eq!((transform.passengers_in, transform.forwarded), (30, 30));
    assert_eq!((load.passengers_in, load.dropped_off), (30, 30));
    assert!(report.quarantined.is_empty() && report.dead_letters.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn riding_the_same_trip_twice_writes_the_same_keys_and_content() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        let mut options = ride_options(
            shipped_route(&[("BusByteBudget", "1024")]),
            &colors_input(),
            out.path(),
        );
        options.trip_id = Some("replay-1".into());
        ride(options, |_| {}).await.expect("ride");
        let files: Vec<(String, String)> = files_under(&out.path().join("output"))
            .into_iter()
            .map(|path| {
                let key = path
                    .strip_prefix(out.path())
                    .expect("under out")
                    .display()
                    .to_string();
                (key, std::fs::read_to_string(&path).expect("readable"))
            })
            .collect();
        snapshots.push(files);
    }
    // A small budget splits the trip over several buses, so several objects are compared.
    assert!(snapshots[0].len() > 1, "{:?}", snapshots[0]);
    assert_eq!(snapshots[0], snapshots[1]);
    let records: usize = snapshots[1]
        .iter()
        .map(|(_, text)| text.lines().count())
        .sum();
    assert_eq!(records, 30, "a replay overwrites, never duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_and_failed_transforms_are_quarantined_with_file_line_and_field() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut route = shipped_route(&[]);
    route.stops[2].env.insert(
        TRANSFORM_OPS.into(),
        r#"[{"drop":["HEX"]},{"require":["Name"]},{"cast":{"Stock":"number"}}]"#.into(),
    );
    let report = ride(ride_options(route, &fixture("messy"), out.path()), |_| {})
        .await
        .expect("ride");

    let mut reasons: Vec<(String, String)> = report
        .quarantined
        .iter()
        .map(|q| (q.stop.clone(), q.rejection.reason.clone()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "extract",
                "input/more.ndjson:2: invalid JSON at column 30: EOF while parsing an object"
            ),
            (
                "extract",
                "input/more.ndjson:3: expected a JSON object, found an array"
            ),
            (
                "extract",
                "input/paints.csv:3: expected 4 fields as in the header, found 3"
            ),
            (
                "transform",
                "input/more.ndjson:5: field `Name` is required but missing"
            ),
            (
                "transform",
                "input/paints.csv:4: field `Stock`: cannot cast \"many\" to number"
            ),
        ]
        .map(|(s, r)| (s.to_owned(), r.to_owned()))
    );
    // The rest of each bus rode on.
    let output = ndjson_records(&out.path().join(format!("output/trip={}", report.trip_id)));
    assert_eq!(
        output,
        [
            json!({"Name": "Gold", "RGB": "(255, 215, 0)", "Stock": 7}),
            json!({"Name": "Red", "RGB": "(255, 0, 0)", "Stock": 12}),
            json!({"Name": "Teal", "RGB": "(0, 128, 128)", "Stock": 3}),
            json!({"Name": "White", "RGB": "(255, 255, 255)", "Stock": null}),
        ]
    );
    // The quarantine files land beside the output, per stop, one line per rejection.
    let folder = out
        .path()
        .join(format!("quarantine/trip={}", report.trip_id));
    let per_stop: BTreeMap<String, usize> = ["extract", "transform"]
        .map(|stop| {
            let lines = files_under(&folder.join(stop))
                .iter()
                .map(|f| {
                    std::fs::read_to_string(f)
                        .expect("quarantine file")
                        .lines()
                        .count()
                })
                .sum();
            (stop.to_owned(), lines)
        })
        .into();
    assert_eq!(
        per_stop,
        BTreeMap::from([("extract".into(), 3), ("transform".into(), 2)])
    );
    for stop in &report.stops {
        assert!(stop.adds_up, "{stop:?}");
    }
    assert_eq!(report.stops[1].counts.rejected, 3);
    assert_eq!(report.stops[2].counts.rejected, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_and_succeeds() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(shipped_route(&[]), &colors_input(), out.path());
    options.registry = wrap_kind("transform", |inner| {
        Arc::new(FlakyStop::new(
            inner,
            1,
            ErrorClass::Retryable,
            "throttled by the enrichment API",
        ))
    });
    let report = ride(options, |_| {}).await.expect("ride");

    let transform = &report.stops[2];
    assert_eq!(transform.retried, 1);
    assert_eq!(transform.counts.buses_in, 2);
    assert_eq!(transform.counts.buses_failed, 1);
    assert_eq!(transform.counts.forwarded, 30);
    assert!(transform.adds_up);
    assert!(report.dead_letters.is_empty());
    assert_eq!(
        ndjson_records(&out.path().join(format!("output/trip={}", report.trip_id))),
        colors_minus_hex()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_every_time_ends_in_the_dead_letter_queue_with_its_reason() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(
        shipped_route(&[("MaxReceiveCount", "4")]),
        &colors_input(),
        out.path(),
    );
    options.registry = wrap_kind("transform", |inner| {
        Arc::new(FlakyStop::new(
            inner,
            u32::MAX,
            ErrorClass::Retryable,
            "enrichment API is down",
        ))
    });
    let report = ride(options, |_| {}).await.expect("ride");

    assert!(report.dead_lettered());
    assert_eq!(report.dead_letters.len(), 1);
    let letter = &report.dead_letters[0];
    assert_eq!(letter.stop, "transform");
    assert_eq!(letter.reason, "enrichment API is down");
    assert_eq!(letter.class.as_deref(), Some("retryable"));
    assert_eq!(letter.receive_count, Some(4));
    let names = field_of_passengers(&letter.body, "Name");
    assert_eq!(
        (names.len(), names.last().map(String::as_str)),
        (30, Some("Mint")),
        "the original bus is kept: {}",
        letter.body
    );
    let transform = &report.stops[2];
    assert_eq!(
        (
            transform.counts.buses_in,
            transform.retried,
            transform.dead_lettered
        ),
        (4, 3, 1)
    );
    assert_eq!(transform.counts.passengers_failed, 4 * 30);
    assert!(transform.adds_up);
    assert_eq!(report.stops[3].counts.passengers_in, 0);
    let file = out.path().join(format!(
        "dead-letter/trip={}/transform.ndjson",
        report.trip_id
    ));
    assert!(
        std::fs::read_to_string(file)
            .expect("dead-letter report")
            .contains("enrichment API is down")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_data_with_bad_rows_adds_up_at_scale() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let generated = busline_cli::generate::generate(&busline_cli::generate::GenOptions {
        schema: busline_cli::generate::Schema::Colors,
        records: 20_000,
        files: 3,
        ndjson: false,
        out: data.path().to_owned(),
        seed: 7,
        bad_every: 1000,
        compression: None,
    })
    .expect("generate");
    assert_eq!(generated.bad, 20);
    let report = ride(
        ride_options(shipped_route(&[]), data.path(), out.path()),
        |_| {},
    )
    .await
    .expect("ride");
    let output = ndjson_records(&out.path().join(format!("output/trip={}", report.trip_id)));
    assert_eq!(output.len(), 20_000 - 20);
    assert_eq!(report.quarantined.len(), 20);
    assert!(
        output
            .iter()
            .all(|r| r.get("HEX").is_none() && r.get("Name").is_some())
    );
    for stop in &report.stops {
        assert!(stop.adds_up, "{stop:?}");
    }
    assert_eq!(report.stops[1].counts.picked_up, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bytes_under_a_plain_name_are_read_by_their_magic_and_blank_lines_skipped() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = ride(
        ride_options(shipped_route(&[]), &fixture("disguised"), out.path()),
        |_| {},
    )
    .await
    .expect("ride");
    // The gzip object under a .csv name is read as gzip: its first bytes say so.
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let output = ndjson_records(&out.path().join(format!("output/trip={}", report.trip_id)));
    let colors = samples_colors_rows();
    assert_eq!(output.len(), colors + 3);
    // Whitespace-only lines are no records: three rows from the spaced file.
    let spaced: Vec<&str> = output
        .iter()
        .filter(|r| r.get("RGB").is_none())
        .filter_map(|r| r["Name"].as_str())
        .collect();
    assert_eq!(spaced, ["Blue", "Lime", "Red"]);
    assert!(report.stops.iter().all(|s| s.adds_up));
}

/// Rows of the colors sample (its lines but the header).
fn samples_colors_rows() -> usize {
    let text = std::fs::read_to_string(workspace_root().join("samples/colors/colors.csv"))
        .expect("sample");
    text.lines().count() - 1
}

#[tokio::test]
async fn a_name_its_bytes_contradict_is_rejected_whole_with_both_named() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = ride(
        ride_options(shipped_route(&[]), &fixture("misnamed"), out.path()),
        |_| {},
    )
    .await
    .expect("ride");
    let mut reasons: Vec<&str> = report
        .quarantined
        .iter()
        .map(|q| q.rejection.reason.as_str())
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "input/plain.csv.gz: named as gzip data, but its first bytes are not compressed",
            "input/table.csv: the object is Parquet data, not CSV text; name it .parquet (or set INPUT_FORMAT=parquet for keys without an extension)",
        ]
    );
    assert!(report.stops.iter().all(|s| s.adds_up));
}

/// Rides generated CSV and NDJSON (with bad rows) with `overrides`: the output records and the
/// quarantined ids, each sorted, and the report.
async fn ride_generated(
    overrides: &[(&str, &str)],
) -> (Vec<Value>, Vec<String>, busline_cli::report::RideReport) {
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    for (ndjson, seed) in [(false, 11), (true, 12)] {
        busline_cli::generate::generate(&busline_cli::generate::GenOptions {
            schema: busline_cli::generate::Schema::Colors,
            records: 30_000,
            files: 2,
            ndjson,
            out: data.path().join(if ndjson { "ndjson" } else { "csv" }),
            seed,
            bad_every: 997,
            compression: None,
        })
        .expect("generate");
    }
    let mut options = ride_options(shipped_route(overrides), data.path(), out.path());
    options.trip_id = Some("checkpoint-trip".into());
    let report = ride(options, |_| {}).await.expect("ride");
    let output = ndjson_records(&out.path().join("output/trip=checkpoint-trip"));
    (output, reject_lines(&report), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_read_over_many_short_invocations_give_the_output_of_one_read() {
    let (whole, whole_quarantined, whole_report) = ride_generated(&[]).await;
    // A margin as long as the timeout: each invocation reads one chunk of 512 rows, checkpoints
    // and hands every bus past the first wave back, whatever the machine's speed.
    let (pieces, pieces_quarantined, report) =
        ride_generated(&[("StopTimeout", "1"), ("DeadlineMarginMs", "1000")]).await;
    let extract = &report.stops[1];
    assert_eq!(extract.stop, "extract");
    println!(
        "extract continued {} times; {} buses handed back",
        extract.counts.continued, extract.counts.buses_handed_back
    );
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    assert!(
        extract.counts.continued >= 60_000 / 512 - 4,
        "each object was read 512 rows per invocation: {:?}",
        extract.counts
    );
    assert_eq!(whole_report.stops[1].counts.continued, 0);
    assert_eq!(whole.len(), 60_000 - whole_quarantined.len());
    assert_eq!(pieces, whole, "the same records");
    assert_eq!(pieces_quarantined, whole_quarantined, "the same rejects");
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    for stop in &report.stops {
        assert!(stop.adds_up, "{stop:?}");
    }
    assert_eq!(extract.counts.picked_up, 60_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_objects_read_as_ranges_side_by_side_give_the_output_and_rejects_of_one_read() {
    let (whole, whole_quarantined, whole_report) = ride_generated(&[("SplitSize", "0")]).await;
    assert_eq!(whole_report.stops[1].counts.continued, 0);
    // Each generated object is about 600 KB: some ten ranges each, and with a margin as long
    // as the timeout each range is read over several invocations too.
    for overrides in [
        &[("SplitSize", "65536")][..],
        &[
            ("SplitSize", "65536"),
            ("StopTimeout", "1"),
            ("DeadlineMarginMs", "1000"),
        ],
    ] {
        let (ranged, ranged_quarantined, report) = ride_generated(overrides).await;
        let extract = &report.stops[1].counts;
        println!(
            "{overrides:?}: extract continued {} times",
            extract.continued
        );
        assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
        assert_eq!(ranged, whole, "the same records");
        assert_eq!(
            ranged_quarantined, whole_quarantined,
            "the same rejects, ids and lines"
        );
        for stop in &report.stops {
            assert!(stop.adds_up, "{stop:?}");
        }
        // The 4 tickets were replaced by their ranges: each range picked up, each ticket
        // dropped off.
        let ranges = extract.picked_up - 60_000;
        assert!(ranges >= 4 * 8, "{extract:?}");
        assert!(extract.continued >= ranges, "{extract:?}");
        assert_eq!(extract.passengers_in, 4 + extract.continued, "{extract:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_cut_at_line_starts_keep_crlf_blank_lines_headers_and_line_numbers() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("id,name\r\n");
    let mut ndjson = String::new();
    for i in 1..=40 {
        match i % 9 {
            0 => csv.push_str("\r\n   \r\n"),
            4 => csv.push_str(&format!("{i},two,fields\r\n")),
            _ => csv.push_str(&format!("{i},name {i}\r\n")),
        }
        match i % 7 {
            0 => ndjson.push('\n'),
            3 => ndjson.push_str(&format!("{{\"id\": {i}, broken\n")),
            _ => ndjson.push_str(&format!("{{\"id\": {i}, \"name\": \"n{i}\"}}\n")),
        }
    }
    std::fs::write(data.path().join("a.csv"), &csv).expect("written");
    std::fs::write(data.path().join("b.ndjson"), &ndjson).expect("written");
    let ride_split = |split: &'static str| {
        let data = data.path().to_owned();
        async move {
            let out = tempfile::tempdir().expect("tempdir");
            let mut options =
                ride_options(shipped_route(&[("SplitSize", split)]), &data, out.path());
            options.trip_id = Some("ranges".into());
            let report = ride(options, |_| {}).await.expect("ride");
            assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
            assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
            let output = ndjson_records(&out.path().join("output/trip=ranges"));
            (
                output,
                reject_lines(&report),
                report.stops[1].counts.continued,
            )
        }
    };
    let (whole, whole_rejects, none) = ride_split("0").await;
    assert_eq!(none, 0);
    // CSV: 4 blank stretches and 5 rows of three fields; NDJSON: 5 blank lines, 6 broken.
    assert_eq!(whole.len(), (40 - 4 - 5) + (40 - 5 - 6));
    assert_eq!(whole_rejects.len(), 5 + 6);
    assert!(
        whole_rejects
            .iter()
            .any(|r| r.ends_with("a.csv:5: expected 2 fields as in the header, found 3")),
        "{whole_rejects:?}"
    );
    // Pieces of 30 bytes: a cut after nearly every line, and pieces that start inside a `\r\n`.
    let (ranged, ranged_rejects, ranges) = ride_split("30").await;
    assert!(ranges > 20, "{ranges} ranges");
    assert_eq!(ranged, whole);
    assert_eq!(ranged_rejects, whole_rejects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_whose_quoted_fields_hold_line_breaks_is_cut_only_at_record_starts() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("id,note\n");
    for i in 1..=20 {
        csv.push_str(&format!("{i},\"line one\nline two of \"\"{i}\"\"\"\n"));
    }
    std::fs::write(data.path().join("notes.csv"), &csv).expect("written");
    // Pieces of 64 bytes: about half of their first newlines are inside a quoted field.
    for (parameters, ranged) in [
        (&[("SplitSize", "64")][..], true),
        (
            &[("SplitSize", "64"), ("CsvQuotedNewlines", "true")][..],
            false,
        ),
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        let route = shipped_route(parameters);
        let report = ride(ride_options(route, data.path(), out.path()), |_| {})
            .await
            .expect("ride");
        let continued = report.stops[1].counts.continued;
        assert_eq!(
            continued > 0,
            ranged,
            "{parameters:?}: {continued} continued"
        );
        assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
        let output = ndjson_records(&out.path().join(format!("output/trip={}", report.trip_id)));
        assert_eq!(output.len(), 20, "{parameters:?}");
        for i in 1..=20 {
            let note = format!("line one\nline two of \"{i}\"");
            assert!(
                output.contains(&json!({"id": i.to_string(), "note": note})),
                "{i}"
            );
        }
    }
}

/// The route with `env` set on stop `stop`.
fn with_env(
    mut route: busline_core::route::Route,
    stop: &str,
    env: &[(&str, &str)],
) -> busline_core::route::Route {
    let spec = route
        .stops
        .iter_mut()
        .find(|s| s.name == stop)
        .expect("the stop");
    for (name, value) in env {
        spec.env.insert(name.to_string(), value.to_string());
    }
    route
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_keep_their_exact_digits_from_input_to_output() {
    const BIG: &str = "123456789012345678901234567890";
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        data.path().join("numbers.ndjson"),
        format!("{{\"Name\":\"a\",\"HEX\":\"#000000\",\"big\":{BIG},\"tiny\":1.00000000000000000001,\"exp\":-1.5E+300}}\n"),
    )
    .expect("write");
    std::fs::write(
        data.path().join("numbers.csv"),
        format!("Name,HEX,big\nb,#000000,{BIG}\n"),
    )
    .expect("write");
    for format in ["ndjson", "csv"] {
        let out = tempfile::tempdir().expect("tempdir");
        let route = with_env(
            shipped_route(&[]),
            "transform",
            &[(
                "TRANSFORM_OPS",
                r#"[{"drop": ["HEX"]}, {"cast": {"big": "number"}}]"#,
            )],
        );
        let route = with_env(route, "load", &[("OUTPUT_FORMAT", format)]);
        let report = ride(ride_options(route, data.path(), out.path()), |_| {})
            .await
            .expect("ride");
        assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
        let mut text = String::new();
        for path in files_under(&out.path().join(format!("output/trip={}", report.trip_id))) {
            text.push_str(&std::fs::read_to_string(path).expect("output"));
        }
        assert_eq!(text.matches(BIG).count(), 2, "{format}: {text}");
        if format == "ndjson" {
            assert!(
                text.contains(r#""big":123456789012345678901234567890"#),
                "{text}"
            );
            // The digits are kept; serde_json writes the exponent marker in lower case.
            assert!(
                text.contains(r#""tiny":1.00000000000000000001,"exp":-1.5e+300"#),
                "{text}"
            );
        }
    }
}
