//! Certificates for the HTTPS receiver: a CA, a server certificate and a client certificate
//! signed by it.

use std::{path::Path, sync::Arc};

use rustls::{RootCertStore, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::TlsAcceptor;

pub use crate::testing::http_receiver::{Mode, Receiver};

/// A test certificate authority and what it signed.
pub struct TestPki {
    pub ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

/// Paths of the PEM files a client needs.
pub struct ClientFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TestPki {
    pub fn new() -> TestPki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vigil test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let sign = |names: Vec<String>| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = sign(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client_cert_pem, client_key_pem) = sign(vec!["vigil-agent".into()]);
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        }
    }

    /// Writes the CA, the client certificate and its key into `dir`.
    pub fn write_client_files(&self, dir: &Path) -> ClientFiles {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        ClientFiles {
            ca: write("ca.pem", &self.ca_pem),
            cert: write("client.pem", &self.client_cert_pem),
            key: write("client-key.pem", &self.client_key_pem),
        }
    }

    /// A server that accepts any client.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.server(false)
    }

    /// A server that accepts only clients with a certificate signed by the CA.
    pub fn acceptor_requiring_client_certificates(&self) -> TlsAcceptor {
        self.server(true)
    }

    fn server(&self, verify_clients: bool) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if verify_clients {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder.with_single_cert(certs, key).unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}
