//! Where a stop's database is and how to reach it: `DATABASE_URL`, or `DATABASE_SECRET` (a
//! secret in the usual JSON of host, port, username, password and dbname, read at init from the
//! host's secret store), TLS when the connection asks for it (`sslmode=require`) with the
//! server's certificate checked against the system's roots and `DATABASE_ROOT_CERT`.

use busline_core::config::{Vars, optional};
use busline_core::{ConfigError, InitError, SecretStore};
use serde::Deserialize;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// The settings that say where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` or `DATABASE_SECRET`.
    pub location: Location,
    /// `DATABASE_SSLMODE` (`disable`, `prefer` or `require`) for a secret; a URL says its own.
    pub sslmode: Option<String>,
    /// `DATABASE_ROOT_CERT`: certificates (PEM, the text itself or a file's path) trusted
    /// besides the system's, such as the RDS certificate bundle.
    pub root_cert: Option<String>,
}

/// Where the connection settings are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `DATABASE_URL`: libpq's URL or key=value form, `sslmode` included.
    Url(String),
    /// `DATABASE_SECRET`: the name or ARN of a secret holding host, port, username, password
    /// and dbname as JSON (the shape RDS and Secrets Manager's rotation use).
    Secret(String),
}

impl DatabaseSettings {
    /// Reads the settings: exactly one of `DATABASE_URL` and `DATABASE_SECRET`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let location = match (
            optional(vars, "DATABASE_URL"),
            optional(vars, "DATABASE_SECRET"),
        ) {
            (Some(url), None) => Location::Url(url),
            (None, Some(secret)) => Location::Secret(secret),
            (Some(_), Some(secret)) => {
                return Err(ConfigError::Invalid {
                    var: "DATABASE_SECRET".into(),
                    value: secret,
                    reason: "set DATABASE_URL or DATABASE_SECRET, not both".into(),
                });
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    var: "DATABASE_URL".into(),
                    hint: "; or DATABASE_SECRET, a secret's name or ARN".into(),
                });
            }
        };
        Ok(DatabaseSettings {
            location,
            sslmode: optional(vars, "DATABASE_SSLMODE"),
            root_cert: optional(vars, "DATABASE_ROOT_CERT"),
        })
    }
}

/// A pool and how messages name its database (never with the password).
pub struct Database {
    /// The pool; connections are made when first needed.
    pub pool: crate::Pool,
    /// `postgres://user:***@host:port/dbname`, for messages.
    pub shown: String,
}

/// The JSON a database secret holds.
#[derive(Deserialize)]
struct SecretFields {
    host: String,
    #[serde(default)]
    port: Option<serde_json::Value>,
    username: String,
    password: String,
    #[serde(default)]
    dbname: Option<String>,
}

