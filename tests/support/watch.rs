//! `cargo lambda watch` for the tests: the pinned cargo-lambda, started in a process group that
//! is killed when the handle is dropped.

use crate::workspace_root;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pinned cargo-lambda that ./infra/test installs.
pub fn cargo_lambda() -> PathBuf {
    let path = workspace_root().join("infra/.venv/bin/cargo-lambda");
    assert!(
        path.exists(),
        "cargo-lambda is not installed at {}: run ./infra/install (pip install cargo-lambda==1.9.2 works too)",
        path.display()
    );
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `cargo lambda watch`, killed with its whole process group when dropped.
pub struct Watch {
    child: Child,
    /// Its output lines, stdout and stderr.
    pub output: Arc<Mutex<Vec<String>>>,
    /// The Invoke API endpoint it serves.
    pub endpoint: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Starts `cargo lambda watch` in `dir` with `args` (e.g. `-p busline-transform`, `--env-var`,
/// `--env-file`) on a free port, sharing this workspace's target folder; returns once it listens.
pub fn start_watch(dir: &Path, args: &[String]) -> Watch {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let tool = cargo_lambda();
    let mut command = Command::new(&tool);
    command
        .args(["lambda", "watch", "--ignore-changes", "--invoke-port"])
        .arg(port.to_string())
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", workspace_root().join("target"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                tool.parent().expect("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().expect("cargo lambda watch starts");
    let output = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output.lock().expect("lock").push(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}: {:?}",
            output.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Watch {
        child,
        output,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}
