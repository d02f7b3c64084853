//! The local clouds the tests run against: LocalStack and MiniStack, started by `infra/emulator`
//! (once per checkout; `./infra/test` stops them at the end).

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};
use busline_aws::AwsClients;
use std::collections::HashMap;
use std::sync::Mutex;

/// One emulator: its endpoint and SDK clients pointed at it.
#[derive(Clone, Debug)]
pub struct Cloud {
    pub name: &'static str,
    pub endpoint: String,
    pub clients: AwsClients,
    pub config: aws_config::SdkConfig,
}

static ENDPOINTS: Mutex<Option<HashMap<&'static str, String>>> = Mutex::new(None);

/// The endpoint of emulator `name`: `BUSLINE_<NAME>_URL` if set, else `infra/emulator start`
/// (which reuses a running one). Fails loudly, with the fix, when the emulator is missing.
pub fn endpoint(name: &'static str) -> String {
    let mut endpoints = ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner());
    let endpoints = endpoints.get_or_insert_with(HashMap::new);
    if let Some(url) = endpoints.get(name) {
        return url.clone();
    }
    let url = match std::env::var(format!("BUSLINE_{}_URL", name.to_uppercase())) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let script = crate::workspace_root().join("infra/emulator");
            let output = std::process::Command::new(&script)
                .args(["start", name])
                .output()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "the {name} emulator did not start ({}):\n{}{}",
                script.display(),
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
            stdout
                .lines()
                .find_map(|line| line.strip_prefix("AWS_ENDPOINT_URL="))
                .unwrap_or_else(|| panic!("infra/emulator printed no endpoint: {stdout}"))
                .to_owned()
        }
    };
    endpoints.insert(name, url.clone());
    url
}

impl Cloud {
    /// Creates a bucket named after `prefix`, unique to this run; returns its name.
    pub async fn create_bucket(&self, prefix: &str) -> String {
        let bucket = unique(prefix);
        self.clients
            .s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        bucket
    }
}

/// SDK configuration for `endpoint` with the emulators' test credentials.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(busline_aws::clients::https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "busline-tests",
        ))
        .load()
        .await
}

/// Emulator `name`, started if needed.
pub async fn cloud(name: &'static str) -> Cloud {
    let endpoint = tokio::task::spawn_blocking(move || endpoint(name))
        .await
        .expect("emulator start");
    let config = sdk_config(&endpoint).await;
    Cloud {
        name,
        clients: AwsClients::from_config(&config),
        endpoint,
        config,
    }
}

/// A name unique to this run, for queues and buckets on a long-lived emulator.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}", nanos % 10_000_000_000_000)
}
