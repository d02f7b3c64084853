//! The metrics port: CloudWatch Embedded Metric Format lines inside Lambda (no API call, no
//! cost), or PutMetricData where no log pipeline extracts EMF (local runs, emulators).

use crate::error::classify;
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use busline_core::config::{Vars, optional};
use busline_core::ports::{MetricsSink, NoMetrics};
use busline_core::{ConfigError, InvocationMetrics};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// CloudWatch namespace of every busline metric (override with `METRICS_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "busline";

/// How a stop emits metrics (`METRICS_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// EMF lines on stdout (default): CloudWatch Logs extracts them inside Lambda.
    Emf,
    /// PutMetricData calls.
    CloudWatch,
    /// No metrics.
    Off,
}

impl MetricsMode {
    /// Reads `METRICS_MODE`: `emf` (default), `cloudwatch` or `off`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        match optional(vars, "METRICS_MODE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("emf") => Ok(MetricsMode::Emf),
            Some("cloudwatch") => Ok(MetricsMode::CloudWatch),
            Some("off") => Ok(MetricsMode::Off),
            Some(other) => Err(ConfigError::Invalid {
                var: "METRICS_MODE".into(),
                value: other.into(),
                reason: "expected emf, cloudwatch or off".into(),
            }),
        }
    }
}

/// The sink `METRICS_MODE` and `METRICS_NAMESPACE` ask for.
pub fn metrics_sink(
    vars: &dyn Vars,
    cloudwatch: &aws_sdk_cloudwatch::Client,
) -> Result<Arc<dyn MetricsSink>, ConfigError> {
    let namespace = optional(vars, "METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    Ok(match MetricsMode::from_vars(vars)? {
        MetricsMode::Emf => Arc::new(EmfMetrics { namespace }),
        MetricsMode::CloudWatch => Arc::new(CloudWatchMetrics::new(cloudwatch.clone(), namespace)),
        MetricsMode::Off => Arc::new(NoMetrics),
    })
}

/// One named value of an invocation, with its CloudWatch unit.
struct Value64 {
    name: &'static str,
    value: f64,
    unit: StandardUnit,
}

/// The metrics of one invocation, by name.
fn values(metrics: &InvocationMetrics) -> Vec<Value64> {
    let c = &metrics.counts;
    let count = |name, value: u64| Value64 {
        name,
        value: value as f64,
        unit: StandardUnit::Count,
    };
    let mut values = vec![
        count("BusesIn", c.buses_in),
        count("PassengersIn", c.passengers_in),
        count("PickedUp", c.picked_up),
        count("Forwarded", c.forwarded),
        count("Continued", c.continued),
        count("DroppedOff", c.dropped_off),
        count("Rejected", c.rejected),
        count("BusesFailed", c.buses_failed),
        count("BusesDeadLettered", c.buses_dead_lettered),
        count("BusesHandedBack", c.buses_handed_back),
        count("BusesOut", c.buses_out),
        Value64 {
            name: "BytesOut",
            value: c.bytes_out as f64,
            unit: StandardUnit::Bytes,
        },
        Value64 {
            name: "Duration",
            value: metrics.duration.as_secs_f64() * 1000.0,
            unit: StandardUnit::Milliseconds,
        },
    ];
    if let Some(age) = metrics.oldest_message_age {
        values.push(Value64 {
            name: "OldestMessageAge",
            value: age.as_secs_f64() * 1000.0,
            unit: StandardUnit::Milliseconds,
        });
    }
    values
}

/// Passengers forwarded per lane, for a stop that has lanes beside the default one (metric
/// `Forwarded` with the dimensions Route, Stop and Lane); empty for a stop with one way out.
fn forwarded_by_lane(metrics: &InvocationMetrics) -> Vec<(&str, u64)> {
    let lanes = &metrics.counts.lanes;
    if lanes
        .keys()
        .all(|lane| lane == busline_core::config::NEXT_LANE)
    {
        return Vec::new();
    }
    lanes
        .iter()
        .map(|(lane, count)| (lane.as_str(), *count))
        .collect()
}

/// Writes one Embedded Metric Format line per invocation to stdout.
#[derive(Debug, Clone)]
pub struct EmfMetrics {
    /// CloudWatch namespace.
    pub namespace: String,
}

impl EmfMetrics {
    /// The EMF document for one invocation.
    pub fn document(&self, metrics: &InvocationMetrics, timestamp_ms: i64) -> Value {
        let values = values(metrics);
        let definitions: Vec<Value> = values
            .iter()
            .map(|v| json!({"Name": v.name, "Unit": v.unit.as_str()}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Route", "Stop"]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Route".into(), metrics.route.clone().into());
        root.insert("Stop".into(), metrics.stop.clone().into());
        for v in values {
            root.insert(v.name.into(), json!(v.value));
        }
        Value::Object(root)
    }

    /// One EMF document per lane of a stop with lanes: its `Forwarded` by Route, Stop and Lane.
    pub fn lane_documents(&self, metrics: &InvocationMetrics, timestamp_ms: i64) -> Vec<Value> {
        forwarded_by_lane(metrics)
            .into_iter()
            .map(|(lane, count)| {
                json!({
                    "_aws": {
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": [["Route", "Stop", "Lane"]],
                            "Metrics": [{"Name": "Forwarded", "Unit": "Count"}],
                        }],
                    },
                    "Route": metrics.route,
                    "Stop": metrics.stop,
                    "Lane": lane,
                    "Forwarded": count,
                })
            })
            .collect()
    }
}

