//! The collector's certificate authority: creating the CA and the server certificate on `init`,
//! and issuing agent client certificates.
//!
//! Files in the data directory (private keys mode 0600):
//! ```text
//! ca.pem  ca.key          self-signed CA (ECDSA P-256), 10 years
//! server.pem server.key   server certificate signed by the CA, SANs: localhost, 127.0.0.1, ::1,
//!                         the host name, and every --san (re-issued by `server-cert`; the CA
//!                         is never touched after `init`)
//! issued/NAME.pem         every agent certificate issued, by name (issuing a name again needs
//!                         --force)
//! ```
//! Agents that enroll (`crate::enroll`) send a CSR: the collector certifies the CSR's public key
//! under the name it approved ([`sign_agent_csr`]), so agent private keys never leave the agent.
//! The CA is named to agents by its fingerprint ([`ca_fingerprint`]).
//!
//! An agent certificate's subject CN is the agent's name: the collector takes the agent's identity
//! from it and from nothing else (DESIGN.md §2). A certificate is never issued with a validity
//! that has already ended.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Allowed clock skew at the start of an enrolled agent's certificate.
const ENROLLED_SKEW_SECS: i64 = 60;

/// Validity of the CA certificate.
const CA_VALID_DAYS: i64 = 3650;
/// Validity of the server certificate.
const SERVER_VALID_DAYS: i64 = 825;

/// File names inside the collector's data directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA private key.
pub const CA_KEY: &str = "ca.key";
/// The server certificate.
pub const SERVER_CERT: &str = "server.pem";
/// The server private key.
pub const SERVER_KEY: &str = "server.key";
/// Folder (in the data directory) with a copy of every agent certificate issued.
pub const ISSUED_DIR: &str = "issued";

/// Validity window of an issued certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start of validity.
    pub not_before: time::OffsetDateTime,
    /// End of validity.
    pub not_after: time::OffsetDateTime,
}

impl Validity {
    /// From now (minus five minutes of clock skew) for `days` days.
    pub fn days_from_now(days: i64) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Validity {
            not_before: now - time::Duration::minutes(5),
            not_after: now + time::Duration::days(days),
        }
    }
}

/// Creates the CA and the server certificate in `dir`. Refuses to overwrite an existing CA.
pub fn init_ca(dir: &Path, extra_sans: &[String]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join(CA_KEY).try_exists()? {
        bail!(
            "{} already holds a CA; refusing to overwrite it",
            dir.display()
        );
    }
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("self-signing the CA")?;
    write_private(&dir.join(CA_KEY), &ca_key.serialize_pem())?;
    write_public(&dir.join(CA_CERT), &ca_cert.pem())?;

    let issuer = Issuer::new(ca_params, ca_key);
    write_server_cert(dir, &issuer, extra_sans)?;
    Ok(())
}

/// Re-issues the server certificate and key in `dir` with the default names and `extra_sans`,
/// signed by the existing CA (which is left as it is). Returns the names in the new certificate.
pub fn reissue_server_cert(dir: &Path, extra_sans: &[String]) -> Result<Vec<String>> {
    let issuer = load_issuer(dir)?;
    write_server_cert(dir, &issuer, extra_sans)
}

