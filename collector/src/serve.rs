//! `logship-collector serve`: wires TLS termination, the ingest service, the store writer and the
//! status file together, and shuts them down in order with a deadline (STYLE.md habit 10).
//!
//! Shutdown order: stop accepting → every connection's reads end ([`crate::drain`]), so the gRPC
//! server stops at once (still bounded by [`DRAIN_DEADLINE`]) → the checkpoint timer stops → the
//! the retention timer stops → the store writer signs a last checkpoint, commits what it has and stops → final status file.

use std::time::Duration;

use anyhow::{Context, Result};
use logship_proto::v1::enrollment_server::EnrollmentServer;
use logship_proto::v1::ingest_server::IngestServer;
use logship_store::{CommitWatch, Store, StoreConfig};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::drain::Draining;
use crate::ingest::{
    ClaimBook, DecodeBudget, Guards, HeartbeatBook, IngestService, InstanceBook, Limits,
};
use crate::writer::WriterHandle;
use crate::{enroll, forward, normalize, status, tls};

/// How long connections get to finish after a stop signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// HTTP/2 streams at once on one connection (the service allows one of them to be `Ship`).
const MAX_STREAMS_PER_CONNECTION: u32 = 4;

/// Largest enrollment or renewal request (a token, a name and a CSR are far smaller).
const ENROLL_MAX_MESSAGE_BYTES: usize = 64 << 10;

/// The store's directory inside the data directory.
pub fn store_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("store")
}

/// Runs the collector until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<()> {
    crate::pki::refuse_exposed_keys(&[
        config.data_dir.join(crate::pki::CA_KEY),
        config.key.clone(),
    ])?;
    let revocations = enroll::Revocations::load(&config.data_dir, shutdown.clone())?;
    let server_cert = std::sync::Arc::new(enroll::ServerCertResolver::load(
        &config.ca_cert,
        &config.cert,
        &config.key,
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )?);
    let tls = tls::server_config(&config.ca_cert, server_cert.clone())?;
    let enroll_stats = std::sync::Arc::new(enroll::EnrollStats::default());
    let enroll_facts = enroll::StatusFacts {
        ca_fingerprint: crate::pki::ca_fingerprint(&config.data_dir)?,
        stats: enroll_stats.clone(),
        server_cert: server_cert.clone(),
        revocations: revocations.clone(),
    };
    let store_config = StoreConfig {
        dir: store_dir(&config.data_dir),
        segment_max_bytes: config.segment_max_bytes,
        segment_max_age_secs: config.segment_max_age_secs,
        max_decompressed_bytes: config.max_decompressed_bytes,
    };
    let (store, report) = Store::open(store_config).context("opening the store")?;
    log_recovery(&report);
    // Agents' records only: the collector's own checkpoint records (one per seq of their
    // stream) are not counted in records_stored.
    let checkpoints = logship_store::checkpoint_stream(store.id());
    let retention_stream = logship_store::retention_stream(store.id());
    // All time: records retention removed count too.
    let records = store
        .chain_records()
        .saturating_sub(store.watermark(logship_store::COLLECTOR_IDENTITY, &checkpoints))
        .saturating_sub(store.watermark(logship_store::COLLECTOR_IDENTITY, &retention_stream));
    let witness = crate::integrity::Witness {
        key: crate::integrity::key::load_or_create(&config.data_dir)?,
        host: crate::pki::host_name(),
    };
    // Made above for a data directory older than the witness; held to the same rule.
    crate::pki::refuse_exposed_keys(&[config.data_dir.join(crate::integrity::key::WITNESS_KEY)])?;
    let watch = CommitWatch::new();
    let retention_stats = std::sync::Arc::new(crate::retention::RetentionStats::load(&store_dir(
        &config.data_dir,
    )));
    let retention = (config.retention != logship_store::RetentionPolicy::default()).then(|| {
        let mut consumers: Vec<String> = config
            .forwards
            .iter()
            .map(|f| forward::cursor_name(&f.name))
            .collect();
        if config.normalize {
            consumers.push(normalize::CURSOR_NAME.to_string());
        }
        let plan = crate::retention::Plan {
            policy: config.retention,
            consumers,
            host: crate::pki::host_name(),
            filters: config
                .forwards
                .iter()
                .map(|f| {
                    (
                        forward::cursor_name(&f.name),
                        forward::filter::Filter::new(f),
                    )
                })
                .collect(),
            cap: config.max_decompressed_bytes,
        };
        (plan, retention_stats.clone())
    });
    let retention_on = retention.is_some();
    let (writer, writer_thread) =
        WriterHandle::start(store, records, watch.clone(), Some(witness), retention);
    let retention_timer = retention_on.then(|| {
        tokio::spawn(crate::retention::timer::run(
            writer.clone(),
            shutdown.clone(),
        ))
    });
    let checkpoint_timer = tokio::spawn(crate::integrity::timer::run(
        writer.clone(),
        config.checkpoint_every,
        shutdown.clone(),
    ));
    normalize::remove_legacy_sidecars(&config.data_dir);
    let normalize = match config.normalize {
        true => Some(normalize::start(normalize::WorkerConfig {
            store_dir: store_dir(&config.data_dir),
            max_decompressed_bytes: config.max_decompressed_bytes,
            watch: watch.clone(),
            writer: writer.stats.clone(),
            workers: config.normalize_workers,
        })?),
        false => None,
    };
    let (normalize_stats, normalize_thread) = normalize.unzip();
    let forwarders = forward::start(
        &config.forwards,
        store_dir(&config.data_dir),
        &watch,
        &writer.stats,
        config.max_decompressed_bytes,
    )?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "Collector listening.");
    let heartbeats = HeartbeatBook::default();
    let guards = Guards {
        budget: DecodeBudget::new(config.decode_budget_bytes),
        instances: InstanceBook::load(&config.data_dir),
        claims: ClaimBook::default(),
    };
    let tls_stats = std::sync::Arc::new(tls::TlsStats::default());
    let status_task = tokio::spawn(status::run(
        config.data_dir.join("status.json"),
        status::Sources {
            writer: writer.stats.clone(),
            normalize: normalize_stats,
            heartbeats: heartbeats.clone(),
            guards: guards.clone(),
            tls: tls_stats.clone(),
            stale_after: config.stale_after,
            forwarders: forwarders.stats.clone(),
            enroll: enroll_facts,
            retention: retention_stats,
        },
        shutdown.clone(),
    ));
    let limits = Limits {
        max_decompressed_bytes: config.max_decompressed_bytes,
        max_batch_records: config.max_batch_records,
        max_in_flight: config.max_in_flight_per_connection,
    };
    let service = IngestServer::new(IngestService::new(writer, limits, heartbeats, guards))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(1 << 20);
    let accept_limits = tls::AcceptLimits {
        max_connections: config.max_connections,
        max_handshakes: config.max_handshakes,
        max_handshakes_per_source: config.max_handshakes_per_source,
        handshake_timeout: config.handshake_timeout,
    };
    tokio::spawn(revocations.clone().watch());
    tokio::spawn(server_cert.watch(config.data_dir.clone(), shutdown.clone()));
    let enrollment = EnrollmentServer::new(enroll::EnrollService::new(
        config.data_dir.clone(),
        revocations.clone(),
        config.agent_cert_lifetime,
        enroll_stats,
    ))
    .max_decoding_message_size(ENROLL_MAX_MESSAGE_BYTES);
    let incoming = tls::accept_loop(
        listener,
        tls,
        accept_limits,
        tls_stats,
        revocations,
        shutdown.clone(),
    );
    let anonymous = anonymous_server(incoming.anonymous, enrollment.clone(), shutdown.clone());
    // Each agent connection ends when the collector stops or the agent is revoked.
    let agents = ReceiverStream::new(incoming.agents).map(|conn| {
        conn.map(|c| {
            let stop = c.stop_token();
            Draining::new(c, stop)
        })
    });
    let server = tonic::transport::Server::builder()
        // An agent needs one Ship stream and one Heartbeat call at a time.
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(service)
        .add_service(enrollment)
        .serve_with_incoming_shutdown(agents, shutdown.clone().cancelled_owned());
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };
    tokio::select! {
        r = server => r.context("ingest server failed")?,
        () = deadline => tracing::warn!("Connections did not drain in time; stopping anyway."),
    }
    shutdown.cancel();
    // The timer drops its writer handle when it sees the cancel; the writer stops after it.
    if let Err(error) = checkpoint_timer.await {
        tracing::warn!(%error, "Checkpoint timer failed.");
    }
    anonymous.abort();
    if let Some(Err(error)) = match retention_timer {
        Some(t) => Some(t.await),
        None => None,
    } {
        tracing::warn!(%error, "Retention timer failed.");
    }
    let joined = tokio::task::spawn_blocking(move || {
        let writer = writer_thread.join();
        // The worker stops once the writer has stopped (it closes the watch).
        let worker = normalize_thread.map(|t| t.join());
        for f in forwarders.joins {
            if f.join().is_err() {
                tracing::error!("A forwarder thread panicked.");
            }
        }
        (writer, worker)
    });
    match tokio::time::timeout(DRAIN_DEADLINE, joined).await {
        Ok(_) => {}
        Err(_) => tracing::error!("The store writer did not stop in time."),
    }
    if let Err(error) = status_task.await {
        tracing::warn!(%error, "Status task failed.");
    }
    tracing::info!("Collector stopped.");
    Ok(())
}

