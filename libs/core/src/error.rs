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

/// Any error, boxed: the cause a [`PortError`], [`StopError`] or [`InitError`] carries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of a port (queue, object store) naming the resource at fault.
///
/// It prints as `resource: cause`; as its own text already holds the cause's, `source()`
/// continues below the cause, so chain printers (anyhow, [`chain`]) say everything once.
/// [`PortError::cause`] is the cause itself.
#[derive(Debug)]
pub enum PortError {
    /// Worth retrying: throttling, a 5xx, a timeout, a dropped connection.
    Retryable {
        /// The queue URL, bucket/key or endpoint involved.
        resource: String,
        /// What went wrong.
        source: BoxError,
    },
    /// Retrying cannot help: bad request, access denied, too large.
    Permanent {
        /// The queue URL, bucket/key or endpoint involved.
        resource: String,
        /// What went wrong.
        source: BoxError,
    },
    /// The queue, bucket or object does not exist.
    NotFound {
        /// The queue URL, bucket/key involved.
        resource: String,
    },
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::Retryable { resource, source }
            | PortError::Permanent { resource, source } => {
                write!(f, "{resource}: {source}")
            }
            PortError::NotFound { resource } => write!(f, "{resource}: not found"),
        }
    }
}

impl std::error::Error for PortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause()?.source()
    }
}

impl PortError {
    /// A retryable error on `resource`, caused by `source` (an error or a message).
    pub fn retryable(resource: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PortError::Retryable {
            resource: resource.into(),
            source: source.into(),
        }
    }

    /// A permanent error on `resource`, caused by `source` (an error or a message).
    pub fn permanent(resource: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PortError::Permanent {
            resource: resource.into(),
            source: source.into(),
        }
    }

    /// What went wrong, as the port reported it (none for `NotFound`).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PortError::Retryable { source, .. } | PortError::Permanent { source, .. } => {
                Some(source.as_ref())
            }
            PortError::NotFound { .. } => None,
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

/// What a stop's handler returns when the whole bus cannot be handled: the cause, classified.
/// It prints as its cause and continues with the cause's own sources, so the whole chain
/// becomes the dead-letter reason ([`StopError::reason`]); [`StopError::cause`] is the cause.
#[derive(Debug, Error)]
pub enum StopError {
    /// Try the bus again later (SQS redelivers it after the visibility timeout).
    #[error(transparent)]
    Retryable(BoxError),
    /// The bus can never succeed: dead-letter it now with this reason.
    #[error(transparent)]
    Permanent(BoxError),
}

impl StopError {
    /// A retryable failure caused by `cause` (an error or a message): throttles, outages.
    pub fn retryable(cause: impl Into<BoxError>) -> Self {
        StopError::Retryable(cause.into())
    }

    /// A permanent failure caused by `cause` (an error or a message): the bus is bad.
    pub fn permanent(cause: impl Into<BoxError>) -> Self {
        StopError::Permanent(cause.into())
    }

    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            StopError::Retryable(_) => ErrorClass::Retryable,
            StopError::Permanent(_) => ErrorClass::Permanent,
        }
    }

    /// What went wrong, as the handler said it.
    pub fn cause(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            StopError::Retryable(cause) | StopError::Permanent(cause) => cause.as_ref(),
        }
    }

    /// The error and every cause below it, as one line (see [`chain`]).
    pub fn reason(&self) -> String {
        chain(self)
    }
}

impl From<PortError> for StopError {
    fn from(err: PortError) -> Self {
        match err.class() {
            ErrorClass::Retryable => StopError::Retryable(Box::new(err)),
            _ => StopError::Permanent(Box::new(err)),
        }
    }
}

/// An error and its causes, each once, joined by ": ". A cause whose text the line already
/// holds is skipped: many errors repeat their source in their own message.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = current.source();
    }
    line
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
    #[error(
        "bus envelope version {found} is not supported (this stop reads versions {oldest} to {newest})"
    )]
    UnsupportedVersion {
        /// Version in the message.
        found: u32,
        /// The oldest version this build reads.
        oldest: u32,
        /// The newest, the one it writes.
        newest: u32,
    },
    /// The SQS message had no body.
    #[error("SQS message has no body")]
    MissingBody,
    /// A version 2 or 3 passenger that refers to what its bus lacks, or does not add up.
    #[error("bus envelope: {0}")]
    Compact(String),
    /// A compressed body (`busline+zstd:`) that does not decompress to a bus.
    #[error("compressed bus body: {0}")]
    Compressed(String),
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

/// Why a stop could not be built at init, naming the variable, resource or kind at fault.
#[derive(Debug, Error)]
pub enum InitError {
    /// A setting is missing or invalid.
    #[error(transparent)]
    Setting(#[from] ConfigError),
    /// An outside resource the stop needs (a database, an API, a client) is unusable.
    #[error("{resource}")]
    Resource {
        /// The URL, endpoint or name of the resource.
        resource: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The stop needs something the host does not provide (e.g. the AWS configuration).
    #[error("stop kind {kind} needs {needs}, which this host does not provide")]
    Missing {
        /// The stop kind.
        kind: String,
        /// What it needs (a type name).
        needs: String,
    },
    /// The template names a kind this build has not registered.
    #[error("unknown stop kind {kind:?}; this build knows {known}")]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// The kinds registered, comma-separated.
        known: String,
    },
    /// The kind exists but plays another part (a depot where a queue reader is needed).
    #[error("stop kind {kind} {found}, but here {wanted}")]
    WrongPart {
        /// The kind.
        kind: String,
        /// What it is.
        found: &'static str,
        /// What the route needs here.
        wanted: &'static str,
    },
}

impl InitError {
    /// An unusable outside resource, caused by `source` (an error or a message).
    pub fn resource(resource: impl Into<String>, source: impl Into<BoxError>) -> Self {
        InitError::Resource {
            resource: resource.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("reading row 7")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_stop_error_keeps_its_cause_chain() {
        let cause = Outer(std::io::Error::other("connection reset"));
        let err = StopError::retryable(cause);
        assert_eq!(err.class(), ErrorClass::Retryable);
        assert_eq!(err.reason(), "reading row 7: connection reset");
        assert_eq!(err.to_string(), "reading row 7");
        assert_eq!(err.cause().to_string(), "reading row 7");
        let below = std::error::Error::source(&err).expect("the cause's source");
        assert_eq!(below.to_string(), "connection reset");
    }

    #[test]
    fn a_port_error_becomes_a_stop_error_of_its_class_with_its_resource() {
        let port = PortError::retryable("s3://b/k", std::io::Error::other("503 Slow Down"));
        let err = StopError::from(port);
        assert_eq!(err.class(), ErrorClass::Retryable);
        assert_eq!(err.reason(), "s3://b/k: 503 Slow Down");
        let err = StopError::from(PortError::NotFound {
            resource: "queue q".into(),
        });
        assert_eq!(
            (err.class(), err.reason()),
            (ErrorClass::Permanent, "queue q: not found".into())
        );
    }
}
