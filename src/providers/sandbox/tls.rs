//! The sandbox's certificates: a self-signed CA per sandbox and a server certificate for
//! `127.0.0.1` and `localhost` signed by it, kept as PEM files in the sandbox's state
//! folder so that a restarted sandbox keeps the CA its kubeconfig trusts.
//!
//! Owns certificate generation and the rustls `ServerConfig` (aws-lc-rs provider only).
//! Must not know about HTTP or Kubernetes objects.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::SandboxError;
use super::store::write_atomic;

pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";

/// The PEM texts a sandbox serves with.
#[derive(Clone)]
pub struct Certificates {
    /// The CA certificate clients trust (embedded in the kubeconfig).
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

fn tls_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Tls(e.to_string())
}

impl Certificates {
    /// Loads the certificates from `dir`, or creates and saves new ones when there are none.
    pub fn load_or_create(dir: &Path, cluster: &str) -> Result<Certificates, SandboxError> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name));
        if let (Ok(ca_pem), Ok(server_cert_pem), Ok(server_key_pem)) =
            (read(CA_CERT), read(SERVER_CERT), read(SERVER_KEY))
        {
            return Ok(Certificates {
                ca_pem,
                server_cert_pem,
                server_key_pem,
            });
        }
        let (certs, ca_key) = Self::generate(cluster)?;
        write_atomic(&dir.join(CA_KEY), ca_key.as_bytes())?;
        write_atomic(&dir.join(SERVER_KEY), certs.server_key_pem.as_bytes())?;
        write_atomic(&dir.join(SERVER_CERT), certs.server_cert_pem.as_bytes())?;
        write_atomic(&dir.join(CA_CERT), certs.ca_pem.as_bytes())?;
        Ok(certs)
    }

    /// A new CA and server certificate; also returns the CA key PEM.
    pub fn generate(cluster: &str) -> Result<(Certificates, String), SandboxError> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("ferry-sandbox-{cluster}-ca"));
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;

        let server_key = KeyPair::generate().map_err(tls_err)?;
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "::1".to_string(),
        ])
        .map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("ferry-sandbox-{cluster}"));
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let server_cert = params.signed_by(&server_key, &issuer).map_err(tls_err)?;
        Ok((
            Certificates {
                ca_pem: ca_cert.pem(),
                server_cert_pem: server_cert.pem(),
                server_key_pem: server_key.serialize_pem(),
            },
            ca_key.serialize_pem(),
        ))
    }

    /// A rustls server configuration over the aws-lc-rs provider, HTTP/1.1 only.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, SandboxError> {
        let chain =
            vec![CertificateDer::from_pem_slice(self.server_cert_pem.as_bytes()).map_err(tls_err)?];
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(tls_err)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
