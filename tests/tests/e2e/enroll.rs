//! Enrollment, revocation and certificate lifecycle (issue 11), with the real binaries over real
//! TLS: `token create` + `logship-agent enroll`, refusals that say which and write nothing, a
//! peer without a certificate reaching only enrollment (and rate-limited), revocation closing
//! streams and surviving a restart, and a short-lived certificate renewed while shipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, bin, check_exactly_once, raw,
    run_test, wait_until,
};
use logship_proto::v1::EnrollRequest;
use logship_proto::v1::enrollment_client::EnrollmentClient;

use crate::support::append_numbered;
use crate::writer::log_count;

const ARRIVAL: Duration = Duration::from_secs(120);

/// Runs `logship-collector ARGS`.
fn collector_cli(args: &[&str]) -> Result<Output> {
    Ok(Command::new(bin("logship-collector")).args(args).output()?)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn data_dir(c: &Collector) -> String {
    c.data_dir().display().to_string()
}

/// `token create` with `extra` flags; returns the token (the last line of stdout).
fn token(c: &Collector, extra: &[&str]) -> Result<String> {
    let mut args = vec!["token", "create", "--data-dir"];
    let dir = data_dir(c);
    args.push(&dir);
    args.extend_from_slice(extra);
    let out = collector_cli(&args)?;
    ensure!(out.status.success(), "token create: {}", text(&out));
    let stdout = String::from_utf8(out.stdout)?;
    let last = stdout
        .lines()
        .last()
        .context("token create printed nothing")?;
    ensure!(last.len() == 64, "last line is not a token: {stdout}");
    Ok(last.to_string())
}

fn fingerprint(c: &Collector) -> Result<String> {
    let out = collector_cli(&["ca-fingerprint", "--data-dir", &data_dir(c)])?;
    ensure!(out.status.success(), "ca-fingerprint: {}", text(&out));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Runs `logship-agent enroll` into `out`.
fn enroll(c: &Collector, token: &str, fp: &str, name: &str, out: &Path) -> Result<Output> {
    Ok(Command::new(bin("logship-agent"))
        .args(["enroll", "--server", &c.endpoint(), "--token", token])
        .args(["--ca-fingerprint", fp, "--name", name, "--out"])
        .arg(out)
        .output()?)
}

/// Enrolls `name` into `<sandbox>/<name>` (must succeed) and makes it an agent with `opts`.
fn enrolled_agent(
    sb: &Sandbox,
    c: &Collector,
    token: &str,
    name: &str,
    opts: &AgentOpts,
) -> Result<Agent> {
    let dir = sb.path().join(name);
    let out = enroll(c, token, &fingerprint(c)?, name, &dir)?;
    ensure!(out.status.success(), "enroll {name}: {}", text(&out));
    Agent::with_certs(sb, name, &dir, opts)
}

/// Expects a refused enrollment whose message contains `why`, and nothing written.
fn refused(out: &Output, dir: &Path, why: &str) -> Result<()> {
    ensure!(!out.status.success(), "enrollment accepted: {}", text(out));
    ensure!(
        text(out).contains(why),
        "refusal does not say {why:?}: {}",
        text(out)
    );
    ensure!(
        !dir.try_exists()?,
        "{} was written by a refused enrollment",
        dir.display()
    );
    Ok(())
}

/// Appends `[enroll] agent_cert_lifetime` to the collector's config.
fn set_cert_lifetime(c: &Collector, lifetime: &str) -> Result<()> {
    let path = c.data_dir().join("collector.toml");
    let mut toml = std::fs::read_to_string(&path)?;
    toml.push_str(&format!("\n[enroll]\nagent_cert_lifetime = {lifetime:?}\n"));
    std::fs::write(path, toml)?;
    Ok(())
}

#[test]
fn a_token_enrolls_as_many_agents_as_its_uses_and_refusals_say_why_and_write_nothing() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let fp = fingerprint(&collector)?;
        ensure!(
            fp == openssl_fingerprint(&collector.data_dir().join("ca.pem"))?,
            "ca-fingerprint {fp} is not what openssl computes"
        );
        // `init` prints the same fingerprint.
        let other = sb.path().join("other-collector");
        let out = collector_cli(&["init", "--data-dir", &other.display().to_string()])?;
        let expected = format!(
            "ca fingerprint: {}",
            openssl_fingerprint(&other.join("ca.pem"))?
        );
        ensure!(text(&out).contains(&expected), "init: {}", text(&out));
        let two = token(&collector, &["--uses", "2", "--label", "two PCs"])?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 500, 30)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let mut pc1 = enrolled_agent(sb, &collector, &two, "pc1", &opts)?;
        let pc2_dir = sb.path().join("pc2");
        let out = enroll(&collector, &two, &fp, "pc2", &pc2_dir)?;
        ensure!(out.status.success(), "second use refused: {}", text(&out));
        // The enrolled folder is ready: agent.toml passes check-config, the key is private.
        let check = Command::new(bin("logship-agent"))
            .args(["check-config", "--config"])
            .arg(pc2_dir.join("agent.toml"))
            .output()?;
        ensure!(
            check.status.success(),
            "enrolled agent.toml: {}",
            text(&check)
        );
        check_private(&pc2_dir.join("agent.key"))?;
        let third = sb.path().join("pc3");
        refused(
            &enroll(&collector, &two, &fp, "pc3", &third)?,
            &third,
            "already used 2 times",
        )?;
        // Expired, revoked, unknown tokens and a wrong fingerprint: each says which.
        let short = token(&collector, &["--ttl", "1s"])?;
        std::thread::sleep(Duration::from_millis(2100));
        refused(
            &enroll(&collector, &short, &fp, "pc3", &third)?,
            &third,
            "expired on",
        )?;
        let revoked = token(&collector, &["--uses", "5"])?;
        let id = token_id(&collector, "5")?;
        let out = collector_cli(&["token", "revoke", "--data-dir", &data_dir(&collector), &id])?;
        ensure!(out.status.success(), "token revoke: {}", text(&out));
        refused(
            &enroll(&collector, &revoked, &fp, "pc3", &third)?,
            &third,
            "was revoked",
        )?;
        let good = token(&collector, &[])?;
        let wrong_fp = format!("sha256:{}", "ab".repeat(32));
        refused(
            &enroll(&collector, &good, &wrong_fp, "pc3", &third)?,
            &third,
            "wrong CA fingerprint",
        )?;
        // The wrong-fingerprint attempt never sent the token: it still enrolls.
        let out = enroll(&collector, &good, &fp, "pc3", &third)?;
        ensure!(
            out.status.success(),
            "token after a pinning failure: {}",
            text(&out)
        );
        // A name is enrolled once unless the token allows --replace.
        let again = token(&collector, &[])?;
        let dup = sb.path().join("dup");
        refused(
            &enroll(&collector, &again, &fp, "pc1", &dup)?,
            &dup,
            "already enrolled",
        )?;
        let replace = token(&collector, &["--replace"])?;
        let out = enroll(&collector, &replace, &fp, "pc2", &pc2_dir)?;
        ensure!(out.status.success(), "--replace token: {}", text(&out));
        // The enrolled agent ships over mutual TLS with its own key.
        pc1.start()?;
        wait_until(ARRIVAL, "pc1's 500 lines", || {
            Ok(collector.store().count(&["--agent", "pc1"])? == 500)
        })?;
        check_exactly_once(&collector.store(), "app", 500)?;
        let list = collector_cli(&["token", "list", "--data-dir", &data_dir(&collector)])?;
        let list = text(&list);
        ensure!(
            list.contains("used-up")
                && list.contains("2/2")
                && list.contains("pc1,pc2")
                && list.contains("revoked")
                && list.contains("expired"),
            "token list: {list}"
        );
        ensure!(!list.contains(&two), "token list shows a token: {list}");
        let status = collector.status()?.context("status.json")?;
        ensure!(
            status["ca_fingerprint"] == fp.as_str(),
            "status.json: {}",
            status["ca_fingerprint"]
        );
        let log = sb.log_path("collector");
        ensure!(
            log_count(&log, "Agent enrolled")? == 4,
            "enrollments logged"
        );
        ensure!(
            log_count(&log, "Enrollment refused")? >= 4,
            "refusals logged"
        );
        Ok(())
    });
}

