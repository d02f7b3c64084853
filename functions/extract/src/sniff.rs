//! The first bytes of an object, to tell a compressed object under a plain name from text.

use busline_core::ports::ObjectReader;
use tokio::io::AsyncReadExt;

/// Magic numbers of the compressions a data engineer's exports come in.
const MAGIC: [(&[u8], &str); 3] = [
    (&[0x1f, 0x8b], "gzip"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    (b"PAR1", "Parquet"),
];

/// Reads the first bytes of `reader`: the binary format they announce, if any, and a reader
/// that still yields every byte.
pub(crate) async fn sniff(
    mut reader: ObjectReader,
) -> std::io::Result<(Option<&'static str>, ObjectReader)> {
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let mut byte = [0u8; 4];
        let wanted = 4 - head.len();
        let read = reader.read(&mut byte[..wanted]).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&byte[..read]);
    }
    let format = MAGIC
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, name)| *name);
    let replay: ObjectReader = Box::pin(std::io::Cursor::new(head).chain(reader));
    Ok((format, replay))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sniffed(bytes: &'static [u8]) -> (Option<&'static str>, Vec<u8>) {
        let (format, mut reader) = sniff(Box::pin(bytes)).await.expect("sniffed");
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.expect("read");
        (format, all)
    }

    #[tokio::test]
    async fn magic_bytes_are_named_and_every_byte_still_reads() {
        assert_eq!(
            sniffed(b"\x1f\x8b\x08\x00rest").await,
            (Some("gzip"), b"\x1f\x8b\x08\x00rest".to_vec())
        );
        assert_eq!(sniffed(b"\x28\xb5\x2f\xfd").await.0, Some("zstd"));
        assert_eq!(
            sniffed(b"Name,HEX\nRed,#FF0000\n").await,
            (None, b"Name,HEX\nRed,#FF0000\n".to_vec())
        );
        assert_eq!(sniffed(b"a").await, (None, b"a".to_vec()));
        assert_eq!(sniffed(b"").await, (None, Vec::new()));
    }
}
