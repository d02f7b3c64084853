//! The chaos spec: which faults, how often.

use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// A kind of fault the chaos layer injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// A whole SendMessageBatch call fails (503 ServiceUnavailable).
    Send,
    /// One entry of a SendMessageBatch call fails (InternalError) while the others are sent.
    SendEntry,
    /// A ChangeMessageVisibilityBatch call fails.
    Visibility,
    /// An object call (list, get, put) fails with a 5xx.
    Object5xx,
    /// An object call is throttled (503 SlowDown).
    ObjectThrottle,
    /// An object read waits before its first byte.
    SlowRead,
    /// An object read breaks part way (connection reset).
    TruncatedRead,
    /// A metrics call fails (the metrics of that invocation are lost; the bus is not).
    Metrics,
    /// An invocation dies after part of its work was sent: nothing of its batch is
    /// acknowledged, as when Lambda kills a function.
    Abort,
}

impl Fault {
    /// Every fault, in spec order.
    pub const ALL: [Fault; 9] = [
        Fault::Send,
        Fault::SendEntry,
        Fault::Visibility,
        Fault::Object5xx,
        Fault::ObjectThrottle,
        Fault::SlowRead,
        Fault::TruncatedRead,
        Fault::Metrics,
        Fault::Abort,
    ];

    /// The fault's name in a spec and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Send => "send",
            Fault::SendEntry => "send-entry",
            Fault::Visibility => "visibility",
            Fault::Object5xx => "object-5xx",
            Fault::ObjectThrottle => "object-throttle",
            Fault::SlowRead => "slow-read",
            Fault::TruncatedRead => "truncated-read",
            Fault::Metrics => "metrics",
            Fault::Abort => "abort",
        }
    }

    fn named(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|fault| fault.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A bad chaos spec; names the item at fault.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChaosSpecError {
    /// An item is not `fault=rate`.
    #[error("chaos spec item {item:?}: expected fault=rate, e.g. send=10%")]
    Shape {
        /// The item.
        item: String,
    },
    /// An unknown fault name.
    #[error("chaos spec item {item:?}: unknown fault {name:?}; known: all, {known}")]
    UnknownFault {
        /// The item.
        item: String,
        /// The name.
        name: String,
        /// The faults there are.
        known: String,
    },
    /// A rate that is not a number between 0 and 1 (or 0% and 100%).
    #[error("chaos spec item {item:?}: rate must be 0-100% or 0.0-1.0")]
    Rate {
        /// The item.
        item: String,
    },
    /// A delay that is not `<number>ms`.
    #[error("chaos spec item {item:?}: delay must be like @50ms")]
    Delay {
        /// The item.
        item: String,
    },
}

/// Which faults to inject and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosSpec {
    rates: [f64; Fault::ALL.len()],
    /// How long a slow read waits before its first byte.
    pub slow_read: Duration,
}

impl Default for ChaosSpec {
    fn default() -> Self {
        ChaosSpec {
            rates: [0.0; Fault::ALL.len()],
            slow_read: Duration::from_millis(100),
        }
    }
}

impl ChaosSpec {
    /// The share of calls `fault` hits, 0.0 to 1.0.
    pub fn rate(&self, fault: Fault) -> f64 {
        self.rates[fault.index()]
    }
}

/// The spec as it would be written: each fault with a rate, and the slow read's delay.
impl std::fmt::Display for ChaosSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> = Fault::ALL
            .into_iter()
            .filter(|fault| self.rate(*fault) > 0.0)
            .map(|fault| {
                let delay = match fault {
                    Fault::SlowRead => format!("@{}ms", self.slow_read.as_millis()),
                    _ => String::new(),
                };
                // Rounded to a ten-thousandth of a percent: 0.2 * 100.0 is 20.000000000000004.
                let percent = (self.rate(fault) * 1e6).round() / 1e4;
                format!("{}={percent}%{delay}", fault.name())
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

impl FromStr for ChaosSpec {
    type Err = ChaosSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut spec = ChaosSpec::default();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let owned = || item.to_owned();
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| ChaosSpecError::Shape { item: owned() })?;
            let (rate, delay) = match value.split_once('@') {
                Some((rate, delay)) => (rate, Some(delay)),
                None => (value, None),
            };
            let rate =
                parse_rate(rate.trim()).ok_or_else(|| ChaosSpecError::Rate { item: owned() })?;
            let faults: Vec<Fault> = match name.trim() {
                "all" => Fault::ALL.to_vec(),
                other => vec![
                    Fault::named(other).ok_or_else(|| ChaosSpecError::UnknownFault {
                        item: owned(),
                        name: other.to_owned(),
                        known: Fault::ALL.map(Fault::name).join(", "),
                    })?,
                ],
            };
            for fault in faults {
                spec.rates[fault.index()] = rate;
            }
            if let Some(delay) = delay {
                let millis = delay
                    .trim()
                    .strip_suffix("ms")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| ChaosSpecError::Delay { item: owned() })?;
                spec.slow_read = Duration::from_millis(millis);
            }
        }
        Ok(spec)
    }
}

fn parse_rate(text: &str) -> Option<f64> {
    let rate = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => text.parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&rate).then_some(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_set_rates_and_errors_name_the_item() {
        let spec: ChaosSpec = "all=1%, send=0.2, slow-read=5%@20ms"
            .parse()
            .expect("valid");
        assert_eq!(spec.rate(Fault::Send), 0.2);
        assert_eq!(spec.rate(Fault::Abort), 0.01);
        assert_eq!(spec.slow_read, Duration::from_millis(20));
        let written = "send=20%,slow-read=5%@20ms"
            .parse::<ChaosSpec>()
            .expect("valid");
        assert_eq!(written.to_string(), "send=20%,slow-read=5%@20ms");
        assert_eq!(
            "send=150%".parse::<ChaosSpec>().unwrap_err().to_string(),
            "chaos spec item \"send=150%\": rate must be 0-100% or 0.0-1.0"
        );
        assert!(
            "sned=1%"
                .parse::<ChaosSpec>()
                .unwrap_err()
                .to_string()
                .starts_with("chaos spec item \"sned=1%\": unknown fault \"sned\"; known: all, send, send-entry")
        );
        assert_eq!(
            "abort".parse::<ChaosSpec>().unwrap_err(),
            ChaosSpecError::Shape {
                item: "abort".into()
            }
        );
    }
}
