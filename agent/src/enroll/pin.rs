//! Trusting the collector only through the CA fingerprint the operator gave (`--ca-fingerprint
//! sha256:HEX`): no trust on first use. The collector sends its CA after its own certificate;
//! this verifier takes, from what the server sent, the certificate whose SHA-256 is the pin,
//! and verifies the server certificate against it alone (WebPKI, name and validity checked).
//! When no certificate matches the handshake fails, before the token or anything else is sent,
//! and the fingerprints seen are kept for the error message.

use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// A parsed `sha256:HEX` fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

// === impl Fingerprint ===

impl Fingerprint {
    /// Parses `sha256:` + 64 hex digits (upper or lower case; colons between bytes allowed).
    pub fn parse(text: &str) -> Result<Fingerprint> {
        let Some(hex_part) = text.trim().strip_prefix("sha256:") else {
            bail!(
                "--ca-fingerprint must start with \"sha256:\" (as `logship-collector ca-fingerprint` prints it)"
            );
        };
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&digits).ok().filter(|b| b.len() == 32);
        match bytes {
            Some(b) => Ok(Fingerprint(b.try_into().expect("length checked"))),
            None => bail!("--ca-fingerprint must be sha256: followed by 64 hex digits"),
        }
    }

    /// The fingerprint of DER bytes.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// The pinning verifier.
#[derive(Debug)]
pub struct PinnedCa {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    /// Set when the server presented no certificate with the pinned fingerprint.
    pub mismatch: Mutex<Option<String>>,
}

// === impl PinnedCa ===

impl PinnedCa {
    /// A verifier trusting only the CA with fingerprint `pin`.
    pub fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        PinnedCa {
            pin,
            provider,
            mismatch: Mutex::new(None),
        }
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| Fingerprint::of(c.as_ref()) == self.pin)
        else {
            let seen: Vec<String> = intermediates
                .iter()
                .map(|c| Fingerprint::of(c.as_ref()).to_string())
                .collect();
            let text = if seen.is_empty() {
                "the collector sent no CA certificate".to_string()
            } else {
                format!("the collector's CA is {}", seen.join(", "))
            };
            *self
                .mismatch
                .lock()
                .expect("mismatch lock is never poisoned") = Some(text);
            return Err(rustls::Error::General(
                "the collector's CA does not match the pinned fingerprint".into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_printed_form_only() {
        let hex64 = "ab".repeat(32);
        let f = Fingerprint::parse(&format!("sha256:{hex64}")).unwrap();
        assert_eq!(f.to_string(), format!("sha256:{hex64}"));
        assert_eq!(
            Fingerprint::parse(&format!("sha256:{}", hex64.to_uppercase())).unwrap(),
            f
        );
        assert!(Fingerprint::parse(&hex64).is_err());
        assert!(Fingerprint::parse("sha256:abcd").is_err());
        assert!(Fingerprint::parse(&format!("sha256:{}", "zz".repeat(32))).is_err());
    }
}
