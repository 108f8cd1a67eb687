//! TLS termination for the ingest server: TLS 1.3 only, client certificates required and verified
//! against the collector's CA (expired or foreign certificates fail the handshake), and the agent's
//! identity taken from the verified certificate's subject CN (DESIGN.md §2, invariant 8:
//! nothing from an unauthenticated peer reaches a parser).

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The authenticated peer of a connection, available to handlers as a request extension.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    /// Agent name: the subject CN of its verified client certificate.
    pub agent: String,
    /// Remote address.
    pub addr: SocketAddr,
}

/// An accepted, authenticated connection. Holds a connection-limit permit for its lifetime.
pub struct AgentConn {
    stream: TlsStream<TcpStream>,
    identity: PeerIdentity,
    _permit: OwnedSemaphorePermit,
}

/// Builds the server's rustls configuration (ring provider, TLS 1.3 only, client auth required).
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c?).context("adding the CA certificate")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the client certificate verifier")?;
    let verifier = crate::refusal::explaining(verifier);
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading the server certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections, runs TLS handshakes off the accept loop, and yields authenticated
/// connections into the returned channel. At most `max_connections` live at once; past it new
/// connections wait in the kernel's backlog (policy `block`).
pub fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    max_connections: usize,
    shutdown: CancellationToken,
) -> mpsc::Receiver<std::io::Result<AgentConn>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let limit = Arc::new(Semaphore::new(max_connections));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = limit.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
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
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match handshake(acceptor, tcp, addr, permit).await {
                    Ok(conn) => {
                        tracing::info!(agent = %conn.identity.agent, %addr, "Agent connected.");
                        if tx.send(Ok(conn)).await.is_err() {
                            tracing::debug!(%addr, "Server stopping; connection dropped.");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%addr, error = %format!("{error:#}"), "TLS handshake refused.")
                    }
                }
            });
        }
    });
    rx
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
) -> Result<AgentConn> {
    tcp.set_nodelay(true).ok();
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| anyhow!("handshake timed out"))??;
    let (_, session) = stream.get_ref();
    let cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| anyhow!("no client certificate"))?;
    let agent = common_name(cert)?;
    Ok(AgentConn {
        stream,
        identity: PeerIdentity { agent, addr },
        _permit: permit,
    })
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

// === impl AgentConn ===

impl Connected for AgentConn {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.identity.clone()
    }
}

impl AsyncRead for AgentConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AgentConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
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
