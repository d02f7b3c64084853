//! The peer: Powertools for AWS Lambda's BatchProcessor (Python) running the transform stop's
//! operations on the same records, one record per SQS message, in the same run.

use super::BenchError;
use super::prepare::Stage;
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

/// Writes the transform stage's records as SQS events of ten one-record messages and runs the
/// peer over them for `rounds` rounds.
pub fn run_peer(
    options: &PeerOptions,
    stage: &Stage,
    work: &Path,
    rounds: u32,
) -> Result<PeerResult, BenchError> {
    let fail = |message: String| BenchError::Peer(message);
    let mut records = Vec::new();
    for body in stage.bodies() {
        let envelope = decode_envelope::<Passenger>(body).map_err(|e| fail(e.to_string()))?;
        for passenger in envelope.passengers {
            let body = Value::Object(passenger.data).to_string();
            records.push(json!({
                "messageId": passenger.id,
                "receiptHandle": passenger.id,
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
    let text = serde_json::to_vec(&events).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
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
        .map_err(|e| fail(format!("running {}: {e}", options.python.display())))?;
    if !output.status.success() {
        return Err(fail(format!(
            "{} {} exited with {}: {}",
            options.python.display(),
            options.script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        fail(format!(
            "its output is not the expected JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        ))
    })
}
