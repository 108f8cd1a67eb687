//! Connections to a destination: plain TCP or TLS (rustls; the server verified against the
//! configured CA file or the system's trusted roots, optional client certificate), with the
//! two questions at-least-once delivery needs answered by the kernel:
//!
//! - [`Conn::acked`]: how many of the bytes written to the socket the peer's TCP stack has
//!   acknowledged (bytes written minus the unacknowledged send queue, `TIOCOUTQ`);
//! - [`Conn::healthy`]: whether the peer has closed or reset the connection (a non-blocking
//!   read: would-block means alive; end of file, a TLS close or an error mean gone).
//!
//! Invariant: every blocking call has a deadline (connect, handshake, write), so a
//! destination that stops answering turns into an error and a retry, never a stuck thread.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::config::forward::{Endpoint, ForwardConfig};

/// Deadline of a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of the TLS handshake and of each blocking write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach a destination.
#[derive(Clone)]
pub(crate) struct Dialer {
    host: String,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
}

/// An open connection.
pub(crate) struct Conn {
    tcp: TcpStream,
    written: Arc<AtomicU64>,
    io: Io,
}

enum Io {
    Plain(Counting),
    Tls(Box<StreamOwned<ClientConnection, Counting>>),
}

/// A TCP stream counting the bytes written to it.
struct Counting {
    tcp: TcpStream,
    written: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

// === impl Dialer ===

impl Dialer {
    /// Builds the dialer (and the TLS client configuration) of a forwarder.
    pub(crate) fn new(config: &ForwardConfig) -> Result<Dialer> {
        let (host, port, tls) = match &config.endpoint {
            Endpoint::Tcp { host, port } => (host.clone(), *port, None),
            Endpoint::Tls { host, port } => (
                host.clone(),
                *port,
                Some(client_config(
                    config.ca_cert.as_ref(),
                    config.client_cert.as_ref(),
                )?),
            ),
            Endpoint::Https { .. } => {
                anyhow::bail!("https:// destinations are sent by the HTTPS sink, not dialed")
            }
        };
        Ok(Dialer { host, port, tls })
    }

    /// Connects (and completes the TLS handshake).
    pub(crate) fn connect(&self) -> Result<Conn> {
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.host))?;
        let mut last = anyhow!("{} resolves to no address", self.host);
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = anyhow!(e).context(format!("connecting to {addr}")),
            }
        }
        let tcp = tcp.ok_or(last)?;
        tcp.set_nodelay(true)?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        let written = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            tcp: tcp.try_clone()?,
            written: written.clone(),
        };
        let io = match &self.tls {
            None => Io::Plain(counting),
            Some(config) => {
                let name = ServerName::try_from(self.host.clone())
                    .with_context(|| format!("{:?} is not a valid TLS server name", self.host))?;
                let conn = ClientConnection::new(config.clone(), name)?;
                let mut stream = StreamOwned::new(conn, counting);
                while stream.conn.is_handshaking() {
                    stream
                        .conn
                        .complete_io(&mut stream.sock)
                        .context("TLS handshake")?;
                }
                Io::Tls(Box::new(stream))
            }
        };
        Ok(Conn { tcp, written, io })
    }
}

// === impl Conn ===

impl Conn {
    /// Writes all of `bytes` (blocking, with the write deadline).
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.write_all(bytes).and_then(|()| s.flush()),
            Io::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        }
    }

    /// Socket bytes written so far (TLS records included).
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Socket bytes the peer's TCP stack has acknowledged.
    pub(crate) fn acked(&self) -> io::Result<u64> {
        Ok(self.written().saturating_sub(unacked(&self.tcp)?))
    }

    /// False once the peer closed or reset the connection.
    pub(crate) fn healthy(&mut self) -> bool {
        if !matches!(self.tcp.take_error(), Ok(None)) {
            return false;
        }
        if self.tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        let alive = loop {
            let read = match &mut self.io {
                Io::Plain(s) => s.read(&mut buf),
                Io::Tls(s) => s.read(&mut buf),
            };
            match read {
                // Receivers of these protocols send nothing; drop whatever arrives.
                Ok(n) if n > 0 => continue,
                Ok(_) => break false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break false,
            }
        };
        alive && self.tcp.set_nonblocking(false).is_ok()
    }
}

/// Bytes in the socket's send queue not yet acknowledged by the peer (`TIOCOUTQ`).
#[allow(unsafe_code)]
fn unacked(tcp: &TcpStream) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ on a valid socket descriptor (borrowed from `tcp`, open for the whole
    // call) writes one c_int through the pointer, which points to a live, aligned local.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

/// rustls client configuration: roots from `ca` or the system store, optional client cert
/// (also the HTTPS forwarders' TLS, see [`super::http`]).
pub(crate) fn client_config(
    ca: Option<&PathBuf>,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("adding a CA from {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "Could not load a system CA certificate.");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(anyhow!(
            "no CA certificate to verify the destination with (ca_cert empty, or no system roots)"
        ));
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading {}", key.display()))?;
            builder.with_client_auth_cert(certs, key)?
        }
    };
    Ok(Arc::new(config))
}
