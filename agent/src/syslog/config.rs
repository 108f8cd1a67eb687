//! `[[syslog]]` in agent.toml: the raw table and its validated form.
//!
//! Invariants: a validated [`SyslogInput`] has at least one listener, no listener twice, TLS
//! files that exist whenever a `tls://` listener is asked for, and bounds that keep every
//! buffer of the input finite (`max_message_bytes` fits one batch; connection caps > 0).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default cut-off for one message (the contract's example value, rsyslog's common setting).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Default simultaneous TCP/TLS connections from one IP address.
const DEFAULT_MAX_CONNECTIONS_PER_SENDER: usize = 16;
/// Default simultaneous TCP/TLS connections in all.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default idle time after which a silent TCP/TLS connection is closed.
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 600;
/// Smallest accepted `max_message_bytes`.
const MIN_MESSAGE_BYTES: usize = 480;

/// `[[syslog]]`: one syslog receiver, as written in agent.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    /// Input name, attached to every record.
    pub name: String,
    /// Listeners: `udp://ADDR:PORT`, `tcp://ADDR:PORT`, `tls://ADDR:PORT`, any subset.
    pub listen: Vec<String>,
    /// Server certificate chain (PEM) for `tls://` listeners, relative to the config file.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for `tls://` listeners.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that TLS senders' client certificates must chain to; absent = no client check.
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
    /// Longer messages are cut to this many bytes and keep their original length.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Simultaneous TCP/TLS connections from one sender IP address; more are refused.
    #[serde(default = "default_max_connections_per_sender")]
    pub max_connections_per_sender: usize,
    /// Simultaneous TCP/TLS connections of this input in all; more are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP/TLS connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

/// Transport of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One message per datagram.
    Udp,
    /// Plain TCP, newline or octet-counted framing (RFC 6587).
    Tcp,
    /// TCP inside TLS (RFC 5425), same framing as TCP.
    Tls,
}

/// One validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Transport.
    pub transport: Transport,
    /// Address to bind.
    pub addr: SocketAddr,
}

/// TLS files of a syslog input (paths resolved against the config file's folder).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Client CA (PEM), when client certificates are checked.
    pub client_ca: Option<PathBuf>,
}

/// A validated syslog input.
#[derive(Debug, Clone)]
pub struct SyslogInput {
    /// Input name.
    pub name: String,
    /// Listeners, in the order written.
    pub listeners: Vec<Listener>,
    /// TLS files; `Some` whenever a listener is `tls://`.
    pub tls: Option<TlsFiles>,
    /// Cut-off for one message.
    pub max_message_bytes: usize,
    /// Per-sender-IP connection cap.
    pub max_connections_per_sender: usize,
    /// Connection cap of the input.
    pub max_connections: usize,
    /// Idle timeout of a connection.
    pub idle_timeout: Duration,
}

const fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
const fn default_max_connections_per_sender() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_SENDER
}
const fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
const fn default_idle_timeout_secs() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECS
}

// === impl Transport ===

impl Transport {
    /// The URL scheme, also the `transport` attribute of each record.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

// === impl Listener ===

impl Listener {
    /// Parses `udp://ADDR:PORT` (also `tcp://`, `tls://`; IPv6 as `[::]:514`).
    pub fn parse(url: &str) -> Result<Listener, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not SCHEME://ADDR:PORT"))?;
        let transport = match scheme {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(format!("{url:?}: scheme must be udp, tcp or tls")),
        };
        let addr: SocketAddr = rest
            .parse()
            .map_err(|_| format!("{url:?}: {rest:?} is not IP:PORT (e.g. 0.0.0.0:514)"))?;
        Ok(Listener { transport, addr })
    }

    /// `scheme://addr`, the source path of its records.
    pub fn url(&self) -> String {
        format!("{}://{}", self.transport.as_str(), self.addr)
    }
}

// === impl RawSyslog ===

