//! busline's built-in stop kinds in one registry. A user's `bus` adds its own kinds to it:
//! `busline_builtin::registry().with(my_stop::kind())`.

use busline_core::Registry;

/// The built-in kinds: `depot`, `extract`, `transform`, `load`; for PostgreSQL
/// `postgres-ranges` (a depot), `postgres-source` and `postgres-sink`; for HTTP APIs `tickets`
/// (a depot) and `http-source`; for DynamoDB `dynamodb-sink`.
pub fn registry() -> Registry {
    Registry::new()
        .with(busline_depot::kind())
        .with(busline_extract::kind())
        .with(busline_transform::kind())
        .with(busline_load::kind())
        .with(busline_postgres_sink::kind())
        .with(busline_postgres_depot::kind())
        .with(busline_postgres_source::kind())
        .with(busline_tickets_depot::kind())
        .with(busline_http_source::kind())
        .with(busline_dynamodb_sink::kind())
}
