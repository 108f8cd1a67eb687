//! The tonic service: `Ship` (batches in, acks out) and `Heartbeat`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use logship_proto::v1::ingest_server::Ingest;
use logship_proto::v1::{Ack, Batch, HeartbeatRequest, HeartbeatResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::budget::{self, DecodeBudget, Reservation};
use super::claims::ClaimBook;
use super::instances::{Claim, InstanceBook};
use super::prepare::{IngestError, Limits, check_header, prepare};
use crate::tls::PeerIdentity;
use crate::writer::{Reply, WriterHandle};

/// Ship streams allowed at once on one connection (an agent needs one).
const MAX_SHIP_STREAMS_PER_CONNECTION: usize = 1;

/// Latest heartbeat per agent, for the status file: when it arrived (Unix ns), what it said,
/// and the connection it came on (peer address, certificate expiry).
pub type HeartbeatBook = Arc<Mutex<HashMap<String, (i64, HeartbeatRequest, PeerIdentity)>>>;

/// The ingest service shared by all connections.
#[derive(Clone)]
pub struct IngestService {
    writer: WriterHandle,
    limits: Limits,
    heartbeats: HeartbeatBook,
    guards: Guards,
}

/// The collector-wide bounds and books every batch goes through.
#[derive(Clone)]
pub struct Guards {
    /// Bytes being decoded, across all connections.
    pub budget: DecodeBudget,
    /// One running instance per agent identity.
    pub instances: InstanceBook,
    /// What agents claim about themselves.
    pub claims: ClaimBook,
}

/// One entry of a connection's in-order ack queue.
enum Pending {
    /// A batch handed to the writer: ack through `last_seq` once it replies. The reservation
    /// holds the payload's bytes of the decode budget until then.
    Stored {
        stream_id: String,
        last_seq: u64,
        reply: oneshot::Receiver<Reply>,
        _held: Reservation,
    },
    /// The batch was refused: send this status after the acks before it, then end the stream.
    Refused(Status),
}

/// The instance a Ship stream was registered for, with the predecessors its first batch named.
struct Registered {
    instance: String,
    previous: Vec<String>,
}

/// This connection's Ship stream slot; freed when the stream's reader ends.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// === impl IngestService ===

impl IngestService {
    /// A service writing through `writer` under `limits` and `guards`.
    pub fn new(
        writer: WriterHandle,
        limits: Limits,
        heartbeats: HeartbeatBook,
        guards: Guards,
    ) -> Self {
        IngestService {
            writer,
            limits,
            heartbeats,
            guards,
        }
    }

    /// Checks one batch, decodes it within the budget and hands it to the writer.
    async fn accept(
        &self,
        peer: &PeerIdentity,
        batch: Batch,
        registered: &mut Option<Registered>,
    ) -> Result<Pending, IngestError> {
        check_header(&batch, &self.limits)?;
        let mut is_registered = registered.is_some();
        // The earlier instances come with a stream's first batch; later ones inherit them.
        let previous = match registered {
            Some(r) if batch.previous_instance_ids.is_empty() => r.previous.as_slice(),
            _ => batch.previous_instance_ids.as_slice(),
        };
        let claim = Claim {
            agent: &peer.agent,
            stream_id: &batch.stream_id,
            instance: &batch.spool_instance_id,
            previous,
        };
        self.guards.instances.check(&claim, &mut is_registered)?;
        if is_registered && registered.is_none() {
            *registered = Some(Registered {
                instance: batch.spool_instance_id.clone(),
                previous: batch.previous_instance_ids.clone(),
            });
        }
        let (cost, allowance) = budget::cost(&batch, &self.limits);
        let payload_len = batch.payload.len();
        let mut reservation = self.guards.budget.reserve(cost).await?;
        let agent = peer.agent.clone();
        let block = tokio::task::spawn_blocking(move || prepare(&agent, batch, allowance))
            .await
            .map_err(|e| IngestError::Invalid(format!("batch preparation failed: {e}")))??;
        reservation.shrink_to(payload_len);
        self.guards.claims.host_claimed(&peer.agent, &block.host);
        Ok(queue(&self.writer, block, reservation).await)
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
        if peer.ship_streams.fetch_add(1, Ordering::SeqCst) >= MAX_SHIP_STREAMS_PER_CONNECTION {
            peer.ship_streams.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(agent = %peer.agent, addr = %peer.addr,
                "Second Ship stream on one connection refused.");
            return Err(Status::resource_exhausted(
                "one Ship stream per connection: open another connection",
            ));
        }
        let slot = StreamSlot(peer.ship_streams.clone());
        let inbound = request.into_inner();
        let (ack_tx, ack_rx) = mpsc::channel(self.limits.max_in_flight + 1);
        let (pending_tx, pending_rx) = mpsc::channel(self.limits.max_in_flight);
        tokio::spawn(send_acks(pending_rx, ack_tx));
        tokio::spawn(read_batches(inbound, peer, self.clone(), pending_tx, slot));
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
            .insert(peer.agent.clone(), (now, beat, peer));
        Ok(Response::new(HeartbeatResponse {}))
    }
}

/// Reads batches in order, prepares them off the async workers, and queues them for the writer.
async fn read_batches(
    mut inbound: Streaming<Batch>,
    peer: PeerIdentity,
    svc: IngestService,
    pending: mpsc::Sender<Pending>,
    _slot: StreamSlot,
) {
    let mut registered = None;
    loop {
        let batch = match inbound.message().await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(agent = %peer.agent, %status, "Ship stream ended by error.");
                break;
            }
        };
        let entry = match svc.accept(&peer, batch, &mut registered).await {
            Ok(entry) => entry,
            Err(error) => {
                if !matches!(error, IngestError::RunningTwice(_)) {
                    tracing::warn!(agent = %peer.agent, addr = %peer.addr, %error, "Batch refused.");
                }
                Pending::Refused(error.into_status())
            }
        };
        let refused = matches!(entry, Pending::Refused(_));
        if pending.send(entry).await.is_err() || refused {
            break;
        }
    }
    if let Some(r) = registered {
        svc.guards.instances.closed(&peer.agent, &r.instance);
    }
}

async fn queue(
    writer: &WriterHandle,
    block: logship_store::BlockInput,
    held: Reservation,
) -> Pending {
    let (stream_id, last_seq) = (
        block.stream_id.clone(),
        block.first_seq + u64::from(block.count) - 1,
    );
    match writer.submit(block).await {
        Ok(reply) => Pending::Stored {
            stream_id,
            last_seq,
            reply,
            _held: held,
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
                _held,
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
