//! A hand-made gRPC client for `logship.v1.Ingest/Ship`, for sending what a real agent never
//! would: no client certificate, or a payload that decompresses to far more than the cap.
//! Connects like the agent does (TLS 1.3 only, ALPN h2, our own connector).

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use logship_proto::v1::ingest_client::IngestClient;
use logship_proto::v1::{Ack, Batch, Record, RecordList, Source};
use prost::Message;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Endpoint, Uri};

/// Limit on one whole call (connect, send, wait for the answer).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Client TLS config trusting `ca`, presenting `client` (cert, key) when given.
pub fn tls_config(ca: &Path, client: Option<(&Path, &Path)>) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Sends `batches` on one `Ship` stream and collects acks until the server ends the stream.
/// A refused call comes back as an error that downcasts to [`tonic::Status`].
pub fn ship(
    endpoint: &str,
    tls: Arc<rustls::ClientConfig>,
    batches: Vec<Batch>,
) -> Result<Vec<Ack>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(CALL_TIMEOUT, ship_async(endpoint, tls, batches))
            .await
            .context("ship call timed out")?
    })
}

async fn ship_async(
    endpoint: &str,
    tls: Arc<rustls::ClientConfig>,
    batches: Vec<Batch>,
) -> Result<Vec<Ack>> {
    let mut client = connect(endpoint, tls).await?;
    let mut acks = Vec::new();
    let mut stream = client.ship(tokio_stream::iter(batches)).await?.into_inner();
    while let Some(ack) = stream.message().await? {
        acks.push(ack);
    }
    Ok(acks)
}

/// A client on its own new connection (TLS 1.3, ALPN h2), like the agent's.
pub async fn connect(
    endpoint: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<IngestClient<tonic::transport::Channel>> {
    let addr = endpoint.to_string();
    let connector = TlsConnector::from(tls);
    let name = ServerName::try_from("127.0.0.1")?;
    let service = tower::service_fn(move |_: Uri| {
        let (connector, name, addr) = (connector.clone(), name.clone(), addr.clone());
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            let stream = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_with_connector(service)
        .await?;
    Ok(IngestClient::new(channel).max_encoding_message_size(64 << 20))
}

/// A batch of UTF-8 lines from input `input`, starting at `first_seq`.
pub fn line_batch(stream_id: &str, first_seq: u64, input: &str, lines: &[&str]) -> Result<Batch> {
    line_batch_from("raw-client", stream_id, first_seq, input, lines)
}

/// [`line_batch`] claiming to come from host `host`.
pub fn line_batch_from(
    host: &str,
    stream_id: &str,
    first_seq: u64,
    input: &str,
    lines: &[&str],
) -> Result<Batch> {
    let list = RecordList {
        host: host.into(),
        sources: vec![Source {
            input: input.into(),
            path: "/raw".into(),
        }],
        records: lines
            .iter()
            .map(|l| Record {
                raw: bytes::Bytes::copy_from_slice(l.as_bytes()),
                observed_unix_nanos: now_nanos(),
                ..Default::default()
            })
            .collect(),
        agent_tz: "UTC".into(),
        observed_unix_nanos: 0,
    };
    let encoded = list.encode_to_vec();
    Ok(Batch {
        stream_id: stream_id.into(),
        first_seq,
        count: u32::try_from(lines.len())?,
        payload: logship_proto::payload::compress(&encoded, 1)?.into(),
        uncompressed_len: encoded.len() as u64,
        ..Batch::default()
    })
}

/// A payload of `n` empty records (2 bytes each before compression: a few KiB compressed).
pub fn empty_records(n: usize) -> Result<Vec<u8>> {
    let encoded = [0x1a_u8, 0x00].repeat(n);
    Ok(logship_proto::payload::compress(&encoded, 1)?)
}

/// TLS settings presenting the agent certificate in `dir` (ca.pem, agent.pem, agent.key).
pub fn agent_tls(dir: &Path) -> Result<Arc<rustls::ClientConfig>> {
    tls_config(
        &dir.join("ca.pem"),
        Some((&dir.join("agent.pem"), &dir.join("agent.key"))),
    )
}

/// A zstd frame that decompresses to `decompressed` zero bytes (a few KiB compressed).
pub fn zero_bomb(decompressed: u64) -> Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1)?;
    let chunk = vec![0u8; 1 << 20];
    let mut left = decompressed;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        encoder.write_all(&chunk[..usize::try_from(n)?])?;
        left -= n;
    }
    Ok(encoder.finish()?)
}

fn now_nanos() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_nanos()).expect("nanoseconds fit in i64 until 2262")
}
