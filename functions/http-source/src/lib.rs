//! The http-source stop: for each ticket, pages through a JSON API (page number, offset, a
//! cursor in the page, or the `Link` header) and boards the records at `RECORDS_POINTER` of
//! every page as passengers. A passenger's id is its `ID_FIELD`, or comes from the request and
//! its place in the page, so a page asked again yields the same ids. 429 and 5xx answers (and
//! lost connections) are retried, waiting `Retry-After` when the API says; a page that is not
//! JSON or has no records where the settings say dead-letters the ticket with the URL and why.
//! Near the deadline the ticket goes back to the stop's queue with the next page's request.

mod pages;
mod secrets;
mod settings;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use busline_core::envelope::Passenger;
use busline_core::id::stable_id;
use busline_core::{InitError, Outbox, SecretStore, Stop, StopContext, StopError, StopKind};
use serde_json::{Map, Value};
pub use settings::{HttpConfig, Pagination};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "http-source";

/// The ticket field that holds the request of the page to read (the first page otherwise).
pub const URL_FIELD: &str = "url";

/// The http-source kind, as the registry builds it: one HTTP client at init.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = HttpConfig::from_vars(init.settings());
        let store = init.extension::<Arc<dyn SecretStore>>().cloned();
        async move {
            let mut config = config?;
            secrets::fill(&mut config.headers, store.as_ref()).await?;
            HttpSource::new(config)
        }
    })
}

/// The http-source stop.
pub struct HttpSource {
    config: HttpConfig,
    client: reqwest::Client,
    /// When the last request left, for `RATE_LIMIT`.
    last_request: Mutex<Option<Instant>>,
}

/// Why a page could not be had.
enum Refused {
    /// Worth asking again (429, 5xx, a lost connection), after `Retry-After` when given.
    Again(String, Option<Duration>),
    /// Asking again cannot help (another 4xx, not JSON).
    Never(String),
}

/// One page: its body and its `Link` header.
struct Page {
    body: Value,
    link: Option<String>,
}

impl HttpSource {
    /// The stop with its HTTP client.
    pub fn new(config: HttpConfig) -> Result<Self, InitError> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let invalid = |reason: String| {
                InitError::from(busline_core::ConfigError::Invalid {
                    var: "HTTP_HEADERS".into(),
                    value: name.clone(),
                    reason,
                })
            };
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|err| invalid(err.to_string()))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|err| invalid(err.to_string()))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|err| InitError::Resource {
                resource: format!("HTTP client for {}", config.url),
                source: err.into(),
            })?;
        Ok(HttpSource {
            config,
            client,
            last_request: Mutex::new(None),
        })
    }

    /// Waits until the next request keeps within `RATE_LIMIT`.
    async fn pace(&self) {
        let Some(rate) = self.config.rate_limit else {
            return;
        };
        let mut last = self.last_request.lock().await;
        let gap = Duration::from_secs_f64(1.0 / rate);
        if let Some(at) = *last {
            let wait = gap.saturating_sub(at.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        *last = Some(Instant::now());
    }

    /// One GET of `url`.
    async fn get(&self, url: &str) -> Result<Page, Refused> {
        self.pace().await;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| Refused::Again(format!("GET {url}: {}", chain(&err)), None))?;
        let status = response.status();
        let link = response
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status.as_u16() == 429 || status.is_server_error() {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Refused::Again(format!("GET {url}: {status}"), after));
        }
        let bytes = response.bytes().await.map_err(|err| {
            Refused::Again(
                format!("GET {url}: reading the page: {}", chain(&err)),
                None,
            )
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(Refused::Never(format!("GET {url}: {status}: {text}")));
        }
        let body = serde_json::from_slice(&bytes)
            .map_err(|err| Refused::Never(format!("GET {url}: the page is not JSON: {err}")))?;
        Ok(Page { body, link })
    }

    /// A page, asking again up to `HTTP_RETRIES` times for what is worth asking again.
    async fn page(&self, url: &str) -> Result<Page, StopError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.config.retries)
            .with_jitter();
        (|| self.get(url))
            .retry(backoff)
            .when(|refused| matches!(refused, Refused::Again(..)))
            .adjust(|refused, wait| match refused {
                Refused::Again(_, Some(after)) => Some(*after),
                _ => wait,
            })
            .notify(|refused, wait| {
                if let Refused::Again(reason, _) = refused {
                    tracing::warn!(reason, ?wait, "page refused; asking again");
                }
            })
            .await
            .map_err(|refused| match refused {
                Refused::Again(reason, _) => StopError::retryable(format!(
                    "{reason} (after {} retries)",
                    self.config.retries
                )),
                Refused::Never(reason) => StopError::permanent(reason),
            })
    }

    /// The passenger of a page's record: its id from `ID_FIELD`, or from the request and its
    /// place.
    fn passenger(&self, request: &str, index: usize, record: Map<String, Value>) -> Passenger {
        let place = index + 1;
        let id = match self.config.id_field.as_ref().and_then(|f| record.get(f)) {
            Some(Value::String(id)) => id.clone(),
            Some(other) if !other.is_null() => other.to_string(),
            _ => format!("{}:{place}", stable_id(&[request])),
        };
        Passenger::new(id, Some(format!("{request}#{place}")), record)
    }

    /// Reads the pages of one ticket from `request` on: `None` at the last page, or the
    /// request to continue at when the deadline is near.
    async fn read(
        &self,
        ctx: &StopContext<'_>,
        mut request: String,
        outbox: &mut Outbox,
    ) -> Result<Option<String>, StopError> {
        loop {
            let page = self.page(&request).await?;
            let records = pages::records(&page.body, &self.config.records)
                .map_err(|reason| StopError::permanent(format!("GET {request}: {reason}")))?;
            outbox.pick_up(records.len() as u64);
            for (index, record) in records.iter().enumerate() {
                match record {
                    Value::Object(record) => {
                        outbox
                            .board(&self.passenger(&request, index, record.clone()))
                            .await?
                    }
                    other => {
                        let raw = Passenger::new(
                            format!("{}:{}", stable_id(&[&request]), index + 1),
                            Some(format!("{request}#{}", index + 1)),
                            Map::from_iter([("raw".to_owned(), other.clone())]),
                        );
                        outbox
                            .reject(&raw.reject("a record is not a JSON object"))
                            .await?;
                    }
                }
            }
            let next = pages::next(
                &self.config.pagination,
                &request,
                &page.body,
                records.len(),
                page.link.as_deref(),
            )
            .map_err(|reason| StopError::permanent(format!("GET {request}: {reason}")))?;
            match next {
                None => return Ok(None),
                Some(next) if ctx.deadline_near() => return Ok(Some(next)),
                Some(next) => request = next,
            }
        }
    }
}

/// An error with its causes, for reasons.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[async_trait]
impl Stop for HttpSource {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        tickets: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        let mut tickets = tickets.into_iter();
        while let Some(mut ticket) = tickets.next() {
            let request = match ticket.get_str(URL_FIELD) {
                Some(url) => url.to_owned(),
                None => pages::first(&self.config.pagination, &self.config.url)
                    .map_err(|reason| StopError::permanent(format!("HTTP_URL {reason}")))?,
            };
            match self.read(ctx, request, outbox).await? {
                None => outbox.drop_off(1),
                Some(next) => {
                    tracing::info!(next, "deadline near: continuing at the next page later");
                    ticket.insert(URL_FIELD, next);
                    outbox.ride_again(&ticket).await?;
                    for ticket in tickets.by_ref() {
                        outbox.ride_again(&ticket).await?;
                    }
                }
            }
        }
        Ok(())
    }
}
