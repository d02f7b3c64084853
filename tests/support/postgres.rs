//! The test database: a throwaway PostgreSQL cluster in the clone, started by `infra/postgres`
//! (`./infra/test` starts it first and stops it at the end).

use crate::workspace_root;
use std::sync::Mutex;

static URL: Mutex<Option<String>> = Mutex::new(None);

/// Runs `infra/postgres <action>`; its stdout.
pub fn postgres(action: &str) -> String {
    let script = workspace_root().join("infra/postgres");
    let output = std::process::Command::new(&script)
        .arg(action)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "infra/postgres {action} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The test database's URL: `BUSLINE_DATABASE_URL` if set, else `infra/postgres start`
/// (which reuses a running cluster).
pub fn database_url() -> String {
    let mut url = URL.lock().unwrap_or_else(|p| p.into_inner());
    url.get_or_insert_with(|| match std::env::var("BUSLINE_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => postgres("start")
            .lines()
            .find_map(|line| line.strip_prefix("DATABASE_URL="))
            .expect("infra/postgres prints DATABASE_URL")
            .to_owned(),
    })
    .clone()
}

/// A connection to the test database.
pub async fn connect() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("the test database accepts connections");
    tokio::spawn(connection);
    client
}

/// A table made by `columns` (the body of CREATE TABLE) under a name unique to this run.
pub async fn table(prefix: &str, columns: &str) -> String {
    let name = crate::cloud::unique(prefix).replace('-', "_");
    connect()
        .await
        .batch_execute(&format!("CREATE TABLE {name} ({columns})"))
        .await
        .expect("table created");
    name
}

/// The certificate of the authority that signed the test server's (infra/postgres makes both).
pub fn root_cert() -> String {
    database_url();
    workspace_root()
        .join("infra/.run/postgres/tls/ca.crt")
        .display()
        .to_string()
}
