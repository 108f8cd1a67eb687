//! The tonic service: `Ship` (batches in, acks out) and `Heartbeat`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use logship_proto::v1::ingest_server::Ingest;
use logship_proto::v1::{Ack, Batch, HeartbeatRequest, HeartbeatResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::prepare::{ConnState, IngestError, Limits, prepare};
use crate::tls::PeerIdentity;
use crate::writer::{Reply, WriterHandle};

/// Latest heartbeat per agent, for the status file.
pub type HeartbeatBook = Arc<Mutex<HashMap<String, (i64, HeartbeatRequest)>>>;

/// The ingest service shared by all connections.
#[derive(Clone)]
pub struct IngestService {
    writer: WriterHandle,
    limits: Limits,
    heartbeats: HeartbeatBook,
}

/// One entry of a connection's in-order ack queue.
enum Pending {
    /// A batch handed to the writer: ack through `last_seq` once it replies.
    Stored {
        stream_id: String,
        last_seq: u64,
        reply: oneshot::Receiver<Reply>,
    },
    /// The batch was refused: send this status after the acks before it, then end the stream.
    Refused(Status),
}

// === impl IngestService ===

impl IngestService {
    /// A service writing through `writer` under `limits`.
    pub fn new(writer: WriterHandle, limits: Limits, heartbeats: HeartbeatBook) -> Self {
        IngestService {
            writer,
            limits,
            heartbeats,
        }
    }
}

fn peer<T>(req: &Request<T>) -> Result<PeerIdentity, Status> {
    req.extensions()
        .get::<PeerIdentity>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no verified client certificate"))
}

#[tonic::async_trait]
impl Ingest for IngestService {
    type ShipStream = ReceiverStream<Result<Ack, Status>>;

    async fn ship(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<Self::ShipStream>, Status> {
        let peer = peer(&request)?;
        let inbound = request.into_inner();
        let (ack_tx, ack_rx) = mpsc::channel(self.limits.max_in_flight + 1);
        let (pending_tx, pending_rx) = mpsc::channel(self.limits.max_in_flight);
        tokio::spawn(send_acks(pending_rx, ack_tx));
        tokio::spawn(read_batches(inbound, peer, self.clone(), pending_tx));
        Ok(Response::new(ReceiverStream::new(ack_rx)))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let peer = peer(&request)?;
        let beat = request.into_inner();
        tracing::debug!(agent = %peer.agent, spool_bytes = beat.spool_bytes, "Heartbeat.");
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        self.heartbeats
            .lock()
            .expect("heartbeat book lock is never poisoned: no code panics while holding it")
            .insert(peer.agent, (now, beat));
        Ok(Response::new(HeartbeatResponse {}))
    }
}

/// Reads batches in order, prepares them off the async workers, and queues them for the writer.
async fn read_batches(
    mut inbound: Streaming<Batch>,
    peer: PeerIdentity,
    svc: IngestService,
    pending: mpsc::Sender<Pending>,
) {
    let mut state = ConnState::default();
    loop {
        let batch = match inbound.message().await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(agent = %peer.agent, %status, "Ship stream ended by error.");
                break;
            }
        };
        let agent = peer.agent.clone();
        let limits = svc.limits;
        let mut moved = std::mem::take(&mut state);
        let joined = tokio::task::spawn_blocking(move || {
            let r = prepare(&agent, batch, &limits, &mut moved);
            (r, moved)
        })
        .await;
        let result = match joined {
            Ok((r, s)) => {
                state = s;
                r
            }
            Err(e) => Err(IngestError::Invalid(format!(
                "batch preparation failed: {e}"
            ))),
        };
        let entry = match result {
            Ok(block) => queue(&svc.writer, block).await,
            Err(error) => {
                tracing::warn!(agent = %peer.agent, addr = %peer.addr, %error, "Batch refused.");
                Pending::Refused(error.into_status())
            }
        };
        let refused = matches!(entry, Pending::Refused(_));
        if pending.send(entry).await.is_err() || refused {
            break;
        }
    }
}

async fn queue(writer: &WriterHandle, block: logship_store::BlockInput) -> Pending {
    let (stream_id, last_seq) = (
        block.stream_id.clone(),
        block.first_seq + u64::from(block.count) - 1,
    );
    match writer.submit(block).await {
        Ok(reply) => Pending::Stored {
            stream_id,
            last_seq,
            reply,
        },
        Err(e) => Pending::Refused(IngestError::Store(e).into_status()),
    }
}

/// Sends acks strictly in batch order, each only after the writer's durable reply.
async fn send_acks(mut pending: mpsc::Receiver<Pending>, acks: mpsc::Sender<Result<Ack, Status>>) {
    while let Some(entry) = pending.recv().await {
        let item = match entry {
            Pending::Stored {
                stream_id,
                last_seq,
                reply,
            } => match reply.await {
                Ok(Ok(_)) => Ok(Ack {
                    stream_id,
                    acked_through_seq: last_seq,
                }),
                Ok(Err(e)) => Err(IngestError::Store(e).into_status()),
                Err(_) => Err(IngestError::Store("writer stopped".into()).into_status()),
            },
            Pending::Refused(status) => Err(status),
        };
        let stop = item.is_err();
        if acks.send(item).await.is_err() || stop {
            break;
        }
    }
}
