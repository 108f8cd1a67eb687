//! `[[forward]]` entries of collector.toml: where the store's records are forwarded (the SOC's
//! SIEM), in which format, and which of them.
//!
//! Invariants: every key of the contract is parsed (`name`, `format`, `url`, `ca_cert`,
//! `client_cert`, `client_key`, `token`, `where`, `agents`, `inputs`, `datasets`); a value that
//! cannot work (unknown format, a URL scheme the format cannot use, a missing file, an unknown
//! field in `where`, a duplicate name) is a config error, never a forwarder that silently sends
//! nothing. Names are also store cursor names (`forward.<name>`).

use std::path::{Path, PathBuf};

use logship_normalize::FieldFilter;
use serde::Deserialize;

/// One `[[forward]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// Name of the forwarder (status, `forwarders`, its cursor).
    pub name: String,
    /// "syslog" (RFC 5424) | "cef" | "json" | "hec".
    pub format: String,
    /// tcp://HOST:PORT, tls://HOST:PORT, https://HOST/PATH.
    pub url: String,
    /// CA certificate (PEM) that the destination's certificate must chain to; default: the
    /// system's trusted roots. Relative to data_dir.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) presented to the destination; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Key of the client certificate (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Bearer (json) or HEC (hec) token.
    #[serde(default)]
    pub token: Option<String>,
    /// Field conditions (`--where` syntax), all must match.
    #[serde(default, rename = "where")]
    pub conditions: Vec<String>,
    /// Only records stored by these agent identities.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Only records of these agent inputs.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Only records whose parser (`event.dataset`) is one of these.
    #[serde(default)]
    pub datasets: Vec<String>,
}

/// Output format of a forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardFormat {
    /// RFC 5424 with structured data, RFC 5425 octet-counting framing.
    Syslog,
    /// CEF 0 in an RFC 5424 message, same framing and transports.
    Cef,
    /// Newline-delimited JSON POSTed over HTTPS with `Authorization: Bearer TOKEN`.
    Json,
    /// Splunk HTTP Event Collector (`Authorization: Splunk TOKEN`).
    Hec,
}

/// Path of Splunk's HEC event endpoint, used when a hec url has no path.
pub const HEC_DEFAULT_PATH: &str = "/services/collector/event";

/// Where a forwarder connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Plain TCP.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// TLS over TCP (server verified; optional client certificate).
    Tls {
        /// Host name or address (also the name verified in the server certificate).
        host: String,
        /// Port.
        port: u16,
    },
    /// HTTPS POSTs (json, hec): server verified; optional client certificate.
    Https {
        /// The full URL POSTed to (`https://HOST[:PORT]/PATH`; hec's default path filled in).
        url: String,
    },
}

/// A validated forwarder.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Name.
    pub name: String,
    /// Format.
    pub format: ForwardFormat,
    /// Destination.
    pub endpoint: Endpoint,
    /// The URL as written (for reports).
    pub url: String,
    /// CA file; None = system roots.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Token (json, hec).
    pub token: Option<String>,
    /// Field conditions, all must match.
    pub conditions: Vec<FieldFilter>,
    /// Agent identities (empty: all).
    pub agents: Vec<String>,
    /// Inputs (empty: all).
    pub inputs: Vec<String>,
    /// Datasets (empty: all).
    pub datasets: Vec<String>,
}

