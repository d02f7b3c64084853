//! Turns AWS SDK errors into the core's classified [`PortError`], naming the resource.

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use busline_core::error::{BoxError, chain};
use busline_core::{ErrorClass, PortError};
use std::error::Error;

/// Error codes that mean "slow down, then try again".
const THROTTLE_CODES: [&str; 7] = [
    "Throttling",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestThrottled",
    "SlowDown",
    "RequestLimitExceeded",
    "ServiceUnavailable",
];

/// Error codes that mean the queue, bucket, object or table does not exist.
const NOT_FOUND_CODES: [&str; 6] = [
    "AWS.SimpleQueueService.NonExistentQueue",
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
];

/// Classifies an SDK error on `resource` (a queue URL, `s3://bucket/key`, a namespace).
///
/// Timeouts, dropped connections, throttling and 5xx are retryable; a missing resource is
/// `NotFound`; everything else (bad request, access denied, no credentials) is permanent.
pub fn classify<E, R>(err: SdkError<E, R>, resource: &str) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = describe(&err);
    let (class, text) = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if NOT_FOUND_CODES.contains(&code) {
                return PortError::NotFound {
                    resource: resource.to_owned(),
                };
            } else if THROTTLE_CODES.contains(&code) || code.starts_with("Internal") {
                (ErrorClass::Retryable, message)
            } else {
                (ErrorClass::Permanent, message)
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => (ErrorClass::Retryable, message),
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => (
            ErrorClass::Retryable,
            format!("cannot reach the endpoint: {message}"),
        ),
        // No credentials, a malformed endpoint, an invalid request: retrying cannot help.
        _ => (ErrorClass::Permanent, message),
    };
    port_error(class, resource, text, err)
}

/// A port error of `class` on `resource`, with `err` kept as the cause under `text`.
fn port_error(
    class: ErrorClass,
    resource: &str,
    text: String,
    err: impl Error + Send + Sync + 'static,
) -> PortError {
    let source = Described {
        text,
        source: Box::new(err),
    };
    match class {
        ErrorClass::Retryable => PortError::retryable(resource, source),
        _ => PortError::permanent(resource, source),
    }
}

/// The SDK error's whole chain in one line (its own text says little), with the SDK error
/// itself kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
struct Described {
    text: String,
    #[source]
    source: BoxError,
}

/// Classifies an S3 error whose HTTP status is all that is known (HeadObject and GetObject
/// report a missing key as a bare 404).
pub fn classify_with_status<E, R>(
    err: SdkError<E, R>,
    status: Option<u16>,
    resource: &str,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match status {
        Some(404) => PortError::NotFound {
            resource: resource.to_owned(),
        },
        Some(500..=599) => {
            let text = describe(&err);
            port_error(ErrorClass::Retryable, resource, text, err)
        }
        _ => classify(err, resource),
    }
}

/// The error and its causes (see [`chain`]); with a hint when credentials are missing.
fn describe(err: &(dyn Error + 'static)) -> String {
    let message = chain(err);
    let lower = message.to_lowercase();
    if lower.contains("credential") || lower.contains("no identity resolver") {
        format!(
            "no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, \
             or run with a role): {message}"
        )
    } else {
        message
    }
}
