//! SDK clients, built once at init from the shared AWS configuration.

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The HTTPS client every SDK call goes through: hyper and rustls with the ring crypto
/// provider, which initialises faster than the SDK's default (aws-lc-rs) and is smaller.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The shared configuration, loaded the standard way, with [`https_client`].
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK clients a stop uses.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// CloudWatch (PutMetricData).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Secrets Manager (GetSecretValue), for the secrets stops read at init.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The endpoint override in force (`AWS_ENDPOINT_URL`), if any.
    pub endpoint: Option<String>,
}

impl AwsClients {
    /// Loads region, credentials and endpoint the standard way (environment, profile,
    /// container or instance role). With an endpoint override, as for an emulator, S3 uses
    /// path-style addressing so that no DNS is needed for bucket names.
    pub async fn load() -> Self {
        Self::from_config(&load_config().await)
    }

    /// Clients from an already loaded configuration.
    pub fn from_config(shared: &aws_config::SdkConfig) -> Self {
        AwsClients {
            sqs: aws_sdk_sqs::Client::new(shared),
            s3: s3_client(shared),
            cloudwatch: aws_sdk_cloudwatch::Client::new(shared),
            secrets: aws_sdk_secretsmanager::Client::new(shared),
            endpoint: shared.endpoint_url().map(str::to_owned),
        }
    }
}

/// An S3 client; with an endpoint override, as for an emulator, path-style addressing so that
/// no DNS is needed for bucket names.
pub fn s3_client(shared: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(shared.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

impl AwsClients {
    /// What a host offers the stops it builds: the shared configuration (for a stop that makes
    /// its own client) and the secret store.
    pub fn extensions(&self, shared: &aws_config::SdkConfig) -> busline_core::Extensions {
        let mut extensions = busline_core::Extensions::default();
        extensions.insert(shared.clone());
        extensions.insert(self.clone());
        let secrets: std::sync::Arc<dyn busline_core::SecretStore> =
            std::sync::Arc::new(crate::SecretsManagerStore::new(self.secrets.clone()));
        extensions.insert(secrets);
        extensions
    }
}
