//! Typed stop configuration, read once from environment variables (or the template's
//! `Environment.Variables` in embedded mode), with errors that name the variable.

use crate::backoff::Backoff;
use crate::compression::MAX_EXPANDED_BYTES;
use crate::error::ConfigError;
use crate::packer::BusSizing;
use crate::ports::SQS_MAX_BYTES;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

/// Where configuration variables come from: the process environment in Lambda, the template's
/// `Environment.Variables` in embedded mode.
pub trait Vars: Send + Sync {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The names of every variable set, so that settings named by pattern
    /// (`LANE_<NAME>_QUEUE_URL`) can be found.
    fn names(&self) -> Vec<String>;
}

/// The process environment (inside Lambda).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect()
    }
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Settings from name and value pairs: what a test, or a host that reads them from elsewhere,
/// hands to a stop's `from_vars`.
pub fn vars_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// A required, non-empty variable.
pub fn required(vars: &dyn Vars, name: &str) -> Result<String, ConfigError> {
    match vars.var(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing {
            var: name.to_owned(),
            hint: String::new(),
        }),
    }
}

/// An optional variable; empty counts as unset.
pub fn optional(vars: &dyn Vars, name: &str) -> Option<String> {
    vars.var(name).filter(|value| !value.trim().is_empty())
}

/// An optional variable parsed as `T`, or `default` when unset.
pub fn parsed<T>(vars: &dyn Vars, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(vars, name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|err: T::Err| ConfigError::Invalid {
                var: name.to_owned(),
                value,
                reason: err.to_string(),
            }),
    }
}

/// An optional variable of whole seconds, or `default`.
fn seconds(vars: &dyn Vars, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    parsed(vars, name, default.as_secs()).map(Duration::from_secs)
}

/// Room kept under SQS's 1 MiB limit for message attributes (a dead-lettered bus gains a reason).
pub const ATTRIBUTE_RESERVE: usize = 8 * 1024;
/// The largest budget allowed: SQS's 1 MiB limit less the attribute reserve.
pub const MAX_BUS_BYTE_BUDGET: usize = SQS_MAX_BYTES - ATTRIBUTE_RESERVE;
/// Default byte budget of one bus: the largest. SQS bills by 64 KiB chunk whatever the message
/// size, so fuller buses cost the same in SQS requests but need fewer API calls, invocations
/// and output objects (`bus bench`: $0.0041 against $0.0062 per million records at 256 KiB).
pub const DEFAULT_BUS_BYTE_BUDGET: usize = MAX_BUS_BYTE_BUDGET;
/// The smallest budget allowed.
pub const MIN_BUS_BYTE_BUDGET: usize = 1024;

/// Default `BUS_RAW_BYTE_LIMIT`: a compressed bus expands to at most 4 MiB of envelope, so a
/// transform invocation holding ten of them stays well inside 256 MB.
pub const DEFAULT_BUS_RAW_BYTE_LIMIT: usize = 4 * 1024 * 1024;

/// `BUS_RAW_BYTE_LIMIT` (at least the budget, at most what a reader expands) and
/// `BUS_COMPRESSION` (`zstd`, the default, or `off`).
fn bus_sizing(vars: &dyn Vars, budget: usize) -> Result<BusSizing, ConfigError> {
    let raw_limit = parsed(
        vars,
        "BUS_RAW_BYTE_LIMIT",
        DEFAULT_BUS_RAW_BYTE_LIMIT.max(budget),
    )?;
    if !(budget..=MAX_EXPANDED_BYTES).contains(&raw_limit) {
        return Err(ConfigError::Invalid {
            var: "BUS_RAW_BYTE_LIMIT".into(),
            value: raw_limit.to_string(),
            reason: format!(
                "must be between BUS_BYTE_BUDGET ({budget}) and {MAX_EXPANDED_BYTES} bytes"
            ),
        });
    }
    let compress = match optional(vars, "BUS_COMPRESSION").as_deref() {
        None | Some("zstd") => true,
        Some("off") => false,
        Some(other) => {
            return Err(ConfigError::Invalid {
                var: "BUS_COMPRESSION".into(),
                value: other.into(),
                reason: "must be zstd or off".into(),
            });
        }
    };
    Ok(BusSizing {
        budget,
        raw_limit,
        compress,
    })
}

