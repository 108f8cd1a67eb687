//! UDP listeners: one datagram is one message; drops are counted exactly.
//!
//! Invariants:
//! - A datagram is either sent to the input's channel or counted as dropped, never both, never
//!   neither. It is dropped (user-space drops) only when the channel is full *and* the spool is
//!   full ([`SpoolFull`]: an append waits for space, or appends fail); a channel that is full
//!   because the batcher is behind is waited for, the kernel buffering what arrives meanwhile.
//! - Datagrams the kernel drops before we read them (receive buffer overflow) are counted too:
//!   [`count_drops`] reads the socket's own drop counter (`drops` column of
//!   `/proc/self/net/udp{,6}`, the kernel's `sk_drops`, found by the socket's inode) and adds it,
//!   so `udp_dropped` = user-space drops + kernel drops of every UDP socket of the input.
//! - The receive buffer is asked to be large ([`RECV_BUF`]): with CAP_NET_ADMIN (root) by
//!   `SO_RCVBUFFORCE`, else by `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`; so
//!   bursts wait in the kernel rather than being dropped.
//! - Each UDP socket is read by its own blocking thread (a short receive timeout to see the
//!   stop signal), with no readiness round trip through the async runtime, which halved the
//!   cost per datagram against a tokio task; on Linux one `recvmmsg` takes up to 64 queued
//!   datagrams (`datagrams`), and what is queued behind them is taken at once, up to
//!   `CHUNK_BYTES`, as one chunk (`chunk`). After a round that emptied the queue the thread
//!   naps 1 ms (only when the receive buffer is large, [`NAP_MIN_RCVBUF`]): datagrams gather
//!   in the kernel, at most 1 ms later, instead of each waking the thread.
//! - Trailing `\n`, `\r\n` and NUL bytes are framing (some senders add them) and are removed;
//!   the rest of the datagram is kept verbatim, cut at `max_message_bytes` with its length.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use super::chunk::{CHUNK_BYTES, Chunk, TrySend};
use super::datagrams::{BATCH, Datagrams};
use super::stream::Conn;
use crate::batcher::BatcherStats;
use crate::spool_blocked::SpoolBlocked;
use logship_spool::Spool;

/// Receive buffer asked for each UDP socket: 32 MiB, four times rsyslog's `rcvbufSize="8m"`
/// of the benchmark, about 40,000 queued datagrams of 200 bytes (each costs its bytes plus
/// the kernel's buffer overhead, about 1 KiB on loopback).
const RECV_BUF: usize = 32 << 20;
/// While a datagram waits for room in the channel, how often it retries (and checks whether
/// the spool is full).
const RECHECK_FULL: Duration = Duration::from_millis(1);
/// Pause after a round that emptied the socket's queue, so datagrams gather between rounds.
const NAP: Duration = Duration::from_millis(1);
/// Receive buffer needed to nap: what arrives in [`NAP`] must fit it with room to spare. At
/// 1 Gbit/s of 100-byte datagrams, 1 ms is about 1,250 datagrams, about 2.5 MiB of buffer at
/// the kernel's ~2 KiB accounting per datagram; the kernel reports twice the size asked for.
const NAP_MIN_RCVBUF: usize = 16 << 20;
/// How long a receive waits before the thread looks at the stop signal.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// Pause after a failed receive.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How often the kernel's drop counters are read.
const DROPS_EVERY: Duration = Duration::from_millis(250);

/// Whether the spool is full: an append waits for space, or appends fail (disk full).
#[derive(Clone)]
pub struct SpoolFull {
    /// The agent's spool.
    pub spool: Spool,
    /// Inputs whose appends fail.
    pub blocked: SpoolBlocked,
}

impl SpoolFull {
    fn is_full(&self) -> bool {
        self.spool.stats().waiting_appends > 0 || !self.blocked.reason().is_empty()
    }
}

/// One running UDP listener's counters.
pub(super) struct UdpHandle {
    /// Inode of the socket (its line in `/proc/self/net/udp`).
    inode: u64,
    /// Datagrams refused by the full channel.
    user_drops: Arc<AtomicU64>,
}

/// A blocking UDP socket bound to `addr` with a large receive buffer and a receive timeout.
pub(super) fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Beyond net.core.rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE); else up to the cap.
    if force_recv_buffer(&socket, RECV_BUF).is_err()
        && let Err(error) = socket.set_recv_buffer_size(RECV_BUF)
    {
        tracing::warn!(%error, "Could not enlarge the UDP receive buffer.");
    }
    tracing::debug!(
        bytes = socket.recv_buffer_size().unwrap_or(0),
        "UDP receive buffer."
    );
    socket.set_read_timeout(Some(RECV_TIMEOUT))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Elsewhere than Linux there is no `SO_RCVBUFFORCE`: the caller asks with `SO_RCVBUF`.
