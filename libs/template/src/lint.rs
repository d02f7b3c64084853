//! `bus lint`: the route rules cfn-lint cannot know, each finding naming the resource.

use crate::read::read_resources;
use crate::{TemplateError, order_route};
use busline_core::config::lane_variable;
use serde::Serialize;
use std::collections::HashMap;
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

/// Checks the route rules of template text; `file` names it in errors. A template that cannot
/// be read at all (bad YAML, an unresolvable reference) is an error, not a finding.
pub fn lint(
    text: &str,
    file: &str,
    parameters: &HashMap<String, String>,
) -> Result<Vec<Finding>, TemplateError> {
    let resources = read_resources(text, file, parameters)?;
    let mut findings = Vec::new();
    let mut finding = |resource: &str, rule: &'static str, message: String| {
        findings.push(Finding {
            resource: resource.to_owned(),
            rule,
            message,
        });
    };

    // The route itself: one depot, every lane read by a function, no cycle, no stray function.
    if let Err(problem) = order_route(&resources.queues, &resources.functions) {
        let rule = if problem.cycle { "no-cycle" } else { "route" };
        finding(
            &problem.resource,
            rule,
            format!("{}: {}", problem.path, problem.message),
        );
    }

    let queue = |name: &str| resources.queues.iter().find(|q| q.name == name);
    for function in &resources.functions {
        let name = function.spec.function.as_str();
        let env = &function.spec.env;
        let lanes = function
            .spec
            .lanes()
            .into_iter()
            .map(|(lane, _)| (lane_variable(&lane), true));
        if env.contains_key("QUARANTINE_QUEUE_URL") {
            finding(
                name,
                "quarantine",
                "QUARANTINE_QUEUE_URL is not read any more: rejected passengers are written to the \
                 data bucket under QUARANTINE_PREFIX (quarantine/); remove the variable and its \
                 queue, and allow s3:PutObject on the prefix"
                    .to_owned(),
            );
        }
        let fixed = ["DEAD_LETTER_QUEUE_URL"].map(|v| (v.to_owned(), false));
        for (variable, is_lane) in lanes.chain(fixed) {
            let Some(value) = env.get(&variable) else {
                continue;
            };
            if is_lane && queue(value).is_none() {
                finding(
                    name,
                    "lane",
                    format!(
                        "{variable} is {value}, which is not an AWS::SQS::Queue of this template"
                    ),
                );
            }
            if !function.send_targets.contains(value) {
                finding(
                    name,
                    "send-permission",
                    format!(
                        "{variable} is {value}, but no policy of {name} allows sqs:SendMessage to it"
                    ),
                );
            }
        }

        let (Some(trigger), Some(read)) = (&function.trigger, function.spec.queue.as_deref())
        else {
            continue;
        };
        if !trigger.reports_batch_item_failures {
            finding(
                name,
                "partial-batch",
                format!(
                    "SQS event {} lacks FunctionResponseTypes: [ReportBatchItemFailures]; one bad bus would fail its whole batch",
                    trigger.event
                ),
            );
        }
        if let Some(own) = env.get("QUEUE_URL")
            && own != read
        {
            finding(
                name,
                "queue-url",
                format!(
                    "QUEUE_URL is {own} but {name} reads {read}: buses could not be handed back or backed off"
                ),
            );
        }
        // A trigger on a queue the template lacks is a route finding already.
        let Some(source) = queue(read) else { continue };
        let visibility = source.visibility_timeout.as_secs();
        let needed = 6 * function.timeout + trigger.batching_window;
        if visibility < needed {
            finding(
                read,
                "visibility-timeout",
                format!(
                    "visibility timeout {visibility} s is less than 6 x {name} timeout {} s + batching window {} s = {needed} s",
                    function.timeout, trigger.batching_window
                ),
            );
        }
        let Some(dead_letter) = source.dead_letter_queue.as_deref() else {
            finding(
                read,
                "dead-letter",
                format!(
                    "read by {name} but has no RedrivePolicy: a bus that keeps failing would be retried until it expires"
                ),
            );
            continue;
        };
        if let (Some(max_receive), Some(env_count)) =
            (source.max_receive_count, env.get("MAX_RECEIVE_COUNT"))
            && env_count.parse::<u32>().ok() != Some(max_receive)
        {
            finding(
                name,
                "max-receive-count",
                format!(
                    "MAX_RECEIVE_COUNT is {env_count} but {read} redrives after {max_receive} receives: the stop would not dead-letter with its reason"
                ),
            );
        }
        if let Some(dlq) = queue(dead_letter) {
            let (kept, source_kept) = (dlq.retention.as_secs(), source.retention.as_secs());
            if kept <= source_kept {
                finding(
                    dead_letter,
                    "dead-letter-retention",
                    format!(
                        "keeps messages {kept} s, not longer than its source {read} ({source_kept} s): a dead letter could expire before anyone reads it"
                    ),
                );
            }
        }
    }
    findings.sort_by(|a, b| (&a.resource, a.rule).cmp(&(&b.resource, b.rule)));
    findings.dedup();
    Ok(findings)
}
