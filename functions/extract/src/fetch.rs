//! Whole byte ranges of an object, as Parquet's footer and row groups and a big object's head
//! are read.

use busline_core::PortError;
use busline_core::ports::ObjectStore;
use tokio::io::AsyncReadExt;

/// `length` bytes of `key` from `offset` (fewer when the object ends first).
pub(crate) async fn read_range(
    objects: &dyn ObjectStore,
    key: &str,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, PortError> {
    let mut reader = objects.get_range(key, offset, length).await?;
    let mut bytes = Vec::with_capacity(length as usize);
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|err| read_failed(key, err))?;
    Ok(bytes)
}

/// A read of `key` that broke part way: retryable, the connection may come back.
pub(crate) fn read_failed(key: &str, err: std::io::Error) -> PortError {
    PortError::retryable(key, err)
}
