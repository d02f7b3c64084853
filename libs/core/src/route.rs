//! A route as described by the template: its queues and its stops in order. Read by the CLI
//! (from `template.yaml`) and run by the embedded bus.

use crate::config::{NEXT_LANE, lane_of_variable};
use std::collections::HashMap;
use std::time::Duration;

/// One queue of the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue's logical id in the template; also its URL in embedded mode.
    pub name: String,
    /// How long a received message stays invisible.
    pub visibility_timeout: Duration,
    /// Where the queue's redrive policy moves a message, if it has one.
    pub dead_letter_queue: Option<String>,
    /// Receives before the redrive policy moves a message.
    pub max_receive_count: Option<u32>,
    /// How long a message is kept.
    pub retention: Duration,
}

/// One stop of the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSpec {
    /// The stop's name (its `STOP_NAME`).
    pub name: String,
    /// The function's logical id in the template.
    pub function: String,
    /// The stop kind that runs here (the template's `BuildProperties.Binary`), looked up in
    /// the registry.
    pub kind: String,
    /// The queue it reads (none for the depot, which a schedule, an API call or a direct
    /// invoke starts).
    pub queue: Option<String>,
    /// Most messages per invocation.
    pub batch_size: usize,
    /// The function's timeout (its `Timeout`, else the template's Globals', else Lambda's 3 s).
    pub timeout: Duration,
    /// The function's environment variables, intrinsic functions resolved.
    pub env: HashMap<String, String>,
}

impl StopSpec {
    /// The stop's lanes and the queue each leads to: `next` (its `NEXT_QUEUE_URL`) first, then
    /// the named lanes of its `LANE_<NAME>_QUEUE_URL` variables in name order.
    pub fn lanes(&self) -> Vec<(String, &str)> {
        let mut named: Vec<(String, &str)> = self
            .env
            .iter()
            .filter_map(|(var, queue)| Some((lane_of_variable(var)?, queue.as_str())))
            .filter(|(_, queue)| !queue.trim().is_empty())
            .collect();
        named.sort();
        let next = self.env.get("NEXT_QUEUE_URL").map(String::as_str);
        next.filter(|queue| !queue.trim().is_empty())
            .map(|queue| (NEXT_LANE.to_owned(), queue))
            .into_iter()
            .chain(named)
            .collect()
    }
}

/// A route: its queues and its stops, depot first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route's name.
    pub name: String,
    /// Every queue in the template (stop queues, dead-letter queues, quarantine).
    pub queues: Vec<QueueSpec>,
    /// The stops in riding order: the depot first, and every stop after each stop that sends
    /// to it (a line, or a graph whose lanes fan out and join).
    pub stops: Vec<StopSpec>,
}

impl Route {
    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.name == name)
    }
}
