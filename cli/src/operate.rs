//! `bus status`, `bus dlq` and `bus quarantine`: a deployed route's queues, alarms, dead letters
//! and quarantine files, found through its CloudFormation stack and the template it was
//! deployed from; and the dead letters a ride left in its output folder.

use busline_core::quarantine::QuarantineLine;
use busline_core::replay::ReplayReport;
use busline_ops::QuarantinedAt;
use busline_ops::stack::stack_parameters;
use busline_ops::{
    BusContents, DeadLetter, DeployedRoute, OpsClients, OpsError, QueueDepth, RedriveFilter,
    RedriveReport, RouteStatus,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A deployed route and the clients that reach it.
pub struct Deployed {
    /// The SDK clients.
    pub clients: OpsClients,
    /// The stack's stops, queues and alarms.
    pub route: DeployedRoute,
}

/// Why a deployed route could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The stack could not be read.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// The template does not read as a route with the stack's parameters.
    #[error(transparent)]
    Template(#[from] busline_template::TemplateError),
}

impl Deployed {
    /// Finds the stops of the route `template` describes in `stack`. The template is read
    /// with the stack's parameter values, then `overrides`, so that names (the route's, for its
    /// metrics) are those deployed.
    pub async fn connect(
        clients: OpsClients,
        stack: &str,
        template: &Path,
        overrides: HashMap<String, String>,
    ) -> Result<Self, ConnectError> {
        let mut parameters = stack_parameters(&clients.cloudformation, stack).await?;
        parameters.extend(overrides);
        let route = busline_template::read_route(template, &parameters)?;
        let route = DeployedRoute::resolve(&clients.cloudformation, stack, &route).await?;
        Ok(Deployed { clients, route })
    }
}

/// One stop's dead-letter queue, as `bus dlq list` prints it.
#[derive(Debug, Serialize)]
pub struct DeadLetterQueue {
    /// The stop.
    pub stop: String,
    /// The queue's URL.
    pub url: String,
    /// What it holds.
    pub depth: QueueDepth,
}

/// Every stop's dead-letter queue and its depth.
pub async fn dlq_list(deployed: &Deployed) -> Result<Vec<DeadLetterQueue>, OpsError> {
    let mut queues = Vec::new();
    for stop in &deployed.route.stops {
        let Some(url) = &stop.dead_letter_queue else {
            continue;
        };
        queues.push(DeadLetterQueue {
            stop: stop.stop.clone(),
            url: url.clone(),
            depth: busline_ops::queue::depth(&deployed.clients.sqs, url).await?,
        });
    }
    Ok(queues)
}

/// `bus dlq list` for a terminal.
pub fn dlq_list_text(queues: &[DeadLetterQueue]) -> String {
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.stop.clone(),
                q.depth.visible.to_string(),
                q.depth.in_flight.to_string(),
                // A queue by its name; a ride's report files by their path.
                match q.url.starts_with("http") {
                    true => busline_core::ledger::queue_name(&q.url).to_owned(),
                    false => q.url.clone(),
                },
            ]
        })
        .collect();
    crate::table::render(&["stop", "buses", "in flight", "where"], &rows)
}

/// A ride's dead-letter report that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RideFileError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The dead letters a ride left in `output` (`dead-letter/trip=<trip>/<stop>.ndjson`), of
/// `stop` only when given, at most `limit`, by trip and stop.
pub fn ride_dead_letters(
    output: &Path,
    stop: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadLetter>, RideFileError> {
    let folder = output.join("dead-letter");
    let fail = |path: &Path, err: &dyn std::fmt::Display| RideFileError {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    if !folder.exists() {
        return Ok(Vec::new());
    }
    let mut letters = Vec::new();
    // trip=<trip>/<stop>.ndjson, in name order.
    let files = walkdir::WalkDir::new(&folder)
        .min_depth(2)
        .max_depth(2)
        .sort_by_file_name();
    for entry in files {
        let file = entry.map_err(|err| fail(&folder, &err))?.into_path();
        let wanted = stop.is_none_or(|s| file.file_stem().is_some_and(|stem| stem == s));
        let Some(trip) = trip_of(&file).filter(|_| wanted && letters.len() < limit) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).map_err(|err| fail(&file, &err))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let letter: crate::report::DeadLetter = serde_json::from_str(line)
                .map_err(|err| fail(&file, &format!("line {}: {err}", i + 1)))?;
            letters.push(from_report(&trip, letter));
        }
    }
    letters.truncate(limit);
    Ok(letters)
}