/// Serves connections without a client certificate: the enrollment service alone (so `Ship`,
/// `Heartbeat` and `Renew` are not reachable without a certificate), one request at a time per
/// connection, each connection closed after [`tls::ANONYMOUS_LIFETIME`].
fn anonymous_server(
    incoming: tokio::sync::mpsc::Receiver<std::io::Result<tls::AnonymousConn>>,
    enrollment: EnrollmentServer<enroll::EnrollService>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let stop = shutdown.clone();
    let conns = ReceiverStream::new(incoming).map(move |conn| {
        conn.map(|c| {
            let end = stop.child_token();
            let timer = end.clone();
            tokio::spawn(async move {
                tokio::time::sleep(tls::ANONYMOUS_LIFETIME).await;
                timer.cancel();
            });
            Draining::new(c, end)
        })
    });
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(1))
            .add_service(enrollment)
            .serve_with_incoming_shutdown(conns, shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "Enrollment server failed.");
        }
    })
}

fn log_recovery(report: &logship_store::RecoveryReport) {
    tracing::info!(
        segments = report.segments,
        blocks = report.blocks,
        truncated_tail_bytes = report.truncated_tail_bytes,
        "Store opened."
    );
    for c in &report.corrupt {
        tracing::error!(
            segment = %c.segment.display(),
            offset = c.offset,
            reason = %c.reason,
            "Store block is corrupt; it is skipped by searches and reported by verify."
        );
    }
    for q in &report.quarantined {
        tracing::error!(
            segment = %q.segment,
            offset = q.offset,
            bytes = q.bytes,
            quarantine = %q.file.display(),
            "The store's last segment ended in damaged blocks: moved to quarantine, reported by verify and status.json."
        );
    }
}
