//! TLS for the connections that ask for it (`sslmode=require`): rustls with ring, as the rest
//! of busline, trusting the system's roots and the certificates `DATABASE_ROOT_CERT` adds (RDS
//! signs with its own authority, which no system trusts).

use busline_core::ConfigError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connector that checks the server's certificate and name against the system's roots and
/// `root_cert` (PEM text, or the path of a PEM file).
pub fn connector(root_cert: Option<&str>) -> Result<MakeRustlsConnect, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        added,
        ignored,
        errors = native.errors.len(),
        "system root certificates"
    );
    if let Some(root_cert) = root_cert {
        for cert in extra_roots(root_cert)? {
            roots
                .add(cert)
                .map_err(|err| invalid(root_cert, format!("{err}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| invalid("", format!("{err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates in `root_cert`: PEM text itself, or the path of a PEM file.
fn extra_roots(root_cert: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let text = if root_cert.trim_start().starts_with("-----BEGIN") {
        root_cert.to_owned()
    } else {
        std::fs::read_to_string(root_cert)
            .map_err(|err| invalid(root_cert, format!("cannot read the file: {err}")))?
    };
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(root_cert, format!("not PEM certificates: {err}")))?;
    if certs.is_empty() {
        return Err(invalid(root_cert, "holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn invalid(value: &str, reason: String) -> ConfigError {
    let shown = if value.len() > 80 {
        format!(
            "{}…",
            &value[..value.char_indices().nth(80).map_or(value.len(), |(i, _)| i)]
        )
    } else {
        value.to_owned()
    };
    ConfigError::Invalid {
        var: "DATABASE_ROOT_CERT".into(),
        value: shown,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_cert_that_is_not_pem_is_refused_by_name() {
        let err = connector(Some("/nonexistent/rds-ca.pem"))
            .err()
            .expect("no file");
        assert!(err.to_string().contains("DATABASE_ROOT_CERT"), "{err}");
        assert!(err.to_string().contains("cannot read the file"), "{err}");
        let err = connector(Some("-----BEGIN NOTHING-----\n-----END NOTHING-----\n"))
            .err()
            .expect("no certificate");
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        assert!(connector(None).is_ok());
    }
}