/// `bus dlq list` of a ride: its dead letters per stop.
pub fn ride_dlq_list(output: &Path) -> Result<Vec<DeadLetterQueue>, RideFileError> {
    let mut per_stop: std::collections::BTreeMap<String, u64> = Default::default();
    for letter in ride_dead_letters(output, None, usize::MAX)? {
        *per_stop.entry(letter.stop.unwrap_or_default()).or_default() += 1;
    }
    Ok(per_stop
        .into_iter()
        .map(|(stop, buses)| DeadLetterQueue {
            url: output
                .join(format!("dead-letter/trip=*/{stop}.ndjson"))
                .display()
                .to_string(),
            stop,
            depth: QueueDepth {
                visible: buses,
                ..QueueDepth::default()
            },
        })
        .collect())
}

/// The trip a report file's folder names (`trip=<trip>`).
fn trip_of(file: &Path) -> Option<String> {
    let folder = file.parent()?.file_name()?.to_str()?;
    Some(folder.strip_prefix("trip=")?.to_owned())
}

fn from_report(trip: &str, letter: crate::report::DeadLetter) -> DeadLetter {
    DeadLetter {
        contents: BusContents::of(&letter.body),
        message_id: letter.message_id,
        original_message_id: None,
        trip: Some(trip.to_owned()),
        stop: Some(letter.stop),
        class: letter.class,
        reason: Some(letter.reason),
        receives: letter.receive_count.map(u64::from),
        sent_at: None,
    }
}

/// Up to `limit` dead letters of `stop`.
pub async fn dlq_show(
    deployed: &Deployed,
    stop: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, OpsError> {
    let url = deployed.route.stop(stop)?.dead_letter_queue()?;
    busline_ops::dead_letters(&deployed.clients.sqs, url, limit).await
}

/// `bus dlq show` for a terminal: one line per bus, its reason in full beneath.
pub fn dlq_show_text(stop: &str, letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return format!("stop {stop}: its dead-letter queue is empty\n");
    }
    let dash = || "-".to_owned();
    let mut text = String::new();
    for letter in letters {
        let row = vec![
            letter.message_id.clone(),
            letter.trip.clone().unwrap_or_else(dash),
            letter.class.clone().unwrap_or_else(dash),
            letter.receives.map_or_else(dash, |n| n.to_string()),
            letter.sent_at.clone().unwrap_or_else(dash),
        ];
        text.push_str(&crate::table::render(
            &["message", "trip", "class", "receives", "dead-lettered"],
            &[row],
        ));
        text.push_str(&format!("  {}\n", contents_line(&letter.contents)));
        let reason = letter.reason.as_deref().unwrap_or(
            "(none: the queue's redrive policy moved it after its function failed or timed out; read its logs)",
        );
        text.push_str(&format!("  reason: {reason}\n\n"));
    }
    text.push_str(&format!(
        "stop {stop}: {} dead-lettered bus(es) shown\n",
        letters.len()
    ));
    text
}

fn contents_line(contents: &BusContents) -> String {
    match contents {
        BusContents::Bus {
            bus,
            from,
            passengers,
            first_passenger_ids,
        } => {
            let more = if *passengers > first_passenger_ids.len() {
                ", ..."
            } else {
                ""
            };
            format!(
                "bus {bus} from {from}: {passengers} passenger(s): {}{more}",
                first_passenger_ids.join(", ")
            )
        }
        BusContents::Parked { location } => format!("a bus parked at {location}"),
        BusContents::Unreadable {
            error,
            preview,
            bytes,
        } => format!("not a bus ({error}); {bytes} bytes: {preview:?}"),
    }
}

/// Sends `stop`'s dead letters that `filter` takes back to its queue.
pub async fn dlq_redrive(
    deployed: &Deployed,
    stop: &str,
    filter: &RedriveFilter,
) -> Result<RedriveReport, OpsError> {
    let (from, to) = deployed.route.stop(stop)?.redrive_queues()?;
    busline_ops::redrive(&deployed.clients.sqs, from, to, filter).await
}

/// `bus dlq redrive` for a terminal.
pub fn dlq_redrive_text(stop: &str, report: &RedriveReport) -> String {
    let mut text = format!(
        "stop {stop}: {} bus(es) sent back to {}, {} left in {}, {} failed\n",
        report.moved,
        busline_core::ledger::queue_name(&report.to),
        report.kept + report.late,
        busline_core::ledger::queue_name(&report.from),
        report.failed.len()
    );
    if report.late > 0 {
        text.push_str(&format!(
            "  {} of those left were dead-lettered after the redrive began (failed again?): \
             read them with bus dlq show {stop}\n",
            report.late
        ));
    }
    for (id, why) in &report.failed {
        text.push_str(&format!("  {id}: {why}\n"));
    }
    for (id, why) in &report.hidden {
        text.push_str(&format!(
            "  {id}: not handed back ({why}); it shows again in 15 min\n"
        ));
    }
    text
}

