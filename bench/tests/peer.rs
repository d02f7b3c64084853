//! `bench-peer` against the pinned Powertools peer, as `infra/bench` runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_peer_runs_the_transform_records_one_per_message() {
    let python = root().join("infra/.venv-powertools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./infra/install",
        python.display()
    );
    let work = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_bench-peer"))
        .args([
            "--stop",
            "transform",
            "--records",
            "3000",
            "--files",
            "1",
            "--rounds",
            "1",
        ])
        .arg("--python")
        .arg(&python)
        .arg("--work")
        .arg(work.path())
        .arg("--json")
        .current_dir(root())
        .output()
        .expect("bench-peer runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    assert_eq!(report["stop"], "transform");
    assert_eq!(report["peer"]["records"], 3000, "{report}");
    assert_eq!(report["peer"]["failures"], 0, "{report}");
    assert!(report["ratio"].as_f64().expect("ratio") > 0.0, "{report}");
    // 3000 records make one bus of several 64 KiB chunks, sent compressed.
    assert!(
        report["codec_ratio"].as_f64().expect("codec ratio") > 0.0,
        "{report}"
    );
}
