//! Enrollment: agents get their certificates without keys being copied around, certificates
//! renew themselves, and agents can be revoked at once (issue 11).
//!
//! - [`tokens`]: one-time-shown enrollment tokens, stored hashed, with a TTL and a use count.
//! - [`service`]: the `logship.v1.Enrollment` gRPC service (`Enroll` with a token and a CSR on a
//!   connection without a certificate; `Renew` on an agent's mutual-TLS connection).
//! - [`limiter`]: failed enrollment attempts per source address.
//! - [`revocations`]: revoked agent names, persisted and picked up by the running collector.
//! - [`server_cert`]: the server certificate, reloaded and renewed while the collector runs.
//!
//! The commands (`token create|list|revoke`, `agents revoke`, `ca-fingerprint`) are here too, as
//! functions that print to a writer; every create, use, refusal and revoke is logged with
//! `tracing` fields (token id, agent name, source address).

pub mod limiter;
pub mod revocations;
pub mod server_cert;
pub mod service;
pub mod tokens;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub use revocations::{ConnectionGuard, Revocations};
pub use server_cert::ServerCertResolver;
pub use service::{EnrollService, EnrollStats};
use tokens::{NewToken, TokenBook};

/// Default lifetime of agent certificates issued by enrollment and renewal: 30 days.
pub const DEFAULT_AGENT_CERT_LIFETIME: &str = "30d";

/// `token create`: prints the token's facts and, as the last line, the token itself.
pub fn token_create(
    dir: &Path,
    ttl: &str,
    uses: u32,
    label: &str,
    replace: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let ttl_ns = crate::timearg::parse_age(ttl).with_context(|| format!("--ttl {ttl:?}"))?;
    if ttl_ns <= 0 {
        bail!("--ttl must be greater than 0");
    }
    if uses == 0 {
        bail!("--uses must be at least 1");
    }
    let fingerprint = crate::pki::ca_fingerprint(dir)?;
    let now = jiff::Timestamp::now().as_second();
    let new = NewToken {
        ttl_secs: ttl_ns / 1_000_000_000,
        max_uses: uses,
        label: label.to_string(),
        replace,
    };
    let (record, token) = TokenBook::new(dir).create(&new, now)?;
    tracing::info!(token_id = %record.id, label = %record.label, uses = record.max_uses,
        replace = record.replace, expires = %tokens::date(record.expires_unix),
        "Enrollment token created.");
    writeln!(out, "token id: {}", record.id)?;
    writeln!(out, "expires: {}", tokens::date(record.expires_unix))?;
    writeln!(out, "uses: {}", record.max_uses)?;
    writeln!(out, "ca fingerprint: {fingerprint}")?;
    writeln!(
        out,
        "on each PC: logship-agent enroll --server HOST:PORT --token TOKEN --ca-fingerprint \
         {fingerprint} --name NAME --out DIR"
    )?;
    writeln!(
        out,
        "the token (shown only now; it is stored hashed) is the next line:"
    )?;
    writeln!(out, "{token}")?;
    out.flush()?;
    Ok(())
}

/// `token list`: one line per token, without the token itself.
pub fn token_list(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let now = jiff::Timestamp::now().as_second();
    let list = TokenBook::new(dir).list()?;
    writeln!(
        out,
        "{:<12}  {:<8}  {:>9}  {:<20}  {:<7}  {:<16}  AGENTS",
        "ID", "STATE", "USES", "EXPIRES", "REPLACE", "LABEL"
    )?;
    for t in list {
        writeln!(
            out,
            "{:<12}  {:<8}  {:>9}  {:<20}  {:<7}  {:<16}  {}",
            t.id,
            tokens::state(&t, now),
            format!("{}/{}", t.uses, t.max_uses),
            tokens::date(t.expires_unix),
            if t.replace { "yes" } else { "no" },
            t.label,
            t.agents.join(",")
        )?;
    }
    out.flush()?;
    Ok(())
}

