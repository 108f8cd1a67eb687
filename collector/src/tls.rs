//! TLS termination for the ingest server: TLS 1.3 only; a client certificate is optional at the
//! handshake but, when presented, verified against the collector's CA (expired or foreign
//! certificates fail the handshake); the agent's identity is taken from the verified
//! certificate's subject CN (DESIGN.md §2, invariant 8: nothing from an unauthenticated peer
//! reaches a parser).
//!
//! Accepted connections come out on two channels ([`Incoming`]): `agents` (verified certificate,
//! name not revoked) are served the ingest and renewal RPCs; `anonymous` (no certificate) go to
//! a server that holds the enrollment service alone, so `Ship` and `Heartbeat` cannot be reached
//! without a certificate. Anonymous connections have their own small budget
//! ([`MAX_ANONYMOUS`]) and a lifetime ([`ANONYMOUS_LIFETIME`]), apart from the agents' permits.
//!
//! The server sends the CA after its own certificate, so an enrolling agent can check the CA
//! against the fingerprint it was given before it sends anything.
//!
//! Unauthenticated peers cannot lock agents out: handshakes have their own small budget, a
//! per-source-address limit and a short deadline, and the accept loop never waits on either
//! (see [`accept_loop`]); authenticated connections hold permits counted apart.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::enroll::{ConnectionGuard, Revocations};

/// The authenticated peer of a connection, available to handlers as a request extension.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    /// Agent name: the subject CN of its verified client certificate.
    pub agent: String,
    /// Remote address.
    pub addr: SocketAddr,
    /// End of the client certificate's validity (`notAfter`), in Unix seconds.
    pub cert_not_after: i64,
    /// Ship streams open on this connection (shared by its requests).
    pub ship_streams: Arc<AtomicUsize>,
}

/// An accepted, authenticated connection. Holds a connection-limit permit for its lifetime.
pub struct AgentConn {
    stream: TlsStream<TcpStream>,
    identity: PeerIdentity,
    stop: CancellationToken,
    _registered: ConnectionGuard,
    _permit: ConnPermit,
}

/// The peer of a connection without a client certificate (request extension of `Enroll`).
#[derive(Clone, Debug)]
pub struct AnonymousPeer {
    /// Remote address.
    pub addr: SocketAddr,
}

/// An accepted connection without a client certificate: it can only enroll.
pub struct AnonymousConn {
    stream: TlsStream<TcpStream>,
    peer: AnonymousPeer,
    _permit: OwnedSemaphorePermit,
}

/// Connections without a certificate at once (enrollment only).
pub const MAX_ANONYMOUS: usize = 32;
/// How long a connection without a certificate may stay open.
pub const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(30);

/// The two kinds of accepted connections.
pub struct Incoming {
    /// Verified agents.
    pub agents: mpsc::Receiver<std::io::Result<AgentConn>>,
    /// Peers without a certificate.
    pub anonymous: mpsc::Receiver<std::io::Result<AnonymousConn>>,
}

/// Builds the server's rustls configuration (ring provider, TLS 1.3 only, client certificate
/// optional but verified when presented, server certificate from `server_cert`).
pub fn server_config(
    ca: &Path,
    server_cert: Arc<crate::enroll::ServerCertResolver>,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c?).context("adding the CA certificate")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let verifier = crate::refusal::explaining(verifier);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(server_cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Bounds on connections, unauthenticated and authenticated.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// Authenticated connections at once.
    pub max_connections: usize,
    /// TLS handshakes in progress at once, over all sources.
    pub max_handshakes: usize,
    /// TLS handshakes in progress at once from one source address.
    pub max_handshakes_per_source: usize,
    /// Time a client has to finish its handshake.
    pub handshake_timeout: Duration,
}

/// Connection counters for the status file.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes in progress now.
    pub handshakes_in_progress: AtomicU64,
    /// Connections closed unhandshaken because their source had too many handshakes open.
    pub shed_per_source: AtomicU64,
    /// Connections closed unhandshaken because the handshake budget was full.
    pub shed_busy: AtomicU64,
    /// Handshakes that did not finish in time.
    pub handshakes_timed_out: AtomicU64,
    /// Handshakes refused (bad certificate, not TLS, ...).
    pub handshakes_failed: AtomicU64,
    /// Authenticated connections now.
    pub connections: AtomicU64,
    /// Authenticated connections closed because `max_connections` were open.
    pub connections_refused_full: AtomicU64,
    /// Connections of revoked agents closed after their handshake.
    pub refused_revoked: AtomicU64,
    /// Connections without a certificate closed because [`MAX_ANONYMOUS`] were open.
    pub anonymous_refused_full: AtomicU64,
}

