//! Stops reached through the Lambda Invoke API: a batch becomes the SQS event Lambda's poller
//! would send, the function's `batchItemFailures` come back as the batch's outcome. The same
//! client talks to `cargo lambda watch`, an emulator or AWS: only the endpoint differs.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_lambda::primitives::Blob;
use busline_core::envelope::decode_envelope;
use busline_core::error::chain;
use busline_core::metrics::{InvocationMetrics, StopCounts};
use busline_core::ports::MetricsSink;
use busline_core::{
    BatchError, BatchHandler, BatchOutcome, Delivery, ErrorClass, Invocation, StopError, TripError,
    TripHandler, TripRequest, TripStarted,
};
use serde::de::IgnoredAny;
use std::sync::Arc;
use std::time::Instant;

/// The region named in the events the driver builds.
const REGION: &str = "us-east-1";

/// A Lambda Invoke API client for one endpoint.
#[derive(Clone, Debug)]
pub struct Invoker {
    client: aws_sdk_lambda::Client,
    endpoint: String,
}

impl Invoker {
    /// A client for the Invoke API at `endpoint` (e.g. `cargo lambda watch`'s
    /// `http://127.0.0.1:9000`). Region and credentials come the standard way; where none are
    /// set, a loopback endpoint gets placeholder ones, as local function hosts do not check.
    pub async fn new(endpoint: &str) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(busline_aws::clients::https_client())
            .endpoint_url(endpoint);
        let local = ["http://127.", "http://localhost", "http://[::1]"]
            .iter()
            .any(|start| endpoint.starts_with(start));
        if local && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "busline-local",
                "busline-local",
                None,
                None,
                "busline-driver",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(aws_sdk_lambda::config::Region::new(REGION));
        }
        Invoker {
            client: aws_sdk_lambda::Client::new(&loader.load().await),
            endpoint: endpoint.to_owned(),
        }
    }

    /// Invokes `function` with `payload`; the answer, or the function's error as
    /// (`errorType`, `errorMessage`).
    async fn call(&self, function: &str, payload: Vec<u8>) -> Result<Answer, String> {
        let output = self
            .client
            .invoke()
            .function_name(function)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|err| format!("invoking {function} at {}: {}", self.endpoint, chain(&err)))?;
        let payload = output
            .payload()
            .map(|p| p.as_ref().to_vec())
            .unwrap_or_default();
        if output.function_error().is_some() {
            let error: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
            return Ok(Answer::Failed {
                error_type: error["errorType"]
                    .as_str()
                    .unwrap_or("Unhandled")
                    .to_owned(),
                message: error["errorMessage"].as_str().map_or_else(
                    || String::from_utf8_lossy(&payload).into_owned(),
                    str::to_owned,
                ),
            });
        }
        Ok(Answer::Returned(payload))
    }
}

/// What an invocation gave back.
enum Answer {
    Returned(Vec<u8>),
    Failed { error_type: String, message: String },
}

/// The class a function error's `errorType` names (busline's Lambda host writes the class);
/// anything else is retryable, as Lambda's own retries treat it.
fn class_of(error_type: &str) -> ErrorClass {
    match error_type {
        "Permanent" => ErrorClass::Permanent,
        "Rejected" => ErrorClass::Rejected,
        _ => ErrorClass::Retryable,
    }
}

/// A stop whose batches go to a function through the Invoke API.
pub struct InvokedStop {
    invoker: Invoker,
    function: String,
    stop: String,
    route: String,
    queue: String,
    metrics: Arc<dyn MetricsSink>,
}

impl InvokedStop {
    /// Stop `stop` of `route`, reading `queue`, run by `function` at the invoker's endpoint; what
    /// the driver sees of it (buses in, failures) is recorded in `metrics`.
    pub fn new(
        invoker: Invoker,
        function: impl Into<String>,
        stop: impl Into<String>,
        route: impl Into<String>,
        queue: impl Into<String>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        InvokedStop {
            invoker,
            function: function.into(),
            stop: stop.into(),
            route: route.into(),
            queue: queue.into(),
            metrics,
        }
    }