/// `sha256:` + what `openssl x509 -in ca.pem -outform der | sha256sum` prints.
fn openssl_fingerprint(ca: &Path) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in \"$1\" -outform der | sha256sum")
        .arg("sh")
        .arg(ca)
        .output()?;
    ensure!(out.status.success(), "openssl: {}", text(&out));
    let hex = String::from_utf8(out.stdout)?;
    let hex = hex
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?;
    ensure!(hex.len() == 64, "sha256sum: {hex}");
    Ok(format!("sha256:{hex}"))
}

fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "{} has mode {mode:o}", path.display());
    Ok(())
}

/// The id of the only token whose USES column ends in `/uses`.
fn token_id(c: &Collector, uses: &str) -> Result<String> {
    let out = collector_cli(&["token", "list", "--data-dir", &data_dir(c)])?;
    let listing = String::from_utf8(out.stdout)?;
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("0/{uses}")))
        .with_context(|| format!("no token with {uses} uses in {listing}"))?;
    Ok(line
        .split_whitespace()
        .next()
        .context("empty line")?
        .to_string())
}

#[test]
fn a_peer_without_a_certificate_reaches_only_enrollment_and_floods_are_rate_limited() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 1000, 30)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let good = token(&collector, &["--uses", "2"])?;
        let mut agent = enrolled_agent(sb, &collector, &good, "steady", &opts)?;
        agent.start()?;
        let ca = collector.data_dir().join("ca.pem");
        let no_cert = raw::tls_config(&ca, None)?;
        let batch = raw::line_batch("0123456789abcdef0123456789abcdef", 1, "nocert", &["x"])?;
        let shipped = raw::ship(&collector.endpoint(), no_cert.clone(), vec![batch]);
        let status = shipped
            .err()
            .context("Ship served without a certificate")?
            .downcast::<tonic::Status>()?;
        ensure!(
            status.code() == tonic::Code::Unimplemented,
            "Ship without certificate: {status:?}"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let beat = runtime.block_on(async {
            let mut client = raw::connect(&collector.endpoint(), no_cert.clone()).await?;
            anyhow::Ok(
                client
                    .heartbeat(logship_proto::v1::HeartbeatRequest::default())
                    .await,
            )
        })?;
        let status = beat
            .err()
            .context("Heartbeat served without a certificate")?;
        ensure!(
            status.code() == tonic::Code::Unimplemented,
            "Heartbeat: {status:?}"
        );
        // Renew is served there, but answers only a verified certificate.
        let renew = runtime.block_on(async {
            let channel = raw_channel(&collector.endpoint(), no_cert.clone()).await?;
            let mut client = EnrollmentClient::new(channel);
            let request = logship_proto::v1::RenewRequest {
                csr_der: bytes::Bytes::from_static(b"not a csr"),
            };
            anyhow::Ok(client.renew(request).await)
        })?;
        let status = renew.err().context("Renew served without a certificate")?;
        ensure!(
            status.code() == tonic::Code::Unauthenticated,
            "Renew without certificate: {status:?}"
        );
        // A flood of bad tokens from one address: refused, then rate-limited before the token
        // is even looked at (a good token from that address waits too).
        let mut limited = 0;
        for i in 0..40 {
            let outcome =
                runtime.block_on(try_enroll(&collector, no_cert.clone(), &format!("bad{i}")))?;
            if outcome.contains("too many failed enrollment attempts") {
                limited += 1;
            } else {
                ensure!(outcome.contains("not known"), "bad token answer: {outcome}");
            }
        }
        ensure!(
            limited >= 25,
            "only {limited} of 40 bad attempts were rate-limited"
        );
        let outcome = runtime.block_on(try_enroll(&collector, no_cert, &good))?;
        ensure!(
            outcome.contains("too many failed"),
            "good token during the limit: {outcome}"
        );
        // The enrolled agent was not affected.
        append_numbered(&log, 1000, 2000, 30)?;
        wait_until(ARRIVAL, "the agent's 2000 lines", || {
            Ok(collector.store().count(&["--input", "app"])? == 2000)
        })?;
        check_exactly_once(&collector.store(), "app", 2000)?;
        ensure!(
            collector.store().count(&["--input", "nocert"])? == 0,
            "no-cert batch stored"
        );
        let status = collector.status()?.context("status.json")?;
        ensure!(
            status["enrollment"]["rate_limited"].as_u64() >= Some(25),
            "{status}"
        );
        Ok(())
    });
}

