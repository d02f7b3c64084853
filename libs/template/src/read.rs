//! Reads the queues and functions of a template, once, for the route and for the linter.

use crate::resolve::Resolver;
use crate::{TemplateError, parse_document};
use busline_core::route::{QueueSpec, StopSpec};
use serde_yaml_ng::{Mapping, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Where in the template something is wrong, and what.
pub(crate) type Failure = (String, String);

/// Lambda's default function timeout, in seconds.
const DEFAULT_TIMEOUT_S: u64 = 3;

/// The queues and functions of a template, read once for both the route and the linter.
pub(crate) struct Resources {
    pub(crate) queues: Vec<QueueSpec>,
    pub(crate) functions: Vec<Function>,
}

/// Reads every queue and function of template text; `file` names it in errors.
pub(crate) fn read_resources(
    text: &str,
    file: &str,
    parameters: &HashMap<String, String>,
) -> Result<Resources, TemplateError> {
    let document = parse_document(text, file)?;
    let fail = |(path, message): Failure| TemplateError::Route {
        file: file.to_owned(),
        path,
        message,
    };
    let resources = document
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| fail(("Resources".into(), "missing or not a mapping".into())))?;
    let resolver = Resolver::new(&document, parameters).map_err(fail)?;
    let mut queues = Vec::new();
    let mut functions = Vec::new();
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default();
        match resource.get("Type").and_then(Value::as_str) {
            Some("AWS::SQS::Queue") => {
                queues.push(read_queue(&resolver, name, resource).map_err(fail)?)
            }
            Some("AWS::Serverless::Function") => {
                functions.push(read_function(&resolver, &document, name, resource).map_err(fail)?)
            }
            _ => {}
        }
    }
    Ok(Resources { queues, functions })
}

fn read_queue(resolver: &Resolver<'_>, name: &str, resource: &Value) -> Result<QueueSpec, Failure> {
    let at = |field: &str| format!("Resources.{name}.Properties.{field}");
    let properties = resource.get("Properties");
    let seconds = |field: &str, default: u64| -> Result<Duration, Failure> {
        match properties.and_then(|p| p.get(field)) {
            None => Ok(Duration::from_secs(default)),
            Some(value) => resolver.number(value, &at(field)).map(Duration::from_secs),
        }
    };
    let (dead_letter_queue, max_receive_count) =
        match properties.and_then(|p| p.get("RedrivePolicy")) {
            None => (None, None),
            Some(policy) => {
                let target = policy.get("deadLetterTargetArn").ok_or_else(|| {
                    (at("RedrivePolicy"), "has no deadLetterTargetArn".to_owned())
                })?;
                let count = policy
                    .get("maxReceiveCount")
                    .ok_or_else(|| (at("RedrivePolicy"), "has no maxReceiveCount".to_owned()))?;
                (
                    Some(resolver.string(target, &at("RedrivePolicy.deadLetterTargetArn"))?),
                    Some(resolver.number(count, &at("RedrivePolicy.maxReceiveCount"))? as u32),
                )
            }
        };
    Ok(QueueSpec {
        name: name.to_owned(),
        visibility_timeout: seconds("VisibilityTimeout", 30)?,
        retention: seconds("MessageRetentionPeriod", 345_600)?,
        dead_letter_queue,
        max_receive_count,
    })
}

/// The SQS event that feeds a stop.
pub(crate) struct SqsTrigger {
    /// The event's name under `Events`.
    pub(crate) event: String,
    /// `MaximumBatchingWindowInSeconds`.
    pub(crate) batching_window: u64,
    /// Whether `FunctionResponseTypes` has `ReportBatchItemFailures`.
    pub(crate) reports_batch_item_failures: bool,
}

/// One function as the route and the linter see it.
pub(crate) struct Function {
    pub(crate) spec: StopSpec,
    /// `Timeout` (the function's, else Globals', else Lambda's default), in seconds.
    pub(crate) timeout: u64,
    pub(crate) trigger: Option<SqsTrigger>,
    /// The queues (logical ids) its policies let it send to.
    pub(crate) send_targets: HashSet<String>,
}

