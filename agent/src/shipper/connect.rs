//! Opening a gRPC channel to one collector endpoint over our own TLS 1.3 connector.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// Time allowed for TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 flow-control windows: large enough for multi-MiB batches in flight.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;

/// Connects to `endpoint` (HOST:PORT); the certificate must be valid for HOST.
pub(crate) async fn connect(endpoint: &str, tls: Arc<rustls::ClientConfig>) -> Result<Channel> {
    let (host, _) = endpoint
        .rsplit_once(':')
        .context("endpoint is not HOST:PORT")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string())
        .with_context(|| format!("{host:?} is not a valid server name"))?;
    let connector = TlsConnector::from(tls);
    let addr = endpoint.to_string();
    let service = tower::service_fn(move |_: Uri| {
        let (connector, name, addr) = (connector.clone(), server_name.clone(), addr.clone());
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    let endpoint_config = Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    let channel = endpoint_config.connect_with_connector(service);
    tokio::time::timeout(CONNECT_TIMEOUT, channel)
        .await
        .context("connect timed out")?
        .with_context(|| format!("connecting to {endpoint}"))
}
