//! Receiving UDP datagrams in batches. On Linux one `recvmmsg` system call (through `nix`)
//! takes up to [`BATCH`] datagrams: [`Datagrams::recv`] waits for the first only
//! (`MSG_WAITFORONE`, bounded by the socket's receive timeout) and takes the others only if
//! already queued, so a quiet sender's datagram is never held back;
//! [`Datagrams::recv_queued`] takes only what is queued (`MSG_DONTWAIT`). Elsewhere one
//! `recv_from` per call.
//!
//! Invariants:
//! - Every datagram the kernel hands over is returned once, whole, with its sender: each slot
//!   holds [`DATAGRAM_BUF`] bytes, more than the largest UDP payload (65,507 bytes over IPv4).
//! - Memory is bounded: [`BATCH`] slots of [`DATAGRAM_BUF`] (4 MiB of address space, zeroed
//!   lazily by the kernel, so only the pages datagrams were written to are resident).

use std::net::{SocketAddr, UdpSocket};

/// Datagrams taken per system call (Linux).
#[cfg(target_os = "linux")]
pub(super) const BATCH: usize = 64;
/// Elsewhere one datagram per call.
#[cfg(not(target_os = "linux"))]
pub(super) const BATCH: usize = 1;
/// Bytes of one receive slot: any UDP datagram fits whole.
const DATAGRAM_BUF: usize = 64 << 10;

/// Reusable receive buffers and the last batch received.
pub(super) struct Datagrams {
    bufs: Vec<u8>,
    /// Length and sender of each datagram of the last batch, slot by slot.
    got: Vec<(usize, SocketAddr)>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl Datagrams {
    pub(super) fn new() -> Self {
        Datagrams {
            bufs: vec![0; BATCH * DATAGRAM_BUF],
            got: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Receives the datagrams waiting on `socket` (at least one; waits up to the socket's
    /// read timeout for it) and returns how many; read them with [`Datagrams::iter`].
    #[cfg(target_os = "linux")]
    pub(super) fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.recv_with(socket, nix::sys::socket::MsgFlags::MSG_WAITFORONE)
    }

    /// Receives the datagrams already queued on `socket` without waiting: 0 when none is.
    #[cfg(target_os = "linux")]
    pub(super) fn recv_queued(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        match self.recv_with(socket, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    #[cfg(target_os = "linux")]
    fn recv_with(
        &mut self,
        socket: &UdpSocket,
        flags: nix::sys::socket::MsgFlags,
    ) -> std::io::Result<usize> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::recvmmsg;

        self.got.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .chunks_mut(DATAGRAM_BUF)
            .map(|slot| [IoSliceMut::new(slot)])
            .collect();
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            flags,
            None,
        )
        .map_err(std::io::Error::from)?;
        for r in received {
            let sender = r
                .address
                .and_then(socket_addr)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            self.got.push((r.bytes, sender));
        }
        Ok(self.got.len())
    }

    /// One datagram (waits up to the socket's read timeout).
    #[cfg(not(target_os = "linux"))]
    pub(super) fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.got.clear();
        let (n, sender) = socket.recv_from(&mut self.bufs)?;
        self.got.push((n, sender));
        Ok(1)
    }

    /// Elsewhere: one queued datagram, without waiting; 0 when none is.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn recv_queued(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        socket.set_nonblocking(true)?;
        let got = self.recv(socket);
        socket.set_nonblocking(false)?;
        match got {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.got.clear();
                Ok(0)
            }
            other => other,
        }
    }

    /// Total bytes of the datagrams of the last batch.
    pub(super) fn bytes(&self) -> usize {
        self.got.iter().map(|&(len, _)| len.min(DATAGRAM_BUF)).sum()
    }

    /// The datagrams of the last batch, in the order received, with their senders.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got.iter().enumerate().map(|(slot, &(len, sender))| {
            let start = slot * DATAGRAM_BUF;
            (&self.bufs[start..start + len.min(DATAGRAM_BUF)], sender)
        })
    }
}

#[cfg(target_os = "linux")]
fn socket_addr(s: nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_batch_returns_every_queued_datagram_once_with_its_sender() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let sizes = [1usize, 160, 3, 0, 1000, 200];
        let mut d = Datagrams::new();
        let mut largest_batch = 0;
        // Rounds small enough for the default receive buffer; the largest payload once.
        for round in 0..3 {
            let mut sent = Vec::new();
            for i in 0..BATCH + 5 {
                let len = if round == 0 && i == 7 {
                    65_507
                } else {
                    sizes[i % sizes.len()]
                };
                let datagram: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                sender.send_to(&datagram, to).unwrap();
                sent.push(datagram);
            }
            let mut got = Vec::new();
            while got.len() < sent.len() {
                let n = d.recv(&receiver).unwrap();
                assert!((1..=BATCH).contains(&n));
                largest_batch = largest_batch.max(n);
                for (bytes, from) in d.iter() {
                    assert_eq!(from, sender.local_addr().unwrap());
                    got.push(bytes.to_vec());
                }
            }
            assert_eq!(got, sent, "round {round}");
        }
        assert_eq!(
            largest_batch, BATCH,
            "queued datagrams come in full batches"
        );
        // Without waiting: what is queued, then 0 at once when nothing is.
        for i in 0..BATCH + 3 {
            sender.send_to(&[i as u8; 10], to).unwrap();
        }
        let mut got = 0;
        while got < BATCH + 3 {
            let n = d.recv_queued(&receiver).unwrap();
            assert_eq!(d.bytes(), 10 * n);
            got += n;
        }
        assert_eq!(got, BATCH + 3);
        assert_eq!(d.recv_queued(&receiver).unwrap(), 0);
        assert_eq!(d.iter().count(), 0);
        // Nothing queued: the receive timeout ends the wait with an error, not a batch.
        let e = d.recv(&receiver).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        );
    }
}
