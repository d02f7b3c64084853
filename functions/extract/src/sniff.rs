//! The first bytes of an object: gzip, zstd or Parquet, whatever its name says.

use busline_core::ports::ObjectReader;
use busline_formats::{Compression, MAGIC_LEN, PARQUET_MAGIC};
use tokio::io::AsyncReadExt;

/// What an object's first bytes announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// No known magic: text.
    Plain,
    /// gzip or zstd.
    Compressed(Compression),
    /// A Parquet file.
    Parquet,
}

/// Reads the first bytes of `reader`: what they announce, and a reader that still yields
/// every byte.
pub(crate) async fn sniff(mut reader: ObjectReader) -> std::io::Result<(Sniffed, ObjectReader)> {
    let mut head = Vec::with_capacity(MAGIC_LEN);
    while head.len() < MAGIC_LEN {
        let mut byte = [0u8; MAGIC_LEN];
        let wanted = MAGIC_LEN - head.len();
        let read = reader.read(&mut byte[..wanted]).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&byte[..read]);
    }
    let sniffed = match Compression::from_magic(&head) {
        Some(compression) => Sniffed::Compressed(compression),
        None if head.starts_with(PARQUET_MAGIC) => Sniffed::Parquet,
        None => Sniffed::Plain,
    };
    let replay: ObjectReader = Box::pin(std::io::Cursor::new(head).chain(reader));
    Ok((sniffed, replay))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sniffed(bytes: &'static [u8]) -> (Sniffed, Vec<u8>) {
        let (sniffed, mut reader) = sniff(Box::pin(bytes)).await.expect("sniffed");
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.expect("read");
        (sniffed, all)
    }

    #[tokio::test]
    async fn magic_bytes_are_named_and_every_byte_still_reads() {
        assert_eq!(
            sniffed(b"\x1f\x8b\x08\x00rest").await,
            (
                Sniffed::Compressed(Compression::Gzip),
                b"\x1f\x8b\x08\x00rest".to_vec()
            )
        );
        assert_eq!(
            sniffed(b"\x28\xb5\x2f\xfd").await.0,
            Sniffed::Compressed(Compression::Zstd)
        );
        assert_eq!(sniffed(b"PAR1xyz").await.0, Sniffed::Parquet);
        assert_eq!(
            sniffed(b"Name,HEX\nRed,#FF0000\n").await,
            (Sniffed::Plain, b"Name,HEX\nRed,#FF0000\n".to_vec())
        );
        assert_eq!(sniffed(b"a").await, (Sniffed::Plain, b"a".to_vec()));
        assert_eq!(sniffed(b"").await, (Sniffed::Plain, Vec::new()));
    }
}
