//! The http-source stop's settings: where the API is, how it pages, where a page's records
//! are, which headers to send, and how fast to ask.

use busline_core::ConfigError;
use busline_core::config::{Vars, optional, parsed, required};
use std::collections::BTreeMap;
use std::time::Duration;

/// How the API hands out its pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// One request.
    None,
    /// `?<param>=1`, `2`, ... until a page has no records.
    Page {
        /// The query parameter (`page`).
        param: String,
        /// The first page's number (1).
        start: u64,
    },
    /// `?<offset>=0&<limit>=N`, `N`, `2N`, ... until a page has fewer than N records.
    Offset {
        /// The offset parameter (`offset`).
        param: String,
        /// The limit parameter (`limit`).
        limit_param: String,
        /// Records per page.
        size: u64,
    },
    /// `?<param>=<cursor>` with the cursor the last page gave at a JSON pointer, until it
    /// gives none.
    Cursor {
        /// The query parameter (`cursor`).
        param: String,
        /// Where the next cursor is in a page (`/next_cursor`).
        pointer: String,
    },
    /// The URL of the `Link` header's `rel="next"`, until there is none.
    Link,
}

/// The http-source stop's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// `HTTP_URL`: the first page (a ticket's `url` overrides it).
    pub url: String,
    /// `PAGINATION`: `none`, `page`, `offset`, `cursor` or `link`, with `PAGE_PARAM`,
    /// `PAGE_START`, `OFFSET_PARAM`, `LIMIT_PARAM`, `PAGE_SIZE`, `CURSOR_PARAM` and
    /// `CURSOR_POINTER`.
    pub pagination: Pagination,
    /// `RECORDS_POINTER`: the JSON pointer to a page's array of records (`/data`); empty: the
    /// page is the array.
    pub records: String,
    /// `ID_FIELD`: a record's field that is its id; unset, ids come from the request and the
    /// record's place in the page.
    pub id_field: Option<String>,
    /// `HTTP_HEADERS`: a JSON object of header to value; `${NAME}` in a value is the
    /// environment variable `NAME` (a token kept out of the template), and `${secret:ID}` the
    /// text of secret `ID` (`${secret:ID#field}` a field of its JSON), read at init.
    pub headers: BTreeMap<String, String>,
    /// `RATE_LIMIT`: most requests per second (unset: no limit).
    pub rate_limit: Option<f64>,
    /// `HTTP_RETRIES` (3): retries of a 429 or 5xx answer (or a lost connection) within one
    /// invocation, waiting `Retry-After` when the API says.
    pub retries: usize,
    /// `HTTP_TIMEOUT_SECONDS` (30): longest wait for one answer.
    pub timeout: Duration,
}

impl HttpConfig {
    /// Reads the settings; the error names the variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let text =
            |name: &str, default: &str| optional(vars, name).unwrap_or_else(|| default.into());
        let pagination = match text("PAGINATION", "none").to_ascii_lowercase().as_str() {
            "none" => Pagination::None,
            "page" => Pagination::Page {
                param: text("PAGE_PARAM", "page"),
                start: parsed(vars, "PAGE_START", 1u64)?,
            },
            "offset" => Pagination::Offset {
                param: text("OFFSET_PARAM", "offset"),
                limit_param: text("LIMIT_PARAM", "limit"),
                size: parsed(vars, "PAGE_SIZE", 100u64)?.max(1),
            },
            "cursor" => Pagination::Cursor {
                param: text("CURSOR_PARAM", "cursor"),
                pointer: required(vars, "CURSOR_POINTER")?,
            },
            "link" => Pagination::Link,
            other => {
                return Err(ConfigError::Invalid {
                    var: "PAGINATION".into(),
                    value: other.into(),
                    reason: "expected none, page, offset, cursor or link".into(),
                });
            }
        };
        let headers = match optional(vars, "HTTP_HEADERS") {
            None => BTreeMap::new(),
            Some(value) => {
                let declared: BTreeMap<String, String> =
                    serde_json::from_str(&value).map_err(|err| ConfigError::Invalid {
                        var: "HTTP_HEADERS".into(),
                        value: value.clone(),
                        reason: format!("{err} (expected a JSON object of header to value)"),
                    })?;
                declared
                    .into_iter()
                    .map(|(name, value)| Ok((name, expand(&value, vars)?)))
                    .collect::<Result<_, ConfigError>>()?
            }
        };
        let rate_limit = match optional(vars, "RATE_LIMIT") {
            None => None,
            Some(_) => Some(parsed(vars, "RATE_LIMIT", 0.0f64)?).filter(|r| *r > 0.0),
        };
        Ok(HttpConfig {
            url: required(vars, "HTTP_URL")?,
            pagination,
            records: text("RECORDS_POINTER", ""),
            id_field: optional(vars, "ID_FIELD"),
            headers,
            rate_limit,
            retries: parsed(vars, "HTTP_RETRIES", 3usize)?,
            timeout: Duration::from_secs(parsed(vars, "HTTP_TIMEOUT_SECONDS", 30u64)?),
        })
    }
}

/// `value` with each `${NAME}` replaced by the variable `NAME`; a missing one is named.
fn expand(value: &str, vars: &dyn Vars) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ConfigError::Invalid {
            var: "HTTP_HEADERS".into(),
            value: value.into(),
            reason: "a ${ has no closing }".into(),
        })?;
        let name = &after[..end];
        if name.starts_with(crate::secrets::PREFIX) {
            // Read from the secret store at init (crate::secrets::fill).
            out.push_str(&rest[start..start + 2 + end + 1]);
            rest = &after[end + 1..];
            continue;
        }
        out.push_str(&required(vars, name).map_err(|_| ConfigError::Missing {
            var: name.into(),
            hint: "; HTTP_HEADERS refers to it".into(),
        })?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use busline_core::config::vars_of;

    #[test]
    fn headers_take_secrets_from_the_environment_and_a_missing_one_is_named() {
        let vars = vars_of(&[
            ("HTTP_URL", "http://api/colors"),
            ("PAGINATION", "cursor"),
            ("CURSOR_POINTER", "/next"),
            (
                "HTTP_HEADERS",
                r#"{"Authorization": "Bearer ${API_TOKEN}", "Accept": "application/json", "X-Key": "${secret:partner#key}"}"#,
            ),
            ("API_TOKEN", "t0k3n"),
        ]);
        let config = HttpConfig::from_vars(&vars).expect("valid");
        assert_eq!(config.headers["Authorization"], "Bearer t0k3n");
        // Secrets are read at init, from the secret store (secrets::fill).
        assert_eq!(config.headers["X-Key"], "${secret:partner#key}");
        assert_eq!(
            config.pagination,
            Pagination::Cursor {
                param: "cursor".into(),
                pointer: "/next".into()
            }
        );
        let mut missing = vars.clone();
        missing.remove("API_TOKEN");
        assert_eq!(
            HttpConfig::from_vars(&missing).unwrap_err().to_string(),
            "environment variable API_TOKEN is required but not set; HTTP_HEADERS refers to it"
        );
    }
}
