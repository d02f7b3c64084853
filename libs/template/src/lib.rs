//! Reads the route from an AWS SAM template, so one file describes the bus locally and on AWS.
//!
//! Queues are `AWS::SQS::Queue` resources; stops are `AWS::Serverless::Function` resources.
//! The depot is the one function without an SQS event; each stop's `NEXT_QUEUE_URL` names the
//! queue of the stop after it. Intrinsic functions are resolved the way the embedded bus needs:
//! a queue's `!Ref` and `!GetAtt .Arn` both become the queue's logical id (its embedded URL),
//! and a parameter's `!Ref` becomes its override or default.

pub mod lint;
mod resolve;

use busline_core::route::{QueueSpec, Route, StopSpec};
use resolve::Resolver;
use serde_yaml_ng::{Mapping, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// A template that cannot be read as a route, naming the file and the resource at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("{file}: {message}")]
    Io {
        /// The template's path.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// The file is not valid YAML.
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        /// The template's path.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The template is valid YAML but not a route busline can run.
    #[error("{file}: {path}: {message}")]
    Route {
        /// The template's path.
        file: String,
        /// Where in the template, e.g. `Resources.TransformQueue.Properties.VisibilityTimeout`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads the route from the template at `path`; `parameters` override parameter defaults.
pub fn read_route(
    path: &Path,
    parameters: &HashMap<String, String>,
) -> Result<Route, TemplateError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| TemplateError::Io {
        file: file.clone(),
        message: match err.kind() {
            std::io::ErrorKind::NotFound => {
                "template not found (pass --template, or run from the project folder)".into()
            }
            _ => err.to_string(),
        },
    })?;
    parse_route(&text, &file, parameters)
}

/// Parses template text as YAML; the error names the file, line and column.
pub(crate) fn parse_document(text: &str, file: &str) -> Result<Value, TemplateError> {
    serde_yaml_ng::from_str(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        TemplateError::Yaml {
            file: file.to_owned(),
            line,
            column,
            message: err.to_string(),
        }
    })
}

/// Reads the route from template text; `file` names it in errors.
pub fn parse_route(
    text: &str,
    file: &str,
    parameters: &HashMap<String, String>,
) -> Result<Route, TemplateError> {
    let document = parse_document(text, file)?;
    let fail = |path: String, message: String| TemplateError::Route {
        file: file.to_owned(),
        path,
        message,
    };
    let resources = document
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| fail("Resources".into(), "missing or not a mapping".into()))?;
    let resolver =
        Resolver::new(&document, parameters).map_err(|(path, message)| fail(path, message))?;

    let mut queues = Vec::new();
    let mut functions = Vec::new();
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default().to_owned();
        match resource.get("Type").and_then(Value::as_str) {
            Some("AWS::SQS::Queue") => {
                queues.push(read_queue(&resolver, &name, resource).map_err(|(p, m)| fail(p, m))?)
            }
            Some("AWS::Serverless::Function") => functions.push(
                read_function(&resolver, &document, &name, resource)
                    .map_err(|(p, m)| fail(p, m))?,
            ),
            _ => {}
        }
    }
    order_route(queues, functions).map_err(|(p, m)| fail(p, m))
}

type Failure = (String, String);

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

struct Function {
    spec: StopSpec,
    next_queue: Option<String>,
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

    let mut queue = None;
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
    }
    let next_queue = env.get("NEXT_QUEUE_URL").cloned();
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
            env,
        },
        next_queue,
    })
}

fn variables_of(scope: &Value) -> Option<&Mapping> {
    scope.get("Environment")?.get("Variables")?.as_mapping()
}

fn order_route(queues: Vec<QueueSpec>, functions: Vec<Function>) -> Result<Route, Failure> {
    let depots: Vec<&Function> = functions
        .iter()
        .filter(|f| f.spec.queue.is_none())
        .collect();
    let depot = match depots.as_slice() {
        [one] => *one,
        [] => {
            return Err((
                "Resources".into(),
                "no depot: every function has an SQS event, so nothing starts a trip".into(),
            ));
        }
        many => {
            let names: Vec<&str> = many.iter().map(|f| f.spec.function.as_str()).collect();
            return Err((
                "Resources".into(),
                format!(
                    "more than one function has no SQS event ({}); a route has one depot",
                    names.join(", ")
                ),
            ));
        }
    };
    for function in &functions {
        if let Some(queue) = &function.spec.queue
            && !queues.iter().any(|q| &q.name == queue)
        {
            return Err((
                format!("Resources.{}.Properties.Events", function.spec.function),
                format!("reads {queue}, which is not an AWS::SQS::Queue of this template"),
            ));
        }
    }
    let mut stops = vec![depot.spec.clone()];
    let mut seen: HashSet<&str> = HashSet::from([depot.spec.function.as_str()]);
    let mut next = depot.next_queue.clone();
    while let Some(queue) = next {
        let at = format!(
            "Resources.{}.Properties.Environment.Variables.NEXT_QUEUE_URL",
            stops
                .last()
                .map(|s| s.function.as_str())
                .unwrap_or_default()
        );
        let reader = functions
            .iter()
            .find(|f| f.spec.queue.as_deref() == Some(queue.as_str()))
            .ok_or_else(|| (at.clone(), format!("no function reads {queue}")))?;
        if !seen.insert(reader.spec.function.as_str()) {
            return Err((
                at,
                format!("the route loops back to {}", reader.spec.function),
            ));
        }
        stops.push(reader.spec.clone());
        next = reader.next_queue.clone();
    }
    if let Some(stray) = functions
        .iter()
        .find(|f| !seen.contains(f.spec.function.as_str()))
    {
        return Err((
            format!("Resources.{}", stray.spec.function),
            "is not on the route: no stop's NEXT_QUEUE_URL leads to its queue".into(),
        ));
    }
    let name = depot
        .spec
        .env
        .get("ROUTE_NAME")
        .cloned()
        .unwrap_or_else(|| "route".into());
    Ok(Route {
        name,
        queues,
        stops,
    })
}

#[cfg(test)]
mod tests;
