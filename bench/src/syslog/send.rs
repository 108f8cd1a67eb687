//! The benchmark's syslog sender: every message once, as fast as the socket takes them.
//! UDP: one datagram per message on a connected socket (an `ENOBUFS`/`EAGAIN` is retried, so a
//! message counts as sent only when the kernel took it). TCP: newline framing (RFC 6587 non
//! transparent framing, what `logger --tcp` and rsyslog's omfwd send), written through a large
//! buffer.

use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::{Messages, Transport};

/// What sending took.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sent {
    /// Wall time.
    pub(crate) wall: Duration,
    /// CPU seconds of the sending thread (user + system: on loopback the kernel's delivery into
    /// the receiver's socket runs in the sender's system calls).
    pub(crate) cpu_s: f64,
}

/// Sends every message to `to`; returns how long it took.
pub(crate) fn send(
    messages: &Messages,
    transport: Transport,
    to: SocketAddr,
) -> std::io::Result<Sent> {
    let cpu_before = crate::measure::thread_cpu_s()?;
    let start = Instant::now();
    match transport {
        Transport::Udp => {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.connect(to)?;
            for m in &messages.framed {
                loop {
                    match socket.send(m) {
                        Ok(_) => break,
                        Err(e) if matches!(e.raw_os_error(), Some(105 | 11)) => {
                            std::thread::yield_now();
                        }
                        // Loopback ICMP "port unreachable" of an earlier datagram: not this one.
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Transport::Tcp => {
            let stream = TcpStream::connect(to)?;
            stream.set_nodelay(true)?;
            let mut w = BufWriter::with_capacity(1 << 20, stream);
            for m in &messages.framed {
                w.write_all(m)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            w.into_inner()
                .map_err(|e| e.into_error())?
                .shutdown(std::net::Shutdown::Write)?;
        }
    }
    Ok(Sent {
        wall: start.elapsed(),
        cpu_s: crate::measure::thread_cpu_s()? - cpu_before,
    })
}

/// The kernel's drop counter of the UDP socket bound to `port` (last column of
/// `/proc/net/udp`), summed over IPv4 and IPv6 tables; 0 if none is bound.
pub(crate) fn kernel_udp_drops(port: u16) -> u64 {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .map(|t| drops_in(&t, port))
        .sum()
}

/// Whether a UDP socket is bound to `port` (IPv4 or IPv6).
pub(crate) fn udp_bound(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .any(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&suffix))
            })
        })
}

fn drops_in(table: &str, port: u16) -> u64 {
    let suffix = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&suffix))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_from_the_sockets_own_row() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 1: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17\n\
 2: 0100007F:0203 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 5\n";
        assert_eq!(drops_in(table, 0x0202), 17);
        assert_eq!(drops_in(table, 0x0203), 5);
        assert_eq!(drops_in(table, 0x0204), 0);
    }

    #[test]
    fn a_real_socket_that_overflows_shows_its_drops() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let messages = Messages {
            framed: vec![vec![b'x'; 1000]; 20_000],
            bytes: 20_000_000,
        };
        send(&messages, Transport::Udp, receiver.local_addr().unwrap()).unwrap();
        // Nobody read: the default receive buffer (~200 KiB) holds a few hundred of 20,000.
        assert!(
            kernel_udp_drops(port) > 10_000,
            "{}",
            kernel_udp_drops(port)
        );
    }
}