/// One `Enroll` call without a certificate (any CSR: a bad token is refused before it is
/// parsed); returns the answer's message.
async fn try_enroll(c: &Collector, tls: Arc<rustls::ClientConfig>, token: &str) -> Result<String> {
    let channel = raw_channel(&c.endpoint(), tls).await?;
    let mut client = EnrollmentClient::new(channel);
    let answer = client
        .enroll(EnrollRequest {
            token: token.to_string(),
            name: "flood".into(),
            csr_der: bytes::Bytes::from_static(b"not a csr"),
            endpoint: c.endpoint(),
        })
        .await;
    match answer {
        Ok(_) => bail!("a bad enrollment was accepted"),
        Err(status) => Ok(status.message().to_string()),
    }
}

async fn raw_channel(
    endpoint: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<tonic::transport::Channel> {
    use hyper_util::rt::TokioIo;
    let addr = endpoint.to_string();
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
    let service = tower::service_fn(move |_: tonic::transport::Uri| {
        let (connector, name, addr) = (connector.clone(), name.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let stream = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))?
            .connect_with_connector(service)
            .await?,
    )
}

#[test]
fn a_revoked_agent_is_cut_off_refused_after_restart_and_its_spool_arrives_under_a_new_name() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 1000, 30)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let first = token(&collector, &[])?;
        let mut agent = enrolled_agent(sb, &collector, &first, "laptop-7", &opts)?;
        agent.start()?;
        wait_until(ARRIVAL, "1000 lines from laptop-7", || {
            Ok(collector.store().count(&["--agent", "laptop-7"])? == 1000)
        })?;
        let failures_before = agent
            .log_text()?
            .matches("Connection to the collector failed")
            .count();
        let out = collector_cli(&[
            "agents",
            "revoke",
            "--data-dir",
            &data_dir(&collector),
            "laptop-7",
            "--reason",
            "stolen",
        ])?;
        ensure!(out.status.success(), "agents revoke: {}", text(&out));
        wait_until(Duration::from_secs(5), "laptop-7 disconnected", || {
            Ok(agent
                .log_text()?
                .matches("Connection to the collector failed")
                .count()
                > failures_before)
        })?;
        let collector_log = std::fs::read_to_string(sb.log_path("collector"))?;
        ensure!(
            collector_log
                .lines()
                .any(|l| l.contains("Agent revoked:") && !l.contains("connections=0")),
            "the revocation closed no connection"
        );
        // Lines written now stay in the agent's spool: every reconnect is refused.
        append_numbered(&log, 1000, 1500, 30)?;
        wait_until(ARRIVAL, "reconnects refused", || {
            log_count(&sb.log_path("collector"), "Revoked agent refused").map(|n| n >= 2)
        })?;
        collector.stop()?;
        collector.start()?;
        let refused_before = log_count(&sb.log_path("collector"), "Revoked agent refused")?;
        wait_until(ARRIVAL, "refused after the restart", || {
            log_count(&sb.log_path("collector"), "Revoked agent refused")
                .map(|n| n > refused_before)
        })?;
        wait_until(ARRIVAL, "status.json counts the refusals", || {
            Ok(collector
                .status()?
                .is_some_and(|s| s["connections"]["refused_revoked"].as_u64() >= Some(1)))
        })?;
        ensure!(
            collector.store().count(&["--agent", "laptop-7"])? == 1000,
            "stored after revocation"
        );
        let agents = collector_cli(&[
            "agents",
            "--data-dir",
            &data_dir(&collector),
            "--format",
            "json",
        ])?;
        let row = text(&agents);
        ensure!(
            row.contains("\"revoked\":true") && row.contains("stolen"),
            "agents: {row}"
        );
        ensure!(
            row.contains("cert_not_after"),
            "agents shows no expiry: {row}"
        );
        // The revoked name cannot enroll again; the machine enrolls under a new name, keeping
        // its agent.toml and spool, and the spooled lines arrive once.
        agent.stop()?;
        let dir = sb.path().join("laptop-7");
        let second = token(&collector, &["--replace"])?;
        let out = enroll(
            &collector,
            &second,
            &fingerprint(&collector)?,
            "laptop-7",
            &sb.path().join("x"),
        )?;
        ensure!(
            !out.status.success() && text(&out).contains("revoked"),
            "{}",
            text(&out)
        );
        let out = enroll(
            &collector,
            &second,
            &fingerprint(&collector)?,
            "laptop-7b",
            &dir,
        )?;
        ensure!(out.status.success(), "re-enroll: {}", text(&out));
        ensure!(
            text(&out).contains("kept the existing"),
            "agent.toml replaced: {}",
            text(&out)
        );
        agent.start()?;
        wait_until(ARRIVAL, "the spooled 500 lines under laptop-7b", || {
            Ok(collector.store().count(&["--agent", "laptop-7b"])? == 500)
        })?;
        check_exactly_once(&collector.store(), "app", 1500)?;
        Ok(())
    });
}