/// Opens a pool of at most `size` connections to the database `settings` name, reading a
/// secret from `secrets` when they name one. Errors name the variable, the secret, or the
/// stop `kind` when the host offers no secret store.
pub async fn open(
    kind: &str,
    settings: &DatabaseSettings,
    secrets: Option<&Arc<dyn SecretStore>>,
    size: usize,
) -> Result<Database, InitError> {
    let (config, shown) = match &settings.location {
        Location::Url(url) => (parse_url(url)?, crate::redacted(url)),
        Location::Secret(id) => {
            let store = secrets.ok_or_else(|| InitError::Missing {
                kind: kind.to_owned(),
                needs: format!("a secret store (DATABASE_SECRET names secret {id})"),
            })?;
            let text = store
                .secret(id)
                .await
                .map_err(|err| InitError::resource("DATABASE_SECRET", err))?;
            from_secret(id, &text, settings.sslmode.as_deref())?
        }
    };
    let tls = match config.get_ssl_mode() {
        SslMode::Require => Some(crate::tls::connector(settings.root_cert.as_deref())?),
        _ => None,
    };
    let pool = crate::pool_of(config, tls, size).map_err(|reason| ConfigError::Invalid {
        var: "DATABASE_URL".into(),
        value: shown.clone(),
        reason,
    })?;
    Ok(Database { pool, shown })
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, ConfigError> {
    url.parse().map_err(|err| ConfigError::Invalid {
        var: "DATABASE_URL".into(),
        value: crate::redacted(url),
        reason: format!("{err}"),
    })
}

/// The connection settings in secret `id`'s JSON `text`; `sslmode` from `DATABASE_SSLMODE`.
fn from_secret(
    id: &str,
    text: &str,
    sslmode: Option<&str>,
) -> Result<(tokio_postgres::Config, String), InitError> {
    let bad = |reason: String| InitError::resource(format!("secret {id}"), reason);
    let fields: SecretFields = serde_json::from_str(text).map_err(|err| {
        // The text may be the password itself: say where, never what.
        bad(format!(
            "not the JSON of a database secret (host, port, username, password, dbname): {} at line {} column {}",
            classify_json(&err),
            err.line(),
            err.column()
        ))
    })?;
    let port = match &fields.port {
        None => 5432,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| bad(format!("port {n} is not a port number")))?,
        Some(serde_json::Value::String(s)) => s
            .parse()
            .map_err(|_| bad(format!("port {s:?} is not a port number")))?,
        Some(other) => return Err(bad(format!("port {other} is not a port number"))),
    };
    let dbname = fields.dbname.unwrap_or_else(|| "postgres".into());
    let mut config = tokio_postgres::Config::new();
    config
        .host(&fields.host)
        .port(port)
        .user(&fields.username)
        .password(fields.password.as_bytes())
        .dbname(&dbname);
    config.ssl_mode(match sslmode.unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        other => {
            return Err(ConfigError::Invalid {
                var: "DATABASE_SSLMODE".into(),
                value: other.into(),
                reason: "expected disable, prefer or require".into(),
            }
            .into());
        }
    });
    let shown = format!(
        "postgres://{}:***@{}:{port}/{dbname} (secret {id})",
        fields.username, fields.host
    );
    Ok((config, shown))
}

/// The kind of JSON error, without the input's text.
fn classify_json(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
        serde_json::error::Category::Data => "a field is missing or of the wrong type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of as vars;

    #[test]
    fn a_secret_in_the_rds_shape_makes_the_connection_settings() {
        let text = r#"{"engine": "postgres", "host": "db.internal", "port": 6432,
            "username": "app", "password": "s3cret", "dbname": "lake"}"#;
        let (config, shown) = from_secret("lake-db", text, Some("require")).expect("a secret");
        assert_eq!(
            shown,
            "postgres://app:***@db.internal:6432/lake (secret lake-db)"
        );
        assert_eq!(config.get_ports(), [6432]);
        assert_eq!(config.get_user(), Some("app"));
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(config.get_dbname(), Some("lake"));
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        let (string_port, _) = from_secret(
            "s",
            r#"{"host": "h", "port": "5433", "username": "u", "password": "p"}"#,
            None,
        )
        .expect("a port as text");
        assert_eq!(
            (string_port.get_ports(), string_port.get_dbname()),
            (&[5433][..], Some("postgres"))
        );
    }

    #[test]
    fn a_secret_that_is_not_json_is_named_and_never_shown() {
        let err = from_secret("lake-db", "hunter2", None).expect_err("not JSON");
        let text = busline_core::error::chain(&err);
        assert!(text.contains("secret lake-db"), "{text}");
        assert!(text.contains("not JSON"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let err = from_secret(
            "s",
            r#"{"host": "h", "username": "u", "password": "p"}"#,
            Some("verify-full"),
        )
        .expect_err("bad sslmode");
        assert!(
            busline_core::error::chain(&err).contains("DATABASE_SSLMODE"),
            "{err}"
        );
    }

    #[test]
    fn the_database_is_a_url_or_a_secret_never_both() {
        let url = DatabaseSettings::from_vars(&vars(&[("DATABASE_URL", "postgres://h/db")]))
            .expect("url");
        assert_eq!(url.location, Location::Url("postgres://h/db".into()));
        let both = DatabaseSettings::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://h/db"),
            ("DATABASE_SECRET", "s"),
        ]))
        .expect_err("both");
        assert!(both.to_string().contains("not both"), "{both}");
        let neither = DatabaseSettings::from_vars(&vars(&[])).expect_err("neither");
        assert!(neither.to_string().contains("DATABASE_URL"), "{neither}");
    }
}
