//! Header values that name secrets: `${secret:ID}` is the text of secret `ID`, and
//! `${secret:ID#field}` the field `field` of its JSON, read once at init from the host's
//! secret store (Secrets Manager on Lambda). A message names the secret, never its value.

use busline_core::{InitError, SecretStore};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What starts a secret's name inside `${...}`.
pub const PREFIX: &str = "secret:";

/// Replaces every `${secret:...}` in the header values with what it names.
pub async fn fill(
    headers: &mut BTreeMap<String, String>,
    store: Option<&Arc<dyn SecretStore>>,
) -> Result<(), InitError> {
    let mut read: HashMap<String, String> = HashMap::new();
    for (header, value) in headers.iter_mut() {
        let mut out = String::with_capacity(value.len());
        let mut rest = value.as_str();
        while let Some(start) = rest.find("${secret:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2 + PREFIX.len()..];
            // settings.rs already refused a `${` without its `}`.
            let end = after.find('}').unwrap_or(after.len());
            let reference = &after[..end];
            let (id, field) = match reference.split_once('#') {
                Some((id, field)) => (id, Some(field)),
                None => (reference, None),
            };
            let text = match read.get(id) {
                Some(text) => text.clone(),
                None => {
                    let store = store.ok_or_else(|| InitError::Missing {
                        kind: crate::KIND.to_owned(),
                        needs: format!("a secret store (HTTP_HEADERS {header} names secret {id})"),
                    })?;
                    let text = store.secret(id).await.map_err(|err| {
                        InitError::resource(format!("HTTP_HEADERS {header}"), err)
                    })?;
                    read.insert(id.to_owned(), text.clone());
                    text
                }
            };
            out.push_str(
                &pick(&text, id, field).map_err(|reason| {
                    InitError::resource(format!("HTTP_HEADERS {header}"), reason)
                })?,
            );
            rest = after.get(end + 1..).unwrap_or("");
        }
        out.push_str(rest);
        *value = out;
    }
    Ok(())
}

/// The secret's text, or its JSON field `field`.
fn pick(text: &str, id: &str, field: Option<&str>) -> Result<String, String> {
    let Some(field) = field else {
        return Ok(text.to_owned());
    };
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| format!("secret {id} is not JSON, so it has no field {field}"))?;
    match json.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(format!("secret {id} has no field {field}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use busline_core::PortError;

    /// Secrets by id, as Secrets Manager answers: a missing one is `NotFound`.
    struct Secrets(HashMap<&'static str, &'static str>);

    #[async_trait]
    impl SecretStore for Secrets {
        async fn secret(&self, id: &str) -> Result<String, PortError> {
            self.0
                .get(id)
                .map(|s| (*s).to_owned())
                .ok_or_else(|| PortError::NotFound {
                    resource: format!("secret {id}"),
                })
        }
    }

    fn store() -> Arc<dyn SecretStore> {
        Arc::new(Secrets(HashMap::from([
            ("api-token", "t0k3n"),
            ("partner", r#"{"key": "k-1", "user": "ops"}"#),
        ])))
    }

    #[tokio::test]
    async fn header_values_take_secrets_and_json_fields() {
        let mut headers = BTreeMap::from([
            (
                "Authorization".to_owned(),
                "Bearer ${secret:api-token}".to_owned(),
            ),
            (
                "X-Key".to_owned(),
                "${secret:partner#user}:${secret:partner#key}".to_owned(),
            ),
            ("Accept".to_owned(), "application/json".to_owned()),
        ]);
        fill(&mut headers, Some(&store())).await.expect("filled");
        assert_eq!(headers["Authorization"], "Bearer t0k3n");
        assert_eq!(headers["X-Key"], "ops:k-1");
        assert_eq!(headers["Accept"], "application/json");
    }

    #[tokio::test]
    async fn a_missing_secret_or_field_is_named_and_no_store_is_said() {
        let chain = |err: InitError| busline_core::error::chain(&err);
        let mut missing = BTreeMap::from([("A".to_owned(), "${secret:nope}".to_owned())]);
        let err = fill(&mut missing, Some(&store()))
            .await
            .expect_err("no secret");
        assert_eq!(chain(err), "HTTP_HEADERS A: secret nope: not found");
        let mut field = BTreeMap::from([("A".to_owned(), "${secret:partner#pass}".to_owned())]);
        let err = fill(&mut field, Some(&store()))
            .await
            .expect_err("no field");
        assert_eq!(
            chain(err),
            "HTTP_HEADERS A: secret partner has no field pass"
        );
        let mut none = BTreeMap::from([("A".to_owned(), "${secret:api-token}".to_owned())]);
        let err = fill(&mut none, None).await.expect_err("no store");
        assert_eq!(
            chain(err),
            "stop kind http-source needs a secret store (HTTP_HEADERS A names secret api-token), which this host does not provide"
        );
    }
}
