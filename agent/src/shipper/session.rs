//! One connection's life: open the `Ship` stream, keep up to `max_in_flight` durable batches on
//! the wire, free the spool on acks, and end on error or shutdown.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use logship_proto::v1::Batch;
use logship_proto::v1::ingest_client::IngestClient;
use logship_spool::{Spool, StoredBatch};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::Shipper;
use super::connect::connect;

/// How often to look for newly durable batches when the window has room.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// How long to wait for in-flight acks at shutdown.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(3);
/// Largest ack message accepted.
const MAX_ACK_BYTES: usize = 64 << 10;

/// How a session ended without error.
pub(super) enum SessionEnd {
    /// Shutdown was requested.
    Shutdown,
}

pub(super) struct Session<'a> {
    pub(super) shipper: &'a Shipper,
    pub(super) endpoint: &'a str,
}

impl Session<'_> {
    /// Runs until shutdown (Ok) or an error; the error says whether any ack arrived first.
    pub(super) async fn run(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, (anyhow::Error, bool)> {
        let mut progressed = false;
        let result = self.exchange(shutdown, &mut progressed).await;
        result.map_err(|e| (e, progressed))
    }

    async fn exchange(
        &self,
        shutdown: &CancellationToken,
        progressed: &mut bool,
    ) -> Result<SessionEnd> {
        let s = self.shipper;
        let channel = connect(self.endpoint, s.tls.clone()).await?;
        let heartbeat = tokio::spawn(s.heartbeat.clone().run(channel.clone(), shutdown.clone()));
        let _stop_heartbeat = AbortOnDrop(heartbeat);
        let mut client = IngestClient::new(channel).max_decoding_message_size(MAX_ACK_BYTES);
        let (tx, rx) = mpsc::channel::<Batch>(s.config.max_in_flight);
        let mut acks = client
            .ship(ReceiverStream::new(rx))
            .await
            .context("opening the ship stream")?
            .into_inner();
        tracing::info!(endpoint = %self.endpoint, "Connected to the collector.");
        let mut next = s.spool.stats().acked_through + 1;
        // The spool's earlier instances go with the first batch of each stream only.
        let mut first = true;
        let mut in_flight: VecDeque<u64> = VecDeque::new();
        loop {
            while in_flight.len() < s.config.max_in_flight {
                let Some(batch) = read_from(&s.spool, next).await? else {
                    break;
                };
                next = batch.first_seq + u64::from(batch.count);
                in_flight.push_back(next - 1);
                let previous = if std::mem::take(&mut first) {
                    s.lineage.previous.clone()
                } else {
                    Vec::new()
                };
                tx.send(to_wire(&s.stream_id, &s.lineage.current, previous, batch))
                    .await
                    .map_err(|_| anyhow!("the ship stream closed"))?;
            }
            tokio::select! {
                ack = acks.message() => {
                    let ack = ack.context("collector refused a batch")?
                        .ok_or_else(|| anyhow!("the collector closed the stream"))?;
                    self.on_ack(ack.acked_through_seq, &mut in_flight).await?;
                    *progressed = true;
                }
                () = tokio::time::sleep(IDLE_POLL), if in_flight.len() < s.config.max_in_flight => {}
                () = shutdown.cancelled() => {
                    self.drain(&mut acks, &mut in_flight).await;
                    return Ok(SessionEnd::Shutdown);
                }
            }
        }
    }

    async fn on_ack(&self, through: u64, in_flight: &mut VecDeque<u64>) -> Result<()> {
        if !in_flight.iter().any(|&last| last == through) {
            bail!("collector acked {through}, which ends no batch in flight");
        }
        while in_flight.front().is_some_and(|&last| last <= through) {
            in_flight.pop_front();
        }
        let spool = self.shipper.spool.clone();
        tokio::task::spawn_blocking(move || spool.ack(through))
            .await
            .context("spool ack task failed")?
            .context("freeing acked batches in the spool")?;
        Ok(())
    }

    async fn drain(
        &self,
        acks: &mut tonic::Streaming<logship_proto::v1::Ack>,
        in_flight: &mut VecDeque<u64>,
    ) {
        let wait = async {
            while !in_flight.is_empty() {
                match acks.message().await {
                    Ok(Some(ack)) => {
                        if self.on_ack(ack.acked_through_seq, in_flight).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_ACK_WAIT, wait).await.is_err() {
            tracing::info!(
                unacked = in_flight.len(),
                "Stopped before every batch was acked; they are resent next time."
            );
        }
    }
}

async fn read_from(spool: &Spool, seq: u64) -> Result<Option<StoredBatch>> {
    if spool.durable_next_seq() <= seq {
        return Ok(None);
    }
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || spool.read_from(seq))
        .await
        .context("spool read task failed")?
        .context("reading the spool")
}

fn to_wire(stream_id: &str, instance: &str, previous: Vec<String>, b: StoredBatch) -> Batch {
    Batch {
        stream_id: stream_id.to_string(),
        first_seq: b.first_seq,
        count: b.count,
        uncompressed_len: b.uncompressed_len,
        payload: b.payload.into(),
        spool_instance_id: instance.to_string(),
        previous_instance_ids: previous,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
