//! TCP and TLS listeners: accepting within the connection caps, the TLS handshake (optional
//! client-certificate check), and one task per connection reading framed messages.
//!
//! Invariants:
//! - At most `max_connections` connections per input and `max_connections_per_sender` per
//!   sender IP; a connection over a cap is closed at once and logged, the listener goes on.
//! - A connection task waits on the input's channel while it is full and reads nothing
//!   meanwhile, so the kernel's TCP flow control slows the sender (nothing is dropped). The
//!   messages one read brought are handed over as one chunk (`chunk`), before the connection
//!   waits for more.
//! - With `tls_client_ca`, the verified client certificate's subject CN is kept with each
//!   message of the connection (attribute `tls_client`): unlike the address, it cannot be forged.
//! - A handshake that takes longer than [`HANDSHAKE_TIMEOUT`], a connection silent for the idle
//!   timeout, a malformed frame or a failed read closes that connection only, with a log line
//!   naming the sender and the reason.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::chunk::{CHUNK_BYTES, Chunk, ChunkTx};
use super::config::{SyslogInput, TlsFiles};
use super::framing::{FrameError, FrameReader};

/// How often a busy connection moves its idle deadline forward.
const IDLE_RESET_EVERY: Duration = Duration::from_secs(1);
/// Longest TLS handshake allowed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer of one connection.
const READ_BUF: usize = 64 << 10;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every listener task of an input shares.
#[derive(Clone)]
pub(super) struct Conn {
    pub(super) input: String,
    pub(super) listener: usize,
    pub(super) tx: ChunkTx,
    pub(super) max: usize,
    pub(super) idle: Duration,
    pub(super) shutdown: CancellationToken,
}

/// Connection counts of one input.
#[derive(Clone)]
pub(super) struct Limits {
    per_sender: usize,
    total: usize,
    open: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One open connection's place in [`Limits`], given back on drop.
struct Slot {
    open: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

// === impl Limits ===

impl Limits {
    pub(super) fn new(input: &SyslogInput) -> Self {
        Limits {
            per_sender: input.max_connections_per_sender,
            total: input.max_connections,
            open: Arc::default(),
        }
    }

    /// A slot for a connection from `ip`, or the cap that refuses it.
    fn acquire(&self, ip: IpAddr) -> Result<Slot, &'static str> {
        let mut c = self.open.lock().expect("limits lock is never poisoned");
        if c.total >= self.total {
            return Err("max_connections");
        }
        let n = c.by_ip.entry(ip).or_default();
        if *n >= self.per_sender {
            return Err("max_connections_per_sender");
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            open: self.open.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.open.lock().expect("limits lock is never poisoned");
        c.total -= 1;
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

/// The TLS acceptor for `files`: TLS 1.2 or 1.3 (devices still speak 1.2), ring provider,
/// client certificates required and verified when `client_ca` is set.
pub(super) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
            {
                roots.add(c?).context("adding the client CA")?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("building the client-certificate check")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .context("loading the syslog TLS certificate")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The subject CN of a verified client certificate (the `tls_client` attribute).
fn subject_cn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_string())
}

/// Accepts connections until shutdown.
pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    conn: Conn,
) {
    loop {
        let accepted = tokio::select! {
            _ = conn.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(input = %conn.input, %error, "Accepting a syslog connection failed.");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match limits.acquire(peer.ip()) {
            Ok(s) => s,
            Err(cap) => {
                tracing::warn!(input = %conn.input, sender = %peer, cap,
                    "Syslog connection refused: connection cap reached.");
                continue;
            }
        };
        let conn = conn.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve(stream, peer, tls, conn).await;
        });
    }
}

async fn serve(stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, conn: Conn) {
    let reason = match tls {
        None => read_messages(stream, peer, None, &conn).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                _ = conn.shutdown.cancelled() => return,
                h = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => h,
            };
            match handshake {
                Ok(Ok(tls)) => {
                    let client = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|c| subject_cn(c));
                    read_messages(tls, peer, client.map(Arc::from), &conn).await
                }
                Ok(Err(error)) => Err(format!("TLS handshake failed: {error}")),
                Err(_) => Err(format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")),
            }
        }
    };
    match reason {
        Ok(()) => tracing::debug!(input = %conn.input, sender = %peer, "Syslog connection closed."),
        Err(reason) => tracing::warn!(input = %conn.input, sender = %peer, %reason,
            "Syslog connection closed."),
    }
}

/// Reads messages until the peer closes (Ok), an error, the idle timeout or shutdown.
///
/// Messages already whole in the read buffer are taken without awaiting anything and handed
/// over together as one chunk; the chunk is always handed over before the next read can wait
/// for the sender, so no message waits on a quiet connection.
async fn read_messages(
    stream: impl AsyncRead + Unpin,
    peer: SocketAddr,
    client: Option<Arc<str>>,
    conn: &Conn,
) -> Result<(), String> {
    let mut frames = FrameReader::new(BufReader::with_capacity(READ_BUF, stream), conn.max);
    // One idle timer per connection, moved forward at most once a second (a new timer per
    // message was a tenth of the agent's CPU at high rates). Idle = no complete message for
    // between `idle` and `idle` + 1 s.
    let idle = tokio::time::sleep(conn.idle);
    tokio::pin!(idle);
    let mut armed_at = tokio::time::Instant::now();
    let mut raw = Vec::new();
    let mut chunk = Chunk::new(conn.listener, client.clone());
    loop {
        while chunk.cost() < CHUNK_BYTES && frames.next_buffered(|m| chunk.push(m, 0, peer)) {}
        if !chunk.is_empty() {
            let now = tokio::time::Instant::now();
            if now.duration_since(armed_at) >= IDLE_RESET_EVERY {
                idle.as_mut().reset(now + conn.idle);
                armed_at = now;
            }
            let full = std::mem::replace(&mut chunk, Chunk::new(conn.listener, client.clone()));
            let messages = full.len();
            // Full channel = full spool downstream: wait here, reading nothing (flow control).
            let sent = tokio::select! {
                _ = conn.shutdown.cancelled() => {
                    // Read but not spooled (the spool is full and the agent stops): say so.
                    tracing::warn!(input = %conn.input, sender = %peer, messages,
                        "Agent stopping with the spool full: received syslog messages not spooled.");
                    return Ok(());
                }
                s = conn.tx.send(full) => s,
            };
            if sent.is_err() {
                return Ok(());
            }
            continue;
        }
        let next = tokio::select! {
            _ = conn.shutdown.cancelled() => return Ok(()),
            () = &mut idle => return Err(format!("idle for {:?}", conn.idle)),
            n = frames.next(&mut raw) => n,
        };
        let truncated_from = match next {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(()),
            Err(FrameError::Io(error)) => return Err(format!("reading failed: {error}")),
            Err(error @ FrameError::BadLength(_)) => return Err(error.to_string()),
        };
        if truncated_from > 0 {
            tracing::debug!(input = %conn.input, sender = %peer, truncated_from,
                "Syslog message cut at max_message_bytes.");
        }
        chunk.push(&raw, truncated_from, peer);
    }
}
