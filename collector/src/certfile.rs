//! Facts read from a certificate (subject CN, validity window) and the expiry rule shared by
//! `check-config` and the handshake refusal log: a certificate that expired is an error, one that
//! expires within [`EXPIRY_WARNING_DAYS`] a warning.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A certificate expiring within this many days draws a warning from `check-config`.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// What a certificate says about itself (not verified: for messages and checks only).
#[derive(Clone, Debug)]
pub struct CertFacts {
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// How a certificate's validity looks at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Valid, and for more than [`EXPIRY_WARNING_DAYS`].
    Fine,
    /// Valid, but expires soon: the text says when.
    Soon(String),
    /// Not valid now: the text says why, in plain words.
    Invalid(String),
}

// === impl CertFacts ===

impl CertFacts {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertFacts> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| anyhow!("not a valid X.509 certificate: {e}"))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let validity = cert.validity();
        Ok(CertFacts {
            common_name,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }

    /// Reads the first certificate of a PEM file.
    pub fn from_pem_file(path: &Path) -> Result<CertFacts> {
        let der = CertificateDer::from_pem_file(path)
            .with_context(|| format!("reading a certificate from {}", path.display()))?;
        CertFacts::from_der(der.as_ref())
    }

    /// The validity at `now`, in words.
    pub fn expiry(&self, now: OffsetDateTime) -> Expiry {
        if now > self.not_after {
            Expiry::Invalid(format!("certificate expired on {}", date(self.not_after)))
        } else if now < self.not_before {
            Expiry::Invalid(format!(
                "certificate is not valid until {} (check this machine's clock)",
                date(self.not_before)
            ))
        } else if self.not_after - now < time::Duration::days(EXPIRY_WARNING_DAYS) {
            Expiry::Soon(format!(
                "certificate expires on {} (in less than {EXPIRY_WARNING_DAYS} days)",
                date(self.not_after)
            ))
        } else {
            Expiry::Fine
        }
    }
}

/// RFC 3339 in UTC, to the second.
pub fn date(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// RFC 3339 in UTC of Unix seconds.
pub fn date_unix(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(date)
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(days_before: i64, days_after: i64) -> CertFacts {
        let now = OffsetDateTime::now_utc();
        CertFacts {
            common_name: None,
            not_before: now - time::Duration::days(days_before),
            not_after: now + time::Duration::days(days_after),
        }
    }

    #[test]
    fn expiry_is_fine_soon_or_invalid() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(facts(1, 90).expiry(now), Expiry::Fine);
        assert!(matches!(facts(1, 3).expiry(now), Expiry::Soon(t) if t.contains("expires on")));
        assert!(
            matches!(facts(10, -2).expiry(now), Expiry::Invalid(t) if t.starts_with("certificate expired on"))
        );
        assert!(
            matches!(facts(-1, 5).expiry(now), Expiry::Invalid(t) if t.contains("not valid until"))
        );
    }
}
