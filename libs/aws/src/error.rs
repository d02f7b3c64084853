//! Turns AWS SDK errors into the core's classified [`PortError`], naming the resource.

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use busline_core::PortError;
use std::error::Error;

/// Error codes that mean "slow down, then try again".
const THROTTLE_CODES: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "SlowDown",
    "RequestLimitExceeded",
    "ServiceUnavailable",
];

/// Error codes that mean the queue or bucket or object does not exist.
const NOT_FOUND_CODES: [&str; 5] = [
    "AWS.SimpleQueueService.NonExistentQueue",
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
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = describe(&err);
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if NOT_FOUND_CODES.contains(&code) {
                PortError::NotFound {
                    resource: resource.to_owned(),
                }
            } else if THROTTLE_CODES.contains(&code) || code.starts_with("Internal") {
                PortError::retryable(resource, message)
            } else {
                PortError::permanent(resource, message)
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            PortError::retryable(resource, message)
        }
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            PortError::retryable(resource, format!("cannot reach the endpoint: {message}"))
        }
        // No credentials, a malformed endpoint, an invalid request: retrying cannot help.
        _ => PortError::permanent(resource, message),
    }
}

/// Classifies an S3 error whose HTTP status is all that is known (HeadObject and GetObject
/// report a missing key as a bare 404).
pub fn classify_with_status<E, R>(
    err: SdkError<E, R>,
    status: Option<u16>,
    resource: &str,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match status {
        Some(404) => PortError::NotFound {
            resource: resource.to_owned(),
        },
        Some(500..=599) => PortError::retryable(resource, describe(&err)),
        _ => classify(err, resource),
    }
}

/// The error and its causes, each once, joined by ": "; with a hint when credentials are missing.
fn describe(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        // SDK errors often repeat their cause in their own message; keep the new part only.
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    let message = parts.join(": ");
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
