//! A byte-counting TCP relay: `127.0.0.1:<port>` → target, counting every byte in both
//! directions. It measures what logship puts on the wire (TLS records included).
//!
//! Plain blocking threads: one acceptor, two copy threads per connection. Counters are shared
//! atomics, so [`Relay::wire_bytes`] can be read at any time.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

/// Copy buffer per direction.
const COPY_BUF_BYTES: usize = 64 * 1024;

/// A running relay; its threads live until the process exits.
#[derive(Debug)]
pub(crate) struct Relay {
    addr: SocketAddr,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
}

// === impl Relay ===

impl Relay {
    /// Listens on an ephemeral localhost port and forwards each connection to `target`.
    pub(crate) fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || accept_loop(&listener, target, &shared))?;
        Ok(Self { addr, counters })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes client → target and target → client so far.
    pub(crate) fn wire_bytes(&self) -> (u64, u64) {
        (
            self.counters.up.load(Ordering::Relaxed),
            self.counters.down.load(Ordering::Relaxed),
        )
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, counters: &Arc<Counters>) {
    for client in listener.incoming() {
        let client = match client {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, "Relay accept failed.");
                continue;
            }
        };
        if let Err(error) = connect_pair(client, target, counters) {
            tracing::warn!(%error, %target, "Relay could not connect to its target.");
        }
    }
}

fn connect_pair(client: TcpStream, target: SocketAddr, counters: &Arc<Counters>) -> io::Result<()> {
    let server = TcpStream::connect(target)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (c2, s2) = (client.try_clone()?, server.try_clone()?);
    let (up, down) = (Arc::clone(counters), Arc::clone(counters));
    thread::Builder::new()
        .name("relay-up".into())
        .spawn(move || pump(client, server, &up.up))?;
    thread::Builder::new()
        .name("relay-down".into())
        .spawn(move || pump(s2, c2, &down.down))?;
    Ok(())
}

/// Copies until EOF or error, then half-closes the other side.
fn pump(mut from: TcpStream, mut to: TcpStream, count: &AtomicU64) {
    let mut buf = vec![0; COPY_BUF_BYTES];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Counted before forwarding, so a peer that saw the bytes sees them counted.
                count.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    drop(to.shutdown(Shutdown::Write));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_and_counts_both_directions() {
        let echo = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let target = echo.local_addr().expect("addr");
        thread::spawn(move || {
            let (mut s, _) = echo.accept().expect("accept");
            let mut buf = vec![0; 1000];
            s.read_exact(&mut buf).expect("read");
            s.write_all(&buf[..300]).expect("write");
        });
        let relay = Relay::start(target).expect("relay");
        let mut c = TcpStream::connect(relay.addr()).expect("connect");
        c.write_all(&[7; 1000]).expect("send");
        let mut back = Vec::new();
        c.read_to_end(&mut back).expect("receive");
        assert_eq!(back, vec![7; 300]);
        assert_eq!(relay.wire_bytes(), (1000, 300));
    }
}