/// Where quarantine files go when `QUARANTINE_PREFIX` is unset.
pub const DEFAULT_QUARANTINE_PREFIX: &str = "quarantine/";

/// Settings every stop shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopConfig {
    /// `STOP_NAME`: the stop's name in logs, envelopes and metrics.
    pub stop: String,
    /// `ROUTE_NAME`: the route's name.
    pub route: String,
    /// `NEXT_QUEUE_URL`: where forwarded buses go on the default lane, [`NEXT_LANE`] (unset
    /// for a last stop).
    pub next_queue_url: Option<String>,
    /// `LANE_<NAME>_QUEUE_URL`: the stop's named lanes (`audit` for `LANE_AUDIT_QUEUE_URL`),
    /// each a way out to another stop's queue beside the default lane.
    pub lanes: BTreeMap<String, String>,
    /// `DEAD_LETTER_QUEUE_URL`: where buses that failed for good go with their reason.
    /// When unset, such buses are reported failed and SQS's redrive policy moves them.
    pub dead_letter_queue_url: Option<String>,
    /// `QUARANTINE_PREFIX` (default `quarantine/`): the key prefix of the data bucket where
    /// rejected passengers are written with their reasons.
    pub quarantine_prefix: String,
    /// `MAX_RECEIVE_COUNT`: the queue's redrive maxReceiveCount. On that receive a failing bus
    /// is dead-lettered by the stop itself, so its reason travels with it.
    pub max_receive_count: u32,
    /// `BUS_BYTE_BUDGET`, `BUS_RAW_BYTE_LIMIT` and `BUS_COMPRESSION`: the largest bus body
    /// sent, the largest envelope before compression, and whether bodies are compressed.
    pub bus: BusSizing,
    /// `BATCH_CONCURRENCY`: messages of one batch handled at once.
    pub batch_concurrency: usize,
    /// `CLAIM_CHECK_PREFIX`: key prefix where buses over the budget are parked.
    pub claim_check_prefix: String,
    /// `MAX_HOPS`: a bus that has travelled this many stops is dead-lettered (loop guard).
    pub max_hops: u32,
    /// `QUEUE_URL`: the stop's own queue. Needed to hand unstarted buses back at once, to back
    /// off per bus and to send a continuation of long work; without it a failed or unstarted
    /// bus waits out the queue's whole visibility timeout.
    pub queue_url: Option<String>,
    /// `DEADLINE_MARGIN_MS` (default 2000): no bus is started, and long work checkpoints,
    /// once less than this is left of the invocation.
    pub deadline_margin: Duration,
    /// `RETRY_BACKOFF_BASE_SECONDS` (default 2) and `RETRY_BACKOFF_CAP_SECONDS` (default 181,
    /// the queue's visibility timeout): how long a retryable failure waits, by receive count.
    pub backoff: Backoff,
}

