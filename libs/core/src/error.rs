//! Error types of the core, each classified as retryable, permanent or rejected.

use thiserror::Error;

/// How a failure is handled, as in the design's delivery semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Throttle, 5xx, timeout: the bus is reported failed and SQS retries it.
    Retryable,
    /// The bus itself is bad: it goes to the dead-letter queue with its reason.
    Permanent,
    /// One passenger is bad: it goes to quarantine; the rest of the bus rides on.
    Rejected,
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Rejected => "rejected",
        })
    }
}

/// A failure of a port (queue, object store) naming the resource at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PortError {
    /// Worth retrying: throttling, a 5xx, a timeout, a dropped connection.
    #[error("{resource}: {message}")]
    Retryable {
        /// The queue URL, bucket/key or endpoint involved.
        resource: String,
        /// What went wrong.
        message: String,
    },
    /// Retrying cannot help: bad request, access denied, too large.
    #[error("{resource}: {message}")]
    Permanent {
        /// The queue URL, bucket/key or endpoint involved.
        resource: String,
        /// What went wrong.
        message: String,
    },
    /// The queue, bucket or object does not exist.
    #[error("{resource}: not found")]
    NotFound {
        /// The queue URL, bucket/key involved.
        resource: String,
    },
}

impl PortError {
    /// Builds a retryable error.
    pub fn retryable(resource: impl Into<String>, message: impl Into<String>) -> Self {
        PortError::Retryable {
            resource: resource.into(),
            message: message.into(),
        }
    }

    /// Builds a permanent error.
    pub fn permanent(resource: impl Into<String>, message: impl Into<String>) -> Self {
        PortError::Permanent {
            resource: resource.into(),
            message: message.into(),
        }
    }

    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            PortError::Retryable { .. } => ErrorClass::Retryable,
            PortError::Permanent { .. } | PortError::NotFound { .. } => ErrorClass::Permanent,
        }
    }
}

/// What a stop's handler returns when the whole bus cannot be handled.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StopError {
    /// Try the bus again later (SQS redelivers it after the visibility timeout).
    #[error("{0}")]
    Retryable(String),
    /// The bus can never succeed: dead-letter it now with this reason.
    #[error("{0}")]
    Permanent(String),
}

impl StopError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            StopError::Retryable(_) => ErrorClass::Retryable,
            StopError::Permanent(_) => ErrorClass::Permanent,
        }
    }
}

impl From<PortError> for StopError {
    fn from(err: PortError) -> Self {
        match err.class() {
            ErrorClass::Retryable => StopError::Retryable(err.to_string()),
            _ => StopError::Permanent(err.to_string()),
        }
    }
}

/// A message body that is not a bus this stop can read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The body is not valid envelope JSON.
    #[error("bus body is not a valid envelope: {message} at line {line} column {column}")]
    Json {
        /// The parser's message.
        message: String,
        /// 1-based line in the body.
        line: usize,
        /// 1-based column in the body.
        column: usize,
    },
    /// The envelope was written by a newer or older format.
    #[error("bus envelope version {found} is not supported (this stop reads version {supported})")]
    UnsupportedVersion {
        /// Version in the message.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The SQS message had no body.
    #[error("SQS message has no body")]
    MissingBody,
}

impl From<serde_json::Error> for DecodeError {
    fn from(err: serde_json::Error) -> Self {
        let (line, column) = (err.line(), err.column());
        // serde_json ends its message with the position, which this error prints itself.
        let text = err.to_string();
        let message = text
            .strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&text)
            .to_owned();
        DecodeError::Json {
            message,
            line,
            column,
        }
    }
}

/// Bad or missing configuration, naming the variable at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {var} is required but not set{hint}")]
    Missing {
        /// The variable's name.
        var: String,
        /// Extra help, starting with "; " or empty.
        hint: String,
    },
    /// A variable is set to something unusable.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        var: String,
        /// The value found.
        value: String,
        /// Why it is unusable.
        reason: String,
    },
}