#[async_trait]
impl MetricsSink for EmfMetrics {
    async fn record(&self, metrics: &InvocationMetrics) {
        let now = chrono::Utc::now().timestamp_millis();
        // Lambda sends stdout to CloudWatch Logs, which turns these lines into metrics.
        println!("{}", self.document(metrics, now));
        for line in self.lane_documents(metrics, now) {
            println!("{line}");
        }
    }
}

/// Sends each invocation's metrics with one PutMetricData call.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl CloudWatchMetrics {
    /// Metrics under `namespace` through `client`.
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        CloudWatchMetrics {
            client,
            namespace: namespace.into(),
        }
    }
}

/// Most data per PutMetricData call.
const MAX_DATA_PER_CALL: usize = 1000;

#[async_trait]
impl MetricsSink for CloudWatchMetrics {
    async fn record(&self, metrics: &InvocationMetrics) {
        let dimensions = [
            Dimension::builder()
                .name("Route")
                .value(&metrics.route)
                .build(),
            Dimension::builder()
                .name("Stop")
                .value(&metrics.stop)
                .build(),
        ];
        let now = aws_smithy_types::DateTime::from_millis(chrono::Utc::now().timestamp_millis());
        let mut data: Vec<MetricDatum> = values(metrics)
            .into_iter()
            .map(|v| {
                MetricDatum::builder()
                    .metric_name(v.name)
                    .value(v.value)
                    .unit(v.unit)
                    .timestamp(now)
                    .set_dimensions(Some(dimensions.to_vec()))
                    .build()
            })
            .collect();
        data.extend(forwarded_by_lane(metrics).into_iter().map(|(lane, count)| {
            let mut by_lane = dimensions.to_vec();
            by_lane.push(Dimension::builder().name("Lane").value(lane).build());
            MetricDatum::builder()
                .metric_name("Forwarded")
                .value(count as f64)
                .unit(StandardUnit::Count)
                .timestamp(now)
                .set_dimensions(Some(by_lane))
                .build()
        }));
        for chunk in data.chunks(MAX_DATA_PER_CALL) {
            let sent = self
                .client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await;
            if let Err(err) = sent {
                // Best-effort by design: a lost metric must not fail or retry the bus.
                tracing::error!(error = %classify(err, &format!("cloudwatch namespace {}", self.namespace)), "PutMetricData failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::StopCounts;
    use std::time::Duration;

    #[test]
    fn emf_document_declares_every_value_it_carries() {
        let metrics = InvocationMetrics {
            stop: "transform".into(),
            route: "colors".into(),
            counts: StopCounts {
                buses_in: 2,
                passengers_in: 30,
                forwarded: 29,
                rejected: 1,
                ..StopCounts::default()
            },
            duration: Duration::from_millis(12),
            oldest_message_age: Some(Duration::from_secs(3)),
        };
        let doc = EmfMetrics {
            namespace: "busline".into(),
        }
        .document(&metrics, 1_700_000_000_000);
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "busline");
        assert_eq!(declared["Dimensions"], json!([["Route", "Stop"]]));
        for definition in declared["Metrics"].as_array().expect("metrics") {
            let name = definition["Name"].as_str().expect("name");
            assert!(doc[name].is_number(), "{name} is declared but has no value");
        }
        assert_eq!(
            (
                doc["Stop"].as_str(),
                doc["PassengersIn"].as_f64(),
                doc["Rejected"].as_f64()
            ),
            (Some("transform"), Some(30.0), Some(1.0))
        );
        assert_eq!(doc["OldestMessageAge"], 3000.0);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn a_stop_with_lanes_emits_forwarded_per_lane_and_a_line_stop_does_not() {
        let emf = EmfMetrics {
            namespace: "busline".into(),
        };
        let with_lanes = |lanes: &[(&str, u64)]| InvocationMetrics {
            stop: "transform".into(),
            route: "flights".into(),
            counts: StopCounts {
                lanes: lanes.iter().map(|(l, n)| (l.to_string(), *n)).collect(),
                ..StopCounts::default()
            },
            duration: Duration::from_millis(1),
            oldest_message_age: None,
        };
        let documents = emf.lane_documents(&with_lanes(&[("next", 44), ("audit", 4)]), 1);
        let lanes: Vec<(&str, f64)> = documents
            .iter()
            .map(|d| {
                (
                    d["Lane"].as_str().unwrap_or_default(),
                    d["Forwarded"].as_f64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(lanes, [("audit", 4.0), ("next", 44.0)]);
        assert_eq!(
            documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Route", "Stop", "Lane"]])
        );
        assert!(
            emf.lane_documents(&with_lanes(&[("next", 48)]), 1)
                .is_empty()
        );
    }

    #[test]
    fn metrics_mode_names_the_variable() {
        let vars =
            std::collections::HashMap::from([("METRICS_MODE".to_owned(), "loud".to_owned())]);
        assert_eq!(
            MetricsMode::from_vars(&vars).expect_err("bad").to_string(),
            "environment variable METRICS_MODE=\"loud\" is invalid: expected emf, cloudwatch or off"
        );
    }
}
