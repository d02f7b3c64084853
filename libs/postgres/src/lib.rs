//! busline's PostgreSQL adapter, shared by the stops that read and write PostgreSQL: a small
//! pool built from a connection URL or a secret, over TLS when asked, the database's errors classified the way the bus needs
//! them (a lost connection, too many connections, a serialization failure or a deadlock is
//! retryable; anything else permanent), and connections that wait a while for a database that
//! is restarting.

mod database;
mod source;
mod tls;

pub use database::{Database, DatabaseSettings, Location, open};
pub use source::SourceQuery;

use backon::{ExponentialBuilder, Retryable};
use busline_core::StopError;
use std::time::Duration;
use tokio_postgres::error::SqlState;

pub use deadpool_postgres::{Client, Pool};

/// A pool of at most `size` connections by `config`, over TLS with `tls` when given. Only
/// the settings are checked here: connections are made when first needed.
fn pool_of(
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    size: usize,
) -> Result<Pool, String> {
    let manager_config = deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => deadpool_postgres::Manager::from_config(config, tls, manager_config),
        None => {
            deadpool_postgres::Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|err| err.to_string())
}

/// A connection from `pool`, retried with backoff for up to `window` while the database is
/// unreachable; then a retryable error naming `what`.
pub async fn client(pool: &Pool, window: Duration, what: &str) -> Result<Client, StopError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_total_delay(Some(window))
        .without_max_times();
    (|| pool.get())
        .retry(backoff)
        .notify(|err, wait| tracing::warn!(error = %err, ?wait, "database unreachable; retrying"))
        .await
        .map_err(|err| StopError::retryable(format!("{what}: no connection: {}", pool_error(&err))))
}

/// True for an error of a row's data (class 22) or of a constraint it breaks (class 23).
pub fn row_level(err: &tokio_postgres::Error) -> bool {
    err.code()
        .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("23"))
}

/// `err` in the bus's classes, its message prefixed with `what` (the table or query).
pub fn classify(what: &str, err: tokio_postgres::Error) -> StopError {
    let retryable = match err.code() {
        None => true,
        Some(code) => {
            let text = code.code();
            text.starts_with("08")
                || text.starts_with("53")
                || text.starts_with("58")
                || [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(code)
        }
    };
    let message = format!("{what}: {}", describe(&err));
    if retryable {
        StopError::retryable(message)
    } else {
        StopError::permanent(message)
    }
}

/// The database's message with its detail, or the client's error with its causes.
pub fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// Why the pool has no connection, with the database's or the TLS layer's cause (the pool's
/// own text stops at "error performing TLS handshake").
pub fn pool_error(err: &deadpool_postgres::PoolError) -> String {
    match err {
        deadpool_postgres::PoolError::Backend(err) => describe(err),
        other => other.to_string(),
    }
}

/// A connection string without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// An identifier quoted for SQL.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redacted("postgres://app:s3cret@db.internal:5432/lake"),
            "postgres://app:***@db.internal:5432/lake"
        );
        assert_eq!(redacted("postgres://app@db/lake"), "postgres://app@db/lake");
        assert_eq!(redacted("host=db user=app"), "host=db user=app");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
