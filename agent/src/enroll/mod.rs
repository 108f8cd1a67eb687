//! `logship-agent enroll`: this machine gets its certificate from the collector with a token,
//! without any key being copied around; and [`renew`], which keeps the certificate fresh while
//! the agent runs.
//!
//! Invariants of `enroll`:
//! - The key pair is made here and never leaves this machine (only a CSR is sent); the key file
//!   is mode 0600 from its creation.
//! - The collector is trusted only through the CA fingerprint given on the command line
//!   ([`pin`]); the token is sent only after the collector proved it holds a certificate from
//!   that CA. The CA returned must have the same fingerprint, the certificate returned must
//!   certify our key under the name asked for.
//! - Nothing is written when enrollment is refused or fails; on success the key, certificate and
//!   CA are each replaced atomically, and `agent.toml` ([`template`], absolute paths) is written
//!   unless one is already there (its inputs are kept: re-enrolling a machine keeps its config
//!   and spool).

pub mod files;
pub mod pin;
pub mod renew;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use logship_proto::v1::EnrollRequest;
use logship_proto::v1::enrollment_client::EnrollmentClient;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use pin::{Fingerprint, PinnedCa};

/// File names written into `--out`.
pub const KEY_FILE: &str = "agent.key";
/// The agent certificate.
pub const CERT_FILE: &str = "agent.pem";
/// The collector CA.
pub const CA_FILE: &str = "ca.pem";
/// The agent configuration.
pub const CONFIG_FILE: &str = "agent.toml";

/// Arguments of `enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Collector address, HOST:PORT (its ingest address).
    #[arg(long)]
    pub server: String,
    /// Enrollment token (`logship-collector token create`).
    #[arg(long, env = "LOGSHIP_ENROLL_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The collector's CA fingerprint, sha256:HEX (`logship-collector ca-fingerprint`).
    #[arg(long)]
    pub ca_fingerprint: String,
    /// Agent name (default: this host's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Directory for agent.key, agent.pem, ca.pem (and agent.toml unless --config-out); the
    /// spool goes in DIR/spool.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write agent.toml (default DIR/agent.toml), e.g. /etc/logship/agent.toml for the
    /// service with --out /var/lib/logship-agent.
    #[arg(long)]
    pub config_out: Option<PathBuf>,
}

/// What enrollment produced.
#[derive(Debug)]
pub struct Enrolled {
    /// The agent name.
    pub name: String,
    /// End of the certificate's validity (RFC 3339).
    pub not_after: String,
    /// agent.toml.
    pub config: PathBuf,
    /// Whether agent.toml was written now (false: an existing one was kept).
    pub config_written: bool,
}

/// Agent names become certificate CNs: the collector's rule ([`logship_proto::name`]), checked
/// here for a clear message before anything is sent.
pub fn validate_name(name: &str) -> Result<()> {
    Ok(logship_proto::name::check_agent_name(name)?)
}

/// A fresh key pair and a CSR for it (DER), subject CN `name`.
pub fn key_and_csr(name: &str) -> Result<(rcgen::KeyPair, Vec<u8>)> {
    let key = rcgen::KeyPair::generate().context("generating the agent key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let csr = params
        .serialize_request(&key)
        .context("making the certificate request")?;
    Ok((key, csr.der().to_vec()))
}

/// Checks that `cert_pem` certifies `key` under the name `name`; returns its end of validity.
pub fn check_issued(cert_pem: &str, key: &rcgen::KeyPair, name: &str) -> Result<i64> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .context("the collector returned no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| anyhow::anyhow!("the collector returned a damaged certificate: {e}"))?;
    if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(key).as_slice() {
        bail!("the collector returned a certificate for another key");
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok());
    if cn != Some(name) {
        bail!("the collector returned a certificate for {cn:?}, not {name:?}");
    }
    Ok(cert.validity().not_after.timestamp())
}

/// Runs `enroll`.
pub async fn enroll(args: &EnrollArgs) -> Result<Enrolled> {
    let pin = Fingerprint::parse(&args.ca_fingerprint)?;
    let name = args.name.clone().unwrap_or_else(crate::host_name);
    validate_name(&name)?;
    if args.token.trim().is_empty() {
        bail!("--token is empty");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCa::new(pin, provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let (key, csr_der) = key_and_csr(&name)?;
    let pinned = |error: anyhow::Error| -> anyhow::Error {
        match verifier
            .mismatch
            .lock()
            .expect("mismatch lock is never poisoned")
            .take()
        {
            Some(seen) => anyhow::anyhow!(
                "enrollment refused: wrong CA fingerprint: {seen}, not {pin} as given with \
                 --ca-fingerprint; nothing was sent or written (check the fingerprint with the \
                 collector's operator: `logship-collector ca-fingerprint`)"
            ),
            None => error,
        }
    };
    let channel = crate::shipper::connect(&args.server, Arc::new(tls))
        .await
        .map_err(pinned)?;
    let mut client = EnrollmentClient::new(channel).max_decoding_message_size(1 << 20);
    let response = client
        .enroll(EnrollRequest {
            token: args.token.trim().to_string(),
            name: name.clone(),
            csr_der: csr_der.into(),
            endpoint: args.server.clone(),
        })
        .await
        .map_err(|status| match pinned(anyhow::anyhow!("{status}")) {
            e if e.to_string().contains("wrong CA fingerprint") => e,
            _ => anyhow::anyhow!("enrollment refused: {}", status.message()),
        })?
        .into_inner();
    let ca_der = CertificateDer::from_pem_slice(response.ca_pem.as_bytes())
        .context("the collector returned no CA certificate")?;
    if Fingerprint::of(ca_der.as_ref()) != pin {
        bail!("the collector returned a CA that does not match --ca-fingerprint; nothing written");
    }
    let not_after = check_issued(&response.cert_pem, &key, &name)?;
    let config = args
        .config_out
        .clone()
        .unwrap_or_else(|| args.out.join(CONFIG_FILE));
    let config_written = write_out(
        &args.out,
        &config,
        &args.server,
        &response,
        &key.serialize_pem(),
    )?;
    Ok(Enrolled {
        name,
        not_after: crate::cert::date(not_after),
        config,
        config_written,
    })
}

/// Writes the enrollment's files into `out`; returns whether agent.toml was written.
fn write_out(
    out: &Path,
    config: &Path,
    endpoint: &str,
    response: &logship_proto::v1::EnrollResponse,
    key_pem: &str,
) -> Result<bool> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out_abs = std::path::absolute(out)?;
    files::replace(&out.join(CA_FILE), response.ca_pem.as_bytes(), false)?;
    files::install_pair(
        &out.join(CERT_FILE),
        &out.join(KEY_FILE),
        &response.cert_pem,
        key_pem,
    )?;
    if config.try_exists()? {
        return Ok(false);
    }
    if let Some(parent) = config.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let toml = template::agent_toml(endpoint, &out_abs);
    files::replace(config, toml.as_bytes(), false)?;
    Ok(true)
}
