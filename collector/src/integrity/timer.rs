//! Asks the store writer for a signed checkpoint every `[integrity] checkpoint_every_secs`,
//! until shutdown (the writer signs the last one itself when it stops).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::writer::WriterHandle;

/// Runs until `shutdown` is cancelled or the writer has stopped; drops its handle on return so
/// the writer can stop.
pub async fn run(writer: WriterHandle, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick is immediate.
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if writer.checkpoint().await.is_err() {
                    break;
                }
            }
        }
    }
}
