//! Misconfiguration against the AWS adapters gives errors that name the resource, never a panic.

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::Region;
use busline_aws::{AwsClients, S3Store, SqsQueues};
use busline_core::ports::{ObjectStore, OutgoingMessage, QueueSender};
use busline_core::{ErrorClass, PortError};
use busline_tests::cloud::{cloud, sdk_config, unique};

fn message() -> Vec<OutgoingMessage> {
    vec![OutgoingMessage {
        body: "hello".into(),
        attributes: vec![],
    }]
}

/// A port nobody listens on.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable_and_names_the_queue() {
    let endpoint = dead_endpoint();
    let clients = AwsClients::from_config(&sdk_config(&endpoint).await);
    let queue = format!("{endpoint}/000000000000/transform");
    let err = SqsQueues::new(clients.sqs)
        .send_batch(&queue, &message())
        .await
        .expect_err("nothing listens");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{queue}: cannot reach the endpoint")),
        "{text}"
    );
}

#[tokio::test]
async fn missing_credentials_are_permanent_and_say_so() {
    let cloud = cloud("localstack").await;
    // No credentials provider at all, as on a machine with no AWS configuration.
    let config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(busline_aws::clients::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(&cloud.endpoint)
        .build();
    let clients = AwsClients::from_config(&config);
    let queue = format!("{}/000000000000/anything", cloud.endpoint);
    let err = SqsQueues::new(clients.sqs)
        .send_batch(&queue, &message())
        .await
        .expect_err("unsigned");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{queue}: no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_queue_is_not_found_and_named() {
    for name in ["localstack", "ministack"] {
        let cloud = cloud(name).await;
        let queue = format!(
            "{}/000000000000/{}",
            cloud.endpoint,
            unique("no-such-queue")
        );
        let err = SqsQueues::new(cloud.clients.sqs)
            .send_batch(&queue, &message())
            .await
            .expect_err("no queue");
        assert!(
            matches!(&err, PortError::NotFound { resource } if *resource == queue),
            "{name}: {err}"
        );
        assert_eq!(err.to_string(), format!("{queue}: not found"));
    }
}

#[tokio::test]
async fn a_missing_bucket_is_not_found_and_named() {
    for name in ["localstack", "ministack"] {
        let cloud = cloud(name).await;
        let bucket = unique("no-such-bucket");
        let store = S3Store::new(cloud.clients.s3, &bucket);
        let err = store.list("input/").await.expect_err("no bucket");
        assert!(
            matches!(&err, PortError::NotFound { resource } if *resource == format!("s3://{bucket}/input/")),
            "{name}: {err}"
        );
        let err = store
            .put("output/x", b"x".to_vec(), "text/plain")
            .await
            .expect_err("no bucket");
        assert_eq!(err.class(), ErrorClass::Permanent, "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("s3://{bucket}/output/x")),
            "{name}: {err}"
        );
    }
}

/// The SDK clients speak TLS through busline's ring-based HTTPS client with the system's root
/// certificates. No AWS endpoint is reachable from CI, so this asks a public HTTPS server that
/// is (the crates.io index): any HTTP answer proves the handshake; a dispatch failure is a TLS
/// or connection problem.
#[tokio::test]
async fn the_https_client_completes_a_tls_handshake() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(busline_aws::clients::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url("https://index.crates.io")
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::new("a", "b", None, None, "test"),
        ))
        .build();
    let clients = AwsClients::from_config(&config);
    let err = clients
        .s3
        .list_objects_v2()
        .bucket("busline-tls-check")
        .send()
        .await
        .expect_err("crates.io is not S3");
    assert!(
        !matches!(err, aws_sdk_s3::error::SdkError::DispatchFailure(_)),
        "no HTTP answer over TLS: {err:?}"
    );
}
