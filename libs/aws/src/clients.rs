//! SDK clients, built once at init from the shared AWS configuration.

use aws_config::BehaviorVersion;

/// The SDK clients a stop uses.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// CloudWatch (PutMetricData).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The endpoint override in force (`AWS_ENDPOINT_URL`), if any.
    pub endpoint: Option<String>,
}

impl AwsClients {
    /// Loads region, credentials and endpoint the standard way (environment, profile,
    /// container or instance role). With an endpoint override, as for an emulator, S3 uses
    /// path-style addressing so that no DNS is needed for bucket names.
    pub async fn load() -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_config(&shared)
    }

    /// Clients from an already loaded configuration.
    pub fn from_config(shared: &aws_config::SdkConfig) -> Self {
        let endpoint = shared.endpoint_url().map(str::to_owned);
        let s3_config = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(endpoint.is_some())
            .build();
        AwsClients {
            sqs: aws_sdk_sqs::Client::new(shared),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(shared),
            endpoint,
        }
    }
}
