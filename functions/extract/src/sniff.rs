//! The first bytes of an object: gzip, zstd or Parquet, whatever its name says, and how the
//! object is read once its name and its bytes are both known.

use crate::rows::InputFormat;
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
    let sniffed = Sniffed::of(&head);
    let replay: ObjectReader = Box::pin(std::io::Cursor::new(head).chain(reader));
    Ok((sniffed, replay))
}

impl Sniffed {
    /// What an object's first bytes `head` announce.
    pub(crate) fn of(head: &[u8]) -> Self {
        match Compression::from_magic(head) {
            Some(compression) => Sniffed::Compressed(compression),
            None if head.starts_with(PARQUET_MAGIC) => Sniffed::Parquet,
            None => Sniffed::Plain,
        }
    }
}

/// How an object is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// By ranged reads, as Parquet.
    Parquet,
    /// As a stream, decompressed when it is compressed.
    Stream(Option<Compression>),
}

/// How to read `key`, whose name says `format` (or the settings do) and `named` compression,
/// now that its first bytes say `sniffed`; or why it is refused whole. The bytes decide the
/// compression; a name they contradict is refused, with both named.
pub(crate) fn decide(
    key: &str,
    format: Option<InputFormat>,
    named: Option<Compression>,
    sniffed: Sniffed,
) -> Result<Read, String> {
    let compression = match (sniffed, format) {
        // Parquet under no known name: its magic bytes say what it is.
        (Sniffed::Parquet, None) => return Ok(Read::Parquet),
        // Parsing binary as text would reject every line with a UTF-8 or field-count error.
        (Sniffed::Parquet, Some(format)) => {
            return Err(format!(
                "{key}: the object is Parquet data, not {} text; name it .parquet (or set INPUT_FORMAT=parquet for keys without an extension)",
                format.name()
            ));
        }
        (Sniffed::Compressed(compression), _) => Some(compression),
        (Sniffed::Plain, _) => None,
    };
    if let Some(named) = named
        && compression != Some(named)
    {
        return Err(format!(
            "{key}: named as {} data, but its first bytes are {}",
            named.name(),
            compression.map_or("not compressed", Compression::name)
        ));
    }
    if format.is_none() {
        return Err(format!(
            "{key}: unknown input format (name it .csv, .ndjson, .jsonl, .json or .parquet, optionally .gz or .zst, or set INPUT_FORMAT)"
        ));
    }
    Ok(Read::Stream(compression))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_decide_and_a_name_they_contradict_is_refused() {
        let gzip = Sniffed::Compressed(Compression::Gzip);
        let csv = Some(InputFormat::Csv);
        assert_eq!(
            decide("a.csv", csv, None, gzip),
            Ok(Read::Stream(Some(Compression::Gzip)))
        );
        assert_eq!(decide("a", None, None, Sniffed::Parquet), Ok(Read::Parquet));
        assert_eq!(
            decide("a.csv.gz", csv, Some(Compression::Gzip), Sniffed::Plain),
            Err("a.csv.gz: named as gzip data, but its first bytes are not compressed".into())
        );
        assert_eq!(
            decide("a.csv.zst", csv, Some(Compression::Zstd), gzip),
            Err("a.csv.zst: named as zstd data, but its first bytes are gzip".into())
        );
        assert!(
            decide("a", None, None, Sniffed::Plain)
                .is_err_and(|e| e.starts_with("a: unknown input format"))
        );
    }

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
