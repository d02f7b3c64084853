//! The stop's log subscriber: JSON lines by default, as Lambda's advanced logging controls ask.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch Logs Insights reads its fields).
    Json,
    /// tracing's human-readable lines.
    Text,
}

impl LogFormat {
    /// The format `AWS_LAMBDA_LOG_FORMAT` asks for. Unset means JSON: Lambda sets the variable
    /// from `LoggingConfig`, but emulators and functions without logging controls do not, and
    /// a stop's lines are meant for queries, not for eyes.
    pub fn from_setting(value: Option<&str>) -> Self {
        match value {
            Some(text) if text.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => LogFormat::Json,
        }
    }
}

/// Which lines are written: `RUST_LOG`'s `target=level` directives (`busline_core=debug,warn`),
/// with `AWS_LAMBDA_LOG_LEVEL` (Lambda's `ApplicationLogLevel`, where `FATAL` means ERROR) as
/// the level of every other target, else `RUST_LOG`'s bare level, else INFO. A `RUST_LOG` that
/// does not parse is left out, and the reason is returned to be logged.
fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> (Targets, Option<String>) {
    let (targets, ignored) = match rust_log.map(str::parse::<Targets>) {
        Some(Ok(targets)) => (targets, None),
        Some(Err(err)) => (Targets::new(), Some(format!("RUST_LOG ignored: {err}"))),
        None => (Targets::new(), None),
    };
    let lambda_level = lambda_level.and_then(|level| match level.to_ascii_uppercase().as_str() {
        "FATAL" => Some(LevelFilter::ERROR),
        level => level.parse::<LevelFilter>().ok(),
    });
    let default = lambda_level
        .or(targets.default_level())
        .unwrap_or(LevelFilter::INFO);
    (targets.with_default(default), ignored)
}

/// Installs the global subscriber: format from `AWS_LAMBDA_LOG_FORMAT`, levels from
/// `AWS_LAMBDA_LOG_LEVEL` and `RUST_LOG` (see [`log_filter`]). Every line inside a bus carries
/// stop, trip, request id and message id from the processor's span.
pub fn init_logs() {
    let setting = |name: &str| std::env::var(name).ok();
    let (filter, ignored) = log_filter(
        setting("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        setting("RUST_LOG").as_deref(),
    );
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    let registry = tracing_subscriber::registry().with(filter);
    match LogFormat::from_setting(setting("AWS_LAMBDA_LOG_FORMAT").as_deref()) {
        LogFormat::Json => registry.with(lines.json()).init(),
        LogFormat::Text => registry.with(lines).init(),
    }
    if let Some(ignored) = ignored {
        tracing::warn!("{ignored}");
    }
}

#[cfg(test)]
mod tests {
    use super::{LogFormat, log_filter};
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn json_unless_text_is_asked_for() {
        assert_eq!(LogFormat::from_setting(None), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("JSON")), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("Text")), LogFormat::Text);
        assert_eq!(LogFormat::from_setting(Some("text")), LogFormat::Text);
    }

    #[test]
    fn lambda_level_is_the_default_and_rust_log_names_targets() {
        let (filter, ignored) = log_filter(Some("WARN"), Some("busline_core=debug"));
        assert_eq!(ignored, None);
        assert_eq!(filter.default_level(), Some(LevelFilter::WARN));
        assert!(filter.would_enable("busline_core::packer", &Level::DEBUG));
        assert!(!filter.would_enable("aws_smithy_runtime", &Level::INFO));
    }

    #[test]
    fn rust_log_level_or_info_when_lambda_sets_none() {
        assert_eq!(
            log_filter(None, Some("debug")).0.default_level(),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            log_filter(None, None).0.default_level(),
            Some(LevelFilter::INFO)
        );
        assert_eq!(
            log_filter(Some("fatal"), None).0.default_level(),
            Some(LevelFilter::ERROR)
        );
    }

    #[test]
    fn a_rust_log_that_does_not_parse_is_named_and_left_out() {
        let (filter, ignored) = log_filter(None, Some("busline=loud"));
        assert_eq!(filter.default_level(), Some(LevelFilter::INFO));
        let ignored = ignored.expect("the reason is returned");
        assert!(ignored.starts_with("RUST_LOG ignored: "), "{ignored}");
    }
}
