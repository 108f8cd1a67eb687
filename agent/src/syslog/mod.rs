//! The syslog receiver (`[[syslog]]`): UDP, TCP and TLS listeners whose messages become
//! records of one input, as the file input's lines do.
//!
//! ```text
//! udp listener  ─┐  channel full and spool full: udp_dropped += n; channel full only: wait
//! tcp listener  ─┼─► chunks ─► byte-bounded channel (per input) ─► batcher thread ─► spool
//! tls listener  ─┘  send().await (full: stop reading; TCP flow control slows the sender)
//! ```
//!
//! Invariants:
//! - Every message is a record with its bytes verbatim (`<PRI>` included); only framing is
//!   removed (`framing`). A message longer than `max_message_bytes` is cut and carries its
//!   original length (`truncated_from`); none is dropped silently.
//! - Each record carries the attributes `sender` (`IP:PORT` of the peer, `[v6]:PORT` for IPv6)
//!   and `transport` (`udp`, `tcp` or `tls`), and `tls_client` (the subject CN of the verified
//!   client certificate) when `tls_client_ca` is set; its source path is the listener's URL.
//! - Syslog has no acknowledgement, so the spool's back-pressure is all there is: while the
//!   spool is full the batcher blocks, the channel fills, stream connections stop being read,
//!   and UDP datagrams are dropped and counted (only then: a channel full because the batcher
//!   is behind makes the UDP task wait, and the kernel's receive buffer holds the burst). `udp_dropped` (heartbeat `drops`, then
//!   `status.json` `agents.<agent>.drops.udp_dropped`) = datagrams refused by the full channel +
//!   datagrams the kernel dropped on the socket (`udp`), so received + `udp_dropped` = sent.
//! - Every buffer is bounded: the channel by bytes (`chunk`: 32 MiB of messages at the
//!   default `max_message_bytes`, about 160,000 messages of 160 bytes), each connection by its
//!   read buffer plus one chunk, each UDP socket by its kernel receive buffer and one batch of
//!   datagrams (`datagrams`), connections by `max_connections` and
//!   `max_connections_per_sender`. Messages travel in chunks (those one read or one
//!   `recvmmsg` brought), so the hand-off costs one channel operation per chunk, not per
//!   message.
//! - No positions are persisted: a live network stream cannot be re-read after a restart.
//! - A batch closes as the batcher's limits say (`max_records`, `max_bytes`, `max_wait`), and
//!   also when it holds at least 1,000 messages and nothing arrived for 20 ms (the end of a
//!   burst is spooled at once, not `max_wait` later, and the spool fsyncs it at once, not at
//!   the end of `fsync_interval_ms`; a trickle still waits for both).

mod chunk;
mod config;
mod datagrams;
mod framing;
mod stream;
mod udp;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use logship_tail::LineSink;
use tokio_util::sync::CancellationToken;

use crate::batcher::{Batcher, EncodedAttributes};
use chunk::ChunkRx;

pub use config::{Listener, RawSyslog, SyslogInput, TlsFiles, Transport};
pub use framing::{FrameError, FrameReader, Framing};
pub use udp::SpoolFull;

/// How often the batcher thread wakes up without messages (batch age, stop flag).
const TICK: Duration = Duration::from_millis(100);
/// Messages taken from the channel between two clock ticks (whole chunks: a few more).
const DRAIN_BATCH: usize = 4096;
/// A drain that found fewer messages than this means the batcher outruns the listeners: it
/// naps for [`NAP`] before waiting on the channel again, so messages gather in the channel
/// instead of every single one waking this thread (a futex round trip per message cost half
/// of the agent's CPU at 200k messages/s). Adds at most `NAP` of latency at low rates.
const SMALL_DRAIN: usize = 256;
const NAP: Duration = Duration::from_millis(1);
/// An open batch of at least [`BURST_RECORDS`] messages closes once nothing arrived for
/// [`BURST_IDLE`]: the end of a burst reaches the spool, is fsync'd and ships at once instead
/// of after the batch's `max_wait` and the spool's fsync interval. Smaller batches (a trickle)
/// still wait for both, so a quiet device does not cost a batch and an fsync per message.
const BURST_RECORDS: u32 = 1000;
const BURST_IDLE: Duration = Duration::from_millis(20);

