//! Certificate renewal while the agent runs: when a third or less of the certificate's lifetime
//! is left, a fresh key pair is made here, its CSR is sent over mutual TLS (the current
//! certificate) to the collector's `Renew`, and the new certificate and key are installed
//! ([`super::files::install_pair`]) and put in use for the next handshakes
//! ([`crate::tls::ClientIdentity::replace`]).
//!
//! The `Ship` stream is never touched: it carries on over its connection (made with the old
//! certificate) and the next connection presents the new one, so no record is resent or skipped
//! because of a renewal. A failed renewal is retried with backoff until the certificate expires;
//! an expired certificate cannot renew (the collector refuses it at the handshake), and the log
//! says that the agent must be enrolled again with a new token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use logship_proto::v1::RenewRequest;
use logship_proto::v1::enrollment_client::EnrollmentClient;
use tokio_util::sync::CancellationToken;

use crate::cert::{Validity, date, now};
use crate::tls::ClientIdentity;

/// Longest sleep between two looks at the certificate.
const MAX_SLEEP_SECS: i64 = 3600;
/// First retry delay after a failed renewal; doubles up to [`RETRY_MAX_SECS`].
const RETRY_FIRST_SECS: u64 = 5;
const RETRY_MAX_SECS: u64 = 300;

/// Everything renewal needs.
pub struct Renewal {
    /// The identity presented to the collector.
    pub identity: Arc<ClientIdentity>,
    /// The TLS configuration presenting it.
    pub tls: Arc<rustls::ClientConfig>,
    /// Collector endpoints, tried in order.
    pub endpoints: Vec<String>,
    /// Certificate file (agent.toml `cert`).
    pub cert: PathBuf,
    /// Key file (agent.toml `key`).
    pub key: PathBuf,
}

/// When a certificate valid `not_before..not_after` is due for renewal (Unix seconds).
pub fn due_at(v: Validity) -> i64 {
    v.not_after - (v.not_after - v.not_before).max(0) / 3
}

// === impl Renewal ===

impl Renewal {
    /// Renews whenever due, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut retry = RETRY_FIRST_SECS;
        let mut told_expired = false;
        loop {
            let wait = match Validity::from_der(self.identity.cert_der().as_ref()) {
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "Cannot read this agent's certificate; no renewal.");
                    return;
                }
                Ok(v) if now() >= v.not_after => {
                    if !told_expired {
                        told_expired = true;
                        tracing::error!(not_after = %date(v.not_after),
                            "This agent's certificate expired: it cannot renew it. Enroll it again \
                             with a new token: logship-agent enroll --token NEW_TOKEN ...");
                    }
                    Duration::from_secs(60)
                }
                Ok(v) if now() < due_at(v) => {
                    retry = RETRY_FIRST_SECS;
                    Duration::from_secs((due_at(v) - now()).clamp(1, MAX_SLEEP_SECS) as u64)
                }
                Ok(v) => match self.renew_once().await {
                    Ok(not_after) => {
                        retry = RETRY_FIRST_SECS;
                        tracing::info!(not_after = %date(not_after), previous_not_after = %date(v.not_after),
                            "Certificate renewed; the next connection uses it.");
                        Duration::ZERO
                    }
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), retry_in_s = retry,
                            not_after = %date(v.not_after), "Certificate renewal failed; retrying.");
                        let wait = Duration::from_secs(retry);
                        retry = (retry * 2).min(RETRY_MAX_SECS);
                        wait
                    }
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One renewal over the first endpoint that answers; returns the new end of validity.
    async fn renew_once(&self) -> Result<i64> {
        let name = crate::cert::common_name(self.identity.cert_der().as_ref())?;
        let (key, csr_der) = super::key_and_csr(&name)?;
        let mut last = None;
        for endpoint in &self.endpoints {
            match self.ask(endpoint, &csr_der).await {
                Ok(cert_pem) => {
                    let not_after = super::check_issued(&cert_pem, &key, &name)?;
                    super::files::install_pair(
                        &self.cert,
                        &self.key,
                        &cert_pem,
                        &key.serialize_pem(),
                    )?;
                    self.identity.replace(&self.cert, &self.key)?;
                    return Ok(not_after);
                }
                Err(e) => last = Some(e.context(format!("renewing at {endpoint}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no collector endpoint")))
    }

    async fn ask(&self, endpoint: &str, csr_der: &[u8]) -> Result<String> {
        let channel = crate::shipper::connect(endpoint, self.tls.clone()).await?;
        let mut client = EnrollmentClient::new(channel).max_decoding_message_size(1 << 20);
        let response = client
            .renew(RenewRequest {
                csr_der: csr_der.to_vec().into(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))
            .context("the collector refused the renewal")?;
        Ok(response.into_inner().cert_pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_with_a_third_of_the_lifetime_left() {
        let v = Validity {
            not_before: 1000,
            not_after: 1000 + 180,
        };
        assert_eq!(due_at(v), 1120);
    }
}