/// `token revoke`: the token cannot be used from now on (also by a running collector).
pub fn token_revoke(dir: &Path, id: &str, out: &mut dyn Write) -> Result<()> {
    let now = jiff::Timestamp::now().as_second();
    let record = TokenBook::new(dir).revoke(id, now)?;
    tracing::info!(token_id = %record.id, label = %record.label, uses = record.uses,
        "Enrollment token revoked.");
    writeln!(out, "revoked token {} ({})", record.id, record.label)?;
    out.flush()?;
    Ok(())
}

/// `agents revoke`: the agent is refused from now on; a running collector closes its
/// connections within seconds.
pub fn agent_revoke(dir: &Path, name: &str, reason: &str, out: &mut dyn Write) -> Result<()> {
    crate::pki::validate_agent_name(name)?;
    if !dir.join(crate::pki::CA_CERT).try_exists()? {
        bail!(
            "{} is not a collector data directory (no CA)",
            dir.display()
        );
    }
    let now = jiff::Timestamp::now().as_second();
    let r = revocations::revoke(dir, name, reason, now)?;
    tracing::info!(agent = %name, reason = %r.reason, "Agent revoked.");
    writeln!(
        out,
        "revoked agent {name:?} since {} ({}); a running collector closes its connections \
         within seconds",
        tokens::date(r.revoked_unix),
        r.reason
    )?;
    out.flush()?;
    Ok(())
}

/// What status.json says about enrollment: the CA fingerprint (`ca_fingerprint`), the counters
/// (`enrollment`) and the server certificate's expiry.
#[derive(Clone)]
pub struct StatusFacts {
    /// `sha256:HEX` of the CA.
    pub ca_fingerprint: String,
    /// Counters.
    pub stats: std::sync::Arc<EnrollStats>,
    /// The server certificate in use.
    pub server_cert: std::sync::Arc<ServerCertResolver>,
    /// Revoked agents.
    pub revocations: Revocations,
}

impl StatusFacts {
    /// Adds the facts to the status document.
    pub fn add_to(&self, doc: &mut serde_json::Value) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.stats;
        doc["ca_fingerprint"] = serde_json::json!(self.ca_fingerprint);
        doc["server_cert_not_after"] =
            serde_json::json!(crate::certfile::date_unix(self.server_cert.not_after()));
        doc["enrollment"] = serde_json::json!({
            "enrolled": s.enrolled.load(Relaxed),
            "refused": s.refused.load(Relaxed),
            "rate_limited": s.rate_limited.load(Relaxed),
            "renewed": s.renewed.load(Relaxed),
            "revoked_agents": self.revocations.count(),
        });
    }
}

/// Parses the agent certificate lifetime of collector.toml (`30d`, `2m`, ...).
pub fn parse_lifetime(text: &str) -> Result<Duration> {
    let ns = crate::timearg::parse_age(text)?;
    if ns < 60_000_000_000 {
        bail!("must be at least 1m");
    }
    Ok(Duration::from_nanos(ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_certificate_lifetime_is_at_least_a_minute() {
        assert_eq!(
            parse_lifetime("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_lifetime("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_lifetime("30s").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn token_create_prints_the_token_last_and_refuses_zero_uses() {
        let dir = tempfile::tempdir().unwrap();
        crate::pki::init_ca(dir.path(), &[]).unwrap();
        let mut out = Vec::new();
        token_create(dir.path(), "1h", 3, "lab", false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let last = text.lines().last().unwrap();
        assert_eq!(last.len(), 64);
        assert!(last.bytes().all(|b| b.is_ascii_hexdigit()));
        let stored = std::fs::read_to_string(dir.path().join(tokens::TOKENS_FILE)).unwrap();
        assert!(!stored.contains(last));
        assert!(token_create(dir.path(), "1h", 0, "", false, &mut Vec::new()).is_err());
        assert!(token_create(dir.path(), "0s", 1, "", false, &mut Vec::new()).is_err());
    }
}