/// Accepts TCP connections and runs TLS handshakes off the accept loop, yielding authenticated
/// connections into the returned channel.
///
/// The accept loop never waits: a connection is closed at once (counted) when its source
/// address already has `max_handshakes_per_source` handshakes open or all `max_handshakes` are
/// in use, and a handshake gets `handshake_timeout` to finish. Authenticated connections take
/// one of `max_connections` permits (apart from the handshake budget) for their lifetime; when
/// none is free the new connection is closed and the agent retries with backoff.
pub fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: AcceptLimits,
    stats: Arc<TlsStats>,
    revocations: Revocations,
    shutdown: CancellationToken,
) -> Incoming {
    let (tx, rx) = mpsc::channel(64);
    let (anon_tx, anon_rx) = mpsc::channel(MAX_ANONYMOUS);
    let gate = Gate {
        acceptor: TlsAcceptor::from(config),
        limits,
        handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
        per_source: Arc::new(Mutex::new(HashMap::new())),
        connections: Arc::new(Semaphore::new(limits.max_connections)),
        anonymous: Arc::new(Semaphore::new(MAX_ANONYMOUS)),
        revocations,
        stats,
    };
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(error) => {
                        tracing::warn!(%error, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(ticket) = gate.admit(addr) else {
                continue;
            };
            let (gate, tx, anon_tx) = (gate.clone(), tx.clone(), anon_tx.clone());
            tokio::spawn(async move {
                let sent = match gate.handshake(tcp, addr, ticket).await {
                    Some(Accepted::Agent(conn)) => tx.send(Ok(conn)).await.is_ok(),
                    Some(Accepted::Anonymous(conn)) => anon_tx.send(Ok(conn)).await.is_ok(),
                    None => true,
                };
                if !sent {
                    tracing::debug!(%addr, "Server stopping; connection dropped.");
                }
            });
        }
    });
    Incoming {
        agents: rx,
        anonymous: anon_rx,
    }
}

/// A finished handshake.
enum Accepted {
    Agent(AgentConn),
    Anonymous(AnonymousConn),
}

/// The shared admission state of the accept loop.
#[derive(Clone)]
struct Gate {
    acceptor: TlsAcceptor,
    limits: AcceptLimits,
    handshakes: Arc<Semaphore>,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    connections: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    revocations: Revocations,
    stats: Arc<TlsStats>,
}

/// A handshake slot: its global permit and its source's count, both returned on drop.
struct Ticket {
    _permit: OwnedSemaphorePermit,
    source: IpAddr,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    stats: Arc<TlsStats>,
}

// === impl Gate ===