#[test]
fn a_two_minute_certificate_renews_while_shipping_200000_lines() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        set_cert_lifetime(&collector, "2m")?;
        collector.start()?;
        let log = sb.path().join("app.log");
        std::fs::write(&log, "")?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let t = token(&collector, &[])?;
        let mut agent = enrolled_agent(sb, &collector, &t, "short-lived", &opts)?;
        let cert = sb.path().join("short-lived").join("agent.pem");
        let first_cert = std::fs::read(&cert)?;
        agent.start()?;
        // 200,000 lines over about 100 s: the renewal (due 60 s after enrollment) happens while
        // they are being read and shipped (writing goes on until it did).
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let (mut chunks, mut renewed_while_writing) = (0u64, false);
        while chunks < 100 || !renewed_while_writing {
            ensure!(
                std::time::Instant::now() < deadline,
                "no renewal while writing"
            );
            append_numbered(&log, chunks * 2000, (chunks + 1) * 2000, 40)?;
            chunks += 1;
            std::thread::sleep(Duration::from_secs(1));
            agent.check_alive()?;
            renewed_while_writing |= agent.log_text()?.contains("Certificate renewed");
        }
        let total = chunks * 2000;
        ensure!(total >= 200_000, "{total} lines");
        ensure!(
            std::fs::read(&cert)? != first_cert,
            "agent.pem was not replaced"
        );
        check_private(&sb.path().join("short-lived").join("agent.key"))?;
        // Past the first certificate's end, reconnect: the new certificate is presented.
        wait_until(
            Duration::from_secs(200),
            "the first certificate expired",
            || Ok(!first_cert_valid(&first_cert)?),
        )?;
        collector.stop()?;
        collector.start()?;
        wait_until(ARRIVAL, "every line stored", || {
            Ok(collector.store().count(&["--input", "app"])? >= total)
        })?;
        wait_until(
            ARRIVAL,
            "the agent reconnected with its renewed certificate",
            || {
                Ok(collector
                    .status()?
                    .is_some_and(|s| s["agents"]["short-lived"]["online"] == true))
            },
        )?;
        check_exactly_once(&collector.store(), "app", total)?;
        // After the restart the stream resumed from the first unacked record, not from scratch.
        let duplicates = collector.status()?.context("status.json")?["duplicate_records"]
            .as_u64()
            .context("duplicate_records")?;
        ensure!(
            duplicates < total / 4,
            "{duplicates} records resent after the restart"
        );
        let text = agent.log_text()?;
        ensure!(
            text.matches("Spool opened").count() == 1,
            "the agent restarted"
        );
        ensure!(
            !text.contains("certificate is not valid"),
            "the agent used an expired certificate"
        );
        Ok(())
    });
}

