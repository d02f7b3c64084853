//! Secrets Manager behind the core's [`SecretStore`]: a secret's text by name or ARN.

use crate::error::classify;
use async_trait::async_trait;
use busline_core::{PortError, SecretStore};

/// Reads secrets with `GetSecretValue`.
#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerStore {
    /// A store reading through `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManagerStore { client }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn secret(&self, id: &str) -> Result<String, PortError> {
        let resource = format!("secret {id}");
        let output = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|err| classify(err, &resource))?;
        output.secret_string().map(str::to_owned).ok_or_else(|| {
            PortError::permanent(resource, "the secret holds binary data, not a SecretString")
        })
    }
}
