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
///
/// `body[..head]` is what differs between two packings of the same riders (the header with
/// its `created` time): it is a zstd frame of its own, before the frame of the rest, and the
/// body is padded with trailing spaces (which [`expand`] ignores) to the length that the
/// head's compression bound gives. So the body's length, and every packing decision made on
/// it, depends on the rest alone, and a bus packed again on a redelivery packs the same.
pub fn compress_if_cheaper(body: &[u8], head: usize) -> Option<String> {
    if billed_chunks(body.len()) < 2 {
        return None;
    }
    let (head, rest) = body.split_at_checked(head)?;
    let rest_frame = zstd::bulk::compress(rest, LEVEL).ok()?;
    let length = sent_len(zstd::zstd_safe::compress_bound(head.len()) + rest_frame.len());
    if billed_chunks(length) >= billed_chunks(body.len()) {
        return None;
    }
    let mut frames = zstd::bulk::compress(head, LEVEL).ok()?;
    frames.extend_from_slice(&rest_frame);
    let mut compressed = String::with_capacity(length);
    compressed.push_str(COMPRESSED_PREFIX);
    STANDARD.encode_string(&frames, &mut compressed);
    let padding = length.checked_sub(compressed.len())?;
    compressed.extend(std::iter::repeat_n(' ', padding));
    Some(compressed)
}

/// The length of the header a compressed body carries in a frame of its own (see
/// [`compress_if_cheaper`]): what its first zstd frame records it expands to. `None` for a
/// body that is not compressed, or whose first frame records no size.
pub fn head_len(body: &str) -> Option<usize> {
    let encoded = body.strip_prefix(COMPRESSED_PREFIX)?;
    let frames = STANDARD.decode(encoded.trim_end()).ok()?;
    usize::try_from(zstd::zstd_safe::get_frame_content_size(&frames).ok()??).ok()
}

/// About what `json` would take as a compressed body: a sample's measure of the ratio.
pub fn compressed_len(json: &[u8]) -> Option<usize> {
    Some(sent_len(zstd::bulk::compress(json, LEVEL).ok()?.len()))
}

/// The length of a compressed body whose zstd frames take `frames` bytes.
fn sent_len(frames: usize) -> usize {
    COMPRESSED_PREFIX.len() + frames.div_ceil(3) * 4
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
    let json = match recorded_size(&frame) {
        // Every frame says what it expands to (as every stop writes them): one allocation of
        // that size, decompressed straight into it.
        Some(size) if size <= MAX_EXPANDED_BYTES as u64 => {
            let json = zstd::bulk::decompress(&frame, size as usize)
                .map_err(|err| bad(format!("not a zstd frame: {err}")))?;
            String::from_utf8(json).map_err(|err| bad(format!("not UTF-8 JSON: {err}")))?
        }
        Some(_) => return Err(bad(format!("expands beyond {MAX_EXPANDED_BYTES} bytes"))),
        None => expand_stream(&frame)?,
    };
    Ok(Cow::Owned(json))
}

/// What the zstd frames of `data` expand to, when every one of them records it.
fn recorded_size(mut data: &[u8]) -> Option<u64> {
    let mut total = 0u64;
    while !data.is_empty() {
        let frame = zstd::zstd_safe::find_frame_compressed_size(data).ok()?;
        total = total.checked_add(zstd::zstd_safe::get_frame_content_size(data).ok()??)?;
        data = data.get(frame..)?;
    }
    Some(total)
}

/// Frames that do not record their size, expanded as a stream up to the guard.
fn expand_stream(frame: &[u8]) -> Result<String, DecodeError> {
    let bad = |what: String| DecodeError::Compressed(what);
    let mut json = String::new();
    zstd::stream::read::Decoder::new(frame)
        .map_err(|err| bad(err.to_string()))?
        .take(MAX_EXPANDED_BYTES as u64 + 1)
        .read_to_string(&mut json)
        .map_err(|err| bad(format!("not a zstd frame of UTF-8 JSON: {err}")))?;
    if json.len() > MAX_EXPANDED_BYTES {
        return Err(bad(format!("expands beyond {MAX_EXPANDED_BYTES} bytes")));
    }
    Ok(json)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `len` pseudo-random bytes (xorshift), the same on every run: what zstd cannot shrink.
    pub(crate) fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect()
    }

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
        let compressed = compress_if_cheaper(body.as_bytes(), 40).expect("cheaper");
        assert!(compressed.starts_with(COMPRESSED_PREFIX));
        assert!(billed_chunks(compressed.len()) < billed_chunks(body.len()));
        assert_eq!(expand(&compressed).expect("expands"), body);
        assert_eq!(expand(&body).expect("as is"), body);
        assert_eq!(head_len(&compressed), Some(40));
        assert_eq!(head_len(&body), None);
    }

    #[test]
    fn a_body_of_one_chunk_or_that_does_not_shrink_is_left_alone() {
        assert_eq!(
            compress_if_cheaper(similar_json(60 * 1024).as_bytes(), 0),
            None
        );
        // Base64 of random bytes: zstd saves nothing on it.
        assert_eq!(
            compress_if_cheaper(STANDARD.encode(noise(200_000)).as_bytes(), 0),
            None
        );
    }

    #[test]
    fn a_body_is_as_long_whatever_its_head_holds() {
        let rest = similar_json(300 * 1024);
        let bodies: Vec<String> = ["2026-11-22T00:00:00.000Z", "2031-07-15T13:47:09.512Z"]
            .iter()
            .map(|created| format!(r#"{{"created":"{created}","passengers":{rest}}}"#))
            .collect();
        let head = bodies[0].find(",\"passengers\"").expect("head");
        let compressed: Vec<String> = bodies
            .iter()
            .map(|body| compress_if_cheaper(body.as_bytes(), head).expect("cheaper"))
            .collect();
        assert_eq!(compressed[0].len(), compressed[1].len());
        assert_ne!(compressed[0], compressed[1]);
        for (body, compressed) in bodies.iter().zip(&compressed) {
            assert_eq!(expand(compressed).expect("expands"), *body);
        }
    }

    #[test]
    fn a_body_expanding_beyond_the_guard_is_refused_whether_or_not_its_frame_says_its_size() {
        let huge = vec![b' '; MAX_EXPANDED_BYTES + 1];
        let recorded = zstd::bulk::compress(&huge, LEVEL).expect("compresses");
        assert_eq!(recorded_size(&recorded), Some(huge.len() as u64));
        let mut unrecorded = zstd::stream::write::Encoder::new(Vec::new(), LEVEL).expect("encoder");
        std::io::Write::write_all(&mut unrecorded, &huge).expect("writes");
        let unrecorded = unrecorded.finish().expect("finishes");
        assert_eq!(recorded_size(&unrecorded), None);
        for frame in [recorded, unrecorded] {
            let body = format!("{COMPRESSED_PREFIX}{}", STANDARD.encode(frame));
            let err = expand(&body).expect_err("refused").to_string();
            assert_eq!(
                err,
                format!("compressed bus body: expands beyond {MAX_EXPANDED_BYTES} bytes")
            );
        }
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
