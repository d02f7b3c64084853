//! The wire codec's share of a stop: expanding the compressed buses it reads and compressing
//! those it sends, timed alone on the same bodies. A stop does this and more, so the
//! passengers per second of the codec alone bound the stop's.

use super::BenchError;
use busline_core::compression::{COMPRESSED_PREFIX, compress_if_cheaper, expand, head_len};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The fastest of `rounds` passes that expand every compressed body of `inputs` and compress
/// again, as the stop did, the envelope of every compressed body of `outputs`; `None` when no
/// body was compressed.
///
/// Before timing, each output is checked to compress to exactly the body the stop sent, so the
/// pass repeats the stop's own compression and no other.
pub fn codec_time(
    inputs: &[&str],
    outputs: &[&str],
    rounds: u32,
) -> Result<Option<Duration>, BenchError> {
    let inputs: Vec<&str> = inputs
        .iter()
        .copied()
        .filter(|b| is_compressed(b))
        .collect();
    let outputs = outputs
        .iter()
        .copied()
        .filter(|b| is_compressed(b))
        .enumerate()
        .map(|(index, body)| envelope_of_sent(index, body))
        .collect::<Result<Vec<_>, _>>()?;
    if inputs.is_empty() && outputs.is_empty() {
        return Ok(None);
    }
    let mut best = Duration::MAX;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        for body in &inputs {
            black_box(expand(body).map_err(|err| BenchError::Codec(err.to_string()))?);
        }
        for (envelope, head) in &outputs {
            black_box(compress_if_cheaper(envelope.as_bytes(), *head));
        }
        best = best.min(started.elapsed());
    }
    Ok(Some(best))
}

fn is_compressed(body: &str) -> bool {
    body.starts_with(COMPRESSED_PREFIX)
}

/// The envelope JSON of a sent body and the length of its header, checked to compress back to
/// that body.
fn envelope_of_sent(index: usize, body: &str) -> Result<(String, usize), BenchError> {
    let unlike = |why: &str| BenchError::Codec(format!("sent bus {}: {why}", index + 1));
    let envelope = expand(body)
        .map_err(|err| unlike(&err.to_string()))?
        .into_owned();
    let head = head_len(body).ok_or_else(|| unlike("its first frame records no header length"))?;
    match compress_if_cheaper(envelope.as_bytes(), head) {
        Some(again) if again == body => Ok((envelope, head)),
        _ => Err(unlike(
            "compressing its envelope again does not give the body sent",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(passengers: usize) -> String {
        let riders: Vec<String> = (0..passengers)
            .map(|n| format!(r#"{{"id":"t:{n}","data":{{"Name":"Red","HEX":"FF0000"}}}}"#))
            .collect();
        format!(
            r#"{{"v":1,"bus":"b","trip":"t","passengers":[{}]}}"#,
            riders.join(",")
        )
    }

    fn compressed(envelope: &str) -> String {
        let key = "\"passengers\":[";
        let head = envelope.find(key).expect("a passenger list") + key.len();
        compress_if_cheaper(envelope.as_bytes(), head).expect("several chunks shrink")
    }

    #[test]
    fn plain_bodies_take_no_codec_time() {
        let plain = envelope(3);
        assert_eq!(codec_time(&[&plain], &[&plain], 1).expect("timed"), None);
    }

    #[test]
    fn compressed_bodies_in_and_out_are_timed() {
        let sent = compressed(&envelope(5000));
        assert!(codec_time(&[&sent], &[], 1).expect("timed").is_some());
        assert!(codec_time(&[], &[&sent], 1).expect("timed").is_some());
    }

    #[test]
    fn a_sent_body_the_stop_compressed_otherwise_is_refused_with_its_number() {
        let sent = compressed(&envelope(5000));
        // The same frames without the padding a stop writes after them: it still expands.
        let unpadded = sent.trim_end();
        assert!(unpadded.len() < sent.len());
        let err = codec_time(&[], &[&sent, unpadded], 1).expect_err("not as the stop sends");
        assert_eq!(
            err.to_string(),
            "codec: sent bus 2: compressing its envelope again does not give the body sent"
        );
    }
}