impl StopConfig {
    /// Reads the shared settings; the error names the variable at fault.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let bus_byte_budget = parsed(vars, "BUS_BYTE_BUDGET", DEFAULT_BUS_BYTE_BUDGET)?;
        if !(MIN_BUS_BYTE_BUDGET..=MAX_BUS_BYTE_BUDGET).contains(&bus_byte_budget) {
            return Err(ConfigError::Invalid {
                var: "BUS_BYTE_BUDGET".into(),
                value: bus_byte_budget.to_string(),
                reason: format!(
                    "must be between {MIN_BUS_BYTE_BUDGET} and {MAX_BUS_BYTE_BUDGET} bytes \
                     (SQS's 1 MiB limit less {ATTRIBUTE_RESERVE} bytes for attributes)"
                ),
            });
        }
        let max_receive_count = parsed(vars, "MAX_RECEIVE_COUNT", 5u32)?;
        let batch_concurrency = parsed(vars, "BATCH_CONCURRENCY", 4usize)?;
        for (var, value) in [
            ("MAX_RECEIVE_COUNT", max_receive_count as usize),
            ("BATCH_CONCURRENCY", batch_concurrency),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    var: var.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(StopConfig {
            stop: required(vars, "STOP_NAME")?,
            route: required(vars, "ROUTE_NAME")?,
            next_queue_url: optional(vars, "NEXT_QUEUE_URL"),
            lanes: lanes(vars)?,
            dead_letter_queue_url: optional(vars, "DEAD_LETTER_QUEUE_URL"),
            quarantine_prefix: optional(vars, "QUARANTINE_PREFIX")
                .unwrap_or_else(|| DEFAULT_QUARANTINE_PREFIX.into()),
            max_receive_count,
            bus: bus_sizing(vars, bus_byte_budget)?,
            batch_concurrency,
            claim_check_prefix: optional(vars, "CLAIM_CHECK_PREFIX")
                .unwrap_or_else(|| "claim-check/".into()),
            max_hops: parsed(vars, "MAX_HOPS", 32u32)?,
            queue_url: optional(vars, "QUEUE_URL"),
            deadline_margin: Duration::from_millis(parsed(vars, "DEADLINE_MARGIN_MS", 2000u64)?),
            backoff: Backoff {
                base: seconds(vars, "RETRY_BACKOFF_BASE_SECONDS", Backoff::default().base)?,
                cap: seconds(vars, "RETRY_BACKOFF_CAP_SECONDS", Backoff::default().cap)?,
            },
        })
    }
}

/// The default lane: `NEXT_QUEUE_URL`.
pub const NEXT_LANE: &str = "next";

impl StopConfig {
    /// The queue URL of `lane` ([`NEXT_LANE`] or a named lane), if the stop has it.
    pub fn lane_url(&self, lane: &str) -> Option<&str> {
        if lane == NEXT_LANE {
            self.next_queue_url.as_deref()
        } else {
            self.lanes.get(lane).map(String::as_str)
        }
    }

    /// Every lane the stop has a queue for: [`NEXT_LANE`] first (when set), then the named
    /// lanes in name order.
    pub fn lane_names(&self) -> Vec<&str> {
        let next = self.next_queue_url.as_ref().map(|_| NEXT_LANE);
        next.into_iter()
            .chain(self.lanes.keys().map(String::as_str))
            .collect()
    }
}

/// The variable that names `lane`'s queue: `NEXT_QUEUE_URL`, or `LANE_<LANE>_QUEUE_URL`.
pub fn lane_variable(lane: &str) -> String {
    if lane == NEXT_LANE {
        "NEXT_QUEUE_URL".into()
    } else {
        format!("LANE_{}_QUEUE_URL", lane.to_ascii_uppercase())
    }
}

/// The lane a variable name declares (`audit` for `LANE_AUDIT_QUEUE_URL`), if it is one.
pub fn lane_of_variable(name: &str) -> Option<String> {
    let lane = name.strip_prefix("LANE_")?.strip_suffix("_QUEUE_URL")?;
    Some(lane.to_ascii_lowercase())
}

