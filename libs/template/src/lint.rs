//! `bus lint`: the route rules cfn-lint cannot know, each finding naming the resource.

use crate::resolve::Resolver;
use crate::{TemplateError, parse_document, parse_route};
use serde::Serialize;
use serde_yaml_ng::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The logical id of the resource at fault.
    pub resource: String,
    /// The rule's short name.
    pub rule: &'static str,
    /// What is wrong, with the numbers involved.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: [{}] {}", self.resource, self.rule, self.message)
    }
}

/// Lambda's default function timeout, in seconds.
const DEFAULT_TIMEOUT_S: u64 = 3;
/// SQS's default retention, in seconds (4 days).
const DEFAULT_RETENTION_S: u64 = 345_600;
/// SQS's default visibility timeout, in seconds.
const DEFAULT_VISIBILITY_S: u64 = 30;

/// Checks the route rules of template text; `file` names it in a YAML error.
pub fn lint(
    text: &str,
    file: &str,
    parameters: &HashMap<String, String>,
) -> Result<Vec<Finding>, TemplateError> {
    let document = parse_document(text, file)?;
    let resolver =
        Resolver::new(&document, parameters).map_err(|(path, message)| TemplateError::Route {
            file: file.to_owned(),
            path,
            message,
        })?;
    let resources = document
        .get("Resources")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    let mut findings = Vec::new();
    let mut finding = |resource: &str, rule: &'static str, message: String| {
        findings.push(Finding {
            resource: resource.to_owned(),
            rule,
            message,
        });
    };

    // The route itself: one depot, NEXT_QUEUE_URL chains, no cycle, no stray function.
    if let Err(TemplateError::Route { path, message, .. }) = parse_route(text, file, parameters) {
        let resource = path
            .strip_prefix("Resources.")
            .unwrap_or(&path)
            .split('.')
            .next()
            .unwrap_or("Resources")
            .to_owned();
        let rule = if message.contains("loops back") {
            "no-cycle"
        } else {
            "route"
        };
        finding(&resource, rule, format!("{path}: {message}"));
    }

    let globals = document.get("Globals").and_then(|g| g.get("Function"));
    let queue_property = |queue: &str, property: &str, default: u64| -> u64 {
        resources
            .get(queue)
            .and_then(|q| q.get("Properties"))
            .and_then(|p| p.get(property))
            .and_then(|v| resolver.number(v, property).ok())
            .unwrap_or(default)
    };
    for (name, resource) in &resources {
        let Some(function) = name.as_str() else {
            continue;
        };
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let properties = resource.get("Properties");
        let number = |key: &str, default: u64| -> u64 {
            properties
                .and_then(|p| p.get(key))
                .or_else(|| globals.and_then(|g| g.get(key)))
                .and_then(|v| resolver.number(v, key).ok())
                .unwrap_or(default)
        };
        let timeout = number("Timeout", DEFAULT_TIMEOUT_S);
        let env = environment(&resolver, globals, properties);
        let may_send = send_targets(&resolver, properties);

        for (variable, value) in &env {
            if !matches!(
                variable.as_str(),
                "NEXT_QUEUE_URL" | "DEAD_LETTER_QUEUE_URL" | "QUARANTINE_QUEUE_URL"
            ) {
                continue;
            }
            if !may_send.contains(value) {
                finding(
                    function,
                    "send-permission",
                    format!(
                        "{variable} is {value}, but no policy of {function} allows sqs:SendMessage to it"
                    ),
                );
            }
        }

        let events = properties
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping);
        for (event_name, event) in events.into_iter().flatten() {
            if event.get("Type").and_then(Value::as_str) != Some("SQS") {
                continue;
            }
            let event_name = event_name.as_str().unwrap_or_default();
            let event_properties = event.get("Properties");
            let Some(queue) = event_properties
                .and_then(|p| p.get("Queue"))
                .and_then(|q| resolver.string(q, "Queue").ok())
            else {
                continue;
            };
            let reports = event_properties
                .and_then(|p| p.get("FunctionResponseTypes"))
                .and_then(Value::as_sequence)
                .is_some_and(|types| {
                    types
                        .iter()
                        .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                });
            if !reports {
                finding(
                    function,
                    "partial-batch",
                    format!(
                        "SQS event {event_name} lacks FunctionResponseTypes: [ReportBatchItemFailures]; one bad bus would fail its whole batch"
                    ),
                );
            }
            let window = event_properties
                .and_then(|p| p.get("MaximumBatchingWindowInSeconds"))
                .and_then(|v| resolver.number(v, "MaximumBatchingWindowInSeconds").ok())
                .unwrap_or(0);
            let visibility = queue_property(&queue, "VisibilityTimeout", DEFAULT_VISIBILITY_S);
            let needed = 6 * timeout + window;
            if visibility < needed {
                finding(
                    &queue,
                    "visibility-timeout",
                    format!(
                        "visibility timeout {visibility} s is less than 6 x {function} timeout {timeout} s + batching window {window} s = {needed} s"
                    ),
                );
            }
            let redrive = resources
                .get(queue.as_str())
                .and_then(|q| q.get("Properties"))
                .and_then(|p| p.get("RedrivePolicy"));
            let Some(redrive) = redrive else {
                finding(
                    &queue,
                    "dead-letter",
                    format!(
                        "read by {function} but has no RedrivePolicy: a bus that keeps failing would be retried until it expires"
                    ),
                );
                continue;
            };
            let max_receive = redrive
                .get("maxReceiveCount")
                .and_then(|v| resolver.number(v, "maxReceiveCount").ok());
            if let (Some(max_receive), Some(env_count)) =
                (max_receive, env.get("MAX_RECEIVE_COUNT"))
                && env_count.parse::<u64>().ok() != Some(max_receive)
            {
                finding(
                    function,
                    "max-receive-count",
                    format!(
                        "MAX_RECEIVE_COUNT is {env_count} but {queue} redrives after {max_receive} receives: the stop would not dead-letter with its reason"
                    ),
                );
            }
            if let Some(dlq) = redrive
                .get("deadLetterTargetArn")
                .and_then(|v| resolver.string(v, "deadLetterTargetArn").ok())
            {
                let source = queue_property(&queue, "MessageRetentionPeriod", DEFAULT_RETENTION_S);
                let kept = queue_property(&dlq, "MessageRetentionPeriod", DEFAULT_RETENTION_S);
                if kept <= source {
                    finding(
                        &dlq,
                        "dead-letter-retention",
                        format!(
                            "keeps messages {kept} s, not longer than its source {queue} ({source} s): a dead letter could expire before anyone reads it"
                        ),
                    );
                }
            }
        }
    }
    findings.sort_by(|a, b| (&a.resource, a.rule).cmp(&(&b.resource, b.rule)));
    findings.dedup();
    Ok(findings)
}

