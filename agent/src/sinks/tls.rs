//! TLS client settings shared by the webhook and syslog sinks: system roots or a custom CA,
//! an optional client certificate, verification always on.

use std::{path::PathBuf, sync::Arc};

use rustls::{ClientConfig, RootCertStore, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::Deserialize;

/// TLS options of a sink.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM file of the CA certificates to trust instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate chain (mutual TLS); needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Why TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{what} {path}: {message}")]
    File {
        /// Which file it was (`CA file`, `client certificate`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The options do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsOptions {
    /// Builds a rustls client configuration; certificates are always verified.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let roots = self.roots()?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::File {
                    what: "client key",
                    path: key.clone(),
                    message: error.to_string(),
                })?;
                Ok(builder.with_client_auth_cert(chain, key)?)
            }
            _ => Err(TlsError::Invalid(
                "cert_file and key_file must be given together".into(),
            )),
        }
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &self.ca_file {
            for cert in read_certs(path, "CA file")? {
                roots.add(cert).map_err(|error| TlsError::File {
                    what: "CA file",
                    path: path.clone(),
                    message: error.to_string(),
                })?;
            }
            return Ok(roots);
        }
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "reading a system root certificate failed");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(TlsError::Invalid(format!(
                "no usable system root certificates ({ignored} unparsable); set ca_file"
            )));
        }
        Ok(roots)
    }
}

fn read_certs(
    path: &PathBuf,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::File {
        what,
        path: path.clone(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_file() {
        let options = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let error = options.client_config().err().unwrap().to_string();
        assert!(error.contains("CA file /nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn client_certificate_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let options = TlsOptions {
            ca_file: Some(ca_path.clone()),
            cert_file: Some(ca_path),
            key_file: None,
        };
        let error = options.client_config().err().unwrap().to_string();
        assert!(error.contains("together"), "{error}");
    }

    #[test]
    fn builds_with_a_custom_ca_and_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let options = TlsOptions {
            ca_file: Some(cert_path.clone()),
            cert_file: Some(cert_path),
            key_file: Some(key_path),
        };
        assert!(options.client_config().is_ok());
    }
}
