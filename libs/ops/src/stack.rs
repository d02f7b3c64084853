//! Which queues, function and alarms a deployed stack gave each stop of the template's route:
//! the template's logical ids, looked up in the stack's resources.

use crate::OpsError;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use busline_aws::error::classify;
use busline_core::config::DEFAULT_QUARANTINE_PREFIX;
use busline_core::route::Route;
use serde::Serialize;
use std::collections::HashMap;

/// One stop as deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedStop {
    /// The stop's name (its `STOP_NAME`).
    pub stop: String,
    /// Its function's name.
    pub function: String,
    /// The URL of the queue it reads (none for the depot).
    pub queue: Option<String>,
    /// The URL of its queue's dead-letter queue.
    pub dead_letter_queue: Option<String>,
}

/// A stack deployed from the route's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedRoute {
    /// The stack's name.
    pub stack: String,
    /// The route's name (its metrics' `Route` dimension).
    pub route: String,
    /// Its stops in riding order.
    pub stops: Vec<DeployedStop>,
    /// Its CloudWatch alarms.
    pub alarms: Vec<DeployedAlarm>,
    /// Its data bucket (the stops' `DATA_BUCKET`), when it has one.
    pub bucket: Option<String>,
    /// The key prefix of its quarantine files (the stops' `QUARANTINE_PREFIX`).
    pub quarantine_prefix: String,
}

/// One CloudWatch alarm of the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedAlarm {
    /// Its name.
    pub name: String,
    /// The stop it watches: the one whose function's logical id, less `Function`, begins the
    /// alarm's (`TransformDeadLetterAlarm` watches `TransformFunction`'s stop).
    pub stop: Option<String>,
}

/// The stack's resources: logical id to (type, physical id).
type Resources = HashMap<String, (String, String)>;

impl DeployedRoute {
    /// Looks up every stop of `route` in the resources of `stack`; the error names the stack
    /// and the first logical id it lacks.
    pub async fn resolve(
        cloudformation: &Client,
        stack: &str,
        route: &Route,
    ) -> Result<Self, OpsError> {
        let resources = stack_resources(cloudformation, stack).await?;
        let stops = route
            .stops
            .iter()
            .map(|spec| {
                let find = |logical: &str, what: String| physical(&resources, stack, logical, what);
                let dead_letter_queue = spec
                    .queue
                    .as_deref()
                    .and_then(|queue| route.queue(queue)?.dead_letter_queue.as_deref());
                Ok(DeployedStop {
                    stop: spec.name.clone(),
                    function: find(
                        &spec.function,
                        format!("the function of stop {}", spec.name),
                    )?,
                    queue: spec
                        .queue
                        .as_deref()
                        .map(|q| find(q, format!("the queue of stop {}", spec.name)))
                        .transpose()?,
                    dead_letter_queue: dead_letter_queue
                        .map(|q| find(q, format!("the dead-letter queue of stop {}", spec.name)))
                        .transpose()?,
                })
            })
            .collect::<Result<_, OpsError>>()?;
        let mut alarms: Vec<DeployedAlarm> = resources
            .iter()
            .filter(|(_, (kind, _))| kind == "AWS::CloudWatch::Alarm")
            .map(|(logical, (_, name))| DeployedAlarm {
                name: name.clone(),
                stop: watched_stop(route, logical),
            })
            .collect();
        alarms.sort_by(|a, b| a.name.cmp(&b.name));
        let setting = |name: &str| route.stops.iter().find_map(|s| s.env.get(name));
        Ok(DeployedRoute {
            stack: stack.to_owned(),
            route: route.name.clone(),
            stops,
            alarms,
            bucket: setting("DATA_BUCKET")
                .map(|logical| resources.get(logical).map_or(logical, |(_, id)| id).clone()),
            quarantine_prefix: setting("QUARANTINE_PREFIX")
                .cloned()
                .unwrap_or_else(|| DEFAULT_QUARANTINE_PREFIX.to_owned()),
        })
    }

