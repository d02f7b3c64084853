//! A whole dead-letter queue back to its stop's queue with SQS's own message move task
//! (`StartMessageMoveTask`): SQS moves the messages server-side, attributes and all, at its
//! own pace. Endpoints without it (MiniStack) say so, and the caller moves them itself.

use crate::OpsError;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use busline_aws::error::classify;
use std::time::Duration;

/// How often the task's progress is read.
const POLL: Duration = Duration::from_secs(1);

/// Moves every message of `from` to `to` and waits for the task to end: the messages moved,
/// or None when the endpoint has no move tasks.
pub(crate) async fn move_all(sqs: &Client, from: &str, to: &str) -> Result<Option<u64>, OpsError> {
    let source = queue_arn(sqs, from).await?;
    let destination = queue_arn(sqs, to).await?;
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .send()
        .await;
    let handle = match started {
        Ok(out) => out.task_handle().unwrap_or_default().to_owned(),
        Err(err) if err.code() == Some("InvalidAction") => return Ok(None),
        Err(err) => return Err(classify(err, from).into()),
    };
    loop {
        let listed = sqs
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(10)
            .send()
            .await
            .map_err(|err| classify(err, from))?;
        let task = listed
            .results()
            .iter()
            .find(|t| t.task_handle().is_none_or(|h| h == handle));
        match task.and_then(|t| t.status()) {
            Some("COMPLETED") => {
                let moved = task.map_or(0, |t| t.approximate_number_of_messages_moved());
                return Ok(Some(moved.max(0) as u64));
            }
            Some(status @ ("FAILED" | "CANCELLED")) => {
                let why = task.and_then(|t| t.failure_reason()).unwrap_or(status);
                return Err(OpsError::MoveTask {
                    queue: from.to_owned(),
                    reason: why.to_owned(),
                });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

async fn queue_arn(sqs: &Client, url: &str) -> Result<String, OpsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|err| classify(err, url))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default())
}
