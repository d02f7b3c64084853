//! `bus test` as a user runs it: the shipped cases pass; a wrong expectation fails with a diff
//! naming the record and the field; `--bless` then makes it pass.

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
        (Some(9), Some(0))
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