#[cfg(not(target_os = "linux"))]
fn force_recv_buffer(_socket: &Socket, _bytes: usize) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// `SO_RCVBUFFORCE`: a receive buffer of `bytes` regardless of `net.core.rmem_max`; fails
/// without CAP_NET_ADMIN (the caller then asks within the cap).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn force_recv_buffer(socket: &Socket, bytes: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a pointer to a live local c_int;
    // the fd is owned by `socket`, open for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Starts the receive thread of `socket`.
pub(super) fn spawn(socket: UdpSocket, conn: Conn, full: SpoolFull) -> Result<UdpHandle> {
    let inode = socket_inode_of(&socket)?;
    let user_drops = Arc::new(AtomicU64::new(0));
    let drops = user_drops.clone();
    std::thread::Builder::new()
        .name(format!("udp-{}", conn.input))
        .spawn(move || receive_loop(&socket, &conn, &full, &drops))
        .context("starting a UDP receive thread")?;
    Ok(UdpHandle { inode, user_drops })
}

/// The socket's inode, which finds its line in `/proc/self/net/udp` (Linux).
#[cfg(target_os = "linux")]
fn socket_inode_of(socket: &UdpSocket) -> Result<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .context("reading the UDP socket's inode")?;
    socket_inode(&link.to_string_lossy())
        .with_context(|| format!("{} is not a socket link", link.display()))
}

/// Elsewhere the kernel's drop counter is not readable: `udp_dropped` counts the agent's own
/// drops only (inode 0 matches no line).
#[cfg(not(target_os = "linux"))]
fn socket_inode_of(_socket: &UdpSocket) -> Result<u64> {
    Ok(0)
}

/// Receives until shutdown: every datagram goes to the channel or is counted in `drops`.
///
/// One round: wait for a datagram, take everything already queued behind it into one chunk
/// (up to [`CHUNK_BYTES`]), hand the chunk over; then, if the queue was emptied and the
/// receive buffer is large enough ([`nap_for`]), nap for [`NAP`] so the next datagrams gather
/// in the kernel instead of each one waking this thread (a wake-up per datagram, paid by the
/// sender's system call too, cost more than receiving it).
fn receive_loop(socket: &UdpSocket, conn: &Conn, full: &SpoolFull, drops: &AtomicU64) {
    let mut datagrams = Datagrams::new();
    let nap = nap_for(socket);
    while !conn.shutdown.is_cancelled() {
        let mut n = match datagrams.recv(socket) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(error) => {
                tracing::warn!(input = %conn.input, %error, "Receiving syslog datagrams failed.");
                // Not a busy loop if the error persists.
                std::thread::sleep(RECV_ERROR_PAUSE);
                continue;
            }
        };
        let mut chunk = Chunk::new(conn.listener, None);
        add_datagrams(&mut chunk, &datagrams, conn.max);
        // A full batch means more may be queued: take it now, into the same chunk.
        while n == BATCH && chunk.cost() < CHUNK_BYTES {
            n = match datagrams.recv_queued(socket) {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(input = %conn.input, %error, "Receiving syslog datagrams failed.");
                    0
                }
            };
            add_datagrams(&mut chunk, &datagrams, conn.max);
        }
        if !chunk.is_empty() && !deliver(chunk, conn, full, drops) {
            return;
        }
        if n < BATCH
            && let Some(nap) = nap
        {
            std::thread::sleep(nap);
        }
    }
}

/// Adds the datagrams of the last receive to `chunk`: framing removed, empty ones skipped,
/// longer ones cut at `max` with their length.
fn add_datagrams(chunk: &mut Chunk, datagrams: &Datagrams, max: usize) {
    chunk.reserve(datagrams.bytes(), BATCH);
    for (datagram, peer) in datagrams.iter() {
        let len = unframed_len(datagram);
        if len == 0 {
            continue;
        }
        let take = len.min(max);
        let truncated_from = if len > take { len as u64 } else { 0 };
        chunk.push(&datagram[..take], truncated_from, peer);
    }
}

