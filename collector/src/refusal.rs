//! Refused agent certificates, explained: a client-certificate verifier that delegates every
//! decision to rustls' WebPKI verifier and, when it refuses a certificate, logs the agent the
//! certificate names (its CN) and the reason in plain words ("certificate expired on DATE").
//!
//! Invariant: this module decides nothing. The verdict, and the TLS alert the agent receives, are
//! the inner verifier's; the CN is read from a certificate that was refused, so it is only a claim
//! and is logged as such (`claimed_agent`), never used as an identity.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::certfile::{CertFacts, date};

/// Wraps `inner` so that its refusals are logged with the agent's name and a plain reason.
pub fn explaining(inner: Arc<dyn ClientCertVerifier>) -> Arc<dyn ClientCertVerifier> {
    Arc::new(Explaining { inner })
}

/// The plain-words reason a certificate was refused.
pub fn plain_reason(error: &rustls::Error, facts: Option<&CertFacts>) -> String {
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return error.to_string();
    };
    match (cert_error, facts) {
        (CertificateError::Expired | CertificateError::ExpiredContext { .. }, Some(f)) => format!(
            "certificate expired on {}: re-enroll the agent",
            date(f.not_after)
        ),
        (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }, Some(f)) => {
            format!(
                "certificate is not valid until {}: check the clocks",
                date(f.not_before)
            )
        }
        (CertificateError::UnknownIssuer, _) => {
            "certificate was not issued by this collector's CA".to_string()
        }
        (CertificateError::BadSignature, _) => {
            "certificate signature does not match this collector's CA".to_string()
        }
        (CertificateError::Revoked, _) => "certificate was revoked".to_string(),
        (CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }, _) => {
            "certificate is not an agent (client) certificate".to_string()
        }
        _ => error.to_string(),
    }
}

struct Explaining {
    inner: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for Explaining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Explaining")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ClientCertVerifier for Explaining {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(error) = &verdict {
            let facts = CertFacts::from_der(end_entity.as_ref()).ok();
            let claimed = facts.as_ref().and_then(|f| f.common_name.clone());
            tracing::warn!(
                claimed_agent = %claimed.as_deref().unwrap_or("(no CN)"),
                reason = %plain_reason(error, facts.as_ref()),
                "Agent certificate refused."
            );
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CertFacts {
        let t = time::OffsetDateTime::from_unix_timestamp(1_580_515_200).unwrap();
        CertFacts {
            common_name: Some("pc-1".into()),
            not_before: t - time::Duration::days(30),
            not_after: t,
        }
    }

    #[test]
    fn reasons_are_plain_words() {
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(
            plain_reason(&expired, Some(&facts())),
            "certificate expired on 2020-02-01T00:00:00Z: re-enroll the agent"
        );
        let foreign = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            plain_reason(&foreign, None),
            "certificate was not issued by this collector's CA"
        );
    }
}
