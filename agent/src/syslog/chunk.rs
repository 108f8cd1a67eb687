//! The hand-off from the listeners to the input's batcher thread: messages travel in chunks
//! (what one read of a connection or one `recvmmsg` of a UDP socket produced, back to back in
//! one buffer) through a channel bounded by bytes.
//!
//! Invariants:
//! - The channel holds at most `budget` bytes ([`channel_budget`], 32 MiB at the default
//!   `max_message_bytes`): a chunk costs its message bytes plus [`MESSAGE_OVERHEAD`] per
//!   message, taken from a semaphore before it is sent and given back when the batcher has
//!   pushed its messages (the permit travels in the chunk and is released when it is dropped).
//!   A chunk never costs more than the budget: listeners close a chunk at [`CHUNK_BYTES`]
//!   (a UDP round may pass it by its last `recvmmsg` batch, at most 64 datagrams of 64 KiB),
//!   and the budget is at least 32 MiB and two full chunks plus one message at
//!   `max_message_bytes`; a chunk that would still cost more takes the whole budget.
//! - When the channel is full: [`ChunkTx::send`] waits for room (a stream connection then reads
//!   nothing, so TCP flow control slows its sender); [`ChunkTx::try_send`] hands the chunk back
//!   (the UDP thread waits, or drops and counts when the spool is full, see `udp`).
//! - Once the batcher has stopped, sends fail with [`Closed`] and the chunk is dropped by the
//!   caller, which says how many messages it held.
//! - One chunk is one listener's and one TLS client's; each message keeps its own sender.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};

/// Bytes a listener gathers before it hands a chunk over, at most (plus one message).
pub(super) const CHUNK_BYTES: usize = 256 << 10;
/// Bytes of messages the channel of one input may hold at the default `max_message_bytes`.
const CHANNEL_BYTES: usize = 32 << 20;
/// What one message costs in the channel besides its bytes (its entry, roughly).
pub(super) const MESSAGE_OVERHEAD: usize = 48;

/// The channel's byte budget for messages of at most `max_message_bytes`.
pub(super) fn channel_budget(max_message_bytes: usize) -> usize {
    CHANNEL_BYTES.max(2 * (CHUNK_BYTES + max_message_bytes + MESSAGE_OVERHEAD))
}

/// The batcher has stopped: the chunk cannot be delivered.
#[derive(Debug)]
pub(super) struct Closed;

/// Why [`ChunkTx::try_send`] handed the chunk back.
#[derive(Debug)]
pub(super) enum TrySend {
    /// No room for it now.
    Full(Chunk),
    /// The batcher has stopped.
    Closed,
}

/// One message's place in its chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// End of its bytes in the chunk's buffer (it starts where the one before ends).
    end: usize,
    /// Original length when cut at `max_message_bytes`, else 0.
    pub(super) truncated_from: u64,
    /// The peer it came from.
    pub(super) sender: SocketAddr,
}

/// Messages of one listener, received together.
#[derive(Debug)]
pub(super) struct Chunk {
    /// Index of the listener in the input's list.
    pub(super) listener: usize,
    /// Subject CN of the sender's verified TLS client certificate.
    pub(super) client: Option<Arc<str>>,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Room taken in the channel, given back when the chunk is dropped.
    permit: Option<OwnedSemaphorePermit>,
}

impl Chunk {
    /// An empty chunk of `listener`.
    pub(super) fn new(listener: usize, client: Option<Arc<str>>) -> Self {
        Chunk {
            listener,
            client,
            bytes: Vec::new(),
            entries: Vec::new(),
            permit: None,
        }
    }

    /// Makes room for `bytes` more message bytes and `messages` more messages.
    pub(super) fn reserve(&mut self, bytes: usize, messages: usize) {
        self.bytes.reserve(bytes);
        self.entries.reserve(messages);
    }

    /// Adds one message.
    pub(super) fn push(&mut self, raw: &[u8], truncated_from: u64, sender: SocketAddr) {
        self.bytes.extend_from_slice(raw);
        self.entries.push(Entry {
            end: self.bytes.len(),
            truncated_from,
            sender,
        });
    }

    /// Messages in the chunk.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the chunk holds no message.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room the chunk takes in the channel.
    pub(super) fn cost(&self) -> usize {
        self.bytes.len() + self.entries.len() * MESSAGE_OVERHEAD
    }

    /// The messages in order, each with its entry.
    pub(super) fn messages(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        let mut start = 0;
        self.entries.iter().map(move |e| {
            let raw = &self.bytes[start..e.end];
            start = e.end;
            (raw, e)
        })
    }
}

/// The listeners' end of the channel.
#[derive(Clone)]
pub(super) struct ChunkTx {
    tx: mpsc::UnboundedSender<Chunk>,
    room: Arc<Semaphore>,
    budget: usize,
}

