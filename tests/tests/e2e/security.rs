//! Security: clients without a valid certificate are refused and nothing of theirs is stored; a
//! decompression bomb is refused with a clear error while the collector's memory stays bounded
//! and a good agent keeps shipping.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, raw, run_test, wait_until,
};

use crate::support::{append_numbered, rfc3339_in};
use crate::writer::log_count;

const ARRIVAL: Duration = Duration::from_secs(120);
const STREAM_ID: &str = "0123456789abcdef0123456789abcdef";
/// Cap on the collector's peak RSS while it refuses bombs.
const RSS_LIMIT_KIB: u64 = 200 << 10;

#[test]
fn clients_without_a_valid_certificate_are_refused() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 1000, 40)?;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let mut good = Agent::enroll(sb, &collector, "good", &opts)?;
        let mut foreign = foreign_agent(sb, &collector, &opts)?;
        let mut expired = expired_agent(sb, &collector, &opts)?;
        for a in [&mut good, &mut foreign, &mut expired] {
            a.start()?;
        }
        wait_until(ARRIVAL, "good agent's 1000 lines", || {
            Ok(collector.count()? == 1000)
        })?;
        let no_cert = raw::tls_config(&collector.data_dir().join("ca.pem"), None)?;
        let batch = raw::line_batch(STREAM_ID, 1, "nocert", &["must not be stored"])?;
        let refused = raw::ship(&collector.endpoint(), no_cert, vec![batch]);
        ensure!(
            refused.is_err(),
            "a client without certificate was served: {refused:?}"
        );
        for bad in [&foreign, &expired] {
            wait_until(ARRIVAL, "bad agent retried 3 times", || {
                Ok(bad
                    .log_text()?
                    .matches("Connection to the collector failed")
                    .count()
                    >= 3)
            })?;
        }
        // Three each from the foreign and the expired agent (the client without a certificate
        // finishes its handshake and reaches only enrollment, so it is not among them).
        let refusals = log_count(&sb.log_path("collector"), "TLS handshake refused")?;
        ensure!(
            refusals >= 6,
            "collector logged only {refusals} refused handshakes"
        );
        let store = collector.store();
        for name in ["foreign", "expired"] {
            ensure!(
                store.count(&["--agent", name])? == 0,
                "records stored for {name}"
            );
        }
        ensure!(
            store.count(&["--input", "nocert"])? == 0,
            "no-certificate batch stored"
        );
        ensure!(
            store.count(&[])? == 1000,
            "only the good agent's lines are stored"
        );
        Ok(())
    });
}

/// An agent trusting the collector's CA but holding a certificate from another CA.
fn foreign_agent(sb: &Sandbox, collector: &Collector, opts: &AgentOpts) -> Result<Agent> {
    let other = Collector::init(sb, "other-ca", &CollectorOpts::default())?;
    let dir = sb.path().join("foreign");
    other.issue_agent_cert("foreign", &dir, &[])?;
    std::fs::copy(collector.data_dir().join("ca.pem"), dir.join("ca.pem"))?;
    Agent::with_certs(sb, "foreign", &dir, opts)
}

/// An agent whose certificate expired a moment ago (issue-agent-cert refuses a validity that has
/// already ended, so it is issued valid for two more seconds and used after that).
fn expired_agent(sb: &Sandbox, collector: &Collector, opts: &AgentOpts) -> Result<Agent> {
    let dir = sb.path().join("expired");
    let (start, end) = (rfc3339_in(-3600)?, rfc3339_in(2)?);
    let validity = ["--not-before", &start, "--not-after", &end];
    collector.issue_agent_cert("expired", &dir, &validity)?;
    std::thread::sleep(Duration::from_secs(4));
    Agent::with_certs(sb, "expired", &dir, opts)
}

#[test]
fn decompression_bomb_is_refused_with_bounded_memory() {
    run_test(|sb| {
        let copts = CollectorOpts {
            max_decompressed_bytes: 16 << 20,
            ..CollectorOpts::default()
        };
        let mut collector = Collector::init(sb, "collector", &copts)?;
        collector.start()?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 1000, 40)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let mut good = Agent::enroll(sb, &collector, "good", &opts)?;
        good.start()?;
        let bomber = sb.path().join("bomber");
        collector.issue_agent_cert("bomber", &bomber, &[])?;
        let bomb = raw::zero_bomb(1 << 30)?;
        eprintln!("bomb: 1 GiB of zeros in {} compressed bytes", bomb.len());
        for round in 0..3 {
            send_bomb(&collector, &bomber, &bomb)?;
            append_numbered(&log, 1000 * (round + 1), 1000 * (round + 2), 40)?;
        }
        wait_until(ARRIVAL, "good agent's 4000 lines", || {
            good.check_alive()?;
            Ok(collector.count()? == 4000)
        })?;
        let peak = collector.peak_rss_kib()?;
        eprintln!("collector peak RSS {peak} KiB");
        ensure!(peak < RSS_LIMIT_KIB, "collector peak RSS {peak} KiB");
        ensure!(
            collector.store().count(&["--agent", "bomber"])? == 0,
            "bomb stored"
        );
        Ok(())
    });
}

/// Ships one bomb batch and checks the refusal: RESOURCE_EXHAUSTED naming the cap.
fn send_bomb(collector: &Collector, certs: &Path, payload: &[u8]) -> Result<()> {
    let tls = raw::tls_config(
        &certs.join("ca.pem"),
        Some((&certs.join("agent.pem"), &certs.join("agent.key"))),
    )?;
    let mut batch = raw::line_batch(STREAM_ID, 1, "bomb", &["x"])?;
    batch.payload = payload.to_vec().into();
    // The header lies about the size: the collector must not trust it.
    batch.uncompressed_len = 100;
    let error = raw::ship(&collector.endpoint(), tls, vec![batch])
        .err()
        .context("the bomb was accepted")?;
    let status = error
        .downcast_ref::<tonic::Status>()
        .with_context(|| format!("not a gRPC status: {error:#}"))?;
    ensure!(
        status.code() == tonic::Code::ResourceExhausted && status.message().contains("cap"),
        "unexpected refusal: {status:?}"
    );
    Ok(())
}