    /// The stop named `name`; the error lists the stops there are.
    pub fn stop(&self, name: &str) -> Result<&DeployedStop, OpsError> {
        self.stops
            .iter()
            .find(|s| s.stop == name)
            .ok_or_else(|| OpsError::UnknownStop {
                stop: name.to_owned(),
                stops: self
                    .stops
                    .iter()
                    .map(|s| s.stop.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl DeployedStop {
    /// The dead-letter queue's URL; the error names the stop that has none.
    pub fn dead_letter_queue(&self) -> Result<&str, OpsError> {
        self.redrive_queues().map(|(dead_letters, _)| dead_letters)
    }

    /// The dead-letter queue's URL and the URL of the queue a redrive sends back to.
    pub fn redrive_queues(&self) -> Result<(&str, &str), OpsError> {
        match (&self.dead_letter_queue, &self.queue) {
            (Some(dead_letters), Some(queue)) => Ok((dead_letters, queue)),
            _ => Err(OpsError::NoDeadLetterQueue {
                stop: self.stop.clone(),
            }),
        }
    }
}

/// The stop whose function's logical id stem is the longest that begins `alarm`'s.
fn watched_stop(route: &Route, alarm: &str) -> Option<String> {
    route
        .stops
        .iter()
        .map(|s| {
            (
                s,
                s.function.strip_suffix("Function").unwrap_or(&s.function),
            )
        })
        .filter(|(_, stem)| alarm.starts_with(stem))
        .max_by_key(|(_, stem)| stem.len())
        .map(|(s, _)| s.name.clone())
}

/// The stack's parameter values as deployed (those CloudFormation hides, `NoEcho`, left out),
/// so that the template reads as the route that runs.
pub async fn stack_parameters(
    cloudformation: &Client,
    stack: &str,
) -> Result<HashMap<String, String>, OpsError> {
    let out = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|err| match err.message() {
            Some(text) if text.contains("does not exist") => OpsError::MissingStack {
                stack: stack.to_owned(),
            },
            _ => classify(err, &format!("stack {stack}")).into(),
        })?;
    let Some(described) = out.stacks().first() else {
        return Err(OpsError::MissingStack {
            stack: stack.to_owned(),
        });
    };
    Ok(described
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value()?.to_owned(),
            ))
        })
        .filter(|(_, value)| value != "****")
        .collect())
}

fn physical(
    resources: &Resources,
    stack: &str,
    logical: &str,
    what: String,
) -> Result<String, OpsError> {
    resources
        .get(logical)
        .map(|(_, id)| id.clone())
        .ok_or_else(|| OpsError::MissingResource {
            stack: stack.to_owned(),
            logical_id: logical.to_owned(),
            what,
        })
}

async fn stack_resources(cloudformation: &Client, stack: &str) -> Result<Resources, OpsError> {
    let mut pages = cloudformation
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut resources = Resources::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| classify(err, &format!("stack {stack}")))?;
        for summary in page.stack_resource_summaries() {
            let (Some(logical), Some(id)) = (
                summary.logical_resource_id(),
                summary.physical_resource_id(),
            ) else {
                continue;
            };
            resources.insert(
                logical.to_owned(),
                (
                    summary.resource_type().unwrap_or_default().to_owned(),
                    id.to_owned(),
                ),
            );
        }
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use busline_core::route::{Route, StopSpec};
    use std::collections::HashMap;
    use std::time::Duration;

    fn stop(name: &str, function: &str) -> StopSpec {
        StopSpec {
            name: name.into(),
            function: function.into(),
            kind: name.into(),
            queue: None,
            batch_size: 10,
            timeout: Duration::from_secs(3),
            env: HashMap::new(),
        }
    }

    #[test]
    fn an_alarm_watches_the_stop_with_the_longest_function_stem_it_begins_with() {
        let route = Route {
            name: "r".into(),
            queues: vec![],
            stops: vec![
                stop("load", "LoadFunction"),
                stop("load-audit", "LoadAuditFunction"),
            ],
        };
        let watched = |alarm| super::watched_stop(&route, alarm);
        assert_eq!(watched("LoadDeadLetterAlarm").as_deref(), Some("load"));
        assert_eq!(watched("LoadAuditAgeAlarm").as_deref(), Some("load-audit"));
        assert_eq!(watched("ApiErrorsAlarm"), None);
    }
}
