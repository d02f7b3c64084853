//! The Parquet schema of a trip whose settings declare none: the first bus loaded decides it and
//! writes it next to the output (`trip=<trip>/_schema.json`, written only if absent, so when two
//! loads start together one schema wins), and every later bus of the trip is held to it.

use busline_core::ports::ObjectStore;
use busline_core::{PortError, StopError};
use busline_formats::TableSchema;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;

/// The name of a trip's schema object, beside its output.
pub const SCHEMA_OBJECT: &str = "_schema.json";

/// The schema of the trip this function loaded last, so a warm function reads it once.
#[derive(Default)]
pub(crate) struct TripSchemas {
    last: Mutex<Option<(String, Arc<TableSchema>)>>,
}

impl TripSchemas {
    /// The schema stored at `key` for `trip`, or `infer`'s, stored there if no other load has
    /// stored one first.
    pub async fn schema(
        &self,
        objects: &dyn ObjectStore,
        trip: &str,
        key: &str,
        infer: impl FnOnce() -> TableSchema,
    ) -> Result<Arc<TableSchema>, StopError> {
        if let Some((cached_trip, schema)) =
            self.last.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && cached_trip == trip
        {
            return Ok(schema.clone());
        }
        let schema = match read(objects, key).await? {
            Some(schema) => schema,
            None => {
                let inferred = infer();
                let written = objects
                    .put_if_absent(key, inferred.to_text().into_bytes(), "application/json")
                    .await?;
                match written {
                    true => inferred,
                    // Another load of the trip stored its schema first: that one holds.
                    false => read(objects, key).await?.ok_or_else(|| {
                        StopError::retryable(format!(
                            "{key}: written by another load, but not found"
                        ))
                    })?,
                }
            }
        };
        let schema = Arc::new(schema);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((trip.to_owned(), schema.clone()));
        Ok(schema)
    }
}

/// The schema stored at `key`, if any.
async fn read(objects: &dyn ObjectStore, key: &str) -> Result<Option<TableSchema>, StopError> {
    let mut reader = match objects.get(key).await {
        Ok(reader) => reader,
        Err(PortError::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .await
        .map_err(|err| StopError::retryable(PortError::retryable(key, err)))?;
    TableSchema::parse(&text).map(Some).map_err(|reason| {
        StopError::permanent(format!("{key}: the trip's schema is invalid: {reason}"))
    })
}