/// Renews the server certificate in `dir` before it expires: a new key and certificate with the
/// same names and the same lifetime as the current one, signed by the existing CA.
pub fn renew_server_cert(dir: &Path) -> Result<Vec<String>> {
    let pem = read(&dir.join(SERVER_CERT))?;
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateDer<'static>| d)
        .context("reading the server certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| anyhow::anyhow!("parsing the server certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(IpAddr::from(<[u8; 4]>::try_from(*b)?).to_string()),
                    16 => names.push(IpAddr::from(<[u8; 16]>::try_from(*b)?).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let v = cert.validity();
    let lifetime_secs = (v.not_after.timestamp() - v.not_before.timestamp()).max(3600);
    let issuer = load_issuer(dir)?;
    write_server_cert_for(dir, &issuer, &names, time::Duration::seconds(lifetime_secs))
}

fn write_server_cert(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    extra_sans: &[String],
) -> Result<Vec<String>> {
    write_server_cert_for(
        dir,
        issuer,
        extra_sans,
        time::Duration::days(SERVER_VALID_DAYS),
    )
}

/// Writes a server certificate valid for `lifetime`, starting a little before now.
pub(crate) fn write_server_cert_for(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    extra_sans: &[String],
    lifetime: time::Duration,
) -> Result<Vec<String>> {
    let server_key = KeyPair::generate().context("generating the server key")?;
    let names = server_names(extra_sans);
    let mut server_params = server_params(&names)?;
    // Clock skew allowance: five minutes, or a tenth of a short lifetime; the certificate's
    // whole validity is `lifetime` either way (a renewal keeps it).
    let skew = time::Duration::minutes(5).min(lifetime / 10);
    let now = time::OffsetDateTime::now_utc();
    server_params.not_before = now - skew;
    server_params.not_after = now - skew + lifetime;
    let server_cert = server_params
        .signed_by(&server_key, issuer)
        .context("signing the server certificate")?;
    // Each file is replaced atomically; a crash between the two leaves a pair that does not
    // match, which `serve` refuses to load: running the command again repairs it.
    replace_file(&dir.join(SERVER_KEY), &server_key.serialize_pem(), true)?;
    replace_file(&dir.join(SERVER_CERT), &server_cert.pem(), false)?;
    Ok(names)
}

/// An issued agent certificate and its private key, both PEM.
pub struct AgentCert {
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
}

/// Issues a client certificate for agent `name`, signed by the CA in `dir`, and keeps a copy in
/// `issued/`. Refuses a validity that has already ended, and a name issued before unless `force`.
pub fn issue_agent_cert(
    dir: &Path,
    name: &str,
    validity: Validity,
    force: bool,
) -> Result<AgentCert> {
    validate_agent_name(name)?;
    check_validity(validity)?;
    let record = dir.join(ISSUED_DIR).join(format!("{name}.pem"));
    if !force && record.try_exists()? {
        bail!(
            "a certificate for agent {name:?} was already issued ({}); pass --force to issue a \
             new one (for example to re-enroll it)",
            record.display()
        );
    }
    let issuer = load_issuer(dir)?;
    let key = KeyPair::generate().context("generating the agent key")?;
    let params = agent_params(name, validity)?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the agent certificate")?;
    fs::create_dir_all(dir.join(ISSUED_DIR))?;
    write_public(&record, &cert.pem())?;
    Ok(AgentCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The CA fingerprint of data directory `dir`: `sha256:` + lowercase hex SHA-256 of the CA
/// certificate's DER bytes (what `openssl x509 -in ca.pem -outform der | sha256sum` prints).
pub fn ca_fingerprint(dir: &Path) -> Result<String> {
    use rustls_pki_types::pem::PemObject;
    let path = dir.join(CA_CERT);
    let der = rustls_pki_types::CertificateDer::from_pem_file(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(fingerprint_of_der(der.as_ref()))
}

/// `sha256:HEX` of DER bytes.
pub fn fingerprint_of_der(der: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(der)))
}

/// Whether a certificate was ever issued for agent `name` (by `issue-agent-cert` or enrollment).
pub fn name_issued(dir: &Path, name: &str) -> Result<bool> {
    Ok(dir
        .join(ISSUED_DIR)
        .join(format!("{name}.pem"))
        .try_exists()?)
}

/// Validity of a certificate issued by enrollment or renewal: from a minute ago for `lifetime`.
pub fn enrolled_validity(lifetime: std::time::Duration) -> Validity {
    let now = time::OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::seconds(ENROLLED_SKEW_SECS),
        not_after: now + time::Duration::seconds(lifetime.as_secs() as i64),
    }
}

/// Certifies the public key of a PKCS#10 request (DER; its signature is checked, its subject and
/// extensions ignored) as agent `name`, signed by the CA in `dir`, and keeps a copy in
/// `issued/`. Returns the certificate PEM. The caller decides whether `name` may be (re)issued.
pub fn sign_agent_csr(
    dir: &Path,
    name: &str,
    csr_der: &[u8],
    validity: Validity,
) -> Result<String> {
    validate_agent_name(name)?;
    check_validity(validity)?;
    let der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der);
    let csr = rcgen::CertificateSigningRequestParams::from_der(&der)
        .map_err(|e| anyhow::anyhow!("the certificate request is not valid: {e}"))?;
    let issuer = load_issuer(dir)?;
    let params = agent_params(name, validity)?;
    let cert = params
        .signed_by(&csr.public_key, &issuer)
        .context("signing the agent certificate")?;
    fs::create_dir_all(dir.join(ISSUED_DIR))?;
    replace_file(
        &dir.join(ISSUED_DIR).join(format!("{name}.pem")),
        &cert.pem(),
        false,
    )?;
    Ok(cert.pem())
}

fn agent_params(name: &str, validity: Validity) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(vec![name.to_string()])
        .context("building agent certificate parameters")?;
    params.distinguished_name = dn(name);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// A validity window must end after it starts, and not in the past.
fn check_validity(v: Validity) -> Result<()> {
    if v.not_after <= v.not_before {
        bail!("the validity ends before it starts");
    }
    let now = time::OffsetDateTime::now_utc();
    if v.not_after <= now {
        bail!(
            "the validity ended on {}, which is already past; an agent could never use it",
            crate::certfile::date(v.not_after)
        );
    }
    Ok(())
}

/// Agent names become certificate CNs and store keys: the contract's rule
/// ([`logship_proto::name`]).
pub fn validate_agent_name(name: &str) -> Result<()> {
    Ok(logship_proto::name::check_agent_name(name)?)
}

fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let ca_pem = read(&dir.join(CA_CERT))?;
    let key_pem = read(&dir.join(CA_KEY))?;
    let key = KeyPair::from_pem(&key_pem).context("parsing the CA key")?;
    Issuer::from_ca_cert_pem(&ca_pem, key).context("parsing the CA certificate")
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(&format!("logship collector CA {}", host_name()));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let v = Validity::days_from_now(CA_VALID_DAYS);
    params.not_before = v.not_before;
    params.not_after = v.not_after;
    Ok(params)
}

