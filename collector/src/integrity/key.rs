//! The witness key files in the data directory: `witness.key` (PKCS#8 PEM, mode 0600, secret)
//! and `witness.pub` (one line, `logship-witness-ed25519 <base64url>`, to hand to the SOC and
//! to whoever verifies checkpoints or archives).

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use logship_store::{PublicKey, WitnessKey};

/// The private key file, inside the data directory.
pub const WITNESS_KEY: &str = "witness.key";
/// The public key file, inside the data directory.
pub const WITNESS_PUB: &str = "witness.pub";
const PEM_LABEL: &str = "PRIVATE KEY";

/// Makes the witness key pair in `dir`; refuses to overwrite an existing key.
pub fn create(dir: &Path) -> Result<PublicKey> {
    let path = dir.join(WITNESS_KEY);
    if path.try_exists()? {
        bail!(
            "{} already exists; refusing to overwrite it",
            path.display()
        );
    }
    let der = WitnessKey::generate_pkcs8().context("making the witness key")?;
    crate::pki::write_private(&path, &pem(&der))?;
    let key = WitnessKey::from_pkcs8(&der).context("loading the new witness key")?;
    let public = key.public_key();
    crate::pki::write_public(&dir.join(WITNESS_PUB), &public.to_text())?;
    Ok(public)
}

/// Loads the key of `dir`, making it first when the data directory has none (one made before
/// checkpoints existed).
pub fn load_or_create(dir: &Path) -> Result<WitnessKey> {
    if !dir.join(WITNESS_KEY).try_exists()? {
        let public = create(dir)?;
        tracing::warn!(key_id = %public.id(), dir = %dir.display(),
            "This data directory had no witness key: made one. Hand witness.pub to the SOC.");
    }
    load(dir)
}

/// Loads the private key of `dir`.
pub fn load(dir: &Path) -> Result<WitnessKey> {
    let path = dir.join(WITNESS_KEY);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let der = unpem(&text).with_context(|| format!("{} is not a PEM key", path.display()))?;
    WitnessKey::from_pkcs8(&der).with_context(|| format!("loading {}", path.display()))
}

/// Reads a public key file (`witness.pub`).
pub fn read_public(path: &Path) -> Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKey::from_text(&text).with_context(|| format!("reading {}", path.display()))
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

fn unpem(text: &str) -> Result<Vec<u8>> {
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != format!("-----BEGIN {PEM_LABEL}-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        bail!("no {PEM_LABEL} block");
    }
    Ok(STANDARD.decode(body)?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_is_private_loads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let public = create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(WITNESS_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap().public_key(), public);
        assert_eq!(read_public(&dir.path().join(WITNESS_PUB)).unwrap(), public);
        assert!(create(dir.path()).is_err());
    }

    #[test]
    fn the_collector_identity_is_no_agent_name() {
        assert!(crate::pki::validate_agent_name(logship_store::COLLECTOR_IDENTITY).is_err());
    }
}
