//! `logship-attack`: the hostile clients of the hardening tests, as a process of their own
//! (so the collector is attacked over real sockets, from outside the test process).
//!
//! ```text
//! logship-attack amplify ENDPOINT CERT_DIR CONNECTIONS ROUNDS
//!     each connection sends ROUNDS x 2 batches of 16 MiB of empty records claiming 10 records
//!     (once with the honest decompressed size, once with size 0), then tries two Ship streams
//!     at once on one connection; exits 0 when every one of them was refused as expected
//! logship-attack idle ENDPOINT SOCKETS SECONDS FIRST_OCTET SOURCES
//!     holds SOCKETS TCP connections that never handshake, from 127.0.0.FIRST_OCTET and the
//!     next SOURCES-1 addresses, reconnecting each one the server closes, for SECONDS
//! logship-attack ship ENDPOINT CERT_DIR STREAM_ID FIRST_SEQ HOST INPUT LINE...
//!     ships one batch of LINE... claiming host HOST; exits 0 once it is acked
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::raw;
use logship_proto::v1::Batch;
use tokio::io::AsyncReadExt;

/// Empty records in one amplification batch: 16 MiB once decompressed.
const EMPTY_RECORDS: usize = 8 << 20;
/// What the amplification batches claim to hold.
const LIED_COUNT: u32 = 10;
const STREAM_ID: &str = "0123456789abcdef0123456789abcdef";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("amplify") if args.len() == 5 => runtime.block_on(amplify(
            &args[1],
            Path::new(&args[2]),
            args[3].parse()?,
            args[4].parse()?,
        )),
        Some("idle") if args.len() == 6 => runtime.block_on(idle(
            &args[1],
            args[2].parse()?,
            Duration::from_secs(args[3].parse()?),
            args[4].parse()?,
            args[5].parse()?,
        )),
        Some("ship") if args.len() >= 8 => runtime.block_on(ship(&args[1..])),
        _ => bail!("usage: see the module docs of tests/src/bin/logship-attack.rs"),
    }
}

async fn amplify(endpoint: &str, certs: &Path, connections: usize, rounds: usize) -> Result<()> {
    let payload = bytes::Bytes::from(raw::empty_records(EMPTY_RECORDS)?);
    eprintln!(
        "amplify: 16 MiB of empty records in {} bytes",
        payload.len()
    );
    let tls = raw::agent_tls(certs)?;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (tls, payload, endpoint) = (tls.clone(), payload.clone(), endpoint.to_string());
        tasks.push(tokio::spawn(async move {
            let mut client = raw::connect(&endpoint, tls.clone()).await?;
            for _ in 0..rounds {
                for declared in [2 * EMPTY_RECORDS as u64, 0] {
                    let batch = Batch {
                        stream_id: STREAM_ID.into(),
                        first_seq: 1,
                        count: LIED_COUNT,
                        payload: payload.clone(),
                        uncompressed_len: declared,
                        ..Batch::default()
                    };
                    expect_refusal(&mut client, batch, tonic::Code::InvalidArgument).await?;
                }
            }
            second_stream_is_refused(&endpoint, tls).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!("amplify: every batch was refused");
    Ok(())
}

type Client = logship_proto::v1::ingest_client::IngestClient<tonic::transport::Channel>;

async fn expect_refusal(client: &mut Client, batch: Batch, code: tonic::Code) -> Result<()> {
    let mut acks = client.ship(tokio_stream::iter([batch])).await?.into_inner();
    match acks.message().await {
        Err(status) if status.code() == code => Ok(()),
        other => bail!("expected {code:?}, got {other:?}"),
    }
}

/// Opens one Ship stream and keeps it open while a second one is tried on the same connection.
async fn second_stream_is_refused(endpoint: &str, tls: Arc<rustls::ClientConfig>) -> Result<()> {
    let mut client = raw::connect(endpoint, tls).await?;
    let (_keep, rx) = tokio::sync::mpsc::channel::<Batch>(1);
    let _first = client
        .ship(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?;
    let second = client.ship(tokio_stream::iter(Vec::<Batch>::new())).await;
    match second {
        Err(status) if status.code() == tonic::Code::ResourceExhausted => Ok(()),
        other => bail!("a second Ship stream on one connection was not refused: {other:?}"),
    }
}

async fn idle(
    endpoint: &str,
    sockets: usize,
    for_how_long: Duration,
    first_octet: u8,
    sources: u8,
) -> Result<()> {
    let target: SocketAddr = endpoint.parse()?;
    let connects = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + for_how_long;
    let mut tasks = vec![tokio::spawn(report_when_all_connected(
        connects.clone(),
        sockets as u64,
    ))];
    for i in 0..sockets {
        let octet = first_octet + (i % usize::from(sources)) as u8;
        let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, octet), 0));
        let connects = connects.clone();
        tasks.push(tokio::spawn(async move {
            // Staggered so the server's accept queue takes every socket in turn.
            tokio::time::sleep(Duration::from_millis(2 * i as u64)).await;
            while Instant::now() < end {
                // Counted once connected, while it is held.
                if hold_one(source, target, end, &connects).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Reconnect as soon as the server lets go (with a pause to spare the CPU).
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let n = connects.load(Ordering::Relaxed);
    eprintln!("idle: {n} connections made");
    ensure!(n >= sockets as u64, "only {n} connections could be made");
    Ok(())
}

/// Prints one line once `connects` reached `sockets` (the test waits for it).
async fn report_when_all_connected(connects: Arc<AtomicU64>, sockets: u64) {
    while connects.load(Ordering::Relaxed) < sockets {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("idle: all {sockets} sockets connected");
}

/// Connects from `source` and sends nothing until the server closes or `end` passes.
async fn hold_one(
    source: SocketAddr,
    target: SocketAddr,
    end: Instant,
    connects: &AtomicU64,
) -> Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(source)?;
    let mut stream = socket.connect(target).await?;
    connects.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 64];
    let left = end.saturating_duration_since(Instant::now());
    // Whatever the server sends (nothing, or an alert) is ignored; EOF means it closed us, and
    // the deadline passing means the attack is over: both end the hold.
    let held = tokio::time::timeout(left, async {
        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    drop(held);
    Ok(())
}

async fn ship(args: &[String]) -> Result<()> {
    let [
        endpoint,
        certs,
        stream_id,
        first_seq,
        host,
        input,
        lines @ ..,
    ] = args
    else {
        bail!("ship: missing arguments");
    };
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = raw::line_batch_from(host, stream_id, first_seq.parse()?, input, &lines)?;
    let tls = raw::agent_tls(Path::new(certs))?;
    let mut client = raw::connect(endpoint, tls).await?;
    let mut acks = client.ship(tokio_stream::iter([batch])).await?.into_inner();
    let ack = acks
        .message()
        .await?
        .context("the collector closed the stream without an ack")?;
    println!("acked through {}", ack.acked_through_seq);
    Ok(())
}