/// The default server names (loopback and this host) followed by `extra`, each once.
fn server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".into(),
        "::1".into(),
        host_name(),
    ];
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

fn server_params(names: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_>>()?;
    params.distinguished_name = dn("logship collector");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let v = Validity::days_from_now(SERVER_VALID_DAYS);
    params.not_before = v.not_before;
    params.not_after = v.not_after;
    Ok(params)
}

fn san(name: &str) -> Result<SanType> {
    Ok(match name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            name.to_string()
                .try_into()
                .with_context(|| format!("invalid DNS name {name:?}"))?,
        ),
    })
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "logship");
    dn
}

/// This machine's host name, or "localhost" when it cannot be read.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Refuses private key files that group or others can read or write (the collector does not
/// start with exposed keys: whoever holds the CA key can mint agents).
pub fn refuse_exposed_keys(paths: &[std::path::PathBuf]) -> Result<()> {
    #[cfg(unix)]
    for path in paths {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "private key {} is readable by group or others (mode {:o}); run `chmod 600 {}` \
                 and start again",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = paths;
    Ok(())
}

/// Writes a file readable by everyone (certificates, configs).
pub fn write_public(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Replaces `path` atomically (write beside it, fsync, rename), keeping secrets mode 0600.
fn replace_file(path: &Path, contents: &str, private: bool) -> Result<()> {
    let tmp = path.with_extension("new");
    if private {
        write_private(&tmp, contents)?;
    } else {
        write_public(&tmp, contents)?;
    }
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Writes a secret file with mode 0600 from the start (never world-readable, not even briefly).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_issued_once_unless_forced_and_never_already_expired() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), &[]).unwrap();
        let valid = Validity::days_from_now(30);
        issue_agent_cert(dir.path(), "pc-1", valid, false).unwrap();
        let again = issue_agent_cert(dir.path(), "pc-1", valid, false)
            .err()
            .unwrap();
        assert!(format!("{again:#}").contains("--force"));
        issue_agent_cert(dir.path(), "pc-1", valid, true).unwrap();
        let past = Validity {
            not_before: valid.not_before - time::Duration::days(60),
            not_after: valid.not_before - time::Duration::days(30),
        };
        let refused = issue_agent_cert(dir.path(), "pc-2", past, false)
            .err()
            .unwrap();
        assert!(format!("{refused:#}").contains("already past"));
    }

    #[test]
    fn server_cert_is_reissued_with_the_new_names_and_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), &[]).unwrap();
        let ca_key = fs::read(dir.path().join(CA_KEY)).unwrap();
        let old = fs::read(dir.path().join(SERVER_CERT)).unwrap();
        let names = reissue_server_cert(dir.path(), &["192.0.2.10".into()]).unwrap();
        assert!(names.contains(&"192.0.2.10".to_string()));
        assert!(names.contains(&"localhost".to_string()));
        assert_eq!(fs::read(dir.path().join(CA_KEY)).unwrap(), ca_key);
        assert_ne!(fs::read(dir.path().join(SERVER_CERT)).unwrap(), old);
    }

    #[test]
    fn agent_names_that_are_path_tricks_are_refused() {
        for bad in [".", "..", ".hidden", "", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_agent_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["pc-0042", "dc01.corp.example", "srv_1", "a..b"] {
            assert!(validate_agent_name(good).is_ok(), "{good:?} refused");
        }
    }
}
