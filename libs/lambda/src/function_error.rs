//! The error a function reports to Lambda: its `errorType` is the busline class, so a failed
//! invocation says in the logs and the console whether it will be retried.

use busline_core::{BatchError, ErrorClass, TripError};
use lambda_runtime::Diagnostic;

/// A function error with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `Retryable`, `Permanent` or `Rejected` (a bad request).
    pub error_type: String,
    /// The error and its causes.
    pub message: String,
}

impl FunctionError {
    /// An error of `class` with `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        let error_type = match class {
            ErrorClass::Retryable => "Retryable",
            ErrorClass::Permanent => "Permanent",
            ErrorClass::Rejected => "Rejected",
        };
        FunctionError {
            error_type: error_type.to_owned(),
            message: message.into(),
        }
    }
}

impl From<BatchError> for FunctionError {
    fn from(err: BatchError) -> Self {
        FunctionError::new(err.class, err.to_string())
    }
}

impl From<TripError> for FunctionError {
    fn from(err: TripError) -> Self {
        match &err {
            TripError::BadRequest(_) => FunctionError::new(ErrorClass::Rejected, err.to_string()),
            TripError::Stop(stop) => FunctionError::new(stop.class(), stop.reason()),
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(err: FunctionError) -> Self {
        Diagnostic {
            error_type: err.error_type,
            error_message: err.message,
        }
    }
}