/// Whether a PEM certificate is still within its validity.
fn first_cert_valid(pem: &[u8]) -> Result<bool> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem)?;
    let end = not_after(der.as_ref())?;
    Ok(jiff::Timestamp::now().as_second() <= end)
}

fn not_after(der: &[u8]) -> Result<i64> {
    // The certificate's notAfter, read by `openssl` (in every Debian) to stay independent of the
    // code under test.
    let dir = tempfile::tempdir()?;
    let path: PathBuf = dir.path().join("c.der");
    std::fs::write(&path, der)?;
    let out = Command::new("openssl")
        .args([
            "x509", "-inform", "der", "-noout", "-enddate", "-dateopt", "iso_8601", "-in",
        ])
        .arg(&path)
        .output()?;
    ensure!(out.status.success(), "openssl: {}", text(&out));
    let line = String::from_utf8(out.stdout)?;
    let date = line
        .trim()
        .trim_start_matches("notAfter=")
        .replace(' ', "T");
    Ok(date.parse::<jiff::Timestamp>()?.as_second())
}

#[test]
fn the_collector_refuses_to_start_with_private_keys_others_can_read() {
    run_test(|sb| {
        use std::os::unix::fs::PermissionsExt;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        for key in ["server.key", "ca.key"] {
            let path = collector.data_dir().join(key);
            check_private(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))?;
            let started = collector.start();
            ensure!(started.is_err(), "serve started with {key} mode 640");
            let log = std::fs::read_to_string(sb.log_path("collector"))?;
            ensure!(
                log.contains(&format!("{key} is readable by group or others (mode 640)")),
                "no clear refusal for {key}: {log}"
            );
            collector.stop().ok();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        collector.start()?;
        Ok(())
    });
}

