//! Compressed bus bodies. SQS bills every 64 KiB of a message, so a bus whose envelope JSON
//! spans several chunks is sent as `busline+zstd:` followed by the base64 (standard alphabet,
//! padded) of its zstd frame, when that takes fewer chunks. The prefix marks the body for any
//! reader: it is neither JSON nor a claim-check pointer.

use crate::error::DecodeError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::borrow::Cow;
use std::io::Read;

/// The prefix of a compressed body.
pub const COMPRESSED_PREFIX: &str = "busline+zstd:";

/// The bytes SQS bills as one request.
pub const BILLED_CHUNK: usize = 64 * 1024;

/// The largest envelope a compressed body may expand to: a guard against a body that would
/// exhaust the stop's memory (a zstd frame can expand a thousandfold).
pub const MAX_EXPANDED_BYTES: usize = 64 * 1024 * 1024;

/// zstd's fastest regular level: JSON of similar passengers still shrinks several times, at
/// hundreds of MB/s per core.
const LEVEL: i32 = 1;

/// The 64 KiB chunks SQS bills for a body of `bytes` (at least one).
pub fn billed_chunks(bytes: usize) -> usize {
    bytes.div_ceil(BILLED_CHUNK).max(1)
}

/// `body` compressed, when that saves at least one billed chunk; `None` otherwise.
pub fn compress_if_cheaper(body: &str) -> Option<String> {
    if billed_chunks(body.len()) < 2 {
        return None;
    }
    let frame = zstd::bulk::compress(body.as_bytes(), LEVEL).ok()?;
    let mut compressed = String::with_capacity(COMPRESSED_PREFIX.len() + frame.len() * 4 / 3 + 4);
    compressed.push_str(COMPRESSED_PREFIX);
    STANDARD.encode_string(&frame, &mut compressed);
    (billed_chunks(compressed.len()) < billed_chunks(body.len())).then_some(compressed)
}

/// The envelope JSON of `body`: the body itself, or what a compressed body expands to.
pub fn expand(body: &str) -> Result<Cow<'_, str>, DecodeError> {
    let Some(encoded) = body.strip_prefix(COMPRESSED_PREFIX) else {
        return Ok(Cow::Borrowed(body));
    };
    let bad = |what: String| DecodeError::Compressed(what);
    let frame = STANDARD
        .decode(encoded.trim_end())
        .map_err(|err| bad(format!("not base64: {err}")))?;
    let mut json = String::new();
    zstd::stream::read::Decoder::new(frame.as_slice())
        .map_err(|err| bad(err.to_string()))?
        .take(MAX_EXPANDED_BYTES as u64 + 1)
        .read_to_string(&mut json)
        .map_err(|err| bad(format!("not a zstd frame of UTF-8 JSON: {err}")))?;
    if json.len() > MAX_EXPANDED_BYTES {
        return Err(bad(format!("expands beyond {MAX_EXPANDED_BYTES} bytes")));
    }
    Ok(Cow::Owned(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn similar_json(bytes: usize) -> String {
        let mut body = String::from("[");
        let mut i = 0;
        while body.len() < bytes {
            body.push_str(&format!(
                r#"{{"id":"t:{i}","data":{{"name":"Red","hex":"FF0000"}}}},"#
            ));
            i += 1;
        }
        body.push_str("{}]");
        body
    }

    #[test]
    fn a_body_over_one_chunk_is_compressed_and_expands_to_itself() {
        let body = similar_json(300 * 1024);
        let compressed = compress_if_cheaper(&body).expect("cheaper");
        assert!(compressed.starts_with(COMPRESSED_PREFIX));
        assert!(billed_chunks(compressed.len()) < billed_chunks(body.len()));
        assert_eq!(expand(&compressed).expect("expands"), body);
        assert_eq!(expand(&body).expect("as is"), body);
    }

    #[test]
    fn a_body_of_one_chunk_or_that_does_not_shrink_is_left_alone() {
        assert_eq!(compress_if_cheaper(&similar_json(60 * 1024)), None);
        // Base64 of random bytes: zstd saves nothing on it.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        assert_eq!(compress_if_cheaper(&STANDARD.encode(noise)), None);
    }

    #[test]
    fn a_broken_compressed_body_says_what_is_wrong() {
        let cases = [
            (
                format!("{COMPRESSED_PREFIX}%%%"),
                "compressed bus body: not base64",
            ),
            (format!("{COMPRESSED_PREFIX}AAAA"), "compressed bus body: "),
        ];
        for (body, expected) in cases {
            let err = expand(&body).expect_err("broken").to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }
}