/// The deployed route's data bucket, where its quarantine files are.
pub fn data_bucket(deployed: &Deployed) -> Result<busline_aws::S3Store, OpsError> {
    let bucket = deployed
        .route
        .bucket
        .clone()
        .ok_or_else(|| OpsError::MissingResource {
            stack: deployed.route.stack.clone(),
            logical_id: "DATA_BUCKET".into(),
            what: "the data bucket its stops' DATA_BUCKET names".into(),
        })?;
    Ok(busline_aws::S3Store::new(
        deployed.clients.s3.clone(),
        bucket,
    ))
}

/// `bus quarantine list` for a terminal.
pub fn quarantine_list_text(at: &[QuarantinedAt]) -> String {
    if at.is_empty() {
        return "no quarantine files\n".to_owned();
    }
    let rows: Vec<Vec<String>> = at
        .iter()
        .map(|q| {
            vec![
                q.trip.clone(),
                q.stop.clone(),
                q.files.to_string(),
                q.bytes.to_string(),
                q.folder.clone(),
            ]
        })
        .collect();
    crate::table::render(&["trip", "stop", "files", "bytes", "folder"], &rows)
}

/// `bus quarantine show` for a terminal: each rejection's stop, id and reason, and its data.
pub fn quarantine_show_text(trip: &str, lines: &[QuarantineLine]) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(&format!(
            "{} {}: {}\n  {}\n",
            line.stop, line.rejection.id, line.rejection.reason, line.rejection.data
        ));
    }
    text.push_str(&format!(
        "trip {trip}: {} rejection(s) shown\n",
        lines.len()
    ));
    text
}

/// Replays corrected `passengers` into `stop`'s queue under `trip`.
pub async fn quarantine_replay(
    deployed: &Deployed,
    stop: &str,
    trip: &str,
    passengers: &[busline_core::Passenger],
) -> Result<ReplayReport, OpsError> {
    let stop = deployed.route.stop(stop)?;
    busline_ops::replay_into(&deployed.clients, stop, trip, passengers).await
}

/// `bus quarantine replay` for a terminal.
pub fn quarantine_replay_text(report: &ReplayReport) -> String {
    let ledger = match (report.recorded, report.state) {
        (Some("already_recorded"), Some(state)) => {
            format!("already in the ledger (nothing counted twice); trip {state}")
        }
        (Some(_), Some(state)) => format!(
            "recorded in the ledger; trip {state} (it completes again once they have ridden: bus trip {})",
            report.trip
        ),
        _ => "no trip ledger".to_owned(),
    };
    format!(
        "trip {}: {} passenger(s) on {} bus(es) sent to stop {} ({}), as {}; {ledger}\n",
        report.trip, report.passengers, report.buses, report.stop, report.queue, report.replay
    )
}

/// The route's queues, alarms and the last `window` of its metrics.
pub async fn status(deployed: &Deployed, window: Duration) -> Result<RouteStatus, OpsError> {
    busline_ops::status(&deployed.clients, &deployed.route, window).await
}

/// `bus status` for a terminal: a line per stop, then the alarms that are not OK.
pub fn status_text(status: &RouteStatus) -> String {
    let cell = |depth: Option<QueueDepth>, pick: fn(&QueueDepth) -> u64| {
        depth.map_or_else(|| "-".to_owned(), |d| pick(&d).to_string())
    };
    let rows: Vec<Vec<String>> = status
        .stops
        .iter()
        .map(|s| {
            vec![
                s.stop.clone(),
                cell(s.queue, |d| d.visible),
                cell(s.queue, |d| d.in_flight),
                s.oldest_age_s
                    .map_or_else(|| "-".to_owned(), |age| format!("{age:.0} s")),
                s.passengers_per_minute
                    .map_or_else(|| "-".to_owned(), |n| format!("{n:.0}")),
                cell(s.dead_letters, QueueDepth::total),
                s.alarm.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut text = format!("stack {}\n", status.stack);
    text.push_str(&crate::table::render(
        &[
            "stop",
            "waiting",
            "in flight",
            "oldest",
            "passengers/min",
            "dead-lettered",
            "alarm",
        ],
        &rows,
    ));
    let count = |state: &str| status.alarms.iter().filter(|a| a.state == state).count();
    text.push_str(&format!(
        "\nalarms: {} in ALARM, {} OK, {} with insufficient data\n",
        count("ALARM"),
        count("OK"),
        count("INSUFFICIENT_DATA")
    ));
    for alarm in status.alarming() {
        text.push_str(&format!("  {}: {}\n", alarm.name, alarm.reason));
    }
    text
}
