//! Asks the store writer to apply retention at start and every [`EVERY`] until shutdown (the
//! writer also applies it after every commit that sealed a segment).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::writer::WriterHandle;

/// Time between two rounds asked for by the timer.
pub const EVERY: Duration = Duration::from_secs(60);

/// Runs until `shutdown` is cancelled or the writer has stopped; drops its handle on return so
/// the writer can stop.
pub async fn run(writer: WriterHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                // The first tick is immediate: one round at start.
                if writer.retention().await.is_err() {
                    break;
                }
            }
        }
    }
}
