//! Reads the route from an AWS SAM template, so one file describes the bus locally and on AWS.
//!
//! Queues are `AWS::SQS::Queue` resources; stops are `AWS::Serverless::Function` resources.
//! The depot is the one function without an SQS event; each stop's `NEXT_QUEUE_URL` names the
//! queue of the stop after it. Intrinsic functions are resolved the way the embedded bus needs:
//! a queue's `!Ref` and `!GetAtt .Arn` both become the queue's logical id (its embedded URL),
//! and a parameter's `!Ref` becomes its override or default.

pub mod add_stop;
pub mod lint;
mod read;
mod resolve;

use busline_core::route::{QueueSpec, Route};
use read::{Function, read_resources};
use serde_yaml_ng::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
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
    let resources = read_resources(text, file, parameters)?;
    order_route(&resources.queues, &resources.functions).map_err(|problem| TemplateError::Route {
        file: file.to_owned(),
        path: problem.path,
        message: problem.message,
    })
}

/// Why the functions of a template do not form one route.
#[derive(Debug)]
pub(crate) struct RouteProblem {
    /// The logical id at fault, or `Resources` when no one resource is.
    pub(crate) resource: String,
    /// Where in the template, e.g. `Resources.X.Properties.Events`.
    pub(crate) path: String,
    /// What is wrong.
    pub(crate) message: String,
    /// True when the route loops back to a stop it already passed.
    pub(crate) cycle: bool,
}

impl RouteProblem {
    fn new(resource: &str, path: String, message: String) -> Self {
        RouteProblem {
            resource: resource.to_owned(),
            path,
            message,
            cycle: false,
        }
    }
}

/// Orders the functions into a route: the one depot first, then each stop whose queue the one
/// before names in `NEXT_QUEUE_URL`.
pub(crate) fn order_route(
    queues: &[QueueSpec],
    functions: &[Function],
) -> Result<Route, RouteProblem> {
    let depots: Vec<&Function> = functions
        .iter()
        .filter(|f| f.spec.queue.is_none())
        .collect();
    let depot = match depots.as_slice() {
        [one] => *one,
        [] => {
            return Err(RouteProblem::new(
                "Resources",
                "Resources".into(),
                "no depot: every function has an SQS event, so nothing starts a trip".into(),
            ));
        }
        many => {
            let names: Vec<&str> = many.iter().map(|f| f.spec.function.as_str()).collect();
            return Err(RouteProblem::new(
                "Resources",
                "Resources".into(),
                format!(
                    "more than one function has no SQS event ({}); a route has one depot",
                    names.join(", ")
                ),
            ));
        }
    };
    for function in functions {
        if let Some(queue) = &function.spec.queue
            && !queues.iter().any(|q| &q.name == queue)
        {
            return Err(RouteProblem::new(
                &function.spec.function,
                format!("Resources.{}.Properties.Events", function.spec.function),
                format!("reads {queue}, which is not an AWS::SQS::Queue of this template"),
            ));
        }
    }
    let mut stops = vec![depot.spec.clone()];
    let mut seen: HashSet<&str> = HashSet::from([depot.spec.function.as_str()]);
    let mut next = depot.next_queue();
    while let Some(queue) = next {
        let sender = stops.last().map(|s| s.function.clone()).unwrap_or_default();
        let at = format!("Resources.{sender}.Properties.Environment.Variables.NEXT_QUEUE_URL");
        let reader = functions
            .iter()
            .find(|f| f.spec.queue.as_deref() == Some(queue))
            .ok_or_else(|| {
                RouteProblem::new(&sender, at.clone(), format!("no function reads {queue}"))
            })?;
        if !seen.insert(reader.spec.function.as_str()) {
            return Err(RouteProblem {
                cycle: true,
                ..RouteProblem::new(
                    &sender,
                    at,
                    format!("the route loops back to {}", reader.spec.function),
                )
            });
        }
        stops.push(reader.spec.clone());
        next = reader.next_queue();
    }
    if let Some(stray) = functions
        .iter()
        .find(|f| !seen.contains(f.spec.function.as_str()))
    {
        return Err(RouteProblem::new(
            &stray.spec.function,
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
        queues: queues.to_vec(),
        stops,
    })
}

#[cfg(test)]
mod tests;
