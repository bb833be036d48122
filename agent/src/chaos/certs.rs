//! Certificates for the `tls-certificate-expired` fault: a throwaway CA the agent is told to
//! trust, a server certificate from it that is valid, and one that expired years ago. The chaos
//! TLS receiver presents whichever is current, so a fault can swap them under a running agent.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the key or the configuration.
    #[error("preparing TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Writing the CA certificate failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Which certificate the TLS receiver presents.
#[derive(Debug)]
pub struct SwitchableCertificate {
    valid: Arc<CertifiedKey>,
    expired: Arc<CertifiedKey>,
    current: Mutex<Arc<CertifiedKey>>,
}

impl SwitchableCertificate {
    /// Present the expired certificate (`true`) or the valid one.
    pub fn set_expired(&self, expired: bool) {
        let next = if expired { &self.expired } else { &self.valid };
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(next);
    }
}

impl ResolvesServerCert for SwitchableCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// The CA (as PEM, for the agent) and the receiver's TLS configuration.
pub struct ChaosTls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The receiver's certificate switch.
    pub certificate: Arc<SwitchableCertificate>,
    /// The receiver's TLS configuration (resolves through `certificate`).
    pub server: Arc<ServerConfig>,
}

impl ChaosTls {
    /// Makes the CA and both server certificates (for 127.0.0.1 and localhost).
    pub fn generate() -> Result<ChaosTls, CertError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "vigil chaos throwaway CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let server_key = |params: CertificateParams| -> Result<Arc<CertifiedKey>, CertError> {
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            let signer = rustls::crypto::ring::sign::any_supported_type(&der)?;
            Ok(Arc::new(CertifiedKey::new(
                vec![cert.der().clone()],
                signer,
            )))
        };
        let valid = server_key(CertificateParams::new(names.clone())?)?;
        let mut expired_params = CertificateParams::new(names)?;
        expired_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let expired = server_key(expired_params)?;
        let certificate = Arc::new(SwitchableCertificate {
            current: Mutex::new(Arc::clone(&valid)),
            valid,
            expired,
        });
        let mut server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
        // No session resumption: a resumed session skips the certificate, and the fault is
        // about the agent seeing the certificate the server presents now.
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        Ok(ChaosTls {
            ca_pem: ca.pem(),
            certificate,
            server: Arc::new(server),
        })
    }

    /// Writes the CA certificate where the agent's configuration points.
    pub fn write_ca(&self, path: &Path) -> Result<(), CertError> {
        std::fs::write(path, &self.ca_pem).map_err(|source| CertError::Write {
            path: path.display().to_string(),
            source,
        })
    }
}