/// The batcher's end of the channel.
pub(super) struct ChunkRx {
    rx: mpsc::UnboundedReceiver<Chunk>,
}

/// A channel holding at most `budget` bytes of chunks.
pub(super) fn channel(budget: usize) -> (ChunkTx, ChunkRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(budget));
    (ChunkTx { tx, room, budget }, ChunkRx { rx })
}

impl ChunkTx {
    /// Permits `chunk` takes (never more than the whole budget, so it can always be sent).
    fn permits(&self, chunk: &Chunk) -> u32 {
        u32::try_from(chunk.cost().min(self.budget)).unwrap_or(u32::MAX)
    }

    /// Sends `chunk`, waiting while the channel is full. Not cancel-safe for the chunk: a
    /// caller that gives up (shutdown) loses it and must say so.
    pub(super) async fn send(&self, mut chunk: Chunk) -> Result<(), Closed> {
        if self.tx.is_closed() {
            return Err(Closed);
        }
        let permit = self
            .room
            .clone()
            .acquire_many_owned(self.permits(&chunk))
            .await
            .map_err(|_| Closed)?;
        chunk.permit = Some(permit);
        self.tx.send(chunk).map_err(|_| Closed)
    }

    /// Sends `chunk` if the channel has room for it now.
    pub(super) fn try_send(&self, mut chunk: Chunk) -> Result<(), TrySend> {
        if self.tx.is_closed() {
            return Err(TrySend::Closed);
        }
        match self
            .room
            .clone()
            .try_acquire_many_owned(self.permits(&chunk))
        {
            Ok(permit) => {
                chunk.permit = Some(permit);
                self.tx.send(chunk).map_err(|_| TrySend::Closed)
            }
            Err(TryAcquireError::NoPermits) => Err(TrySend::Full(chunk)),
            Err(TryAcquireError::Closed) => Err(TrySend::Closed),
        }
    }
}

impl ChunkRx {
    /// The next chunk; None once every sender is gone and the channel is empty.
    pub(super) async fn recv(&mut self) -> Option<Chunk> {
        self.rx.recv().await
    }

    /// The next chunk if one is waiting.
    pub(super) fn try_recv(&mut self) -> Option<Chunk> {
        self.rx.try_recv().ok()
    }

    /// Refuses further chunks and returns how many messages were still queued (dropped).
    pub(super) fn close(&mut self) -> usize {
        self.rx.close();
        let mut queued = 0;
        while let Ok(chunk) = self.rx.try_recv() {
            queued += chunk.len();
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "192.0.2.1:514".parse().unwrap()
    }

    #[test]
    fn messages_come_back_in_order_with_their_entries() {
        let mut c = Chunk::new(1, None);
        c.push(b"<13>a", 0, addr());
        c.push(b"", 0, addr());
        c.push(b"<13>long", 900, addr());
        let got: Vec<(Vec<u8>, u64)> = c
            .messages()
            .map(|(m, e)| (m.to_vec(), e.truncated_from))
            .collect();
        assert_eq!(
            got,
            [
                (b"<13>a".to_vec(), 0),
                (Vec::new(), 0),
                (b"<13>long".to_vec(), 900)
            ]
        );
        assert_eq!(c.cost(), 13 + 3 * MESSAGE_OVERHEAD);
    }

    #[tokio::test]
    async fn the_channel_holds_its_budget_and_room_comes_back_when_a_chunk_is_dropped() {
        let (tx, mut rx) = channel(2 * (100 + MESSAGE_OVERHEAD));
        let chunk = |n: usize| {
            let mut c = Chunk::new(0, None);
            c.push(&vec![b'x'; n], 0, addr());
            c
        };
        tx.try_send(chunk(100)).unwrap();
        tx.try_send(chunk(100)).unwrap();
        let back = match tx.try_send(chunk(1)) {
            Err(TrySend::Full(c)) => c,
            other => panic!("expected Full, got {other:?}"),
        };
        let first = rx.recv().await.unwrap();
        assert!(matches!(tx.try_send(back), Err(TrySend::Full(_))));
        drop(first);
        tx.try_send(chunk(1)).unwrap();
        // A chunk larger than the budget still goes (alone): it takes the whole budget.
        let (tx, mut rx) = channel(10);
        tx.send(chunk(1000)).await.unwrap();
        assert!(matches!(tx.try_send(chunk(1)), Err(TrySend::Full(_))));
        assert_eq!(rx.close(), 1);
        assert!(matches!(tx.try_send(chunk(1)), Err(TrySend::Closed)));
        assert!(tx.send(chunk(1)).await.is_err());
    }
}