    /// The SQS event Lambda's poller would send for `deliveries`.
    fn event(&self, deliveries: &[Delivery]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = deliveries
            .iter()
            .map(|delivery| {
                let mut record = SqsMessage::default();
                record.message_id = Some(delivery.id.clone());
                record.receipt_handle = Some(delivery.receipt_handle.clone());
                record.body = Some(delivery.body.to_string());
                record.attributes.insert(
                    "ApproximateReceiveCount".into(),
                    delivery.receive_count.to_string(),
                );
                if let Some(sent) = delivery
                    .sent_at
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                {
                    record
                        .attributes
                        .insert("SentTimestamp".into(), sent.as_millis().to_string());
                }
                record.message_attributes = delivery
                    .attributes
                    .iter()
                    .map(|a| {
                        let mut value = SqsMessageAttribute::default();
                        value.string_value = Some(a.value.clone());
                        value.data_type = Some(a.data_type.as_str().to_owned());
                        (a.name.clone(), value)
                    })
                    .collect();
                record.event_source = Some("aws:sqs".into());
                record.event_source_arn =
                    Some(format!("arn:aws:sqs:{REGION}:000000000000:{}", self.queue));
                record.aws_region = Some(REGION.into());
                record
            })
            .collect();
        event
    }

    async fn invoke(&self, deliveries: &[Delivery]) -> Result<BatchOutcome, BatchError> {
        let all_failed = |class, first_reason| BatchError {
            count: deliveries.len(),
            class,
            first_reason,
        };
        let payload = serde_json::to_vec(&self.event(deliveries))
            .map_err(|err| all_failed(ErrorClass::Permanent, err.to_string()))?;
        match self.invoker.call(&self.function, payload).await {
            Err(reason) => Err(all_failed(ErrorClass::Retryable, reason)),
            Ok(Answer::Failed {
                error_type,
                message,
            }) => Err(all_failed(
                class_of(&error_type),
                format!("{error_type}: {message}"),
            )),
            Ok(Answer::Returned(payload)) => {
                let response: SqsBatchResponse =
                    serde_json::from_slice(&payload).map_err(|err| {
                        all_failed(
                            ErrorClass::Retryable,
                            format!(
                                "{} answered with no batch response ({err}): {}",
                                self.function,
                                String::from_utf8_lossy(&payload)
                            ),
                        )
                    })?;
                Ok(BatchOutcome {
                    retry: response
                        .batch_item_failures
                        .into_iter()
                        .map(|failure| failure.item_identifier)
                        .collect(),
                })
            }
        }
    }
}

#[async_trait]
impl BatchHandler for InvokedStop {
    async fn handle_batch(
        &self,
        deliveries: Vec<Delivery>,
        _invocation: &Invocation,
    ) -> Result<BatchOutcome, BatchError> {
        let started = Instant::now();
        let result = self.invoke(&deliveries).await;
        let failed = match &result {
            Ok(outcome) => outcome.retry.len(),
            Err(_) => deliveries.len(),
        };
        // What the driver can see: the buses and passengers handed over, and what failed.
        // The function's own counts are in its logs (EMF).
        let counts = StopCounts {
            buses_in: deliveries.len() as u64,
            passengers_in: deliveries.iter().map(passengers_on).sum(),
            buses_failed: failed as u64,
            ..StopCounts::default()
        };
        self.metrics
            .record(&InvocationMetrics {
                stop: self.stop.clone(),
                route: self.route.clone(),
                counts,
                duration: started.elapsed(),
                oldest_message_age: None,
            })
            .await;
        result
    }
}

/// Passengers on a bus (0 for a claim check or a body that is not a bus).
fn passengers_on(delivery: &Delivery) -> u64 {
    decode_envelope::<IgnoredAny>(&delivery.body)
        .map_or(0, |envelope| envelope.passengers.len() as u64)
}

/// A depot function started through the Invoke API with a trip request.
pub struct InvokedDepot {
    invoker: Invoker,
    function: String,
}

impl InvokedDepot {
    /// The depot run by `function` at the invoker's endpoint.
    pub fn new(invoker: Invoker, function: impl Into<String>) -> Self {
        InvokedDepot {
            invoker,
            function: function.into(),
        }
    }
}

#[async_trait]
impl TripHandler for InvokedDepot {
    async fn handle_trip(
        &self,
        request: TripRequest,
        _invocation: &Invocation,
    ) -> Result<TripStarted, TripError> {
        let payload = serde_json::to_vec(&request)
            .map_err(|err| TripError::Stop(StopError::permanent(err)))?;
        match self.invoker.call(&self.function, payload).await {
            Err(reason) => Err(TripError::Stop(StopError::retryable(reason))),
            Ok(Answer::Failed {
                error_type,
                message,
            }) => Err(match class_of(&error_type) {
                ErrorClass::Rejected => TripError::BadRequest(message),
                ErrorClass::Permanent => TripError::Stop(StopError::permanent(message)),
                ErrorClass::Retryable => TripError::Stop(StopError::retryable(message)),
            }),
            Ok(Answer::Returned(payload)) => serde_json::from_slice(&payload).map_err(|err| {
                TripError::Stop(StopError::permanent(format!(
                    "{} answered with no trip ({err}): {}",
                    self.function,
                    String::from_utf8_lossy(&payload)
                )))
            }),
        }
    }
}
