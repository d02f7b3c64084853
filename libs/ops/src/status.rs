//! A deployed route at a glance: each stop's queue and dead-letter queue, and its alarms.

use crate::queue::{QueueDepth, depth};
use crate::stack::DeployedAlarm;
use crate::{DeployedRoute, OpsClients, OpsError};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use busline_aws::error::classify;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// DescribeAlarms' most names per call.
const ALARMS_PER_CALL: usize = 100;

/// One stop's queues.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopStatus {
    /// The stop.
    pub stop: String,
    /// Its queue (none for the depot).
    pub queue: Option<QueueDepth>,
    /// Its dead-letter queue.
    pub dead_letters: Option<QueueDepth>,
    /// The age of its queue's oldest message in seconds (AWS/SQS ApproximateAgeOfOldestMessage,
    /// its latest minute), when SQS reported one in the window.
    pub oldest_age_s: Option<f64>,
    /// Passengers it took in per minute over the window (busline's PassengersIn), when it
    /// reported any.
    pub passengers_per_minute: Option<f64>,
    /// The worst state of its alarms (`ALARM`, then `INSUFFICIENT_DATA`, then `OK`), if it has
    /// any.
    pub alarm: Option<String>,
}

/// One alarm's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmState {
    /// The alarm's name.
    pub name: String,
    /// The stop it watches, if one.
    pub stop: Option<String>,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// CloudWatch's reason for the state.
    pub reason: String,
}

/// The route as of now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteStatus {
    /// The stack.
    pub stack: String,
    /// Every stop, in riding order.
    pub stops: Vec<StopStatus>,
    /// Every alarm of the stack.
    pub alarms: Vec<AlarmState>,
}

impl RouteStatus {
    /// Buses in dead-letter queues, over all stops.
    pub fn dead_lettered(&self) -> u64 {
        self.stops
            .iter()
            .filter_map(|s| s.dead_letters)
            .map(|d| d.total())
            .sum()
    }

    /// The alarms in the `ALARM` state.
    pub fn alarming(&self) -> impl Iterator<Item = &AlarmState> {
        self.alarms.iter().filter(|a| a.state == "ALARM")
    }
}

/// Reads every queue's depth, the last `window` of metrics and every alarm's state.
pub async fn status(
    clients: &OpsClients,
    route: &DeployedRoute,
    window: Duration,
) -> Result<RouteStatus, OpsError> {
    let rates = recent_metrics(&clients.cloudwatch, route, window).await?;
    let alarms = alarm_states(&clients.cloudwatch, &route.alarms).await?;
    let mut stops = Vec::with_capacity(route.stops.len());
    for stop in &route.stops {
        let (oldest_age_s, passengers_per_minute) =
            rates.get(&stop.stop).copied().unwrap_or_default();
        stops.push(StopStatus {
            stop: stop.stop.clone(),
            queue: depth_of(&clients.sqs, stop.queue.as_deref()).await?,
            dead_letters: depth_of(&clients.sqs, stop.dead_letter_queue.as_deref()).await?,
            oldest_age_s,
            passengers_per_minute,
            alarm: worst_state(
                alarms
                    .iter()
                    .filter(|a| a.stop.as_ref() == Some(&stop.stop)),
            ),
        });
    }
    Ok(RouteStatus {
        stack: route.stack.clone(),
        stops,
        alarms,
    })
}

/// The depth of the queue at `url`, when there is one.
async fn depth_of(
    sqs: &aws_sdk_sqs::Client,
    url: Option<&str>,
) -> Result<Option<QueueDepth>, OpsError> {
    match url {
        Some(url) => depth(sqs, url).await.map(Some),
        None => Ok(None),
    }
}

/// The worst of the alarms' states.
fn worst_state<'a>(alarms: impl Iterator<Item = &'a AlarmState>) -> Option<String> {
    let rank = |state: &str| match state {
        "ALARM" => 2,
        "INSUFFICIENT_DATA" => 1,
        _ => 0,
    };
    alarms
        .map(|a| a.state.as_str())
        .max_by_key(|state| rank(state))
        .map(str::to_owned)
}

