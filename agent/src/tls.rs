//! TLS for the connection to the collector: TLS 1.3 only, the collector's certificate verified
//! against the CA from agent.toml, and this agent's client certificate presented (mutual TLS).
//! The ring provider is used explicitly; aws-lc-rs is not in the tree.
//!
//! The client certificate comes from a [`ClientIdentity`], whose certificate and key can be
//! replaced while the agent runs (renewal, [`crate::enroll::renew`]): open connections carry on
//! with the certificate they were made with, the next handshake presents the new one.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// This agent's certificate and key, replaceable while it runs.
#[derive(Debug)]
pub struct ClientIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

// === impl ClientIdentity ===

impl ClientIdentity {
    /// Loads the certificate chain and key (PEM files), finishing a renewal that was interrupted
    /// between its two renames first.
    pub fn load(cert: &Path, key: &Path) -> Result<ClientIdentity> {
        crate::enroll::files::finish_interrupted_renewal(cert, key)?;
        Ok(ClientIdentity {
            current: RwLock::new(Arc::new(certified_key(cert, key)?)),
        })
    }

    /// Puts a new certificate and key in use for the next handshakes.
    pub fn replace(&self, cert: &Path, key: &Path) -> Result<()> {
        let loaded = certified_key(cert, key)?;
        *self
            .current
            .write()
            .expect("identity lock is never poisoned") = Arc::new(loaded);
        Ok(())
    }

    /// The certificate in use (DER).
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.current
            .read()
            .expect("identity lock is never poisoned")
            .cert[0]
            .clone()
    }
}

impl ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .expect("identity lock is never poisoned")
                .clone(),
        )
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key_der =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .with_context(|| format!("loading the agent key {}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().with_context(|| {
        format!(
            "the key {} does not match the certificate {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}

/// Builds the client configuration from PEM files.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ClientConfig>> {
    Ok(client_config_with_identity(ca, cert, key)?.0)
}

/// Builds the client configuration from PEM files, with the identity it presents (to replace
/// the certificate while running).
pub fn client_config_with_identity(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<(Arc<rustls::ClientConfig>, Arc<ClientIdentity>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c?).context("adding the collector CA")?;
    }
    let identity =
        Arc::new(ClientIdentity::load(cert, key).context("loading the agent certificate")?);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_cert_resolver(identity.clone());
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(config), identity))
}
