//! examples/enrich/tests/colors_api.py: the example's colors API, a real HTTP server on loopback.

use crate::workspace_root;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The colors API on a free loopback port; killed when dropped.
pub struct ColorsApi {
    child: Child,
    /// Its base URL, `http://127.0.0.1:<port>/colors/`.
    pub url: String,
}

impl ColorsApi {
    /// Starts it with `args` (e.g. `--status 503`).
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(workspace_root().join("examples/enrich/tests/colors_api.py"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the colors API");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the API says where it listens");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        ColorsApi {
            child,
            url: format!("http://127.0.0.1:{port}/colors/"),
        }
    }
}

impl Drop for ColorsApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