/// Replaces the collector's server certificate with one signed by its CA that lives three
/// minutes (as if `init` had made it long ago).
fn short_server_cert(c: &Collector) -> Result<()> {
    let dir = c.data_dir();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key"))?)?;
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.pem"))?, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse()?));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "logship collector");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(10);
    params.not_after = now + time::Duration::seconds(170);
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    Ok(())
}

#[test]
fn the_collector_renews_its_server_certificate_without_dropping_agents() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        short_server_cert(&collector)?;
        let first = std::fs::read(collector.data_dir().join("server.pem"))?;
        collector.start()?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 1000, 30)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let mut agent = Agent::enroll(sb, &collector, "steady", &opts)?;
        agent.start()?;
        wait_until(ARRIVAL, "the first 1000 lines", || {
            Ok(collector.count()? == 1000)
        })?;
        // Due with a third of its 3 minutes left; lines keep coming meanwhile.
        let mut next = 1000;
        wait_until(
            Duration::from_secs(180),
            "the server certificate renewed",
            || {
                append_numbered(&log, next, next + 100, 30)?;
                next += 100;
                std::thread::sleep(Duration::from_millis(900));
                log_count(
                    &sb.log_path("collector"),
                    "Server certificate renewed before expiry",
                )
                .map(|n| n >= 1)
            },
        )?;
        ensure!(
            std::fs::read(collector.data_dir().join("server.pem"))? != first,
            "server.pem was not replaced"
        );
        check_private(&collector.data_dir().join("server.key"))?;
        // Past the old certificate's end: the agent's connection was never dropped, and a new
        // agent connects (it could not against the expired certificate).
        wait_until(
            Duration::from_secs(200),
            "the first server certificate expired",
            || Ok(!first_cert_valid(&first)?),
        )?;
        append_numbered(&log, next, next + 1000, 30)?;
        next += 1000;
        let opts2 = AgentOpts::new(&collector, vec![FileInput::new("app2", &log)]);
        let mut second = Agent::enroll(sb, &collector, "newcomer", &opts2)?;
        second.start()?;
        wait_until(ARRIVAL, "every line from both agents", || {
            Ok(collector.store().count(&["--agent", "steady"])? == next
                && collector.store().count(&["--agent", "newcomer"])? == next)
        })?;
        check_exactly_once(&collector.store(), "app", next)?;
        let connects = agent
            .log_text()?
            .matches("Connected to the collector.")
            .count();
        ensure!(connects == 1, "the first agent connected {connects} times");
        Ok(())
    });
}

#[test]
fn an_agent_whose_certificate_expired_while_off_says_it_needs_a_new_token() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        set_cert_lifetime(&collector, "1m")?;
        collector.start()?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 300, 30)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let t = token(&collector, &[])?;
        let mut agent = enrolled_agent(sb, &collector, &t, "holiday-pc", &opts)?;
        let cert = sb.path().join("holiday-pc").join("agent.pem");
        let first = std::fs::read(&cert)?;
        // Switched off until its certificate has expired.
        wait_until(Duration::from_secs(120), "the certificate expired", || {
            Ok(!first_cert_valid(&first)?)
        })?;
        agent.start()?;
        wait_until(ARRIVAL, "the agent says it needs a new token", || {
            let text = agent.log_text()?;
            Ok(text.contains("certificate expired on")
                && text.contains("re-enroll this agent with a new token"))
        })?;
        ensure!(
            collector.count()? == 0,
            "stored from an expired certificate"
        );
        // The old token is used up; a new one with --replace re-enrolls the same name.
        agent.stop()?;
        let dir = sb.path().join("holiday-pc");
        let out = enroll(
            &collector,
            &t,
            &fingerprint(&collector)?,
            "holiday-pc",
            &dir,
        )?;
        ensure!(!out.status.success(), "the used token enrolled again");
        let fresh = token(&collector, &["--replace"])?;
        let out = enroll(
            &collector,
            &fresh,
            &fingerprint(&collector)?,
            "holiday-pc",
            &dir,
        )?;
        ensure!(out.status.success(), "re-enroll: {}", text(&out));
        agent.start()?;
        wait_until(ARRIVAL, "the 300 lines", || Ok(collector.count()? == 300))?;
        check_exactly_once(&collector.store(), "app", 300)?;
        Ok(())
    });
}