/// The named lanes among the variables, each name checked.
fn lanes(vars: &dyn Vars) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut lanes = BTreeMap::new();
    for name in vars.names() {
        let Some(lane) = lane_of_variable(&name) else {
            continue;
        };
        let Some(url) = optional(vars, &name) else {
            continue;
        };
        let invalid = |reason: &str| ConfigError::Invalid {
            var: name.clone(),
            value: url.clone(),
            reason: reason.to_owned(),
        };
        let well_formed = !lane.is_empty()
            && lane
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(invalid(
                "a lane's name is letters, digits and '_' (LANE_AUDIT_QUEUE_URL names lane audit)",
            ));
        }
        if lane == NEXT_LANE {
            return Err(invalid("the default lane's queue is NEXT_QUEUE_URL"));
        }
        lanes.insert(lane, url);
    }
    Ok(lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    use vars_of as vars;

    const BASE: [(&str, &str); 3] = [
        ("STOP_NAME", "transform"),
        ("ROUTE_NAME", "colors"),
        ("QUARANTINE_PREFIX", "quarantine/"),
    ];

    #[test]
    fn defaults_apply() {
        let config = StopConfig::from_vars(&vars(&BASE)).expect("valid");
        assert_eq!(
            config.bus,
            BusSizing {
                budget: 1_040_384,
                raw_limit: 4 * 1024 * 1024,
                compress: true
            }
        );
        assert_eq!(config.max_receive_count, 5);
        assert_eq!(config.next_queue_url, None);
    }

    #[test]
    fn missing_variable_is_named() {
        let err = StopConfig::from_vars(&vars(&BASE[1..])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable STOP_NAME is required but not set"
        );
    }

    #[test]
    fn lanes_are_read_by_name() {
        let mut v = vars(&BASE);
        v.insert("NEXT_QUEUE_URL".into(), "lake".into());
        v.insert("LANE_AUDIT_QUEUE_URL".into(), "audit-q".into());
        v.insert("LANE_BAD_ROWS_QUEUE_URL".into(), "bad-q".into());
        v.insert("LANE_EMPTY_QUEUE_URL".into(), " ".into());
        let config = StopConfig::from_vars(&v).expect("valid");
        assert_eq!(config.lane_names(), ["next", "audit", "bad_rows"]);
        assert_eq!(config.lane_url("audit"), Some("audit-q"));
        assert_eq!(config.lane_url("next"), Some("lake"));
        assert_eq!(config.lane_url("empty"), None);
        assert_eq!(lane_variable("bad_rows"), "LANE_BAD_ROWS_QUEUE_URL");
        v.insert("LANE_NEXT_QUEUE_URL".into(), "x".into());
        let err = StopConfig::from_vars(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable LANE_NEXT_QUEUE_URL=\"x\" is invalid: the default lane's queue is NEXT_QUEUE_URL"
        );
    }

    #[test]
    fn bad_number_is_named_with_value() {
        let mut v = vars(&BASE);
        v.insert("BUS_BYTE_BUDGET".into(), "lots".into());
        let err = StopConfig::from_vars(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable BUS_BYTE_BUDGET=\"lots\" is invalid: invalid digit found in string"
        );
        v.insert("BUS_BYTE_BUDGET".into(), "2000000".into());
        let err = StopConfig::from_vars(&v).unwrap_err();
        assert!(
            err.to_string().contains("must be between 1024 and 1040384"),
            "{err}"
        );
    }

    #[test]
    fn bus_compression_and_raw_limit_are_checked() {
        let mut v = vars(&BASE);
        v.insert("BUS_COMPRESSION".into(), "gzip".into());
        let err = StopConfig::from_vars(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable BUS_COMPRESSION=\"gzip\" is invalid: must be zstd or off"
        );
        v.insert("BUS_COMPRESSION".into(), "off".into());
        v.insert("BUS_BYTE_BUDGET".into(), "262144".into());
        v.insert("BUS_RAW_BYTE_LIMIT".into(), "100000".into());
        let err = StopConfig::from_vars(&v).unwrap_err();
        assert!(
            err.to_string().contains("BUS_RAW_BYTE_LIMIT=\"100000\" is invalid: must be between BUS_BYTE_BUDGET (262144) and"),
            "{err}"
        );
        v.remove("BUS_RAW_BYTE_LIMIT");
        let config = StopConfig::from_vars(&v).expect("valid");
        assert_eq!((config.bus.budget, config.bus.compress), (262_144, false));
    }
}
