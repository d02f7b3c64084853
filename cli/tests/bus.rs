//! The `bus` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bus"))
        .args(args)
        .current_dir(root())
        .env("BUS_LOG", "off")
        .output()
        .expect("bus runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ride_with_no_arguments_rides_the_colors_sample() {
    let out = tempfile::tempdir().expect("tempdir");
    // Only --output is given, so the test does not write into the checkout.
    let run = bus(&["ride", "--output", out.path().to_str().expect("utf-8")]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("stop") && lines[0].ends_with("passengers/s"),
        "{stdout}"
    );
    assert!(lines[4].starts_with("load"), "{stdout}");
    assert!(
        stdout.contains("30 passengers dropped off at load, 0 quarantined, 0 buses dead-lettered"),
        "{stdout}"
    );
}

#[test]
fn ride_with_chaos_prints_the_faults_each_stop_survived() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().to_str().expect("utf-8");
    let args = [
        "ride",
        "--json",
        "--chaos",
        "all=30%",
        "--seed",
        "4",
        "--parameter",
        "BusByteBudget=1024",
        // A put fails half the time at 30% of 5xx and throttles each: twenty receives make a
        // bus whose every receive fails (about one in a million) the only way to lose one.
        "--parameter",
        "MaxReceiveCount=20",
        "--output",
        output,
    ];
    let run = bus(&args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON summary");
    assert_eq!(
        summary["stops"][0]["faults"],
        serde_json::Value::Null,
        "not the depot"
    );
    let injected: u64 = summary["stops"]
        .as_array()
        .expect("stops")
        .iter()
        .filter_map(|stop| stop["faults"].as_object())
        .flat_map(|faults| faults.values())
        .map(|count| count.as_u64().expect("a count"))
        .sum();
    assert!(injected > 0, "{summary}");
    // Survived: the sample's 30 records are in the output, each once.
    let trip = summary["trip_id"].as_str().expect("trip id");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(out.path().join(format!("output/trip={trip}"))).expect("output")
    {
        let path = entry.expect("entry").path();
        if path.ends_with("_SUCCESS") {
            continue;
        }
        let body = std::fs::read_to_string(path).expect("object");
        lines.extend(body.lines().map(str::to_owned));
    }
    let distinct: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!((lines.len(), distinct.len()), (30, 30));
    let refused = bus(&["ride", "--chaos", "all=300%", "--output", output]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr)
            .contains("chaos spec item \"all=300%\": rate must be 0-100% or 0.0-1.0"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn ride_json_prints_the_same_summary_for_machines() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = bus(&[
        "ride",
        "--json",
        "--trip-id",
        "t-json",
        "--output",
        out.path().to_str().expect("utf-8"),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON summary");
    assert_eq!(summary["trip_id"], "t-json");
    assert_eq!(summary["stops"][3]["stop"], "load");
    assert_eq!(summary["stops"][3]["dropped_off"], 30);
    assert_eq!(summary["stops"][2]["adds_up"], true);
    assert!(out.path().join("output/trip=t-json").is_dir());
}

#[test]
fn ride_exits_2_when_a_bus_is_dead_lettered() {
    let out = tempfile::tempdir().expect("tempdir");
    let input = root().join("tests/fixtures/duplicate-header");
    let run = bus(&[
        "ride",
        "--input",
        input.to_str().expect("utf-8"),
        "--output",
        out.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stdout));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains(
            "dead-lettered at extract: input/dup.csv:1: header names column `Name` twice"
        ),
        "{stdout}"
    );
}

#[test]
fn trip_shows_a_ridden_trip_from_its_ledger_and_trips_lists_it() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().to_str().expect("utf-8");
    let input = root().join("tests/fixtures/duplicate-header");
    let input = input.to_str().expect("utf-8");
    let run = bus(&[
        "ride",
        "--input",
        input,
        "--output",
        output,
        "--trip-id",
        "t-dup",
    ]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("trip t-dup: completed with failures;"));

    let run = bus(&["trip", "t-dup", "--output", output]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("trip t-dup: completed with failures; first bus "),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("completed with failures at "),
        "{stdout}"
    );
    // The one ticket's bus was dead-lettered at extract: its passenger is accounted for there.
    let extract = lines
        .iter()
        .find(|l| l.starts_with("extract"))
        .expect("extract row");
    let cells: Vec<&str> = extract.split_whitespace().collect();
    assert_eq!(
        cells,
        ["extract", "1", "1", "0", "0", "0", "0", "0", "1"],
        "{stdout}"
    );
    let manifest = out.path().join("output/trip=t-dup/_SUCCESS");
    assert!(
        stdout.contains(&format!("manifest: {}", manifest.display())),
        "{stdout}"
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    assert_eq!(written["state"], "completed_with_failures");
    assert_eq!(written["dead_lettered"], 1);

    // bus dlq reads the ride's dead letters as it reads a stack's.
    let run = bus(&["dlq", "list", "--output", output]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let listed = text(&run.stdout);
    assert_eq!(
        listed
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>()),
        Some(vec!["extract", "1", "0"]),
        "{listed}"
    );
    let run = bus(&["dlq", "show", "extract", "--output", output, "--json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let letters: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    assert_eq!(letters[0]["trip"], "t-dup");
    assert_eq!(letters[0]["class"], "permanent");
    assert_eq!(
        letters[0]["reason"],
        "input/dup.csv:1: header names column `Name` twice"
    );
    assert_eq!(letters[0]["contents"]["bus"]["passengers"], 1);

    let run = bus(&["trips", "--output", output, "--json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    assert_eq!(listed[0]["totals"]["trip"], "t-dup");
    assert_eq!(listed[0]["progress"]["state"], "completed_with_failures");

    let run = bus(&["trip", "t-other", "--output", output]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        text(&run.stderr).trim(),
        format!(
            "Error: trip t-other is not in {} (where bus ride leaves each trip's ledger)",
            out.path().join("ledger").display()
        )
    );
}

#[test]
fn quarantine_lists_and_shows_what_a_ride_rejected() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().to_str().expect("utf-8");
    let input = root().join("tests/fixtures/messy");
    let ride = [
        "ride",
        "--input",
        input.to_str().expect("utf-8"),
        "--output",
        output,
    ];
    let run = bus(&[&ride[..], &["--trip-id", "t-messy"]].concat());
    assert!(run.status.success(), "{}", text(&run.stderr));

    let run = bus(&["quarantine", "list", "--output", output, "--json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    let at: Vec<(&str, &str)> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|q| {
            (
                q["trip"].as_str().expect("trip"),
                q["stop"].as_str().expect("stop"),
            )
        })
        .collect();
    assert_eq!(at, [("t-messy", "extract")], "{listed}");

    let run = bus(&[
        "quarantine",
        "show",
        "t-messy",
        "--output",
        output,
        "--json",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    let reasons: Vec<&str> = shown
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["reason"].as_str().expect("reason"))
        .collect();
    assert!(
        reasons.contains(&"input/paints.csv:3: expected 4 fields as in the header, found 3"),
        "{shown}"
    );
    let run = bus(&[
        "quarantine",
        "show",
        "t-messy",
        "--output",
        output,
        "--stop",
        "load",
    ]);
    assert_eq!(text(&run.stdout), "trip t-messy: 0 rejection(s) shown\n");

    // A replay file whose passenger lost its id is refused, naming the file and item, before
    // any stack is looked for.
    let mut fixed = shown.clone();
    fixed[0].as_object_mut().expect("line").remove("id");
    let file = out.path().join("fix.json");
    std::fs::write(&file, fixed.to_string()).expect("write");
    let file = file.to_str().expect("utf-8");
    let replay = [
        "quarantine",
        "replay",
        file,
        "--trip",
        "t-messy",
        "--stop",
        "transform",
    ];
    let run = bus(&[&replay[..], &["--stack-name", "no-such-stack"]].concat());
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains(&format!(
            "{file}:1: no field id (keep the id of the passenger's quarantine line"
        )),
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn a_bad_stop_setting_names_the_stop_and_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = std::fs::read_to_string(root().join("template.yaml"))
        .expect("template")
        .replace(r#"'[{"drop": ["HEX"]}]'"#, r#"'[{"dorp": ["HEX"]}]'"#);
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, template).expect("write");
    let run = bus(&[
        "ride",
        "--template",
        path.to_str().expect("utf-8"),
        "--output",
        dir.path().join("out").to_str().expect("utf-8"),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("stop transform (TransformFunction): environment variable TRANSFORM_OPS=\"[{\\\"dorp\\\": [\\\"HEX\\\"]}]\" is invalid: unknown variant `dorp`, expected one of `select`, `drop`, `rename`, `cast`, `filter`, `require`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_template_says_how_to_fix_it() {
    let run = bus(&["ride", "--template", "nope.yaml"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(text(&run.stderr).contains(
        "nope.yaml: template not found (pass --template, or run from the project folder)"
    ));
}

#[test]
fn gen_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outputs = Vec::new();
    for name in ["a", "b"] {
        let out = dir.path().join(name);
        let run = bus(&[
            "gen",
            "--records",
            "1000",
            "--files",
            "2",
            "--bad-every",
            "100",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        assert!(
            text(&run.stdout).starts_with("wrote 1000 records (10 malformed) in 2 files"),
            "{}",
            text(&run.stdout)
        );
        outputs.push(std::fs::read(out.join("part-00001.csv")).expect("file"));
    }
    assert_eq!(outputs[0], outputs[1]);
    let text = String::from_utf8(outputs.remove(0)).expect("utf-8");
    assert_eq!(text.lines().count(), 501, "header plus 500 records");
    assert!(text.starts_with("Name,HEX,RGB\ncolor-00000500,#"), "{text}");
}

#[test]
fn lint_passes_the_shipped_template_and_fails_a_broken_one() {
    let clean = bus(&["lint"]);
    assert!(clean.status.success(), "{}", text(&clean.stdout));
    assert_eq!(text(&clean.stdout), "template.yaml: 0 finding(s)\n");

    // A visibility timeout too short for the 30 s function timeout, given as a parameter.
    let run = bus(&["lint", "--parameter", "QueueVisibilityTimeout=60", "--json"]);
    assert_eq!(run.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON findings");
    let resources: Vec<&str> = findings
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["resource"].as_str())
        .collect();
    assert_eq!(resources, ["ExtractQueue", "LoadQueue", "TransformQueue"]);
    assert!(
        findings
            .as_array()
            .expect("list")
            .iter()
            .all(|f| f["rule"] == "visibility-timeout")
    );
}

/// `bus bench` on 5000 records in 2 files with `extra` arguments: its JSON report.
fn bench_report(extra: &[&str]) -> serde_json::Value {
    let work = tempfile::tempdir().expect("tempdir");
    let mut args = vec![
        "bench",
        "--records",
        "5000",
        "--files",
        "2",
        "--rounds",
        "1",
        "--work",
        work.path().to_str().expect("utf-8"),
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = bus(&args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    serde_json::from_slice(&run.stdout).expect("JSON report")
}

#[test]
fn bench_counts_a_parquet_load_by_the_passengers_it_writes() {
    // Load reads its trip's inferred schema back: it is still no source of passengers.
    let report = bench_report(&["--parameter", "OutputFormat=parquet"]);
    let load = report["stops"]
        .as_array()
        .expect("stops")
        .iter()
        .find(|s| s["stop"] == "load")
        .expect("load");
    assert_eq!(load["passengers"], 5000, "{load}");
}

#[test]
fn bench_counts_add_up_across_the_route() {
    let report = bench_report(&[]);
    let stops = report["stops"].as_array().expect("stops");
    let by_stop = |name: &str| -> &serde_json::Value {
        stops
            .iter()
            .find(|s| s["stop"] == name)
            .expect("stop in report")
    };
    assert_eq!(
        stops
            .iter()
            .map(|s| s["stop"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["depot", "extract", "transform", "load"]
    );
    // One ticket per file; every record reaches every stop after the depot.
    assert_eq!(by_stop("depot")["passengers"], 2);
    for stop in ["extract", "transform", "load"] {
        assert_eq!(by_stop(stop)["passengers"], 5000, "{stop}");
        assert!(
            by_stop(stop)["ceiling_ratio"].as_f64().expect("ratio") > 0.0,
            "{stop}"
        );
        let parser = by_stop(stop)["ceiling_parser"].as_str().unwrap_or_default();
        assert!(
            ["serde_json", "simd-json"].contains(&parser),
            "{stop}: {parser}"
        );
        // 2500 records a file make buses of several 64 KiB chunks: each stop expands or
        // compresses some (extract sends them, transform reads and sends, load reads).
        let codec = by_stop(stop)["codec_passengers_per_sec"].as_f64();
        assert!(codec.is_some_and(|n| n > 0.0), "{stop}: {codec:?}");
        // The same ceiling time with the codec's added to it.
        let ratio = |key: &str| by_stop(stop)[key].as_f64().expect("ratio");
        assert!(
            ratio("ceiling_with_codec_ratio") > ratio("ceiling_ratio"),
            "{stop}"
        );
    }
    // Extract reads the two tickets in two invocations (BatchSize 1).
    assert_eq!(by_stop("extract")["invocations"], 2);
    let invocations: u64 = stops
        .iter()
        .map(|s| s["invocations"].as_u64().expect("n"))
        .sum();
    assert_eq!(report["usage"]["invocations"], invocations);
    let cost = &report["cost_per_million"];
    let parts: f64 = ["sqs", "lambda_requests", "lambda_duration", "s3", "ledger"]
        .iter()
        .map(|k| cost[k].as_f64().expect("dollars"))
        .sum();
    assert!((cost["total"].as_f64().expect("total") - parts).abs() < 1e-12);
    // The trip ledger: one transaction per bus of the four-stop route, six write units each.
    let units = report["usage"]["ledger_write_units"]
        .as_u64()
        .expect("units");
    assert!(units > 0 && units.is_multiple_of(6), "{units}");
    assert!(cost["ledger"].as_f64().expect("dollars") > 0.0);
}

#[test]
fn bench_times_no_codec_when_buses_go_uncompressed() {
    let report = bench_report(&["--parameter", "BusCompression=off"]);
    for stop in report["stops"].as_array().expect("stops") {
        assert!(stop["codec_passengers_per_sec"].is_null(), "{stop}");
        assert!(stop["ceiling_with_codec_ratio"].is_null(), "{stop}");
    }
}

#[test]
fn bench_on_the_wide_schema_reads_its_twenty_columns_through_every_stop() {
    let report = bench_report(&["--schema", "wide"]);
    assert_eq!(report["schema"], "wide");
    // About 330 bytes of CSV a record: 5000 of them are over eight times the colors' bytes.
    let bytes = report["input_bytes"].as_u64().expect("bytes");
    assert!(bytes > 5000 * 300, "{bytes}");
    for stop in &report["stops"].as_array().expect("stops")[1..] {
        assert_eq!(stop["passengers"], 5000, "{stop}");
    }

    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().to_str().expect("utf-8");
    let run = bus(&[
        "gen",
        "--schema",
        "wide",
        "--records",
        "3",
        "--files",
        "1",
        "--out",
        dir,
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let csv = std::fs::read_to_string(out.path().join("part-00000.csv")).expect("csv");
    let header = csv.lines().next().unwrap_or_default();
    assert_eq!(header.split(',').count(), 20, "{header}");
    assert!(
        header.starts_with("txn_id,account_id,amount,fee,currency"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 4);
}

#[test]
fn bench_stream_reads_every_record_of_one_large_object() {
    let work = tempfile::tempdir().expect("tempdir");
    let run = bus(&[
        "bench",
        "--stream-mb",
        "2",
        "--work",
        work.path().to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    assert_eq!(report["stop"], "extract");
    // 2 MB at the generator's 40-byte estimate.
    assert_eq!(report["records"], 50_000);
    let bytes = report["bytes"].as_u64().expect("bytes");
    assert!((1_500_000..3_000_000).contains(&bytes), "{report}");
    assert!(
        report["peak_rss_mib"].as_f64().expect("rss") > 0.0,
        "{report}"
    );
}

#[test]
fn bench_stream_refuses_to_time_an_object_it_split_instead_of_reading() {
    let work = tempfile::tempdir().expect("tempdir");
    let run = bus(&[
        "bench",
        "--stream-mb",
        "2",
        "--parameter",
        "SplitSize=65536",
        "--work",
        work.path().to_str().expect("utf-8"),
    ]);
    assert!(!run.status.success());
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("stop extract: sent ") && stderr.contains("tickets back to its own queue"),
        "{stderr}"
    );
}

#[test]
fn no_file_of_the_cli_names_a_built_in_stop_kind() {
    // The CLI composes a registry and hosts; kinds come from the registry it is given.
    let mut named = Vec::new();
    let mut folders = vec![root().join("cli/src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("cli/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for kind in ["\"depot\"", "\"extract\"", "\"transform\"", "\"load\""] {
                if text.contains(kind) {
                    named.push(format!("{}: {kind}", path.display()));
                }
            }
        }
    }
    assert!(named.is_empty(), "{named:?}");
}

#[test]
fn add_stop_writes_the_template_and_the_route_rides_through_the_new_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("template.yaml");
    std::fs::copy(root().join("template.yaml"), &template).expect("copy");
    let path = template.to_str().expect("utf-8");
    // A second transform after the first, dropping RGB: one command, then the ride shows it.
    let run = bus(&[
        "add-stop",
        "trim",
        "--kind",
        "transform",
        "--after",
        "transform",
        "--template",
        path,
        "--setting",
        r#"TRANSFORM_OPS=[{"drop": ["RGB"]}]"#,
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        text(&run.stdout),
        format!(
            "{path}: stop trim (kind transform) now rides after transform; run `bus lint` and `bus ride` to try it\n"
        )
    );
    let lint = bus(&["lint", path]);
    assert!(lint.status.success(), "{}", text(&lint.stdout));
    let out = dir.path().join("out");
    let ride = bus(&[
        "ride",
        "--template",
        path,
        "--trip-id",
        "trimmed",
        "--json",
        "--output",
        out.to_str().expect("utf-8"),
    ]);
    assert!(ride.status.success(), "{}", text(&ride.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&ride.stdout).expect("JSON summary");
    let stops: Vec<&str> = summary["stops"]
        .as_array()
        .expect("stops")
        .iter()
        .filter_map(|s| s["stop"].as_str())
        .collect();
    assert_eq!(stops, ["depot", "extract", "transform", "trim", "load"]);
    // The trip's objects, not its `_SUCCESS` manifest.
    let written: String = std::fs::read_dir(out.join("output/trip=trimmed"))
        .expect("output")
        .map(|e| e.expect("entry").path())
        .filter(|path| path.file_name().is_some_and(|name| name != "_SUCCESS"))
        .map(|path| std::fs::read_to_string(path).expect("object"))
        .collect();
    assert_eq!(written.lines().count(), 30);
    assert!(
        written.lines().all(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("JSON");
            record.as_object().is_some_and(|o| o.keys().eq(["Name"]))
        }),
        "{written}"
    );
}

// bus test: the shipped cases pass; a wrong expectation fails with a diff naming the record
// and the field; --bless then makes it pass.

#[test]
fn the_shipped_cases_pass_whole_routes_and_a_stop_alone() {
    let run = bus(&["test", "--json"]);
    assert!(
        run.status.success(),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    let names: Vec<&str> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "broken-json-array",
            "colors",
            "flights",
            "flights-csv-gzip",
            "flights-json-array",
            "flights-ndjson-zstd",
            "flights-parquet",
            "lake-and-audit",
            "null-spellings",
            "transform-alone"
        ]
    );
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(10), Some(0))
    );
}

/// A copy of the shipped `transform-alone` case in `dir`, its template named absolutely.
fn copy_case(dir: &Path) -> PathBuf {
    let from = root().join("tests/routes/transform-alone");
    let case = dir.join("transform-alone");
    for file in [
        "case.yaml",
        "input/passengers.ndjson",
        "expected/lanes/next.ndjson",
        "expected/lanes/audit.ndjson",
        "expected/quarantine.ndjson",
        "expected/counts.yaml",
    ] {
        let target = case.join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("folder");
        std::fs::copy(from.join(file), &target).expect("copied");
    }
    let template = root().join("samples/lanes/template.yaml");
    let yaml = std::fs::read_to_string(case.join("case.yaml")).expect("case");
    let yaml = yaml.replace(
        "template: ../../../samples/lanes/template.yaml",
        &format!("template: {}", template.display()),
    );
    std::fs::write(case.join("case.yaml"), yaml).expect("case");
    case
}

#[test]
fn a_wrong_expectation_fails_naming_the_record_and_field_and_bless_makes_it_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let case = copy_case(dir.path());
    let next = case.join("expected/lanes/next.ndjson");
    let wrong = std::fs::read_to_string(&next)
        .expect("lane")
        .replace(r#""age":36"#, r#""age":37"#);
    std::fs::write(&next, &wrong).expect("edited");
    let quarantine = case.join("expected/quarantine.ndjson");
    let reasons = std::fs::read_to_string(&quarantine)
        .expect("quarantine")
        .replace("is required but missing", "is missing");
    std::fs::write(&quarantine, reasons).expect("edited");
    let counts = case.join("expected/counts.yaml");
    let wrong_counts = std::fs::read_to_string(&counts)
        .expect("counts")
        .replace("forwarded: 3", "forwarded: 4");
    std::fs::write(&counts, wrong_counts).expect("edited");

    let path = case.to_str().expect("utf-8");
    let run = bus(&["test", path]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    for line in [
        "FAIL    transform-alone",
        r#"lane next: changed {"name":"Ada","age":37}: field `age`: expected 37, found 36"#,
        "quarantine: missing at transform: passengers.ndjson:4: field `name` is missing",
        "quarantine: unexpected at transform: passengers.ndjson:4: field `name` is required but missing",
        "counts: transform.forwarded expected 4, found 3",
        "1 cases: 0 passed, 1 failed",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    let json = bus(&["test", path, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    let changed = &report["cases"][0]["problems"][0];
    assert_eq!(changed["problem"], "changed");
    assert_eq!(changed["fields"][0]["field"], "age");

    let blessed = bus(&["test", path, "--bless"]);
    assert!(blessed.status.success(), "{}", text(&blessed.stdout));
    assert!(text(&blessed.stdout).contains("blessed transform-alone"));
    assert!(
        std::fs::read_to_string(&next)
            .expect("lane")
            .contains(r#""age":36"#)
    );
    let again = bus(&["test", path]);
    assert!(again.status.success(), "{}", text(&again.stdout));
}

#[test]
fn a_case_that_cannot_ride_fails_with_its_cause_and_the_others_still_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_case(dir.path());
    std::fs::write(
        dir.path().join("no-such-stop.yaml"),
        "stop: nowhere\npassengers: [{\"a\": 1}]\n",
    )
    .expect("case");
    let run = bus(&["test", dir.path().to_str().expect("utf-8")]);
    assert_eq!(run.status.code(), Some(1));
    let stdout = text(&run.stdout);
    assert!(stdout.contains("FAIL    no-such-stop"), "{stdout}");
    assert!(
        stdout.contains("the case did not run: route: the route has no stop nowhere; its stops are depot, extract, transform, load"),
        "{stdout}"
    );
    assert!(stdout.contains("ok      transform-alone"), "{stdout}");
}