impl Gate {
    /// A handshake slot for a connection from `addr`, or `None` (connection closed, counted).
    fn admit(&self, addr: SocketAddr) -> Option<Ticket> {
        let source = addr.ip();
        let mut map = self
            .per_source
            .lock()
            .expect("per-source lock is never poisoned");
        let open = map.get(&source).copied().unwrap_or(0);
        if open >= self.limits.max_handshakes_per_source {
            self.stats.shed_per_source.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%addr, open, "Too many handshakes from one address; closed.");
            return None;
        }
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            self.stats.shed_busy.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%addr, "Handshake budget full; connection closed.");
            return None;
        };
        map.insert(source, open + 1);
        self.stats
            .handshakes_in_progress
            .fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            _permit: permit,
            source,
            per_source: self.per_source.clone(),
            stats: self.stats.clone(),
        })
    }

    /// Runs the handshake within the deadline, then takes a connection permit.
    async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        ticket: Ticket,
    ) -> Option<Accepted> {
        tcp.set_nodelay(true).ok();
        let done =
            tokio::time::timeout(self.limits.handshake_timeout, self.acceptor.accept(tcp)).await;
        drop(ticket);
        let stream = match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                self.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%addr, %error, "TLS handshake refused.");
                return None;
            }
            Err(_) => {
                self.stats
                    .handshakes_timed_out
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%addr, "TLS handshake timed out.");
                return None;
            }
        };
        if stream
            .get_ref()
            .1
            .peer_certificates()
            .is_none_or(|c| c.is_empty())
        {
            return self.anonymous(stream, addr).map(Accepted::Anonymous);
        }
        let (agent, cert_not_after) = match peer_name(&stream) {
            Ok(named) => named,
            Err(error) => {
                self.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%addr, error = %format!("{error:#}"), "TLS handshake refused.");
                return None;
            }
        };
        if let Some(r) = self.revocations.revoked(&agent) {
            self.stats.refused_revoked.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%agent, %addr, reason = %r.reason, "Revoked agent refused.");
            return None;
        }
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            self.stats
                .connections_refused_full
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%agent, %addr, "Connection limit reached; connection closed.");
            return None;
        };
        tracing::info!(%agent, %addr, "Agent connected.");
        let (stop, registered) = self.revocations.register(&agent);
        Some(Accepted::Agent(AgentConn {
            stream,
            identity: PeerIdentity {
                agent,
                addr,
                cert_not_after,
                ship_streams: Arc::default(),
            },
            stop,
            _registered: registered,
            _permit: ConnPermit::new(permit, self.stats.clone()),
        }))
    }

    /// A connection without a certificate: enrollment only, within its own budget.
    fn anonymous(&self, stream: TlsStream<TcpStream>, addr: SocketAddr) -> Option<AnonymousConn> {
        let Ok(permit) = self.anonymous.clone().try_acquire_owned() else {
            self.stats
                .anonymous_refused_full
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%addr, "Too many connections without a certificate; closed.");
            return None;
        };
        tracing::debug!(%addr, "Connection without a certificate (enrollment only).");
        Some(AnonymousConn {
            stream,
            peer: AnonymousPeer { addr },
            _permit: permit,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.stats
            .handshakes_in_progress
            .fetch_sub(1, Ordering::Relaxed);
        let mut map = self
            .per_source
            .lock()
            .expect("per-source lock is never poisoned");
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// An authenticated connection's permit, counted in [`TlsStats::connections`].
struct ConnPermit {
    _permit: OwnedSemaphorePermit,
    stats: Arc<TlsStats>,
}

impl ConnPermit {
    fn new(permit: OwnedSemaphorePermit, stats: Arc<TlsStats>) -> Self {
        stats.connections.fetch_add(1, Ordering::Relaxed);
        ConnPermit {
            _permit: permit,
            stats,
        }
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The agent name of a finished handshake (the CN of its verified client certificate) and the
/// end of that certificate's validity in Unix seconds.
fn peer_name(stream: &TlsStream<TcpStream>) -> Result<(String, i64)> {
    let (_, session) = stream.get_ref();
    let cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| anyhow!("no client certificate"))?;
    Ok((common_name(cert)?, not_after(cert)?))
}

/// The subject common name of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Result<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| anyhow!("parsing the client certificate: {e}"))?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| anyhow!("client certificate has no subject CN"))?;
    crate::pki::validate_agent_name(cn)?;
    Ok(cn.to_string())
}

/// The end of a DER certificate's validity (`notAfter`), in Unix seconds.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| anyhow!("parsing the client certificate: {e}"))?;
    Ok(parsed.validity().not_after.timestamp())
}

/// `AsyncRead`/`AsyncWrite` of a connection type by delegation to its `stream` field (the TLS
/// stream): the agents' and the certificate-less peers' connections differ only in what they
/// tell tonic about the peer.
macro_rules! delegate_io {
    ($conn:ty) => {
        impl AsyncRead for $conn {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.stream).poll_read(cx, buf)
            }
        }

        impl AsyncWrite for $conn {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.stream).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.stream).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.stream).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.stream.is_write_vectored()
            }
        }
    };
}

// === impl AgentConn ===

impl AgentConn {
    /// Cancelled when this connection must end: collector stopping or agent revoked.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

impl Connected for AgentConn {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.identity.clone()
    }
}

delegate_io!(AgentConn);

// === impl AnonymousConn ===

impl Connected for AnonymousConn {
    type ConnectInfo = AnonymousPeer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

delegate_io!(AnonymousConn);
