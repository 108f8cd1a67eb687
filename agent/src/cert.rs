//! This agent's own certificate, in words: when it expires, for `check-config` (an expired
//! certificate is an error, one expiring within [`EXPIRY_WARNING_DAYS`] a warning) and for the log
//! when the collector refuses a connection ("certificate expired on DATE: re-enroll" instead of a
//! TLS library's text).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A certificate expiring within this many days draws a warning from `check-config`.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// The validity window of a certificate, in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
}

/// How a certificate's validity looks at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Valid for more than [`EXPIRY_WARNING_DAYS`].
    Fine,
    /// Valid, but expires soon: the text says when.
    Soon(String),
    /// Not valid now: the text says why and what to do.
    Invalid(String),
}

// === impl Validity ===

impl Validity {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Validity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| anyhow!("not a valid X.509 certificate: {e}"))?;
        let v = cert.validity();
        Ok(Validity {
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
        })
    }

    /// Reads the first certificate of a PEM file.
    pub fn from_pem_file(path: &Path) -> Result<Validity> {
        let der = CertificateDer::from_pem_file(path)
            .with_context(|| format!("reading a certificate from {}", path.display()))?;
        Validity::from_der(der.as_ref())
    }

    /// The certificate this TLS configuration presents to the collector.
    pub fn of_client(tls: &rustls::ClientConfig) -> Option<Validity> {
        let key = tls.client_auth_cert_resolver.resolve(&[], &[])?;
        Validity::from_der(key.cert.first()?.as_ref()).ok()
    }

    /// The validity at `now` (Unix seconds), in words.
    pub fn expiry(&self, now: i64) -> Expiry {
        if now > self.not_after {
            Expiry::Invalid(format!(
                "certificate expired on {}: re-enroll this agent with a new token \
                 (logship-agent enroll --token NEW_TOKEN ...)",
                date(self.not_after)
            ))
        } else if now < self.not_before {
            Expiry::Invalid(format!(
                "certificate is not valid until {}: check this machine's clock",
                date(self.not_before)
            ))
        } else if self.not_after - now < EXPIRY_WARNING_DAYS * 86_400 {
            Expiry::Soon(format!(
                "certificate expires on {} (in less than {EXPIRY_WARNING_DAYS} days): re-enroll \
                 this agent soon",
                date(self.not_after)
            ))
        } else {
            Expiry::Fine
        }
    }
}

/// The subject CN of a DER certificate (this agent's name).
pub fn common_name(der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow!("not a valid X.509 certificate: {e}"))?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the certificate has no subject CN"))
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// RFC 3339 in UTC.
pub fn date(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix_seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_fine_soon_or_invalid() {
        let day = 86_400;
        let v = |before: i64, after: i64| Validity {
            not_before: 1_000_000 * day - before * day,
            not_after: 1_000_000 * day + after * day,
        };
        let now = 1_000_000 * day;
        assert_eq!(v(1, 90).expiry(now), Expiry::Fine);
        assert!(matches!(v(1, 3).expiry(now), Expiry::Soon(t) if t.contains("expires on")));
        let Expiry::Invalid(text) = v(10, -2).expiry(now) else {
            panic!("an expired certificate must be invalid");
        };
        assert!(
            text.starts_with("certificate expired on")
                && text.contains("re-enroll this agent with a new token")
        );
        assert!(
            matches!(v(-1, 5).expiry(now), Expiry::Invalid(t) if t.contains("not valid until"))
        );
    }
}
