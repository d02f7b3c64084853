//! The SQS and S3 endpoints the driver serves over its ports, so that a function running
//! elsewhere (under `cargo lambda watch`) sends its buses to the embedded queues and reads and
//! writes the folder bucket, through the AWS SDK with `AWS_ENDPOINT_URL` pointing here.
//!
//! Only what busline's adapters call is served: SQS `SendMessageBatch`, `SendMessage` and
//! `ChangeMessageVisibilityBatch` (JSON protocol), S3 `GetObject` (whole or from an offset),
//! `HeadObject`, `PutObject` and `ListObjectsV2` (path-style). Anything else is answered with
//! an error naming the operation.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use busline_core::ports::{
    Attribute, AttributeType, EntryFailure, ObjectStore, OutgoingMessage, QueueSender,
    VisibilityChange,
};
use busline_core::{PortError, error::chain};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Most keys one ListObjectsV2 page returns, as S3.
const LIST_PAGE: usize = 1000;

#[derive(Clone)]
struct Ports {
    queues: Arc<dyn QueueSender>,
    objects: Arc<dyn ObjectStore>,
    sent: Arc<AtomicU64>,
}

/// The router: `POST /` for SQS, `/{bucket}` and `/{bucket}/{key}` for S3.
pub fn router(queues: Arc<dyn QueueSender>, objects: Arc<dyn ObjectStore>) -> Router {
    Router::new()
        .route("/", post(sqs))
        .route("/{bucket}", get(list_objects))
        .route("/{bucket}/", get(list_objects))
        .route("/{bucket}/{*key}", get(get_object).put(put_object))
        .with_state(Ports {
            queues,
            objects,
            sent: Arc::new(AtomicU64::new(0)),
        })
}

/// The queue a URL names: its last path segment (`http://host/000000000000/LoadQueue`).
fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