/// [`NAP`] when the socket's receive buffer holds at least [`NAP_MIN_RCVBUF`] bytes, else
/// none (a small buffer could overflow while the thread naps: it waits for each datagram).
fn nap_for(socket: &UdpSocket) -> Option<Duration> {
    let bytes = socket2::SockRef::from(socket)
        .recv_buffer_size()
        .unwrap_or(0);
    (bytes >= NAP_MIN_RCVBUF).then_some(NAP)
}

/// Hands `chunk` to the batcher. The channel is full: drop (and count) only if the spool is
/// full; if the batcher is merely behind, wait (the kernel's receive buffer holds the burst
/// meanwhile). False once the batcher has stopped or the agent stops.
fn deliver(mut chunk: Chunk, conn: &Conn, full: &SpoolFull, drops: &AtomicU64) -> bool {
    loop {
        match conn.tx.try_send(chunk) {
            Ok(()) => return true,
            Err(TrySend::Closed) => return false,
            Err(TrySend::Full(c)) => chunk = c,
        }
        if full.is_full() {
            drops.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            return true;
        }
        if conn.shutdown.is_cancelled() {
            tracing::warn!(input = %conn.input, datagrams = chunk.len(),
                "Agent stopping while its batcher is behind: received datagrams not spooled.");
            return false;
        }
        std::thread::sleep(RECHECK_FULL);
    }
}

/// Keeps `stats.udp_dropped` = user-space + kernel drops of `sockets` until shutdown.
pub(super) async fn count_drops(
    sockets: Vec<UdpHandle>,
    stats: Arc<BatcherStats>,
    shutdown: CancellationToken,
) {
    let mut warned = false;
    loop {
        let kernel = match kernel_drops(&sockets) {
            Ok(k) => k,
            Err(error) => {
                if !warned {
                    tracing::warn!(%error, "Kernel UDP drop counters unreadable; udp_dropped counts only the agent's own drops.");
                    warned = true;
                }
                0
            }
        };
        let user: u64 = sockets
            .iter()
            .map(|s| s.user_drops.load(Ordering::Relaxed))
            .sum();
        stats.udp_dropped.store(user + kernel, Ordering::Relaxed);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DROPS_EVERY) => {}
        }
    }
}

/// Sum of the kernel's drop counters of `sockets` (`/proc/self/net/udp` and `udp6`).
fn kernel_drops(sockets: &[UdpHandle]) -> std::io::Result<u64> {
    let mut total = 0;
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        total += drops_in_table(&text, sockets.iter().map(|s| s.inode));
    }
    Ok(total)
}

/// Drops of the given inodes in one `/proc/net/udp` table (inode = column 10, drops = 13).
fn drops_in_table(text: &str, inodes: impl Iterator<Item = u64> + Clone) -> u64 {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            let drops: u64 = cols.get(12)?.parse().ok()?;
            inodes.clone().any(|i| i == inode).then_some(drops)
        })
        .sum()
}

/// `socket:[12345]` → 12345.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Length of `datagram` without trailing `\n`, `\r` and NUL bytes.
fn unframed_len(datagram: &[u8]) -> usize {
    let mut len = datagram.len();
    while len > 0 && matches!(datagram[len - 1], b'\n' | b'\r' | 0) {
        len -= 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_for_our_inodes_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
  2: 0100007F:0203 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 5\n";
        assert_eq!(drops_in_table(table, [4242u64].into_iter()), 17);
        assert_eq!(drops_in_table(table, [4242u64, 4243].into_iter()), 22);
        assert_eq!(drops_in_table(table, [1u64].into_iter()), 0);
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn the_thread_naps_only_with_a_large_receive_buffer() {
        // A socket with the system's default buffer (a few hundred KiB): no nap, it waits
        // for each datagram (a nap could overflow the buffer).
        let small = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&small)
            .set_recv_buffer_size(256 << 10)
            .unwrap();
        assert_eq!(nap_for(&small), None);
        // The listener's 32 MiB buffer, forced as the agent does with CAP_NET_ADMIN (the
        // tests run as root, like CI): the thread naps.
        let large = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        force_recv_buffer(&large, RECV_BUF).expect("SO_RCVBUFFORCE needs root (CAP_NET_ADMIN)");
        let large: UdpSocket = large.into();
        assert_eq!(nap_for(&large), Some(NAP));
    }

    #[test]
    fn only_trailing_framing_is_removed() {
        assert_eq!(unframed_len(b"<13>a\r\n\0"), 5);
        assert_eq!(unframed_len(b"<13>a\nb"), 7);
        assert_eq!(unframed_len(b"\n"), 0);
    }
}
