//! The server certificate the collector presents, reloaded while it runs: a rustls
//! [`ResolvesServerCert`] whose certificate and key are swapped in place, so new handshakes get
//! the new certificate and open connections carry on untouched (no agent is dropped).
//!
//! [`ServerCertResolver::watch`] checks every [`CHECK_EVERY`]: when the files changed on disk
//! (`server-cert` re-issued them) it loads them; when a third or less of the certificate's
//! lifetime is left it re-issues it itself (same names, same CA) and loads it. The chain sent is
//! the server certificate followed by the CA, so enrolling agents can pin the CA.
//!
//! Invariant: a pair that does not load (half-written, key and certificate not matching) never
//! replaces the one in use; the error is logged and the check repeats.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// How often the files and the expiry are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The collector's current server certificate.
#[derive(Debug)]
pub struct ServerCertResolver {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Debug, Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: Option<SystemTime>,
    not_before: i64,
    not_after: i64,
}

// === impl ServerCertResolver ===

impl ServerCertResolver {
    /// Loads the certificate, key and CA; fails when they do not load or do not match.
    pub fn load(
        ca: &Path,
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<ServerCertResolver> {
        let loaded = load(ca, cert, key, &provider)?;
        Ok(ServerCertResolver {
            ca: ca.to_path_buf(),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(loaded),
        })
    }

    /// End of the current certificate's validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.current
            .read()
            .expect("server cert lock is never poisoned")
            .not_after
    }

    /// Checks the files and the expiry until `shutdown`; `dir` holds the CA key for renewal.
    pub async fn watch(self: Arc<Self>, dir: PathBuf, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let me = self.clone();
            let dir = dir.clone();
            let now = jiff::Timestamp::now().as_second();
            match tokio::task::spawn_blocking(move || me.check(&dir, now)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(error = %format!("{error:#}"),
                    "Server certificate check failed; the current certificate stays in use."),
                Err(error) => tracing::error!(%error, "Server certificate check failed."),
            }
        }
    }

    /// One check: renew when due, reload when the files changed.
    pub fn check(&self, dir: &Path, now: i64) -> Result<()> {
        let current = self
            .current
            .read()
            .expect("server cert lock is never poisoned")
            .clone();
        if renewal_due(current.not_before, current.not_after, now) {
            let names = crate::pki::renew_server_cert(dir)?;
            tracing::info!(names = %names.join(", "), "Server certificate renewed before expiry.");
        } else if modified(&self.cert) == current.modified {
            return Ok(());
        }
        let loaded = load(&self.ca, &self.cert, &self.key, &self.provider)?;
        tracing::info!(not_after = %crate::certfile::date_unix(loaded.not_after),
            "Server certificate loaded; new connections use it.");
        *self
            .current
            .write()
            .expect("server cert lock is never poisoned") = loaded;
        Ok(())
    }
}

impl ResolvesServerCert for ServerCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .expect("server cert lock is never poisoned")
                .key
                .clone(),
        )
    }
}

/// True when a third or less of the lifetime `not_before..not_after` is left at `now`.
pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    let lifetime = (not_after - not_before).max(0);
    not_after - now <= lifetime / 3
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(ca: &Path, cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded> {
    let modified = modified(cert);
    let mut chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", cert.display()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow!("{} holds no certificate", cert.display()))?;
    let facts = crate::certfile::CertFacts::from_der(leaf.as_ref())?;
    let ca_der =
        CertificateDer::from_pem_file(ca).with_context(|| format!("reading {}", ca.display()))?;
    if !chain.contains(&ca_der) {
        chain.push(ca_der);
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .context("loading the server key")?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .context("the server key does not match the server certificate")?;
    Ok(Loaded {
        key: Arc::new(certified),
        modified,
        not_before: facts.not_before.unix_timestamp(),
        not_after: facts.not_after.unix_timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_certificate_near_its_end_is_renewed_with_its_names_and_swapped_in() {
        use crate::pki;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        pki::init_ca(d, &["192.0.2.10".into()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let load = || {
            ServerCertResolver::load(
                &d.join(pki::CA_CERT),
                &d.join(pki::SERVER_CERT),
                &d.join(pki::SERVER_KEY),
                provider.clone(),
            )
            .unwrap()
        };
        let now = jiff::Timestamp::now().as_second();
        // A fresh 825-day certificate is left alone.
        let resolver = load();
        let before = std::fs::read(d.join(pki::SERVER_CERT)).unwrap();
        resolver.check(d, now).unwrap();
        assert_eq!(std::fs::read(d.join(pki::SERVER_CERT)).unwrap(), before);
        // Checked as if two thirds of its life had passed: renewed, and in use at once.
        let old_end = resolver.not_after();
        let late = old_end - (old_end - now) / 4;
        resolver.check(d, late).unwrap();
        assert_ne!(std::fs::read(d.join(pki::SERVER_CERT)).unwrap(), before);
        assert!(resolver.not_after() > now + 800 * 86_400);
        let facts = crate::certfile::CertFacts::from_pem_file(&d.join(pki::SERVER_CERT)).unwrap();
        assert!(facts.not_after.unix_timestamp() == resolver.not_after());
        let renewed = std::fs::read_to_string(d.join(pki::SERVER_CERT)).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(renewed.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(format!("{:?}", san.value).contains("[192, 0, 2, 10]"));
        // A damaged file never replaces the certificate in use.
        std::fs::write(d.join(pki::SERVER_CERT), "garbage").unwrap();
        let in_use = resolver.not_after();
        assert!(resolver.check(d, now).is_err());
        assert_eq!(resolver.not_after(), in_use);
    }

    #[test]
    fn renewal_is_due_with_a_third_of_the_lifetime_left() {
        assert!(!renewal_due(0, 300, 100));
        assert!(!renewal_due(0, 300, 199));
        assert!(renewal_due(0, 300, 200));
        assert!(renewal_due(0, 300, 400));
    }
}
