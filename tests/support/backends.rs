//! The backends of the port contract suite: the embedded ones and SQS/S3/CloudWatch on an
//! emulator, behind one driver each so the same contract runs against every backend.

use crate::cloud::{Cloud, unique};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use busline_aws::{CloudWatchMetrics, S3Store, SqsQueues};
use busline_core::ports::{MetricsSink, ObjectStore, QueueSender};
use busline_embedded::{
    EmbeddedQueues, FolderStore, ManualClock, MemoryQueue, MetricsBoard, QueueSettings,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message as a contract test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    pub receive_count: u32,
    pub attributes: Vec<(String, String)>,
}

/// What the queue contract needs beyond the core's send port.
#[async_trait]
pub trait QueueBackend: Send + Sync {
    fn sender(&self) -> Arc<dyn QueueSender>;
    /// Creates a queue; `redrive` is (dead-letter queue URL, maxReceiveCount).
    async fn create_queue(
        &self,
        name: &str,
        visibility: Duration,
        redrive: Option<(&str, u32)>,
    ) -> String;
    /// One receive call of up to `max` messages.
    async fn receive(&self, url: &str, max: usize) -> Vec<Got>;
    async fn delete(&self, url: &str, receipt: &str);
    /// Lets `duration` pass (real time on an emulator, the manual clock when embedded).
    async fn wait(&self, duration: Duration);
}

