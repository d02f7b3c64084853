//! The enrich stop kind: looks each passenger up in an HTTP JSON API and adds the answer's
//! fields to it. It shows what a stop of your own needs: settings read at init, a client built
//! once at init, errors classified so the bus retries, dead-letters or quarantines as it should.
//!
//! Settings (the function's environment, or the template's `Environment.Variables`):
//! - `ENRICH_URL`: the API's base URL; the key's value is appended as one path segment
//!   (`https://api.example.com/colors/` + `Red`).
//! - `ENRICH_KEY`: the passenger field whose value is looked up, e.g. `Name`.
//! - `ENRICH_TIMEOUT_MS`: how long one lookup may take (2000 by default).
//!
//! A 200 answer (a JSON object) adds its fields; a 404 rejects the passenger to quarantine with
//! the reason; a throttle (429), a 5xx, a timeout or a refused connection fails the bus as
//! retryable (the queue redelivers it, and on its last receive it is dead-lettered with the
//! whole cause chain); any other status fails it as permanent.

use async_trait::async_trait;
use busline_core::config::{Vars, parsed, required};
use busline_core::{
    ConfigError, InitContext, InitError, Passenger, PassengerStop, StopContext, StopError,
    StopKind, Verdict,
};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};
use std::time::Duration;

/// The kind's name: `BuildProperties.Binary` (or `STOP_KIND`) in the template.
pub const KIND: &str = "enrich";

/// The enrich kind, for a registry: `busline_builtin::registry().with(colors_enrich::kind())`.
pub fn kind() -> StopKind {
    StopKind::each_passenger(KIND, |init: InitContext| {
        let settings = Settings::from_vars(init.settings());
        async move { Enrich::new(settings?) }
    })
}

/// The stop's settings, checked at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `ENRICH_URL`.
    pub url: Url,
    /// `ENRICH_KEY`.
    pub key: String,
    /// `ENRICH_TIMEOUT_MS`.
    pub timeout: Duration,
}

impl Settings {
    /// Reads the settings; the error names the variable at fault.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let text = required(vars, "ENRICH_URL")?;
        let invalid = |reason: String| ConfigError::Invalid {
            var: "ENRICH_URL".into(),
            value: text.clone(),
            reason,
        };
        let url = Url::parse(&text).map_err(|err| invalid(err.to_string()))?;
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("expected an http or https URL".into()));
        }
        let millis = parsed(vars, "ENRICH_TIMEOUT_MS", 2000u64)?;
        Ok(Settings {
            url,
            key: required(vars, "ENRICH_KEY")?,
            timeout: Duration::from_millis(millis),
        })
    }
}

/// A lookup that failed for the whole bus; its cause is kept for the dead-letter reason.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No answer: refused, reset, timed out.
    #[error("GET {url}")]
    Request {
        /// What was asked.
        url: Url,
        /// Why there is no answer.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is an error.
    #[error("GET {url}: HTTP {status}: {body}")]
    Status {
        /// What was asked.
        url: Url,
        /// The status.
        status: StatusCode,
        /// The start of the answer.
        body: String,
    },
}

/// The enrich stop: one client, built at init and shared by every invocation.
pub struct Enrich {
    settings: Settings,
    client: reqwest::Client,
}

impl Enrich {
    /// Builds the HTTP client; an error names the API.
    pub fn new(settings: Settings) -> Result<Self, InitError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|err| InitError::resource(settings.url.as_str(), err))?;
        Ok(Enrich { settings, client })
    }

    /// The URL that looks `value` up: the base with `value` as one more path segment.
    fn url_for(&self, value: &str) -> Url {
        let mut url = self.settings.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(value);
        }
        url
    }

    /// The answer's fields for `value`; `Ok(Err(reason))` when the passenger is to be rejected.
    async fn look_up(&self, value: &str) -> Result<Result<Map<String, Value>, String>, StopError> {
        let url = self.url_for(value);
        let answer = match self.client.get(url.clone()).send().await {
            Ok(answer) => answer,
            Err(source) => return Err(StopError::retryable(LookupError::Request { url, source })),
        };
        let status = answer.status();
        let body = answer.bytes().await.map_err(|source| {
            StopError::retryable(LookupError::Request {
                url: url.clone(),
                source,
            })
        })?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Err(format!(
                "{url} knows no {}={value:?}",
                self.settings.key
            )));
        }
        if !status.is_success() {
            let error = LookupError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            };
            return Err(
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    StopError::retryable(error)
                } else {
                    StopError::permanent(error)
                },
            );
        }
        Ok(
            serde_json::from_slice::<Map<String, Value>>(&body).map_err(|err| {
                format!("{url} answered with something other than a JSON object: {err}")
            }),
        )
    }
}

#[async_trait]
impl PassengerStop for Enrich {
    async fn ride(
        &self,
        _ctx: &StopContext<'_>,
        passenger: &mut Passenger,
    ) -> Result<Verdict, StopError> {
        let key = &self.settings.key;
        let value = match passenger.get(key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Ok(Verdict::Reject(format!(
                    "field `{key}` is missing, so it cannot be looked up"
                )));
            }
        };
        match self.look_up(&value).await? {
            Ok(fields) => {
                for (field, value) in fields {
                    passenger.insert(field, value);
                }
                Ok(Verdict::Board)
            }
            Err(reason) => Ok(Verdict::Reject(reason)),
        }
    }
}
