//! A depot behind its triggers: an EventBridge schedule, an HTTP API call (POST), or a direct
//! invoke with a trip request. Each becomes a [`TripRequest`] for the depot's [`TripStarter`].

use crate::FunctionError;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use base64::Engine;
use busline_core::id::trip_id;
use busline_core::{ErrorClass, Invocation, StopError, TripError, TripRequest, TripStarter};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::sync::Arc;

/// Answers trip triggers with `starter` until Lambda stops the function.
pub async fn serve(starter: TripStarter) -> Result<(), crate::Error> {
    let starter = Arc::new(starter);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let starter = starter.clone();
        async move {
            let invocation = crate::invocation(&event.context);
            respond(&starter, event.payload, &invocation).await
        }
    }))
    .await
}

/// Starts a trip for `event` and answers in the shape its caller expects. A schedule or a
/// direct invoke that did not start a trip is the invocation's error, so that EventBridge
/// retries (and, after its retry policy, dead-letters) the event; its `errorType` is the class.
pub async fn respond(
    starter: &TripStarter,
    event: Value,
    invocation: &Invocation,
) -> Result<Value, FunctionError> {
    let unrecognised = |text: String| {
        FunctionError::new(ErrorClass::Rejected, format!("unrecognised event: {text}"))
    };
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let schedule: EventBridgeEvent<Value> = serde_json::from_value(event)
            .map_err(|err| unrecognised(format!("scheduled event: {err}")))?;
        // The same scheduled event (a retry) gives the same trip id, so its outputs are replaced.
        let fired = schedule.time.unwrap_or_else(chrono::Utc::now);
        let request = TripRequest {
            trip_id: Some(trip_id(fired, schedule.id.as_deref().unwrap_or_default())),
            ..TripRequest::default()
        };
        let started = starter.start_trip(request, invocation).await?;
        return Ok(json!(started));
    }
    if event
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .is_some()
    {
        let request: ApiGatewayV2httpRequest = serde_json::from_value(event)
            .map_err(|err| unrecognised(format!("HTTP API request: {err}")))?;
        return Ok(http_response(
            http_start(starter, request, invocation).await,
        ));
    }
    let request: TripRequest = serde_json::from_value(event).map_err(|err| {
        unrecognised(format!(
            "expected a scheduled event, an HTTP API request or a trip request: {err}"
        ))
    })?;
    Ok(json!(starter.start_trip(request, invocation).await?))
}

/// The status and JSON body for an HTTP API call.
async fn http_start(
    starter: &TripStarter,
    request: ApiGatewayV2httpRequest,
    invocation: &Invocation,
) -> (i64, Value) {
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
    match starter.start_trip(trip_request, invocation).await {
        Ok(started) => (202, json!(started)),
        Err(TripError::BadRequest(message)) => (400, json!({"error": message})),
        Err(TripError::Stop(err @ StopError::Retryable(_))) => {
            (503, json!({"error": err.reason(), "retry": true}))
        }
        Err(TripError::Stop(err)) => (500, json!({"error": err.reason()})),
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
