//! The independent readers (pyarrow and DuckDB, pinned in infra/readers.lock) that check what
//! the stops read and write: `tests/readers/read.py` run with `infra/.venv-readers`.

use crate::workspace_root;
use serde_json::Value;
use std::process::Command;

/// Runs `read.py` with `args` and parses the JSON it prints.
pub fn read(args: &[&str]) -> Value {
    let python = workspace_root().join("infra/.venv-readers/bin/python");
    assert!(
        python.exists(),
        "pyarrow and DuckDB are not installed at {}: run ./infra/install",
        python.display()
    );
    let output = Command::new(&python)
        .arg(workspace_root().join("tests/readers/read.py"))
        .args(args)
        .output()
        .expect("read.py runs");
    assert!(
        output.status.success(),
        "read.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("read.py prints JSON")
}