fn read_function(
    resolver: &Resolver<'_>,
    document: &Value,
    name: &str,
    resource: &Value,
) -> Result<Function, Failure> {
    let properties = resource.get("Properties");
    let kind = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .or_else(|| {
            properties
                .and_then(|p| p.get("CodeUri"))
                .and_then(Value::as_str)
                .and_then(|uri| uri.trim_end_matches('/').rsplit('/').next())
        })
        .ok_or_else(|| {
            (
                format!("Resources.{name}.Metadata.BuildProperties.Binary"),
                "names no binary (set it, or a CodeUri ending in the stop's folder)".to_owned(),
            )
        })?
        .to_owned();

    let mut env = HashMap::new();
    let globals = document.get("Globals").and_then(|g| g.get("Function"));
    for (scope, variables) in [
        (
            "Globals.Function.Environment.Variables".to_owned(),
            globals.and_then(variables_of),
        ),
        (
            format!("Resources.{name}.Properties.Environment.Variables"),
            properties.and_then(variables_of),
        ),
    ] {
        for (key, value) in variables.into_iter().flatten() {
            let key = key.as_str().unwrap_or_default().to_owned();
            let value = resolver.string(value, &format!("{scope}.{key}"))?;
            env.insert(key, value);
        }
    }

    let timeout = match properties
        .and_then(|p| p.get("Timeout"))
        .map(|t| (t, format!("Resources.{name}.Properties.Timeout")))
        .or_else(|| {
            globals
                .and_then(|g| g.get("Timeout"))
                .map(|t| (t, "Globals.Function.Timeout".to_owned()))
        }) {
        Some((value, at)) => resolver.number(value, &at)?,
        None => DEFAULT_TIMEOUT_S,
    };
    let mut queue = None;
    let mut trigger = None;
    let mut batch_size = 10;
    let events = properties
        .and_then(|p| p.get("Events"))
        .and_then(Value::as_mapping);
    for (event_name, event) in events.into_iter().flatten() {
        if event.get("Type").and_then(Value::as_str) != Some("SQS") {
            continue;
        }
        let event_name = event_name.as_str().unwrap_or_default();
        let at = |field: &str| {
            format!("Resources.{name}.Properties.Events.{event_name}.Properties.{field}")
        };
        if queue.is_some() {
            return Err((
                at("Queue"),
                "a stop reads one queue; this is its second SQS event".into(),
            ));
        }
        let event_properties = event.get("Properties");
        let source = event_properties
            .and_then(|p| p.get("Queue"))
            .ok_or_else(|| (at("Queue"), "missing".to_owned()))?;
        queue = Some(resolver.string(source, &at("Queue"))?);
        if let Some(size) = event_properties.and_then(|p| p.get("BatchSize")) {
            batch_size = resolver.number(size, &at("BatchSize"))? as usize;
        }
        let batching_window =
            match event_properties.and_then(|p| p.get("MaximumBatchingWindowInSeconds")) {
                Some(window) => resolver.number(window, &at("MaximumBatchingWindowInSeconds"))?,
                None => 0,
            };
        let reports_batch_item_failures = event_properties
            .and_then(|p| p.get("FunctionResponseTypes"))
            .and_then(Value::as_sequence)
            .is_some_and(|types| {
                types
                    .iter()
                    .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
            });
        trigger = Some(SqsTrigger {
            event: event_name.to_owned(),
            batching_window,
            reports_batch_item_failures,
        });
    }
    // One binary may hold several kinds (a user's repository often builds one): then
    // `STOP_KIND` says which one this function runs.
    let kind = env.get("STOP_KIND").cloned().unwrap_or(kind);
    let stop_name = env
        .get("STOP_NAME")
        .cloned()
        .unwrap_or_else(|| name.to_owned());
    env.entry("STOP_NAME".into())
        .or_insert_with(|| stop_name.clone());
    Ok(Function {
        spec: StopSpec {
            name: stop_name,
            function: name.to_owned(),
            kind,
            queue,
            batch_size,
            timeout: Duration::from_secs(timeout),
            env,
        },
        timeout,
        trigger,
        send_targets: send_targets(resolver, properties),
    })
}

impl Function {
    /// The queue its `NEXT_QUEUE_URL` names (a logical id once resolved), if any.
    pub(crate) fn next_queue(&self) -> Option<&str> {
        self.spec.env.get("NEXT_QUEUE_URL").map(String::as_str)
    }
}

fn variables_of(scope: &Value) -> Option<&Mapping> {
    scope.get("Environment")?.get("Variables")?.as_mapping()
}

/// The queues (logical ids) a function's policies let it send to: SAM's SQSSendMessagePolicy
/// templates and statements allowing sqs:SendMessage on a queue's ARN. A resource that does not
/// resolve to a logical id (an imported ARN, `!Join`) grants nothing here, so the linter reports
/// the permission as missing rather than assuming it.
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
