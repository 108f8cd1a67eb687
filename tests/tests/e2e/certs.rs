//! Certificates that explain themselves (issue 7): no certificate is issued already expired, a
//! name is issued twice only with --force, an expired agent is refused with its name and the
//! reason in plain words on both sides, check-config warns before expiry and fails after it, and
//! `server-cert` adds the names agents use without touching the CA.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, bin, run_test, wait_until,
};

use crate::support::{append_numbered, rfc3339_in};

const ARRIVAL: Duration = Duration::from_secs(60);
/// Exit code of check-config for a config that cannot run.
const EXIT_CONFIG: i32 = 64;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn issue(collector: &Collector, name: &str, out: &Path, extra: &[&str]) -> Result<Output> {
    Ok(Command::new(bin("logship-collector"))
        .arg("issue-agent-cert")
        .arg("--data-dir")
        .arg(collector.data_dir())
        .args(["--name", name, "--collector", &collector.endpoint()])
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()?)
}

fn agent_check_config(config: &Path) -> Result<Output> {
    Ok(Command::new(bin("logship-agent"))
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .output()?)
}

#[test]
fn issuing_refuses_a_past_validity_and_a_second_certificate_without_force() {
    run_test(|sb| {
        let collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let past = [
            "--not-before",
            "2020-01-01T00:00:00Z",
            "--not-after",
            "2020-02-01T00:00:00Z",
        ];
        let out = issue(&collector, "old", &sb.path().join("old"), &past)?;
        ensure!(!out.status.success(), "a past validity was issued");
        ensure!(text(&out).contains("already past"), "{}", text(&out));
        let dir = sb.path().join("pc1");
        ensure!(issue(&collector, "pc1", &dir, &[])?.status.success());
        let again = issue(&collector, "pc1", &sb.path().join("pc1b"), &[])?;
        ensure!(!again.status.success(), "issued pc1 twice without --force");
        ensure!(text(&again).contains("--force"), "{}", text(&again));
        let forced = issue(&collector, "pc1", &sb.path().join("pc1c"), &["--force"])?;
        ensure!(forced.status.success(), "{}", text(&forced));
        // A certificate valid for 3 more days: check-config passes with a warning.
        let soon = sb.path().join("soon");
        let window = [
            "--not-before",
            &rfc3339_in(-3600)?,
            "--not-after",
            &rfc3339_in(3 * 86_400)?,
        ];
        ensure!(issue(&collector, "soon", &soon, &window)?.status.success());
        let check = agent_check_config(&soon.join("agent.toml"))?;
        ensure!(check.status.success(), "{}", text(&check));
        ensure!(
            text(&check).contains("warning: collector.cert: certificate expires on"),
            "{}",
            text(&check)
        );
        Ok(())
    });
}

#[test]
fn an_expired_agent_is_refused_with_its_name_and_a_plain_reason() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let app = sb.path().join("app.log");
        append_numbered(&app, 0, 10, 20)?;
        let dir = sb.path().join("short");
        let not_after = rfc3339_in(2)?;
        let window = [
            "--not-before",
            &rfc3339_in(-3600)?,
            "--not-after",
            &not_after,
        ];
        let out = issue(&collector, "short", &dir, &window)?;
        ensure!(out.status.success(), "{}", text(&out));
        std::thread::sleep(Duration::from_secs(4));
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &app)]);
        let mut agent = Agent::with_certs(sb, "short", &dir, &opts)?;
        let check = agent_check_config(&agent.config_path())?;
        ensure!(check.status.code() == Some(EXIT_CONFIG), "{}", text(&check));
        let expected = format!("certificate expired on {not_after}: re-enroll");
        ensure!(text(&check).contains(&expected), "{}", text(&check));
        agent.start()?;
        wait_until(ARRIVAL, "the agent's plain explanation", || {
            Ok(agent.log_text()?.contains(&expected))
        })?;
        let log = sb.log_path("collector");
        wait_until(ARRIVAL, "the collector's refusal naming the agent", || {
            let text = std::fs::read_to_string(&log)?;
            Ok(text.lines().any(|l| {
                l.contains("Agent certificate refused")
                    && l.contains("claimed_agent=short")
                    && l.contains(&format!("certificate expired on {not_after}"))
            }))
        })?;
        ensure!(
            collector.count()? == 0,
            "an expired agent's records were stored"
        );
        Ok(())
    });
}

#[test]
fn server_cert_adds_a_name_without_touching_the_ca() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        // Listen on every loopback address, so agents can use 127.0.0.2 as "the LAN address".
        let config = collector.data_dir().join("collector.toml");
        let toml = std::fs::read_to_string(&config)?.replace("127.0.0.1:", "0.0.0.0:");
        std::fs::write(&config, toml)?;
        collector.start()?;
        let ca_before = std::fs::read(collector.data_dir().join("ca.key"))?;
        let app = sb.path().join("app.log");
        append_numbered(&app, 0, 100, 20)?;
        let port = collector
            .endpoint()
            .rsplit_once(':')
            .context("port")?
            .1
            .to_string();
        let mut opts = AgentOpts::new(&collector, vec![FileInput::new("app", &app)]);
        opts.endpoints = vec![format!("127.0.0.2:{port}")];
        let mut agent = Agent::enroll(sb, &collector, "lan-pc", &opts)?;
        agent.start()?;
        wait_until(ARRIVAL, "the name mismatch refused", || {
            Ok(agent
                .log_text()?
                .contains("Connection to the collector failed"))
        })?;
        ensure!(collector.count()? == 0, "stored over a mismatched name");
        let out = Command::new(bin("logship-collector"))
            .arg("server-cert")
            .arg("--data-dir")
            .arg(collector.data_dir())
            .args(["--san", "127.0.0.2", "--san", "collector.example.internal"])
            .output()?;
        ensure!(out.status.success(), "{}", text(&out));
        ensure!(text(&out).contains("127.0.0.2"), "{}", text(&out));
        collector.stop()?;
        collector.start()?;
        wait_until(ARRIVAL, "100 lines over the new name", || {
            Ok(collector.count()? == 100)
        })?;
        let ca_after = std::fs::read(collector.data_dir().join("ca.key"))?;
        ensure!(ca_before == ca_after, "server-cert changed the CA key");
        Ok(())
    });
}