async fn sqs(State(ports): State<Ports>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return sqs_error("InvalidParameterValue", format!("body is not JSON: {err}")),
    };
    match target {
        "AmazonSQS.SendMessageBatch" => send_message_batch(&ports, &request).await,
        "AmazonSQS.SendMessage" => send_message(&ports, &request).await,
        "AmazonSQS.ChangeMessageVisibilityBatch" => {
            change_message_visibility_batch(&ports, &request).await
        }
        other => sqs_error(
            "UnsupportedOperation",
            format!(
                "the local driver serves SendMessageBatch, SendMessage and \
                 ChangeMessageVisibilityBatch, not {other:?}"
            ),
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    id: String,
    message_body: String,
    #[serde(default)]
    message_attributes: HashMap<String, AttributeValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeValue {
    data_type: String,
    #[serde(default)]
    string_value: Option<String>,
}

fn message(entry: &Entry) -> OutgoingMessage {
    let attributes = entry
        .message_attributes
        .iter()
        .map(|(name, value)| Attribute {
            name: name.clone(),
            value: value.string_value.clone().unwrap_or_default(),
            data_type: if value.data_type.starts_with("Number") {
                AttributeType::Number
            } else {
                AttributeType::String
            },
        })
        .collect();
    OutgoingMessage {
        body: entry.message_body.clone(),
        attributes,
    }
}

/// A batch request's queue name and entries, or what is malformed.
fn batch_request<E: serde::de::DeserializeOwned>(
    request: &Value,
) -> Result<(&str, Vec<E>), String> {
    let queue = request["QueueUrl"]
        .as_str()
        .map(queue_name)
        .unwrap_or_default();
    serde_json::from_value(request["Entries"].clone())
        .map(|entries| (queue, entries))
        .map_err(|err| format!("Entries: {err}"))
}

async fn send_message_batch(ports: &Ports, request: &Value) -> Response {
    let (queue, entries): (_, Vec<Entry>) = match batch_request(request) {
        Ok(request) => request,
        Err(malformed) => return sqs_error("InvalidParameterValue", malformed),
    };
    let messages: Vec<OutgoingMessage> = entries.iter().map(message).collect();
    let failures = match ports.queues.send_batch(queue, &messages).await {
        Ok(failures) => failures,
        Err(err) => return port_error(&err),
    };
    batch_result(
        &entries,
        |entry| &entry.id,
        &failures,
        |entry| {
            json!({
                "Id": entry.id,
                "MessageId": ports.next_id(),
                "MD5OfMessageBody": md5_hex(entry.message_body.as_bytes()),
            })
        },
    )
}

/// A batch call's answer: each entry under `Successful` as `ok` shows it, or under `Failed`.
fn batch_result<E>(
    entries: &[E],
    id: impl Fn(&E) -> &str,
    failures: &[EntryFailure],
    ok: impl Fn(&E) -> Value,
) -> Response {
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match failures.iter().find(|f| f.index == index) {
            Some(failure) => failed.push(json!({
                "Id": id(entry), "SenderFault": failure.sender_fault,
                "Code": failure.code, "Message": failure.message,
            })),
            None => successful.push(ok(entry)),
        }
    }
    sqs_ok(json!({"Successful": successful, "Failed": failed}))
}

async fn send_message(ports: &Ports, request: &Value) -> Response {
    let queue = request["QueueUrl"]
        .as_str()
        .map(queue_name)
        .unwrap_or_default();
    let entry = Entry {
        id: String::new(),
        message_body: request["MessageBody"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message_attributes: serde_json::from_value(request["MessageAttributes"].clone())
            .unwrap_or_default(),
    };
    match ports.queues.send_batch(queue, &[message(&entry)]).await {
        Ok(failures) if failures.is_empty() => sqs_ok(json!({
            "MessageId": ports.next_id(),
            "MD5OfMessageBody": md5_hex(entry.message_body.as_bytes()),
        })),
        Ok(failures) => sqs_error(failures[0].code.as_str(), failures[0].message.clone()),
        Err(err) => port_error(&err),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityEntry {
    id: String,
    receipt_handle: String,
    visibility_timeout: u64,
}

async fn change_message_visibility_batch(ports: &Ports, request: &Value) -> Response {
    let (queue, entries): (_, Vec<VisibilityEntry>) = match batch_request(request) {
        Ok(request) => request,
        Err(malformed) => return sqs_error("InvalidParameterValue", malformed),
    };
    let changes: Vec<VisibilityChange> = entries
        .iter()
        .map(|entry| VisibilityChange {
            receipt_handle: entry.receipt_handle.clone(),
            timeout: Duration::from_secs(entry.visibility_timeout),
        })
        .collect();
    let failures = match ports.queues.change_visibility(queue, &changes).await {
        Ok(failures) => failures,
        Err(err) => return port_error(&err),
    };
    batch_result(
        &entries,
        |entry| &entry.id,
        &failures,
        |entry| json!({"Id": entry.id}),
    )
}

impl Ports {
    fn next_id(&self) -> String {
        format!("local-{:012}", self.sent.fetch_add(1, Ordering::Relaxed))
    }
}

/// MD5 in hex: SQS's `MD5OfMessageBody`, S3's `ETag`.
fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

fn sqs_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

fn sqs_error(code: &str, message: String) -> Response {
    let status = if code == "UnsupportedOperation" {
        StatusCode::NOT_IMPLEMENTED
    } else {
        StatusCode::BAD_REQUEST
    };
    sqs_fault(status, code, message)
}

/// An SQS error answer, in the JSON protocol and in the older query protocol's header, which
/// the SDK prefers for the code.
fn sqs_fault(status: StatusCode, code: &str, message: String) -> Response {
    let query_code = match code {
        "QueueDoesNotExist" => "AWS.SimpleQueueService.NonExistentQueue",
        other => other,
    };
    let fault = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                "application/x-amz-json-1.0".to_owned(),
            ),
            (
                header::HeaderName::from_static("x-amzn-query-error"),
                format!("{query_code};{fault}"),
            ),
        ],
        json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message}).to_string(),
    )
        .into_response()
}

fn port_error(err: &PortError) -> Response {
    match err {
        PortError::NotFound { .. } => sqs_error("QueueDoesNotExist", chain(err)),
        PortError::Retryable { .. } => sqs_fault(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            chain(err),
        ),
        PortError::Permanent { .. } => sqs_error("InvalidParameterValue", chain(err)),
    }
}

/// `ListObjectsV2` query parameters.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "list-type")]
    list_type: Option<String>,
    #[serde(default)]
    prefix: String,
    #[serde(rename = "continuation-token")]
    continuation_token: Option<String>,
}