/// Binds every listener of `input` (an error names the one that failed), starts their tasks on
/// the current runtime and the batcher thread. The thread ends once every listener has stopped
/// (after `shutdown`) and the channel is drained, or when `stop` is set and nothing arrives.
pub async fn start(
    input: SyslogInput,
    batcher: Batcher,
    full: SpoolFull,
    stop: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let (tx, rx) = chunk::channel(chunk::channel_budget(input.max_message_bytes));
    let stats = batcher.stats();
    let limits = stream::Limits::new(&input);
    let tls = match &input.tls {
        Some(files) => Some(
            stream::acceptor(files)
                .with_context(|| format!("syslog input {:?}: loading its TLS files", input.name))?,
        ),
        None => None,
    };
    let mut udp_sockets = Vec::new();
    for (index, l) in input.listeners.iter().enumerate() {
        let what = || format!("syslog input {:?}: listening on {}", input.name, l.url());
        let ctx = stream::Conn {
            input: input.name.clone(),
            listener: index,
            tx: tx.clone(),
            max: input.max_message_bytes,
            idle: input.idle_timeout,
            shutdown: shutdown.clone(),
        };
        match l.transport {
            Transport::Udp => {
                let socket = udp::bind(l.addr).with_context(what)?;
                udp_sockets.push(udp::spawn(socket, ctx, full.clone())?);
            }
            Transport::Tcp | Transport::Tls => {
                let listener = tokio::net::TcpListener::bind(l.addr)
                    .await
                    .with_context(what)?;
                let acceptor = match l.transport {
                    Transport::Tls => tls.clone(),
                    _ => None,
                };
                tokio::spawn(stream::accept_loop(listener, acceptor, limits.clone(), ctx));
            }
        }
        tracing::info!(input = %input.name, listener = %l.url(), "Syslog listener started.");
    }
    drop(tx);
    if !udp_sockets.is_empty() {
        tokio::spawn(udp::count_drops(udp_sockets, stats, shutdown.clone()));
    }
    let runtime = tokio::runtime::Handle::current();
    let name = input.name.clone();
    let thread = std::thread::Builder::new()
        .name(format!("input-{name}"))
        .spawn(move || {
            let mut rx = rx;
            if let Err(error) = batch_loop(&input, batcher, &mut rx, &runtime, &stop) {
                // The spool was closed under a blocked batcher (stop with the spool full):
                // what is still queued cannot be spooled; syslog cannot ask for it again.
                let queued = rx.close();
                tracing::error!(input = %name, %error, queued_messages_lost = queued,
                    "Syslog input stopped: its open batch and the queued messages were not spooled.");
            }
        })?;
    Ok(thread)
}

/// Moves messages from the channel into the batcher until the channel closes (or `stop` with
/// nothing left to read), then flushes.
fn batch_loop(
    input: &SyslogInput,
    mut batcher: Batcher,
    rx: &mut ChunkRx,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) -> Result<()> {
    let mut sources = Vec::new();
    for l in &input.listeners {
        let url = l.url();
        sources.push(
            batcher
                .open_source(&url, Path::new(&url))
                .map_err(|_| anyhow::anyhow!("the spool is closed"))?,
        );
    }
    let transports: Vec<&str> = input
        .listeners
        .iter()
        .map(|l| l.transport.as_str())
        .collect();
    // The attributes of the last message's peer, encoded once per run of messages from one
    // peer on one listener (senders come in runs: a connection, a busy device).
    let mut sender = String::new();
    let mut attributes = EncodedAttributes::default();
    let mut encoded_for: Option<(SocketAddr, usize, Option<Arc<str>>)> = None;
    let closed = || anyhow::anyhow!("the spool is closed");
    loop {
        let burst = batcher.pending_records() >= BURST_RECORDS;
        let wait = if burst { BURST_IDLE } else { TICK };
        let first = runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
        let mut next = match first {
            Ok(Some(c)) => Some(c),
            Ok(None) => break,
            Err(_) if stop.load(Ordering::SeqCst) => break,
            Err(_) if burst => {
                batcher.flush_burst().map_err(|_| closed())?;
                None
            }
            Err(_) => None,
        };
        let mut n = 0;
        while let Some(chunk) = next.take() {
            let source = sources[chunk.listener];
            let same_chunk_key = encoded_for.as_ref().is_some_and(|(_, listener, client)| {
                *listener == chunk.listener && same_client(client, &chunk.client)
            });
            if !same_chunk_key {
                encoded_for = None;
            }
            for (raw, entry) in chunk.messages() {
                if encoded_for.as_ref().map(|(addr, _, _)| *addr) != Some(entry.sender) {
                    sender.clear();
                    use std::fmt::Write as _;
                    write!(sender, "{}", entry.sender).expect("writing to a String cannot fail");
                    let client = chunk.client.as_deref();
                    let pairs = [
                        ("sender", sender.as_str()),
                        ("transport", transports[chunk.listener]),
                        ("tls_client", client.unwrap_or("")),
                    ];
                    let n_attr = if client.is_some() { 3 } else { 2 };
                    attributes.set(&pairs[..n_attr]);
                    encoded_for = Some((entry.sender, chunk.listener, chunk.client.clone()));
                }
                batcher
                    .push_with_attributes(source, raw, entry.truncated_from, &attributes)
                    .map_err(|_| closed())?;
            }
            n += chunk.len();
            // Dropping the chunk gives its room in the channel back.
            drop(chunk);
            if n < DRAIN_BATCH {
                next = rx.try_recv();
            }
        }
        batcher.tick().map_err(|_| closed())?;
        if n > 0 && n < SMALL_DRAIN {
            std::thread::sleep(NAP);
        }
    }
    batcher.flush().context("last batch not spooled")?;
    Ok(())
}

/// Whether two chunks carry the same verified TLS client (the same name: chunks of one
/// connection share one `Arc`, so this is mostly a pointer comparison).
fn same_client(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}
