//! The environment a function needs to run one stop of a route against the driver: the
//! stop's settings from the template, its queues as URLs on the driver's SQS endpoint, and
//! `AWS_ENDPOINT_URL` pointing every SDK call at the driver.

use busline_core::route::{Route, StopSpec};
use std::collections::BTreeMap;

/// The account id in the driver's queue URLs (as local clouds use).
const ACCOUNT: &str = "000000000000";

/// The URL of queue `name` on the driver at `endpoint` (e.g. `http://127.0.0.1:4577`).
pub fn queue_url(endpoint: &str, name: &str) -> String {
    format!("{}/{ACCOUNT}/{name}", endpoint.trim_end_matches('/'))
}

/// The variables for a function running `spec` of `route` against the driver at `endpoint`.
pub fn function_env(route: &Route, spec: &StopSpec, endpoint: &str) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = spec
        .env
        .iter()
        .map(|(name, value)| {
            let value = match route.queue(value) {
                Some(queue) => queue_url(endpoint, &queue.name),
                None => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    for (name, value) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "busline-local"),
        ("AWS_SECRET_ACCESS_KEY", "busline-local"),
        ("AWS_REGION", "us-east-1"),
        // The driver's S3 endpoint takes plain uploads, not aws-chunked ones with trailers.
        ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
        ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
        // Metrics go to the function's log (EMF); the driver serves no CloudWatch.
        ("METRICS_MODE", "emf"),
        // The driver serves no DynamoDB: a ride with invoked stops keeps no trip ledger.
        ("TRIP_LEDGER", "off"),
    ] {
        env.insert(name.to_owned(), value.to_owned());
    }
    env.entry("STOP_KIND".to_owned())
        .or_insert_with(|| spec.kind.clone());
    env
}

/// `env` as an env file (`NAME=value` lines, as `cargo lambda watch --env-file` and dotenv read
/// them): plain values bare, others quoted.
pub fn env_file(env: &BTreeMap<String, String>) -> String {
    env.iter()
        .map(|(name, value)| format!("{name}={}\n", env_file_value(value)))
        .collect()
}

fn env_file_value(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@+,=".contains(c));
    if plain {
        value.to_owned()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_values_are_quoted_only_when_they_must_be() {
        let env = BTreeMap::from([
            (
                "A".to_owned(),
                "http://127.0.0.1:4577/000000000000/Q".to_owned(),
            ),
            ("B".to_owned(), r#"[{"drop": ["HEX"]}]"#.to_owned()),
            ("C".to_owned(), r#"it's "x""#.to_owned()),
        ]);
        assert_eq!(
            env_file(&env),
            "A=http://127.0.0.1:4577/000000000000/Q\nB='[{\"drop\": [\"HEX\"]}]'\nC=\"it's \\\"x\\\"\"\n"
        );
    }
}