/// Validates every `[[forward]]` entry; problems are pushed to `problems`.
pub fn validate(
    raw: Vec<RawForward>,
    data_dir: &Path,
    problems: &mut Vec<String>,
) -> Vec<ForwardConfig> {
    let mut out: Vec<ForwardConfig> = Vec::new();
    for f in raw {
        let before = problems.len();
        let at = format!("forward {:?}", f.name);
        let cursor = crate::forward::cursor_name(&f.name);
        if f.name.is_empty()
            || f.name.len() > 64
            || !f
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || logship_store::check_cursor_name(&cursor).is_err()
        {
            problems.push(format!("{at}: name must be 1-64 of A-Z a-z 0-9 _ -"));
        }
        if out.iter().any(|o| o.name == f.name) {
            problems.push(format!(
                "{at}: a forwarder of this name is already configured"
            ));
        }
        let format = match f.format.as_str() {
            "syslog" => Some(ForwardFormat::Syslog),
            "cef" => Some(ForwardFormat::Cef),
            "json" => Some(ForwardFormat::Json),
            "hec" => Some(ForwardFormat::Hec),
            other => {
                problems.push(format!(
                    "{at}: unknown format {other:?} (syslog, cef, json, hec)"
                ));
                None
            }
        };
        let endpoint = match parse_url(&f.url, format) {
            Ok(e) => Some(e),
            Err(e) => {
                problems.push(format!("{at}: url {:?}: {e}", f.url));
                None
            }
        };
        let file = |p: &Option<PathBuf>, key: &str, problems: &mut Vec<String>| {
            p.as_ref().map(|p| {
                let path = data_dir.join(p);
                if !path.is_file() {
                    problems.push(format!("{at}: {key}: {} does not exist", path.display()));
                }
                path
            })
        };
        let ca_cert = file(&f.ca_cert, "ca_cert", problems);
        let client_cert = match (
            file(&f.client_cert, "client_cert", problems),
            file(&f.client_key, "client_key", problems),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                problems.push(format!("{at}: client_cert and client_key go together"));
                None
            }
        };
        if problems.len() == before {
            pem_problems(ca_cert.as_ref(), client_cert.as_ref(), &at, problems);
        }
        let tls_keys = ca_cert.is_some() || client_cert.is_some();
        // (https endpoints use them like tls:// ones.)
        if tls_keys && matches!(endpoint, Some(Endpoint::Tcp { .. })) {
            problems.push(format!(
                "{at}: ca_cert/client_cert/client_key need a tls:// url"
            ));
        }
        if f.token.is_some() && matches!(format, Some(ForwardFormat::Syslog | ForwardFormat::Cef)) {
            problems.push(format!("{at}: token is for the json and hec formats"));
        }
        if matches!(format, Some(ForwardFormat::Json | ForwardFormat::Hec)) {
            match &f.token {
                None => problems.push(format!(
                    "{at}: format {:?} needs token (sent as the Authorization header)",
                    f.format
                )),
                Some(t) if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) => problems
                    .push(format!(
                        "{at}: token must be printable ASCII without spaces (it goes in an HTTP header)"
                    )),
                Some(_) => {}
            }
        }
        let conditions = f
            .conditions
            .iter()
            .filter_map(|w| {
                FieldFilter::parse(w)
                    .map_err(|e| problems.push(format!("{at}: where {w:?}: {e}")))
                    .ok()
            })
            .collect();
        for d in &f.datasets {
            if d != logship_normalize::UNPARSED
                && !logship_normalize::datasets().contains(&d.as_str())
            {
                problems.push(format!(
                    "{at}: unknown dataset {d:?} (known: {}, {})",
                    logship_normalize::datasets().join(", "),
                    logship_normalize::UNPARSED
                ));
            }
        }
        if problems.len() > before {
            continue;
        }
        let (Some(format), Some(endpoint)) = (format, endpoint) else {
            continue;
        };
        out.push(ForwardConfig {
            name: f.name,
            format,
            endpoint,
            url: f.url,
            ca_cert,
            client_cert,
            token: f.token,
            conditions,
            agents: f.agents,
            inputs: f.inputs,
            datasets: f.datasets,
        });
    }
    out
}

/// Checks that the PEM files hold what they should (a forwarder that cannot build its TLS
/// configuration would otherwise stop the collector at start, after check-config said yes).
fn pem_problems(
    ca: Option<&PathBuf>,
    client: Option<&(PathBuf, PathBuf)>,
    at: &str,
    problems: &mut Vec<String>,
) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = |path: &PathBuf, key: &str, problems: &mut Vec<String>| {
        match CertificateDer::pem_file_iter(path).map(|i| i.collect::<Result<Vec<_>, _>>()) {
            Ok(Ok(c)) if !c.is_empty() => {}
            Ok(Ok(_)) => problems.push(format!(
                "{at}: {key}: {} holds no certificate",
                path.display()
            )),
            Ok(Err(e)) | Err(e) => problems.push(format!("{at}: {key}: {}: {e}", path.display())),
        }
    };
    if let Some(ca) = ca {
        certs(ca, "ca_cert", problems);
    }
    if let Some((cert, key)) = client {
        certs(cert, "client_cert", problems);
        if let Err(e) = PrivateKeyDer::from_pem_file(key) {
            problems.push(format!("{at}: client_key: {}: {e}", key.display()));
        }
    }
}

/// Parses `tcp://HOST:PORT` or `tls://HOST:PORT` (IPv6 in brackets) for syslog and cef,
/// `https://HOST[:PORT][/PATH]` for json and hec (hec without a path: [`HEC_DEFAULT_PATH`]).
fn parse_url(url: &str, format: Option<ForwardFormat>) -> Result<Endpoint, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected tcp://HOST:PORT, tls://HOST:PORT or https://HOST/PATH")?;
    let http = matches!(format, Some(ForwardFormat::Json | ForwardFormat::Hec));
    match scheme {
        "tcp" | "tls" if http => {
            return Err("the json and hec formats are sent over https://HOST[:PORT]/PATH".into());
        }
        "tcp" | "tls" => {}
        "https" if http => return parse_https(url, rest, format),
        "https" => {
            return Err(
                "https:// is for the json and hec formats; syslog and cef use tcp:// or tls://"
                    .into(),
            );
        }
        "http" => {
            return Err(
                "plain http:// is refused: tokens and logs travel over https:// only".into(),
            );
        }
        other => return Err(format!("unknown scheme {other:?} (tcp, tls, https)")),
    }
    let (host, port) = rest.rsplit_once(':').ok_or("missing :PORT")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err("missing host".into());
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or("port must be 1-65535")?;
    let host = host.to_string();
    Ok(if scheme == "tcp" {
        Endpoint::Tcp { host, port }
    } else {
        Endpoint::Tls { host, port }
    })
}

