//! The compressions a data engineer's exports come in, told by name and by magic bytes.

use std::io::{BufReader, Read, Write};

/// A whole-stream compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (RFC 1952), concatenated members too.
    Gzip,
    /// Zstandard.
    Zstd,
}

/// The first bytes of a Parquet file (and its last).
pub const PARQUET_MAGIC: &[u8] = b"PAR1";

/// Bytes to read from an object's start to tell its compression or Parquet.
pub const MAGIC_LEN: usize = 4;

impl Compression {
    /// `gzip` or `zstd` (also `gz`, `zst`); `none` and the empty string are no compression.
    pub fn from_name(name: &str) -> Result<Option<Self>, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(None),
            "gzip" | "gz" => Ok(Some(Compression::Gzip)),
            "zstd" | "zst" => Ok(Some(Compression::Zstd)),
            other => Err(format!(
                "unknown compression {other:?}: expected none, gzip or zstd"
            )),
        }
    }

    /// The compression a key's last extension names (`.gz`, `.gzip`, `.zst`, `.zstd`), and the
    /// key without it.
    pub fn from_key(key: &str) -> (Option<Self>, &str) {
        let Some((stem, extension)) = key.rsplit_once('.') else {
            return (None, key);
        };
        match extension.to_ascii_lowercase().as_str() {
            "gz" | "gzip" => (Some(Compression::Gzip), stem),
            "zst" | "zstd" => (Some(Compression::Zstd), stem),
            _ => (None, key),
        }
    }

    /// The compression an object's first bytes announce.
    pub fn from_magic(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// Its name in messages and settings.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The extension it adds to a key (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }

    /// The content type of an object compressed this way.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/gzip",
            Compression::Zstd => "application/zstd",
        }
    }

    /// A reader of the decompressed bytes of `compressed`, streaming.
    pub fn decoder<'r>(
        self,
        compressed: impl Read + Send + 'r,
    ) -> std::io::Result<Box<dyn Read + Send + 'r>> {
        let buffered = BufReader::with_capacity(256 * 1024, compressed);
        Ok(match self {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        })
    }

    /// `plain`, compressed (gzip level 6, zstd level 3: their defaults).
    pub fn compress(self, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut encoder = self.encoder(Vec::with_capacity(plain.len() / 4))?;
        encoder.write_all(plain)?;
        encoder.finish()
    }

    /// A writer that compresses what is written into `out`, streaming; [`Encoder::finish`]
    /// ends the stream.
    pub fn encoder<W: Write>(self, out: W) -> std::io::Result<Encoder<W>> {
        Ok(match self {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?),
        })
    }
}

/// A compressing writer (see [`Compression::encoder`]).
pub enum Encoder<W: Write> {
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// Zstandard.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Ends the compressed stream and returns the writer underneath.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_extensions_and_magic() {
        assert_eq!(
            Compression::from_key("in/a.csv.gz"),
            (Some(Compression::Gzip), "in/a.csv")
        );
        assert_eq!(
            Compression::from_key("in/a.ndjson.ZST"),
            (Some(Compression::Zstd), "in/a.ndjson")
        );
        assert_eq!(Compression::from_key("in/a.csv"), (None, "in/a.csv"));
        assert_eq!(Compression::from_key("noext"), (None, "noext"));
        assert_eq!(
            Compression::from_magic(b"\x1f\x8b\x08\x00"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_magic(b"\x28\xb5\x2f\xfd"),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_magic(b"Name"), None);
        assert_eq!(Compression::from_name("GZIP"), Ok(Some(Compression::Gzip)));
        assert_eq!(Compression::from_name("none"), Ok(None));
        assert!(Compression::from_name("lzma").is_err());
    }

    #[test]
    fn every_compression_round_trips_through_its_decoder() {
        let plain = b"Name,HEX\nRed,#FF0000\n".repeat(1000);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let packed = compression.compress(&plain).expect("compressed");
            assert_eq!(Compression::from_magic(&packed), Some(compression));
            let mut unpacked = Vec::new();
            compression
                .decoder(packed.as_slice())
                .expect("decoder")
                .read_to_end(&mut unpacked)
                .expect("decompressed");
            assert_eq!(unpacked, plain);
        }
    }

    #[test]
    fn concatenated_gzip_members_read_as_one_stream() {
        let mut packed = Compression::Gzip.compress(b"a\n").expect("one");
        packed.extend(Compression::Gzip.compress(b"b\n").expect("two"));
        let mut unpacked = String::new();
        Compression::Gzip
            .decoder(packed.as_slice())
            .expect("decoder")
            .read_to_string(&mut unpacked)
            .expect("decompressed");
        assert_eq!(unpacked, "a\nb\n");
    }
}
