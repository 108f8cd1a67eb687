//! The `logship.v1.Enrollment` service: `Enroll` for peers without a certificate (token + CSR),
//! `Renew` for agents on their mutual-TLS connection.
//!
//! Order of `Enroll` (nothing of the request is parsed before the token passed):
//! source address rate limit → token (hash lookup; unknown, revoked, expired, used up) → name
//! (syntax, revoked, already issued unless the token allows `--replace`) → CSR (parsed, its
//! signature checked) → signed → the token's use counted. Every outcome is logged with the agent
//! name, the source address and the token id.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logship_proto::v1::enrollment_server::Enrollment;
use logship_proto::v1::{EnrollRequest, EnrollResponse, RenewRequest, RenewResponse};
use tonic::{Request, Response, Status};

use super::limiter::Limiter;
use super::revocations::Revocations;
use super::tokens::{Redeem, TokenBook, TokenRecord};
use crate::pki;
use crate::tls::{AnonymousPeer, PeerIdentity};

/// Counters for status.json.
#[derive(Debug, Default)]
pub struct EnrollStats {
    /// Agents enrolled.
    pub enrolled: AtomicU64,
    /// Enrollments refused (token, name or request).
    pub refused: AtomicU64,
    /// Attempts refused by the per-address limit.
    pub rate_limited: AtomicU64,
    /// Certificates renewed.
    pub renewed: AtomicU64,
}

/// The enrollment service shared by all connections.
#[derive(Clone)]
pub struct EnrollService {
    dir: PathBuf,
    tokens: TokenBook,
    limiter: Limiter,
    revocations: Revocations,
    lifetime: Duration,
    stats: Arc<EnrollStats>,
}

/// Why an enrollment was refused after its token passed.
enum NameOrRequest {
    Name(String),
    Request(String),
}

// === impl EnrollService ===

impl EnrollService {
    /// A service issuing certificates valid for `lifetime` from the CA in `dir`.
    pub fn new(
        dir: PathBuf,
        revocations: Revocations,
        lifetime: Duration,
        stats: Arc<EnrollStats>,
    ) -> Self {
        EnrollService {
            tokens: TokenBook::new(&dir),
            dir,
            limiter: Limiter::default(),
            revocations,
            lifetime,
            stats,
        }
    }

    fn refuse(&self, addr: SocketAddr, name: &str, token_id: &str, status: Status) -> Status {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let failures = self.limiter.fail(addr.ip(), Instant::now());
        tracing::warn!(agent = %name, %addr, token_id, failures, reason = %status.message(),
            "Enrollment refused.");
        status
    }

    /// Runs under the token lock once the token passed: name checks, CSR, signature.
    fn issue(
        &self,
        token: &TokenRecord,
        name: &str,
        csr_der: &[u8],
    ) -> Result<(String, String), NameOrRequest> {
        pki::validate_agent_name(name).map_err(|e| NameOrRequest::Name(format!("{e:#}")))?;
        if let Some(r) = self.revocations.revoked(name) {
            return Err(NameOrRequest::Name(format!(
                "agent name {name:?} was revoked ({}); enroll this machine under a new name",
                r.reason
            )));
        }
        let exists = pki::name_issued(&self.dir, name)
            .map_err(|e| NameOrRequest::Request(format!("{e:#}")))?;
        if exists && !token.replace {
            return Err(NameOrRequest::Name(format!(
                "agent name {name:?} is already enrolled; use another name, or a token created \
                 with --replace to replace it"
            )));
        }
        let cert = pki::sign_agent_csr(
            &self.dir,
            name,
            csr_der,
            pki::enrolled_validity(self.lifetime),
        )
        .map_err(|e| NameOrRequest::Request(format!("{e:#}")))?;
        Ok((cert, name.to_string()))
    }
}

#[tonic::async_trait]
impl Enrollment for EnrollService {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let Some(peer) = request.extensions().get::<AnonymousPeer>().cloned() else {
            return Err(Status::failed_precondition(
                "enroll on a connection without a client certificate",
            ));
        };
        let addr = peer.addr;
        if let Err(wait) = self.limiter.check(addr.ip(), Instant::now()) {
            let n = self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(%addr, refused_so_far = n + 1,
                    "Enrollment attempts from this address refused: too many failures.");
            }
            return Err(Status::resource_exhausted(format!(
                "too many failed enrollment attempts from {}; try again in {wait} s",
                addr.ip()
            )));
        }
        let req = request.into_inner();
        let svc = self.clone();
        let now = jiff::Timestamp::now().as_second();
        let (token, name, csr) = (req.token.clone(), req.name.clone(), req.csr_der.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut used = String::new();
            let r = svc.tokens.redeem(&token, now, |record| {
                used = record.id.clone();
                svc.issue(record, &name, &csr)
            });
            (r, used)
        })
        .await
        .map_err(|e| Status::internal(format!("enrollment failed: {e}")))?;
        let short: String = req.name.chars().take(128).collect();
        let cert_pem = match outcome {
            (Ok(Ok(cert)), token_id) => {
                self.stats.enrolled.fetch_add(1, Ordering::Relaxed);
                tracing::info!(agent = %req.name, %addr, token_id, "Agent enrolled.");
                cert
            }
            (Ok(Err(NameOrRequest::Name(reason))), token_id) => {
                return Err(self.refuse(addr, &short, &token_id, Status::already_exists(reason)));
            }
            (Ok(Err(NameOrRequest::Request(reason))), token_id) => {
                return Err(self.refuse(addr, &short, &token_id, Status::invalid_argument(reason)));
            }
            (Err(Redeem::Refused(why)), token_id) => {
                return Err(self.refuse(
                    addr,
                    &short,
                    &token_id,
                    Status::permission_denied(why.to_string()),
                ));
            }
            (Err(Redeem::Store(e)), _) => {
                tracing::error!(error = %e, "Token file unusable; enrollment refused.");
                return Err(Status::unavailable(format!(
                    "the collector cannot read its tokens: {e}"
                )));
            }
        };
        let ca_pem = std::fs::read_to_string(self.dir.join(pki::CA_CERT))
            .map_err(|e| Status::internal(format!("reading the CA: {e}")))?;
        Ok(Response::new(EnrollResponse { cert_pem, ca_pem }))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let Some(peer) = request.extensions().get::<PeerIdentity>().cloned() else {
            return Err(Status::unauthenticated("no verified client certificate"));
        };
        if self.revocations.revoked(&peer.agent).is_some() {
            return Err(Status::permission_denied("this agent was revoked"));
        }
        let csr = request.into_inner().csr_der;
        let (dir, agent, validity) = (
            self.dir.clone(),
            peer.agent.clone(),
            pki::enrolled_validity(self.lifetime),
        );
        let signed =
            tokio::task::spawn_blocking(move || pki::sign_agent_csr(&dir, &agent, &csr, validity))
                .await
                .map_err(|e| Status::internal(format!("renewal failed: {e}")))?;
        match signed {
            Ok(cert_pem) => {
                self.stats.renewed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(agent = %peer.agent, addr = %peer.addr,
                    not_after = %crate::certfile::date(validity.not_after),
                    "Agent certificate renewed.");
                Ok(Response::new(RenewResponse { cert_pem }))
            }
            Err(e) => {
                tracing::warn!(agent = %peer.agent, addr = %peer.addr,
                    error = %format!("{e:#}"), "Certificate renewal refused.");
                Err(Status::invalid_argument(format!("{e:#}")))
            }
        }
    }
}