/// The https URL of a json or hec forwarder, checked and with hec's default path.
fn parse_https(url: &str, rest: &str, format: Option<ForwardFormat>) -> Result<Endpoint, String> {
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("missing host (and no user@ part)".into());
    }
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .ok_or("unclosed [ in the host")?
            .1
            .strip_prefix(':'),
        None => authority.split_once(':').map(|(_, p)| p),
    };
    if port.is_some_and(|p| p.parse::<u16>().ok().filter(|p| *p > 0).is_none()) {
        return Err("port must be 1-65535".into());
    }
    if path.starts_with(['?', '#']) || url.contains('#') {
        return Err("expected https://HOST[:PORT]/PATH (no fragment)".into());
    }
    let url = match (path.is_empty(), format) {
        (true, Some(ForwardFormat::Hec)) => format!("https://{authority}{HEC_DEFAULT_PATH}"),
        (true, _) => format!("https://{authority}/"),
        (false, _) => url.to_string(),
    };
    Ok(Endpoint::Https { url })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Vec<RawForward> {
        #[derive(Deserialize)]
        struct F {
            forward: Vec<RawForward>,
        }
        toml::from_str::<F>(text).unwrap().forward
    }

    #[test]
    fn every_contract_key_parses_and_bad_values_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["soc".to_string()]).unwrap();
        std::fs::write(dir.path().join("soc-ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
        let ok = raw(r#"
            [[forward]]
            name = "soc"
            format = "syslog"
            url = "tls://soc.example.net:6514"
            ca_cert = "soc-ca.pem"
            where = ["event.dataset=sshd"]
            agents = ["gw"]
            inputs = ["auth"]
            datasets = ["sshd"]
        "#);
        let mut problems = Vec::new();
        let v = validate(ok, dir.path(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            v[0].endpoint,
            Endpoint::Tls {
                host: "soc.example.net".into(),
                port: 6514
            }
        );
        let bad = raw(r#"
            [[forward]]
            name = "a b"
            format = "xml"
            url = "udp://x:1"
            [[forward]]
            name = "c"
            format = "syslog"
            url = "tcp://x:514"
            ca_cert = "missing.pem"
            client_cert = "c.pem"
            token = "t"
            where = ["no.such.field=1"]
        "#);
        let junk = raw(r#"
            [[forward]]
            name = "j"
            format = "cef"
            url = "tls://x:6514"
            ca_cert = "junk.pem"
        "#);
        let mut problems = Vec::new();
        assert!(validate(junk, dir.path(), &mut problems).is_empty());
        assert!(
            problems.iter().any(|p| p.contains("holds no certificate")),
            "{problems:?}"
        );
        let mut problems = Vec::new();
        assert!(validate(bad, dir.path(), &mut problems).is_empty());
        for want in [
            "name",
            "unknown format",
            "udp",
            "missing.pem",
            "go together",
            "tls://",
            "token",
            "no.such.field",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{want}: {problems:?}"
            );
        }
    }

    #[test]
    fn json_and_hec_need_https_and_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let ok = raw(r#"
            [[forward]]
            name = "ndjson"
            format = "json"
            url = "https://siem.example.net:8443/ingest"
            token = "abc"
            [[forward]]
            name = "splunk"
            format = "hec"
            url = "https://[::1]:8088"
            token = "0f3b2c1d-aaaa"
        "#);
        let mut problems = Vec::new();
        let v = validate(ok, dir.path(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            v[0].endpoint,
            Endpoint::Https {
                url: "https://siem.example.net:8443/ingest".into()
            }
        );
        assert_eq!(
            v[1].endpoint,
            Endpoint::Https {
                url: "https://[::1]:8088/services/collector/event".into()
            }
        );
        for (table, want) in [
            ("format = \"json\"\nurl = \"https://x/\"", "needs token"),
            (
                "format = \"hec\"\nurl = \"https://x/\"\ntoken = \"a b\"",
                "printable",
            ),
            (
                "format = \"json\"\nurl = \"tls://x:1\"\ntoken = \"t\"",
                "https://",
            ),
            (
                "format = \"json\"\nurl = \"http://x/\"\ntoken = \"t\"",
                "plain http",
            ),
            (
                "format = \"json\"\nurl = \"https://x:0/\"\ntoken = \"t\"",
                "port",
            ),
            (
                "format = \"syslog\"\nurl = \"https://x/\"",
                "syslog and cef use",
            ),
        ] {
            let mut problems = Vec::new();
            let text = format!("[[forward]]\nname = \"f\"\n{table}\n");
            assert!(validate(raw(&text), dir.path(), &mut problems).is_empty());
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{want}: {problems:?}"
            );
        }
    }
}
