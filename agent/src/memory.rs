//! Giving freed heap memory back to the OS once the agent is idle, so an office PC sees a small
//! resident size between bursts (glibc malloc otherwise keeps the peak of the last burst).
//!
//! The idle watcher looks at the spool every [`CHECK_EVERY`]: when nothing was appended or acked
//! for two looks in a row and everything is acked, it trims once per idle period (the second look
//! leaves time for the batchers to drop their buffers after their last, age-closed batch).

use std::time::Duration;

use logship_spool::Spool;
use tokio_util::sync::CancellationToken;

/// How often the watcher looks.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Trims the heap after each burst, once the agent has been idle for [`CHECK_EVERY`].
pub async fn trim_when_idle(spool: Spool, shutdown: CancellationToken) {
    let mut last = (u64::MAX, u64::MAX);
    let mut idle_looks = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let s = spool.stats();
        let now = (s.next_seq, s.acked_through);
        let idle = now == last && s.acked_through + 1 >= s.next_seq;
        idle_looks = if idle {
            idle_looks.saturating_add(1)
        } else {
            0
        };
        if idle_looks == 2
            && tokio::task::spawn_blocking(release_free_memory)
                .await
                .is_err()
        {
            tracing::debug!("Heap trim task failed.");
        }
        last = now;
    }
}

/// Asks the allocator to return free pages to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own arenas under their locks
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators and platforms: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Arenas glibc may create (one per thread by default, each keeping its own free memory).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAX_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas; call first thing in `main`, before threads start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas() {
    // SAFETY: mallopt takes plain integers and only changes allocator tuning; called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS);
    }
}

/// Other allocators and platforms: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
