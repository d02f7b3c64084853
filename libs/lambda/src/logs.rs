//! The stop's log subscriber: JSON lines by default, as Lambda's advanced logging controls ask.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

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

/// Installs the global subscriber: format from `AWS_LAMBDA_LOG_FORMAT`, level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO. Every line inside a bus carries stop,
/// trip, request id and message id from the processor's span.
pub fn init_logs() {
    let setting = |name: &str| std::env::var(name).ok();
    let level = setting("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| setting("RUST_LOG"))
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let subscriber = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    match LogFormat::from_setting(setting("AWS_LAMBDA_LOG_FORMAT").as_deref()) {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn json_unless_text_is_asked_for() {
        assert_eq!(LogFormat::from_setting(None), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("JSON")), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("Text")), LogFormat::Text);
        assert_eq!(LogFormat::from_setting(Some("text")), LogFormat::Text);
    }
}