async fn alarm_states(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    alarms: &[DeployedAlarm],
) -> Result<Vec<AlarmState>, OpsError> {
    let stops: HashMap<&str, &Option<String>> =
        alarms.iter().map(|a| (a.name.as_str(), &a.stop)).collect();
    let names: Vec<String> = alarms.iter().map(|a| a.name.clone()).collect();
    let mut states = Vec::with_capacity(names.len());
    for chunk in names.chunks(ALARMS_PER_CALL) {
        let out = cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .max_records(ALARMS_PER_CALL as i32)
            .send()
            .await
            .map_err(|err| classify(err, &format!("alarms {}", chunk.join(", "))))?;
        states.extend(out.metric_alarms().iter().map(|alarm| {
            AlarmState {
                name: alarm.alarm_name().unwrap_or_default().to_owned(),
                stop: stops
                    .get(alarm.alarm_name().unwrap_or_default())
                    .and_then(|stop| (*stop).clone()),
                state: alarm
                    .state_value()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: alarm.state_reason().unwrap_or_default().to_owned(),
            }
        }));
    }
    states.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(states)
}

/// Per stop: the oldest message's age (seconds) and passengers in per minute.
type Rates = HashMap<String, (Option<f64>, Option<f64>)>;

/// Two metric queries per stop in one GetMetricData call (it takes up to 500).
async fn recent_metrics(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    route: &DeployedRoute,
    window: Duration,
) -> Result<Rates, OpsError> {
    let minutes = (window.as_secs() / 60).max(1);
    // Each query's id, to the stop it asks about and whether it asks for the queue's age.
    let mut asked: HashMap<String, (&str, bool)> = HashMap::new();
    let mut queries = Vec::new();
    for (i, stop) in route.stops.iter().enumerate() {
        asked.insert(format!("passengers{i}"), (&stop.stop, false));
        let dimensions = [
            ("Route", route.route.as_str()),
            ("Stop", stop.stop.as_str()),
        ];
        queries.push(query(
            format!("passengers{i}"),
            "busline",
            "PassengersIn",
            "Sum",
            &dimensions,
        ));
        if let Some(url) = &stop.queue {
            asked.insert(format!("age{i}"), (&stop.stop, true));
            let name = busline_core::ledger::queue_name(url);
            let age = [("QueueName", name)];
            queries.push(query(
                format!("age{i}"),
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                "Maximum",
                &age,
            ));
        }
    }
    let end = SystemTime::now();
    let out = cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from(end - Duration::from_secs(minutes * 60)))
        .end_time(DateTime::from(end))
        .send()
        .await
        .map_err(|err| classify(err, &format!("metrics of route {}", route.route)))?;
    let mut rates = Rates::new();
    for result in out.metric_data_results() {
        let id = result.id().unwrap_or_default();
        let latest = result
            .timestamps()
            .iter()
            .zip(result.values())
            .max_by_key(|(at, _)| at.as_nanos())
            .map(|(_, value)| *value);
        let Some(&(stop, is_age)) = asked.get(id) else {
            continue;
        };
        let entry = rates.entry(stop.to_owned()).or_default();
        if is_age {
            entry.0 = latest;
        } else if !result.values().is_empty() {
            entry.1 = Some(result.values().iter().sum::<f64>() / minutes as f64);
        }
    }
    Ok(rates)
}

/// One statistic of one metric per minute.
fn query(
    id: String,
    namespace: &str,
    name: &str,
    stat: &str,
    dimensions: &[(&str, &str)],
) -> MetricDataQuery {
    let mut metric = Metric::builder().namespace(namespace).metric_name(name);
    for (key, value) in dimensions {
        metric = metric.dimensions(Dimension::builder().name(*key).value(*value).build());
    }
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(60)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}
