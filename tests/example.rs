//! The out-of-tree example (examples/enrich), as its user runs it: a separate Cargo project
//! with its own stop kind and its own `bus`, built with path dependencies on busline, riding
//! the colors route with its enrich stop against a real HTTP server on loopback.

use busline_template::add_stop::{NewStop, add_stop};
use busline_tests::colors_api::ColorsApi;
use busline_tests::{
    enrich_expected_output, enrich_expected_rejections, files_under, workspace_root,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn example() -> PathBuf {
    workspace_root().join("examples/enrich")
}

/// Builds the example once, in this workspace's target folder (it shares the compiled
/// dependencies), and returns its `bus`.
fn example_bus() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = workspace_root().join("target");
            let build = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--locked",
                    "--features",
                    "bus",
                    "--bin",
                    "enrich-bus",
                ])
                .current_dir(example())
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo runs");
            assert!(
                build.status.success(),
                "the example does not build:\n{}",
                String::from_utf8_lossy(&build.stderr)
            );
            target.join("debug/enrich-bus")
        })
        .clone()
}

fn ride(url: &str, out: &Path, trip: &str) -> Output {
    Command::new(example_bus())
        .args(["ride", "--json", "--trip-id", trip, "--parameter"])
        .arg(format!("EnrichUrl={url}"))
        .args(["--parameter", "MaxReceiveCount=3", "--input"])
        .arg(workspace_root().join("samples/colors"))
        .arg("--output")
        .arg(out)
        .current_dir(example())
        .env("BUS_LOG", "off")
        .output()
        .expect("the example's bus runs")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).expect("an NDJSON line"))
        .collect()
}

#[test]
fn the_example_rides_its_own_stop_and_enriches_every_known_color() {
    let api = ColorsApi::start(&[]);
    let out = tempfile::tempdir().expect("tempdir");
    let run = ride(&api.url, out.path(), "example-1");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value = serde_json::from_slice(&run.stdout).expect("JSON summary");
    let stops: Vec<&str> = summary["stops"]
        .as_array()
        .expect("stops")
        .iter()
        .filter_map(|s| s["stop"].as_str())
        .collect();
    assert_eq!(stops, ["depot", "extract", "transform", "enrich", "load"]);
    assert_eq!(summary["stops"][3]["forwarded"], 28);
    assert_eq!(summary["stops"][3]["rejected"], 2);
    assert!(
        summary["stops"]
            .as_array()
            .expect("stops")
            .iter()
            .all(|s| s["adds_up"] == true)
    );

    let mut output: Vec<String> = files_under(&out.path().join("output/trip=example-1"))
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .expect("output")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    output.sort();
    assert_eq!(output, enrich_expected_output());

    // Each stop's quarantine files, under the trip's folder.
    let quarantined: Vec<Value> = files_under(&out.path().join("quarantine/trip=example-1"))
        .iter()
        .flat_map(|file| lines(file))
        .collect();
    let mut reasons: Vec<String> = quarantined
        .iter()
        .filter_map(|q| q["reason"].as_str().map(str::to_owned))
        .collect();
    reasons.sort();
    let mut expected = enrich_expected_rejections(&api.url);
    expected.sort();
    assert_eq!(reasons, expected);
}

/// Rides against `url` and returns the enrich stop's one dead letter, checking it is the only one.
fn dead_letter_at_enrich(url: &str, trip: &str) -> Value {
    let out = tempfile::tempdir().expect("tempdir");
    let run = ride(url, out.path(), trip);
    assert_eq!(
        run.status.code(),
        Some(2),
        "a dead letter exits 2: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let letters = lines(
        &out.path()
            .join(format!("dead-letter/trip={trip}/enrich.ndjson")),
    );
    assert_eq!(letters.len(), 1, "{letters:?}");
    // Nothing reached load: the trip's folder holds only its manifest, which says so.
    let folder = out.path().join(format!("output/trip={trip}"));
    let names: Vec<String> = std::fs::read_dir(&folder)
        .expect("the trip's output folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["_SUCCESS"], "nothing reached load");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("_SUCCESS")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["state"], "completed_with_failures");
    assert_eq!(manifest["objects"], serde_json::json!([]));
    let letter = letters[0].clone();
    assert_eq!(letter["class"], "retryable");
    assert_eq!(letter["receive_count"], 3);
    let names = busline_tests::field_of_passengers(letter["body"].as_str().expect("body"), "Name");
    assert_eq!(
        (names.len(), names.last().map(String::as_str)),
        (30, Some("Mint")),
        "the whole bus is kept"
    );
    letter
}

#[test]
fn an_unreachable_api_ends_in_the_dead_letter_queue_with_the_cause() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{closed}/colors/");
    let letter = dead_letter_at_enrich(&url, "example-refused");
    let reason = letter["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with(&format!(
            "GET {url}Black: error sending request for url ({url}Black)"
        )),
        "{reason}"
    );
    assert!(
        reason.ends_with("Connection refused (os error 111)"),
        "{reason}"
    );
}

#[test]
fn a_failing_api_ends_in_the_dead_letter_queue_with_its_status() {
    let api = ColorsApi::start(&["--status", "503"]);
    let letter = dead_letter_at_enrich(&api.url, "example-503");
    assert_eq!(
        letter["reason"],
        format!(
            "GET {}Black: HTTP 503 Service Unavailable: {{\"error\": \"the colors API is down\"}}",
            api.url
        )
    );
}

#[test]
fn the_example_template_is_busline_s_route_plus_one_add_stop() {
    // What `bus add-stop enrich --kind enrich --after transform --setting ...` writes.
    let shipped =
        std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template");
    let stop = NewStop {
        name: "enrich".into(),
        kind: "enrich".into(),
        after: "transform".into(),
        binary: None,
        settings: vec![
            (
                "ENRICH_URL".into(),
                "https://colors.example.com/colors/".into(),
            ),
            ("ENRICH_KEY".into(), "Name".into()),
        ],
        ..NewStop::default()
    };
    let added = add_stop(&shipped, "template.yaml", &stop).expect("added");
    let committed = std::fs::read_to_string(example().join("template.yaml")).expect("template");
    assert_eq!(added, committed);
}

#[test]
fn the_example_s_own_bus_test_passes_its_route_case_against_the_api() {
    let api = ColorsApi::start(&[]);
    let run = Command::new(example_bus())
        .args(["test", "--parameter"])
        .arg(format!("EnrichUrl={}", api.url))
        .current_dir(example())
        .env("BUS_LOG", "off")
        .output()
        .expect("the example's bus runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("ok      colors-enriched"), "{stdout}");
    assert!(stdout.contains("1 cases: 1 passed, 0 failed"), "{stdout}");
}

/// The example's release profile is busline's: a user who copies it gets bootstraps as small,
/// and the dependencies the example shares with busline build once in this target folder.
#[test]
fn the_example_builds_with_busline_s_release_profile() {
    let release = |manifest: PathBuf| {
        let text = std::fs::read_to_string(&manifest).expect("the manifest reads");
        let parsed: toml::Table = text.parse().expect("the manifest parses");
        parsed["profile"]["release"].clone()
    };
    let busline = release(workspace_root().join("Cargo.toml"));
    assert_eq!(
        release(example().join("Cargo.toml")),
        busline,
        "examples/enrich/Cargo.toml's [profile.release] differs from busline's"
    );
    let sized = busline["package"]
        .as_table()
        .map_or(0, |packages| packages.len());
    assert!(sized > 40, "{sized} packages built for size");
}
