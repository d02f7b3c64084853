//! The peer: Powertools for AWS Lambda's BatchProcessor (Python) running a stop's operations
//! on the same records, one record per SQS message, in the same run.

use anyhow::{Context, Result, bail};
use busline_cli::bench::prepare::Stage;
use busline_core::Passenger;
use busline_core::envelope::decode_envelope;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the peer runs.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// A Python with `aws-lambda-powertools` installed (infra/.venv-powertools/bin/python).
    pub python: PathBuf,
    /// The peer script (infra/powertools-peer).
    pub script: PathBuf,
}

/// What the peer measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerResult {
    /// Records handled.
    pub records: u64,
    /// Handler time of the fastest round.
    pub secs: f64,
    /// Records the BatchProcessor reported failed (expected 0).
    pub failures: u64,
}

/// Writes the stage's records as SQS events of ten one-record messages and runs the peer over
/// them for `rounds` rounds, with the stage's `TRANSFORM_OPS`.
pub fn run_peer(
    options: &PeerOptions,
    stage: &Stage,
    work: &Path,
    rounds: u32,
) -> Result<PeerResult> {
    let mut records = Vec::new();
    for body in stage.bodies() {
        let envelope = decode_envelope::<Passenger>(body)?;
        for passenger in envelope.passengers {
            let id = passenger.id().to_owned();
            let body = Value::Object(passenger.into_data()).to_string();
            records.push(json!({
                "messageId": id,
                "receiptHandle": id,
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:peer",
                "awsRegion": "us-east-1",
            }));
        }
    }
    let events: Vec<Value> = records
        .chunks(10)
        .map(|chunk| json!({"Records": chunk}))
        .collect();
    let path = work.join("powertools-events.json");
    std::fs::write(&path, serde_json::to_vec(&events)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let ops = stage
        .spec
        .env
        .get("TRANSFORM_OPS")
        .cloned()
        .unwrap_or_else(|| "[]".into());
    let output = Command::new(&options.python)
        .arg(&options.script)
        .arg(&path)
        .arg(ops)
        .arg(rounds.to_string())
        .output()
        .with_context(|| format!("running {}", options.python.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} exited with {}: {}",
            options.python.display(),
            options.script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the peer's output is not the expected JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