/// A function's environment variables (Globals merged), intrinsic functions resolved.
fn environment(
    resolver: &Resolver<'_>,
    globals: Option<&Value>,
    properties: Option<&Value>,
) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for scope in [globals, properties].into_iter().flatten() {
        let variables = scope
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping);
        for (key, value) in variables.into_iter().flatten() {
            if let (Some(key), Ok(value)) = (key.as_str(), resolver.string(value, "Environment")) {
                env.insert(key.to_owned(), value);
            }
        }
    }
    env
}

/// The queues (logical ids) a function's policies let it send to: SAM's SQSSendMessagePolicy
/// templates and statements allowing sqs:SendMessage on a queue's ARN.
fn send_targets(resolver: &Resolver<'_>, properties: Option<&Value>) -> HashSet<String> {
    let mut targets = HashSet::new();
    let policies = properties
        .and_then(|p| p.get("Policies"))
        .and_then(Value::as_sequence);
    for policy in policies.into_iter().flatten() {
        if let Some(queue) = policy
            .get("SQSSendMessagePolicy")
            .and_then(|p| p.get("QueueName"))
        {
            targets.extend(resolver.string(queue, "QueueName").ok());
        }
        let statements = policy.get("Statement").and_then(Value::as_sequence);
        for statement in statements.into_iter().flatten() {
            let allows = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
            let actions: Vec<&str> = match statement.get("Action") {
                Some(Value::String(action)) => vec![action.as_str()],
                Some(Value::Sequence(actions)) => {
                    actions.iter().filter_map(Value::as_str).collect()
                }
                _ => Vec::new(),
            };
            if !allows
                || !actions
                    .iter()
                    .any(|a| matches!(*a, "sqs:SendMessage" | "sqs:*"))
            {
                continue;
            }
            let resources: Vec<&Value> = match statement.get("Resource") {
                Some(Value::Sequence(items)) => items.iter().collect(),
                Some(one) => vec![one],
                None => Vec::new(),
            };
            targets.extend(
                resources
                    .into_iter()
                    .filter_map(|r| resolver.string(r, "Resource").ok()),
            );
        }
    }
    targets
}