async fn list_objects(
    State(ports): State<Ports>,
    Path(bucket): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(response) = other_bucket(&ports, &bucket) {
        return response;
    }
    if query.list_type.as_deref() != Some("2") {
        return s3_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "the local driver lists with ListObjectsV2 (list-type=2) only",
            &bucket,
        );
    }
    let listed = match ports.objects.list(&query.prefix).await {
        Ok(listed) => listed,
        Err(err) => return s3_port_error(&err, &bucket),
    };
    let start: usize = match query.continuation_token.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(start)) => start,
        Some(Err(_)) => {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "the continuation token is not one this endpoint gave",
                &bucket,
            );
        }
    };
    let page = listed.iter().skip(start).take(LIST_PAGE);
    let next = start + LIST_PAGE;
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><MaxKeys>{LIST_PAGE}</MaxKeys><KeyCount>{}</KeyCount><IsTruncated>{}</IsTruncated>",
        escape(&bucket),
        escape(&query.prefix),
        page.clone().count(),
        next < listed.len(),
    );
    if next < listed.len() {
        xml.push_str(&format!(
            "<NextContinuationToken>{next}</NextContinuationToken>"
        ));
    }
    for object in page {
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            escape(&object.key),
            object.size
        ));
    }
    xml.push_str("</ListBucketResult>");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        xml,
    )
        .into_response()
}

async fn get_object(
    State(ports): State<Ports>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = other_bucket(&ports, &bucket) {
        return response;
    }
    // Stops ask for `bytes=N-` (a read resumed at a checkpoint) and `bytes=N-M` (Parquet's
    // footer and row groups; M is the last byte, inclusive).
    let range = headers.get(header::RANGE).map(|value| {
        let (start, end) = value
            .to_str()
            .ok()?
            .strip_prefix("bytes=")?
            .split_once('-')?;
        let start = start.parse::<u64>().ok()?;
        match end {
            "" => Some((start, None)),
            end => Some((
                start,
                Some(end.parse::<u64>().ok()?.checked_sub(start)? + 1),
            )),
        }
    });
    let read = match range {
        None => ports.objects.get_from(&key, 0).await,
        Some(Some((offset, None))) => ports.objects.get_from(&key, offset).await,
        Some(Some((offset, Some(length)))) => ports.objects.get_range(&key, offset, length).await,
        Some(None) => {
            return s3_error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "the local driver serves ranges of the form bytes=N- and bytes=N-M only",
                &key,
            );
        }
    };
    let mut reader = match read {
        Ok(reader) => reader,
        Err(err) => return s3_port_error(&err, &key),
    };
    let mut body = Vec::new();
    if let Err(err) = reader.read_to_end(&mut body).await {
        return s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &err.to_string(),
            &key,
        );
    }
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response()
}

async fn put_object(
    State(ports): State<Ports>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = other_bucket(&ports, &bucket) {
        return response;
    }
    let chunked = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("aws-chunked"));
    if chunked {
        return s3_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "aws-chunked uploads are not served locally: run the function with AWS_REQUEST_CHECKSUM_CALCULATION=when_required (bus env sets it)",
            &key,
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let etag = format!("\"{}\"", md5_hex(&body));
    let only_if_absent = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*");
    let written = if only_if_absent {
        ports
            .objects
            .put_if_absent(&key, Vec::from(body), &content_type)
            .await
    } else {
        ports
            .objects
            .put(&key, Vec::from(body), &content_type)
            .await
            .map(|()| true)
    };
    match written {
        Ok(true) => (StatusCode::OK, [(header::ETAG, etag)], "").into_response(),
        Ok(false) => s3_error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            &key,
        ),
        Err(err) => s3_port_error(&err, &key),
    }
}

fn other_bucket(ports: &Ports, bucket: &str) -> Option<Response> {
    (bucket != ports.objects.bucket()).then(|| {
        s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            &format!("this ride's bucket is {}", ports.objects.bucket()),
            bucket,
        )
    })
}

fn s3_port_error(err: &PortError, resource: &str) -> Response {
    match err {
        PortError::NotFound { .. } => {
            s3_error(StatusCode::NOT_FOUND, "NoSuchKey", &chain(err), resource)
        }
        PortError::Retryable { .. } => s3_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            &chain(err),
            resource,
        ),
        PortError::Permanent { .. } => s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &chain(err),
            resource,
        ),
    }
}

fn s3_error(status: StatusCode, code: &str, message: &str, resource: &str) -> Response {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Resource>{}</Resource></Error>",
        escape(message),
        escape(resource)
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], xml).into_response()
}

/// Text as XML character data.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
