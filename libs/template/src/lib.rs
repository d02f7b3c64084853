//! Reads the route from an AWS SAM template, so one file describes the bus locally and on AWS.
//!
//! Queues are `AWS::SQS::Queue` resources; stops are `AWS::Serverless::Function` resources.
//! The depot is the one function without an SQS event; each stop's lanes (`NEXT_QUEUE_URL`,
//! `LANE_<NAME>_QUEUE_URL`) name the queues of the stops after it. Intrinsic functions are resolved the way the embedded bus needs:
//! a queue's `!Ref` and `!GetAtt .Arn` both become the queue's logical id (its embedded URL),
//! and a parameter's `!Ref` becomes its override or default.

pub mod add_stop;
pub mod lint;
mod read;
mod resolve;

use busline_core::route::{QueueSpec, Route};
use read::{Function, read_resources};
use serde_yaml_ng::Value;
use std::collections::HashMap;
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

/// Orders the functions into a route: the one depot first, then every stop after all the stops
/// whose lanes (`NEXT_QUEUE_URL`, `LANE_<NAME>_QUEUE_URL`) lead to its queue. Every lane must
/// lead to a queue some function reads, the lanes must not loop, and every function must be
/// reached from the depot.
pub(crate) fn order_route(
    queues: &[QueueSpec],
    functions: &[Function],
) -> Result<Route, RouteProblem> {
    let depot = the_depot(functions)?;
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
    let graph = lane_graph(functions)?;
    let mut walk = Walk {
        graph: &graph,
        functions,
        state: vec![Visit::New; functions.len()],
    };
    walk.visit(depot)?;
    if let Some(stray) = (0..functions.len()).find(|&i| walk.state[i] == Visit::New) {
        let name = &functions[stray].spec.function;
        return Err(RouteProblem::new(
            name,
            format!("Resources.{name}"),
            "is not on the route: no stop's lane (NEXT_QUEUE_URL or LANE_<NAME>_QUEUE_URL) leads to its queue".into(),
        ));
    }
    let name = functions[depot]
        .spec
        .env
        .get("ROUTE_NAME")
        .cloned()
        .unwrap_or_else(|| "route".into());
    Ok(Route {
        name,
        queues: queues.to_vec(),
        stops: riding_order(&graph, depot)
            .into_iter()
            .map(|i| functions[i].spec.clone())
            .collect(),
    })
}

/// The index of the one function without an SQS event.
fn the_depot(functions: &[Function]) -> Result<usize, RouteProblem> {
    let depots: Vec<usize> = (0..functions.len())
        .filter(|&i| functions[i].spec.queue.is_none())
        .collect();
    match depots.as_slice() {
        [one] => Ok(*one),
        [] => Err(RouteProblem::new(
            "Resources",
            "Resources".into(),
            "no depot: every function has an SQS event, so nothing starts a trip".into(),
        )),
        many => {
            let names: Vec<&str> = many
                .iter()
                .map(|&i| functions[i].spec.function.as_str())
                .collect();
            Err(RouteProblem::new(
                "Resources",
                "Resources".into(),
                format!(
                    "more than one function has no SQS event ({}); a route has one depot",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// One lane of a stop: where in the template it is declared, and the function it leads to.
struct LaneEdge {
    path: String,
    to: usize,
}

/// Each function's lanes, each leading to the function that reads its queue.
fn lane_graph(functions: &[Function]) -> Result<Vec<Vec<LaneEdge>>, RouteProblem> {
    functions
        .iter()
        .map(|function| {
            let sender = &function.spec.function;
            function
                .spec
                .lanes()
                .into_iter()
                .map(|(lane, queue)| {
                    let path = format!(
                        "Resources.{sender}.Properties.Environment.Variables.{}",
                        busline_core::config::lane_variable(&lane)
                    );
                    let to = functions
                        .iter()
                        .position(|f| f.spec.queue.as_deref() == Some(queue))
                        .ok_or_else(|| {
                            let on = if lane == busline_core::config::NEXT_LANE {
                                String::new()
                            } else {
                                format!(" (lane {lane})")
                            };
                            RouteProblem::new(
                                sender,
                                path.clone(),
                                format!("no function reads {queue}{on}"),
                            )
                        })?;
                    Ok(LaneEdge { path, to })
                })
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnPath,
    Done,
}

/// A depth-first walk of the lanes from the depot that refuses a loop.
struct Walk<'a> {
    graph: &'a [Vec<LaneEdge>],
    functions: &'a [Function],
    state: Vec<Visit>,
}

impl Walk<'_> {
    fn visit(&mut self, at: usize) -> Result<(), RouteProblem> {
        self.state[at] = Visit::OnPath;
        for edge in &self.graph[at] {
            match self.state[edge.to] {
                Visit::New => self.visit(edge.to)?,
                Visit::OnPath => {
                    return Err(RouteProblem {
                        cycle: true,
                        ..RouteProblem::new(
                            &self.functions[at].spec.function,
                            edge.path.clone(),
                            format!(
                                "the route loops back to {}",
                                self.functions[edge.to].spec.function
                            ),
                        )
                    });
                }
                Visit::Done => {}
            }
        }
        self.state[at] = Visit::Done;
        Ok(())
    }
}

/// The stops from `depot` on, each after every stop that sends to it (Kahn's order, lanes in
/// their order): a line stays in line order, a fan-out lists `next` before the named lanes.
fn riding_order(graph: &[Vec<LaneEdge>], depot: usize) -> Vec<usize> {
    let mut waiting_on = vec![0usize; graph.len()];
    for edges in graph {
        for edge in edges {
            waiting_on[edge.to] += 1;
        }
    }
    let mut order = Vec::with_capacity(graph.len());
    let mut ready = std::collections::VecDeque::from([depot]);
    while let Some(at) = ready.pop_front() {
        order.push(at);
        for edge in &graph[at] {
            waiting_on[edge.to] -= 1;
            if waiting_on[edge.to] == 0 {
                ready.push_back(edge.to);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests;
