//! Sends dead-lettered buses back to their stop's queue: a whole queue by SQS's message move
//! task, else (filtered, or where the endpoint has none) received and sent back with the same
//! body and attributes, less the dead-letter ones. A bus leaves the dead-letter queue only after its send was accepted,
//! so a failure part-way leaves it where it was; a crash between the two leaves it in both,
//! and the stop's ledger counts the bus once whichever copy rides.

use crate::OpsError;
use crate::dead_letters::{text_attribute, trip_of};
use crate::queue::{BATCH, delete, receive, release};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use busline_aws::error::classify;
use busline_core::processor::dead_letter_attributes;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a redrive hides the buses it leaves in the dead-letter queue, so that it reads
/// each once; they are made visible again when it is done.
const KEEP_HOLD: Duration = Duration::from_secs(900);

/// Which dead letters to send back: all of them when both lists are empty, else those of any
/// listed trip and those with any listed message id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveFilter {
    /// Trip ids.
    pub trips: Vec<String>,
    /// Message ids, in the dead-letter queue or the stop's queue (`busline.message-id`).
    pub messages: Vec<String>,
}

impl RedriveFilter {
    /// Whether the filter takes `message`, read from attributes where they tell (only a bus
    /// without a `busline.trip` has its envelope decoded, and then without its passengers).
    fn takes(&self, message: &Message) -> bool {
        let named = |id: &String| {
            message.message_id() == Some(id.as_str())
                || text_attribute(message, dead_letter_attributes::MESSAGE_ID).as_ref() == Some(id)
        };
        (self.trips.is_empty() && self.messages.is_empty())
            || self.messages.iter().any(named)
            || (!self.trips.is_empty()
                && trip_of(message).is_some_and(|trip| self.trips.contains(&trip)))
    }
}

/// How a redrive moved the buses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedriveMethod {
    /// Received, sent back without their dead-letter attributes, deleted: a filtered redrive,
    /// or a whole one where the endpoint has no message move tasks.
    #[default]
    ReceiveAndSend,
    /// SQS's message move task (a whole queue): attributes are kept, the processor replaces
    /// them if the bus fails again.
    MoveTask,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    /// The dead-letter queue's URL.
    pub from: String,
    /// The stop's queue's URL.
    pub to: String,
    /// How the buses were moved.
    pub method: RedriveMethod,
    /// Buses sent back and deleted from the dead-letter queue.
    pub moved: u64,
    /// Buses the filter left where they are.
    pub kept: u64,
    /// Buses dead-lettered after the redrive began (a redriven bus that failed again, say),
    /// left for the next redrive.
    pub late: u64,
    /// Buses that stayed because a send or delete failed: message id and SQS's reason. A bus
    /// whose delete failed was sent back too.
    pub failed: Vec<(String, String)>,
    /// Buses left in the dead-letter queue that SQS did not hand back: message id and reason.
    /// They show again when the redrive's 15-minute hold ends.
    pub hidden: Vec<(String, String)>,
}

/// Moves the dead letters `filter` takes from `from` (a dead-letter queue) to `to` (its stop's
/// queue): all of them with a message move task where SQS has one, else ten at a time until
/// `from` has nothing visible left.
pub async fn redrive(
    sqs: &Client,
    from: &str,
    to: &str,
    filter: &RedriveFilter,
) -> Result<RedriveReport, OpsError> {
    let mut report = RedriveReport {
        from: from.to_owned(),
        to: to.to_owned(),
        ..RedriveReport::default()
    };
    if filter == &RedriveFilter::default()
        && let Some(moved) = crate::move_task::move_all(sqs, from, to).await?
    {
        report.method = RedriveMethod::MoveTask;
        report.moved = moved;
        return Ok(report);
    }
    let mut held: Vec<Message> = Vec::new();
    let outcome = move_all(sqs, filter, &mut report, &mut held).await;
    // Kept buses are handed back even when the moving failed.
    let released = release(sqs, from, &held).await;
    outcome?;
    report.hidden = released?;
    Ok(report)
}

async fn move_all(
    sqs: &Client,
    filter: &RedriveFilter,
    report: &mut RedriveReport,
    held: &mut Vec<Message>,
) -> Result<(), OpsError> {
    // A redriven bus that fails again comes back as a new message: taking it again would
    // never end, so only what was sent before the redrive began is taken.
    let began = SystemTime::now();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let batch = receive(sqs, &report.from, BATCH, KEEP_HOLD).await?;
        // A bus seen before means the queue came round again (a hold ran out): done.
        let repeats = batch
            .iter()
            .filter(|m| !seen.insert(m.message_id().unwrap_or_default().to_owned()))
            .count();
        if batch.is_empty() {
            return Ok(());
        }
        let (late, early): (Vec<Message>, Vec<Message>) =
            batch.into_iter().partition(|m| sent_after(m, began));
        report.late += late.len() as u64;
        held.extend(late);
        let (take, keep): (Vec<Message>, Vec<Message>) =
            early.into_iter().partition(|m| filter.takes(m));
        report.kept += keep.len() as u64;
        held.extend(keep);
        if !take.is_empty() {
            match send_back(sqs, &take, report).await {
                Ok(unsent) => held.extend(unsent),
                Err(err) => {
                    held.extend(take);
                    return Err(err);
                }
            }
        }
        if repeats > 0 {
            return Ok(());
        }
    }
}

/// Sends `buses` to `report.to` and deletes the accepted ones from `report.from`; returns the
/// ones not sent, to be handed back.
async fn send_back(
    sqs: &Client,
    buses: &[Message],
    report: &mut RedriveReport,
) -> Result<Vec<Message>, OpsError> {
    let entries = buses
        .iter()
        .enumerate()
        .map(|(i, bus)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(bus.body().unwrap_or_default())
                .set_message_attributes(Some(journey_attributes(bus)).filter(|a| !a.is_empty()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| busline_core::PortError::permanent(&report.to, err))?;
    let out = sqs
        .send_message_batch()
        .queue_url(&report.to)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|err| classify(err, &report.to))?;
    let mut unsent = Vec::new();
    for failed in out.failed() {
        let Some(bus) = failed.id().parse::<usize>().ok().and_then(|i| buses.get(i)) else {
            continue;
        };
        let id = bus.message_id().unwrap_or_default().to_owned();
        report
            .failed
            .push((id, failed.message().unwrap_or(failed.code()).to_owned()));
        unsent.push(bus.clone());
    }
    let sent: Vec<&Message> = out
        .successful()
        .iter()
        .filter_map(|ok| buses.get(ok.id().parse::<usize>().ok()?))
        .collect();
    let not_deleted = delete(sqs, &report.from, &sent).await?;
    report.moved += (sent.len() - not_deleted.len()) as u64;
    report
        .failed
        .extend(not_deleted.into_iter().map(|(id, why)| {
            (
                id,
                format!("sent back, but not deleted from the dead-letter queue: {why}"),
            )
        }));
    Ok(unsent)
}

/// Whether SQS took `message` after `instant` (by its SentTimestamp).
fn sent_after(message: &Message, instant: SystemTime) -> bool {
    let since_epoch = instant
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|ms| ms.parse::<u128>().ok())
        .is_some_and(|sent| sent > since_epoch)
}

/// The bus's message attributes, less those the processor put on it when dead-lettering it.
fn journey_attributes(bus: &Message) -> HashMap<String, MessageAttributeValue> {
    bus.message_attributes()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !dead_letter_attributes::ALL.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}
