//! What a stop's dead-letter queue holds: each bus with the reason the processor put on it.

use crate::OpsError;
use crate::queue::{BATCH, receive, release};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use busline_core::envelope::{Passenger, PayloadPointer, decode_envelope};
use busline_core::error::DecodeError;
use busline_core::processor::dead_letter_attributes as attr;
use serde::Serialize;
use std::time::Duration;

/// How long a look hides the messages it read, so that it reads each once; they are made
/// visible again when it is done.
const LOOK_HOLD: Duration = Duration::from_secs(30);

/// One dead-lettered bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Its message id in the dead-letter queue.
    pub message_id: String,
    /// Its message id in the stop's queue, when the processor moved it.
    pub original_message_id: Option<String>,
    /// Its trip.
    pub trip: Option<String>,
    /// The stop where it failed.
    pub stop: Option<String>,
    /// `permanent` or `retryable`.
    pub class: Option<String>,
    /// Why it failed. None when the queue's own redrive policy moved it (its function kept
    /// failing or timing out before the processor could).
    pub reason: Option<String>,
    /// How many times the stop received it.
    pub receives: Option<u64>,
    /// When it was sent to the queue, RFC 3339.
    pub sent_at: Option<String>,
    /// What the body holds: the bus decoded, where its payload is parked, or why it cannot be
    /// read (never the whole payload).
    pub contents: BusContents,
}

/// What a dead letter's body holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusContents {
    /// A bus: its id, the stop that sent it, its passengers.
    Bus {
        /// The bus's id (a redrive keeps it, so its output keys are the same).
        bus: String,
        /// The stop that sent it.
        from: String,
        /// Its passengers.
        passengers: usize,
        /// The first passengers' ids.
        first_passenger_ids: Vec<String>,
    },
    /// A bus too large for SQS, parked in S3 (the extended client's pointer).
    Parked {
        /// `s3://bucket/key`.
        location: String,
    },
    /// A body that is not a bus.
    Unreadable {
        /// Why it cannot be decoded.
        error: String,
        /// Its first characters.
        preview: String,
        /// Its length in bytes.
        bytes: usize,
    },
}

/// Passenger ids a dead letter lists.
const LISTED_PASSENGERS: usize = 5;
/// Characters of an unreadable body shown.
const PREVIEW_CHARS: usize = 120;

impl BusContents {
    /// Decodes `body` as busline's processor would.
    pub fn of(body: &str) -> Self {
        Self::read(body).0
    }

    /// The contents, and the trip when the body is a bus: one decode for both.
    fn read(body: &str) -> (Self, Option<String>) {
        if let Some(pointer) = PayloadPointer::from_body(body) {
            let contents = match pointer {
                Ok(p) => BusContents::Parked {
                    location: format!("s3://{}/{}", p.s3_bucket_name, p.s3_key),
                },
                Err(err) => BusContents::unreadable(body, &err),
            };
            return (contents, None);
        }
        match decode_envelope::<Passenger>(body) {
            Ok(envelope) => {
                let contents = BusContents::Bus {
                    bus: envelope.bus,
                    from: envelope.from,
                    passengers: envelope.passengers.len(),
                    first_passenger_ids: envelope
                        .passengers
                        .iter()
                        .take(LISTED_PASSENGERS)
                        .map(|p| p.id().to_owned())
                        .collect(),
                };
                (contents, Some(envelope.trip))
            }
            Err(err) => (BusContents::unreadable(body, &err), None),
        }
    }

    fn unreadable(body: &str, err: &DecodeError) -> Self {
        BusContents::Unreadable {
            error: err.to_string(),
            preview: body.chars().take(PREVIEW_CHARS).collect(),
            bytes: body.len(),
        }
    }
}

/// A text message attribute of `message`.
pub(crate) fn text_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

/// The trip of a dead letter without decoding its passengers: its `busline.trip` attribute,
/// else its envelope's (a bus moved by the queue's own redrive policy has no attributes).
pub(crate) fn trip_of(message: &Message) -> Option<String> {
    text_attribute(message, attr::TRIP).or_else(|| {
        decode_envelope::<serde::de::IgnoredAny>(message.body().unwrap_or_default())
            .ok()
            .map(|e| e.trip)
    })
}