impl RawSyslog {
    /// Validates against `base` (the config file's folder) and the batch size `batch_max_bytes`.
    pub fn build(
        self,
        base: &Path,
        batch_max_bytes: usize,
        p: &mut Vec<String>,
    ) -> Option<SyslogInput> {
        let before = p.len();
        let name = &self.name;
        if name.is_empty() {
            p.push("syslog.name must not be empty".into());
        }
        if self.listen.is_empty() {
            p.push(format!(
                "syslog {name:?}: listen must list at least one URL"
            ));
        }
        let mut listeners: Vec<Listener> = Vec::new();
        for url in &self.listen {
            match Listener::parse(url) {
                Ok(l) if listeners.contains(&l) => {
                    p.push(format!("syslog {name:?}: {url:?} is listed twice"))
                }
                Ok(l) => listeners.push(l),
                Err(e) => p.push(format!("syslog {name:?}: listen {e}")),
            }
        }
        if !(MIN_MESSAGE_BYTES..=batch_max_bytes / 2).contains(&self.max_message_bytes) {
            p.push(format!(
                "syslog {name:?}: max_message_bytes must be between {MIN_MESSAGE_BYTES} and \
                 half of batch.max_bytes ({}): a message must fit in one batch",
                batch_max_bytes / 2
            ));
        }
        if self.max_connections_per_sender == 0 || self.max_connections == 0 {
            p.push(format!(
                "syslog {name:?}: max_connections_per_sender and max_connections must be > 0"
            ));
        }
        if self.idle_timeout_secs == 0 {
            p.push(format!("syslog {name:?}: idle_timeout_secs must be > 0"));
        }
        let tls = self.tls_files(base, &listeners, p);
        if p.len() > before {
            return None;
        }
        Some(SyslogInput {
            name: self.name,
            listeners,
            tls,
            max_message_bytes: self.max_message_bytes,
            max_connections_per_sender: self.max_connections_per_sender,
            max_connections: self.max_connections,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        })
    }

    fn tls_files(
        &self,
        base: &Path,
        listeners: &[Listener],
        p: &mut Vec<String>,
    ) -> Option<TlsFiles> {
        let name = &self.name;
        let wants_tls = listeners.iter().any(|l| l.transport == Transport::Tls);
        if !wants_tls {
            if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_client_ca.is_some() {
                p.push(format!(
                    "syslog {name:?}: tls_cert/tls_key/tls_client_ca need a tls:// listener"
                ));
            }
            return None;
        }
        let mut file = |rel: &Option<PathBuf>, key: &str| -> Option<PathBuf> {
            let Some(rel) = rel else {
                p.push(format!("syslog {name:?}: a tls:// listener needs {key}"));
                return None;
            };
            let path = base.join(rel);
            if !path.try_exists().unwrap_or(false) {
                p.push(format!(
                    "syslog {name:?}: {key}: {} does not exist",
                    path.display()
                ));
            }
            Some(path)
        };
        let cert = file(&self.tls_cert, "tls_cert");
        let key = file(&self.tls_key, "tls_key");
        let client_ca = match &self.tls_client_ca {
            Some(_) => Some(file(&self.tls_client_ca, "tls_client_ca")?),
            None => None,
        };
        Some(TlsFiles {
            cert: cert?,
            key: key?,
            client_ca,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_urls_parse_and_bad_ones_say_why() {
        let l = Listener::parse("udp://0.0.0.0:514").unwrap();
        assert_eq!(l.transport, Transport::Udp);
        assert_eq!(l.url(), "udp://0.0.0.0:514");
        assert_eq!(
            Listener::parse("tls://[::1]:6514").unwrap().url(),
            "tls://[::1]:6514"
        );
        assert!(
            Listener::parse("http://0.0.0.0:80")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            Listener::parse("tcp://host:514")
                .unwrap_err()
                .contains("IP:PORT")
        );
        assert!(Listener::parse("0.0.0.0:514").is_err());
    }

    #[test]
    fn tls_listener_without_files_and_bad_sizes_are_reported_together() {
        let raw: RawSyslog = toml::from_str(
            r#"name = "n"
listen = ["tls://127.0.0.1:6514", "udp://127.0.0.1:514", "udp://127.0.0.1:514"]
max_message_bytes = 10"#,
        )
        .unwrap();
        let mut p = Vec::new();
        assert!(
            raw.build(Path::new("/nonexistent"), 1 << 20, &mut p)
                .is_none()
        );
        let all = p.join("\n");
        assert!(all.contains("listed twice"), "{all}");
        assert!(all.contains("max_message_bytes"), "{all}");
        assert!(all.contains("needs tls_cert"), "{all}");
        assert!(all.contains("needs tls_key"), "{all}");
    }
}