/// Receives until `count` messages arrived or a few seconds passed.
pub async fn receive_n(backend: &dyn QueueBackend, url: &str, count: usize) -> Vec<Got> {
    let mut got = Vec::new();
    for _ in 0..40 {
        got.extend(backend.receive(url, (count - got.len()).clamp(1, 10)).await);
        if got.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// Embedded queues on a manual clock.
pub struct EmbeddedBackend {
    clock: Arc<ManualClock>,
    queues: Mutex<EmbeddedQueues>,
}

impl EmbeddedBackend {
    pub fn new() -> Self {
        EmbeddedBackend {
            clock: Arc::new(ManualClock::default()),
            queues: Mutex::new(EmbeddedQueues::default()),
        }
    }

    fn queue(&self, url: &str) -> Arc<MemoryQueue> {
        self.queues
            .lock()
            .expect("lock")
            .get(url)
            .expect("queue")
            .clone()
    }
}

impl Default for EmbeddedBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl QueueBackend for EmbeddedBackend {
    fn sender(&self) -> Arc<dyn QueueSender> {
        Arc::new(self.queues.lock().expect("lock").clone())
    }

    async fn create_queue(
        &self,
        name: &str,
        visibility: Duration,
        redrive: Option<(&str, u32)>,
    ) -> String {
        let settings = QueueSettings {
            visibility_timeout: visibility,
            max_receive_count: redrive.map(|(_, count)| count),
            dead_letter: redrive.map(|(url, _)| self.queue(url)),
            ..QueueSettings::default()
        };
        self.queues
            .lock()
            .expect("lock")
            .insert(Arc::new(MemoryQueue::new(
                name,
                settings,
                self.clock.clone(),
            )));
        name.to_owned()
    }

    async fn receive(&self, url: &str, max: usize) -> Vec<Got> {
        self.queue(url)
            .receive(max, None)
            .expect("receive")
            .into_iter()
            .map(|m| Got {
                receive_count: m.attributes["ApproximateReceiveCount"]
                    .parse()
                    .expect("count"),
                message_id: m.message_id,
                receipt: m.receipt_handle,
                body: m.body.to_string(),
                attributes: m
                    .message_attributes
                    .into_iter()
                    .map(|a| (a.name, a.value))
                    .collect(),
            })
            .collect()
    }

    async fn delete(&self, url: &str, receipt: &str) {
        self.queue(url).delete(receipt);
    }

    async fn wait(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

/// SQS on an emulator.
pub struct SqsBackend {
    pub cloud: Cloud,
}

#[async_trait]
impl QueueBackend for SqsBackend {
    fn sender(&self) -> Arc<dyn QueueSender> {
        Arc::new(SqsQueues::new(self.cloud.clients.sqs.clone()))
    }

    async fn create_queue(
        &self,
        name: &str,
        visibility: Duration,
        redrive: Option<(&str, u32)>,
    ) -> String {
        let sqs = &self.cloud.clients.sqs;
        let mut create = sqs.create_queue().queue_name(unique(name)).attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().to_string(),
        );
        if let Some((dlq_url, count)) = redrive {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("dead-letter queue attributes");
            let arn = attributes
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn))
                .expect("arn")
                .clone();
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": count})
                    .to_string(),
            );
        }
        create
            .send()
            .await
            .expect("create queue")
            .queue_url()
            .expect("queue url")
            .to_owned()
    }

    async fn receive(&self, url: &str, max: usize) -> Vec<Got> {
        let output = self
            .cloud
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        output
            .messages()
            .iter()
            .map(|m| Got {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_default(),
                attributes: m
                    .message_attributes()
                    .map(|attrs| {
                        let mut pairs: Vec<(String, String)> = attrs
                            .iter()
                            .map(|(k, v)| {
                                (k.clone(), v.string_value().unwrap_or_default().to_owned())
                            })
                            .collect();
                        pairs.sort();
                        pairs
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    async fn delete(&self, url: &str, receipt: &str) {
        self.cloud
            .clients
            .sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .expect("delete");
    }

    async fn wait(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A fresh object store: a temporary folder, or a new bucket on an emulator.
pub async fn object_store(
    cloud: Option<&Cloud>,
    page_size: i32,
) -> (Arc<dyn ObjectStore>, Option<tempfile::TempDir>) {
    match cloud {
        None => {
            let dir = tempfile::tempdir().expect("tempdir");
            (Arc::new(FolderStore::new("bucket", dir.path())), Some(dir))
        }
        Some(cloud) => {
            let bucket = cloud.create_bucket("contract").await;
            (
                Arc::new(S3Store::new(cloud.clients.s3.clone(), bucket).with_page_size(page_size)),
                None,
            )
        }
    }
}

/// A metrics sink and a way to read a metric's sum back.
pub enum MetricsBackend {
    Embedded(Arc<MetricsBoard>),
    CloudWatch {
        cloud: Box<Cloud>,
        namespace: String,
    },
}

impl MetricsBackend {
    pub fn sink(&self) -> Arc<dyn MetricsSink> {
        match self {
            MetricsBackend::Embedded(board) => board.clone(),
            MetricsBackend::CloudWatch { cloud, namespace } => Arc::new(CloudWatchMetrics::new(
                cloud.clients.cloudwatch.clone(),
                namespace.clone(),
            )),
        }
    }

    /// The sum of the `PassengersIn` or `Rejected` metric of (route, stop).
    pub async fn read_sum(&self, route: &str, stop: &str, metric: &str) -> f64 {
        match self {
            MetricsBackend::Embedded(board) => {
                let counts = board.snapshot().get(stop).expect("stop").counts.clone();
                match metric {
                    "PassengersIn" => counts.passengers_in as f64,
                    "Rejected" => counts.rejected as f64,
                    other => panic!("no embedded read-back for {other}"),
                }
            }
            MetricsBackend::CloudWatch { cloud, namespace } => {
                let now = chrono::Utc::now().timestamp();
                let output = cloud
                    .clients
                    .cloudwatch
                    .get_metric_statistics()
                    .namespace(namespace)
                    .metric_name(metric)
                    .dimensions(Dimension::builder().name("Route").value(route).build())
                    .dimensions(Dimension::builder().name("Stop").value(stop).build())
                    .start_time(aws_smithy_types::DateTime::from_secs(now - 600))
                    .end_time(aws_smithy_types::DateTime::from_secs(now + 600))
                    .period(60)
                    .statistics(Statistic::Sum)
                    .send()
                    .await
                    .expect("GetMetricStatistics");
                output.datapoints().iter().filter_map(|d| d.sum()).sum()
            }
        }
    }
}