impl DeadLetter {
    /// The bus and its dead-letter attributes.
    pub fn from_message(message: &Message) -> Self {
        let text = |name: &str| text_attribute(message, name);
        let system = |name: MessageSystemAttributeName| {
            message.attributes().and_then(|a| a.get(&name)).cloned()
        };
        let (contents, envelope_trip) = BusContents::read(message.body().unwrap_or_default());
        DeadLetter {
            message_id: message.message_id().unwrap_or_default().to_owned(),
            original_message_id: text(attr::MESSAGE_ID),
            // Dead-lettered by the queue's own redrive policy, it has no attributes: its body may.
            trip: text(attr::TRIP).or(envelope_trip),
            stop: text(attr::STOP),
            class: text(attr::CLASS),
            reason: text(attr::REASON),
            receives: text(attr::RECEIVE_COUNT)
                .or_else(|| system(MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok()),
            sent_at: system(MessageSystemAttributeName::SentTimestamp)
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            contents,
        }
    }
}

/// Up to `limit` of the dead letters in the queue at `url`, oldest first as SQS hands them
/// out; the queue keeps them all.
pub async fn dead_letters(
    sqs: &Client,
    url: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, OpsError> {
    let mut read: Vec<Message> = Vec::new();
    while read.len() < limit {
        let batch = receive(sqs, url, (limit - read.len()).min(BATCH), LOOK_HOLD).await?;
        if batch.is_empty() {
            break;
        }
        read.extend(batch);
    }
    for (id, why) in release(sqs, url, &read).await? {
        // Not lost: it shows again when its hold ends.
        tracing::warn!(
            queue = url,
            message_id = id,
            reason = why,
            "dead letter not handed back; it shows again in {} s",
            LOOK_HOLD.as_secs()
        );
    }
    let mut letters: Vec<DeadLetter> = read.iter().map(DeadLetter::from_message).collect();
    letters.sort_by(|a, b| a.sent_at.cmp(&b.sent_at));
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::BusContents;

    #[test]
    fn a_bus_is_listed_by_its_ids_and_count_never_its_payload() {
        let body = r#"{"v":1,"bus":"b-1","trip":"t-1","route":"r","from":"extract","hop":1,"created":"2026-12-02T00:00:00Z","passengers":[{"id":"p1","data":{"secret":"x"}},{"id":"p2","data":{}}]}"#;
        assert_eq!(
            BusContents::of(body),
            BusContents::Bus {
                bus: "b-1".into(),
                from: "extract".into(),
                passengers: 2,
                first_passenger_ids: vec!["p1".into(), "p2".into()],
            }
        );
        assert_eq!(BusContents::read(body).1.as_deref(), Some("t-1"));
    }

    #[test]
    fn a_compressed_bus_is_listed_as_the_bus_it_expands_to() {
        let passengers: Vec<String> = (0..5000)
            .map(|i| format!(r#"{{"id":"p{i}","data":{{"name":"Red","hex":"FF0000"}}}}"#))
            .collect();
        let body = format!(
            r#"{{"v":1,"bus":"b-2","trip":"t-2","route":"r","from":"transform","hop":2,"created":"2026-12-02T00:00:00Z","passengers":[{}]}}"#,
            passengers.join(",")
        );
        let compressed = busline_core::compression::compress_if_cheaper(body.as_bytes(), 0)
            .expect("saves a chunk");
        let (contents, trip) = BusContents::read(&compressed);
        assert_eq!(
            contents,
            BusContents::Bus {
                bus: "b-2".into(),
                from: "transform".into(),
                passengers: 5000,
                first_passenger_ids: (0..5).map(|i| format!("p{i}")).collect(),
            }
        );
        assert_eq!(trip.as_deref(), Some("t-2"));
    }

    #[test]
    fn a_parked_bus_names_where_it_is_and_anything_else_says_why_it_is_no_bus() {
        let pointer = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"data","s3Key":"parked/b-1"}]"#;
        assert_eq!(
            BusContents::of(pointer),
            BusContents::Parked {
                location: "s3://data/parked/b-1".into()
            }
        );
        let long = "x".repeat(500);
        let BusContents::Unreadable { preview, bytes, .. } = BusContents::of(&long) else {
            panic!("not unreadable");
        };
        assert_eq!((preview.len(), bytes), (120, 500));
    }
}
