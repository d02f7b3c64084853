//! What starts a trip in Lambda: an EventBridge schedule, an HTTP API call (POST), or a direct
//! invoke with a trip request.

use crate::{Depot, DepotError, TripRequest};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use base64::Engine;
use busline_core::StopError;
use busline_core::id::trip_id;
use serde_json::{Value, json};
use thiserror::Error;

/// A schedule or direct invoke that did not start a trip: returned as the invocation's error so
/// that EventBridge retries (and, after its retry policy, dead-letters) the event.
#[derive(Debug, Error)]
pub enum TriggerError {
    /// The event is neither a schedule, an HTTP API request nor a trip request.
    #[error("unrecognised event: {0}")]
    Unrecognised(String),
    /// The trip could not start.
    #[error(transparent)]
    Depot(#[from] DepotError),
}

/// Starts a trip for `event` and answers in the shape its caller expects.
pub async fn respond(depot: &Depot, event: Value) -> Result<Value, TriggerError> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let schedule: EventBridgeEvent<Value> = serde_json::from_value(event)
            .map_err(|err| TriggerError::Unrecognised(format!("scheduled event: {err}")))?;
        // The same scheduled event (a retry) gives the same trip id, so its outputs are replaced.
        let fired = schedule.time.unwrap_or_else(chrono::Utc::now);
        let request = TripRequest {
            trip_id: Some(trip_id(fired, schedule.id.as_deref().unwrap_or_default())),
            input_prefix: None,
        };
        let started = depot.start_trip(request).await?;
        return Ok(json!(started));
    }
    if event
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .is_some()
    {
        let request: ApiGatewayV2httpRequest = serde_json::from_value(event)
            .map_err(|err| TriggerError::Unrecognised(format!("HTTP API request: {err}")))?;
        return Ok(http_response(http_start(depot, request).await));
    }
    let request: TripRequest = serde_json::from_value(event).map_err(|err| {
        TriggerError::Unrecognised(format!(
            "expected a scheduled event, an HTTP API request or a trip request: {err}"
        ))
    })?;
    Ok(json!(depot.start_trip(request).await?))
}

/// The status and JSON body for an HTTP API call.
async fn http_start(depot: &Depot, request: ApiGatewayV2httpRequest) -> (i64, Value) {
    let method = request.request_context.http.method.as_str().to_owned();
    if method != "POST" {
        return (
            405,
            json!({"error": format!("{method} is not allowed: POST a trip request to start a trip")}),
        );
    }
    let body = match decode_body(request.body.as_deref(), request.is_base64_encoded) {
        Ok(body) => body,
        Err(message) => return (400, json!({"error": message})),
    };
    let mut trip_request: TripRequest = if body.trim().is_empty() {
        TripRequest::default()
    } else {
        match serde_json::from_str(&body) {
            Ok(parsed) => parsed,
            Err(err) => return (400, json!({"error": format!("request body: {err}")})),
        }
    };
    if trip_request.trip_id.is_none() {
        let request_id = request.request_context.request_id.unwrap_or_default();
        trip_request.trip_id = Some(trip_id(chrono::Utc::now(), &request_id));
    }
    match depot.start_trip(trip_request).await {
        Ok(started) => (202, json!(started)),
        Err(DepotError::BadRequest(message)) => (400, json!({"error": message})),
        Err(DepotError::Stop(StopError::Retryable(message))) => {
            (503, json!({"error": message, "retry": true}))
        }
        Err(DepotError::Stop(StopError::Permanent(message))) => (500, json!({"error": message})),
    }
}

fn decode_body(body: Option<&str>, base64_encoded: bool) -> Result<String, String> {
    let body = body.unwrap_or_default();
    if !base64_encoded {
        return Ok(body.to_owned());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|err| format!("request body is not valid base64: {err}"))?;
    String::from_utf8(bytes).map_err(|err| format!("request body is not UTF-8: {err}"))
}

fn http_response((status, body): (i64, Value)) -> Value {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.headers.insert(
        "content-type",
        aws_lambda_events::http::HeaderValue::from_static("application/json"),
    );
    response.body = Some(Body::Text(body.to_string()));
    json!(response)
}
