//! The syslog receiver (issue 9): real senders (Debian's `logger` over UDP and TCP, both RFCs,
//! both TCP framings; a real rsyslog forwarding over TLS with a client certificate from a CA
//! made here), real device lines stored verbatim and normalized, an exact UDP drop count under a
//! 200,000-datagram flood, and a full spool that drops (counted) UDP and holds TCP senders.

use std::io::Write as _;
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, Proc, Sandbox, Store, free_port, numbered_line,
    run_test, wait_until,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;

const ARRIVAL: Duration = Duration::from_secs(90);
const FORTIGATE: &str = include_str!("fixtures/syslog/fortigate-sslvpn.log");
const OPNSENSE_5424: &str = include_str!("fixtures/syslog/opnsense-gui-auth-rfc5424.log");
const SSHD: &str = include_str!("fixtures/syslog/sshd-failed.log");

/// Appends a `[[syslog]]` table to the agent's config (after `Agent::enroll` wrote it).
fn add_syslog(agent: &Agent, table: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(agent.config_path())?;
    write!(f, "\n[[syslog]]\n{table}\n")?;
    Ok(())
}

/// Waits until the agent logged that `url` listens (listeners start in the order written).
fn wait_listening(agent: &mut Agent, url: &str) -> Result<()> {
    wait_until(ARRIVAL, &format!("agent listening on {url}"), || {
        agent.check_alive()?;
        Ok(agent
            .log_text()?
            .lines()
            .any(|l| l.contains("Syslog listener started") && l.contains(url)))
    })
}

/// An agent named `name` with no file input and `opts`' spool, not started.
fn syslog_agent(
    sb: &Sandbox,
    collector: &Collector,
    name: &str,
    spool_max_bytes: u64,
) -> Result<Agent> {
    let mut opts = AgentOpts::new(collector, Vec::new());
    opts.spool_max_bytes = spool_max_bytes;
    Agent::enroll(sb, collector, name, &opts)
}

fn udp_dropped(collector: &Collector, agent: &str) -> Result<Option<u64>> {
    Ok(collector
        .status()?
        .and_then(|s| s["agents"][agent]["drops"]["udp_dropped"].as_u64()))
}

/// Records whose raw text contains `needle`.
fn containing(store: &Store, needle: &str) -> Result<Vec<Value>> {
    store.search(&["--contains", needle])
}

fn attr<'a>(rec: &'a Value, key: &str) -> &'a str {
    rec["attributes"][key].as_str().unwrap_or("")
}

/// Runs `logger` with `args`; a missing `logger` fails the test.
fn logger(args: &[&str]) -> Result<()> {
    let out = Command::new("logger")
        .args(args)
        .output()
        .context("running logger (Debian package bsdutils)")?;
    ensure!(
        out.status.success(),
        "logger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files in
/// `dir`: ca.pem, server.pem/.key, client.pem/.key.
fn make_pki(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "syslog devices test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, server: bool| -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec![name.to_string()])?;
        p.distinguished_name.push(DnType::CommonName, name);
        if server {
            p.subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse()?));
        }
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert, key) = leaf("localhost", true)?;
    std::fs::write(dir.join("server.pem"), cert)?;
    std::fs::write(dir.join("server.key"), key)?;
    let (cert, key) = leaf("rsyslog-relay", false)?;
    std::fs::write(dir.join("client.pem"), cert)?;
    std::fs::write(dir.join("client.key"), key)?;
    Ok(())
}

fn find_rsyslogd() -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(dir).join("rsyslogd");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("rsyslogd not found: install the Debian packages rsyslog and rsyslog-gnutls")
}

/// A private rsyslogd reading `input` (imfile) and forwarding every line over TLS (gtls,
/// octet-counted RFC 5424) to 127.0.0.1:`port`, presenting the client certificate in `pki`.
fn start_rsyslog_tls_relay(sb: &Sandbox, pki: &Path, input: &Path, port: u16) -> Result<Proc> {
    let work = sb.path().join("rsyslog");
    std::fs::create_dir_all(&work)?;
    let conf = work.join("rsyslog.conf");
    let p = |f: &str| pki.join(f).display().to_string();
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imfile" mode="inotify")
input(type="imfile" file="{input}" tag="relay-test" facility="local0" severity="notice"
      readMode="0" freshStartTail="off")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="localhost" TCP_Framing="octet-counted"
       template="RSYSLOG_SyslogProtocol23Format" action.resumeRetryCount="-1")
"#,
            work = work.display(),
            ca = p("ca.pem"),
            cert = p("client.pem"),
            key = p("client.key"),
            input = input.display(),
        ),
    )?;
    let rsyslogd = find_rsyslogd()?;
    let check = Command::new(&rsyslogd)
        .arg("-N1")
        .arg("-f")
        .arg(&conf)
        .output()?;
    ensure!(
        check.status.success(),
        "rsyslog rejected {}: {}",
        conf.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new(rsyslogd);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslog.pid"));
    Proc::spawn("rsyslog", cmd, &sb.log_path("rsyslog"))
}

#[test]
fn real_senders_arrive_once_with_their_address_and_device_lines_are_verbatim_and_normalized() {
    run_test(|sb| {
        let pki = sb.path().join("pki");
        make_pki(&pki)?;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let mut agent = syslog_agent(sb, &collector, "relay", 64 << 20)?;
        let (udp, tcp, tls) = (free_port(), free_port(), free_port());
        let p = |f: &str| format!("{:?}", pki.join(f).display().to_string());
        add_syslog(
            &agent,
            &format!(
                "name = \"network\"\nlisten = [\"udp://127.0.0.1:{udp}\", \"tcp://127.0.0.1:{tcp}\", \
                 \"tls://127.0.0.1:{tls}\"]\ntls_cert = {}\ntls_key = {}\ntls_client_ca = {}\n\
                 max_message_bytes = 65536\n",
                p("server.pem"),
                p("server.key"),
                p("ca.pem")
            ),
        )?;
        agent.start()?;
        wait_listening(&mut agent, &format!("tls://127.0.0.1:{tls}"))?;

        // A TLS sender without a client certificate is refused (the CA check is on).
        let no_cert = std::thread::spawn(move || tls_without_client_cert(tls));

        // logger: both RFCs over UDP and TCP, newline and octet-counted framing.
        let (us, ts) = (udp.to_string(), tcp.to_string());
        let cases: [(&str, &str, &[&str]); 6] = [
            ("logger-udp-3164", "udp", &["--udp", "--rfc3164", "-P", &us]),
            ("logger-udp-5424", "udp", &["--udp", "--rfc5424", "-P", &us]),
            ("logger-tcp-3164", "tcp", &["--tcp", "--rfc3164", "-P", &ts]),
            ("logger-tcp-5424", "tcp", &["--tcp", "--rfc5424", "-P", &ts]),
            (
                "logger-tcp-octet-3164",
                "tcp",
                &["--tcp", "--octet-count", "--rfc3164", "-P", &ts],
            ),
            (
                "logger-tcp-octet-5424",
                "tcp",
                &["--tcp", "--octet-count", "--rfc5424", "-P", &ts],
            ),
        ];
        for (text, _, args) in &cases {
            let mut all = vec!["-n", "127.0.0.1", "-t", "e2e"];
            all.extend_from_slice(args);
            all.push(text);
            logger(&all)?;
        }
        // An RFC 5424 message with structured data from logger: a real sshd message.
        let sshd_msg = SSHD
            .trim_end()
            .split_once("]: ")
            .context("the sshd fixture has a tag")?
            .1;
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &ts,
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "sshd",
            "--sd-id",
            "origin@32473",
            "--sd-param",
            "software=\"e2e\"",
            sshd_msg,
        ])?;
        // A FortiGate line (PRI, no header) over UDP and a real RFC 5424 line over TCP.
        let fortigate = format!("<189>{}", FORTIGATE.trim_end());
        UdpSocket::bind("127.0.0.1:0")?.send_to(fortigate.as_bytes(), ("127.0.0.1", udp))?;
        let mut s = TcpStream::connect(("127.0.0.1", tcp))?;
        s.write_all(format!("{}\n", OPNSENSE_5424.trim_end()).as_bytes())?;
        drop(s);
        // rsyslog relays 20 lines over TLS with its client certificate.
        let relay_input = sb.path().join("relay-input.log");
        let lines: String = (0..20)
            .map(|i| format!("rsyslog-tls-line {i:03}\n"))
            .collect();
        std::fs::write(&relay_input, lines)?;
        let _rsyslog = start_rsyslog_tls_relay(sb, &pki, &relay_input, tls)?;

        let store = collector.store();
        wait_until(
            ARRIVAL,
            "every logger message, both device lines, 20 relayed lines",
            || Ok(store.count(&["--input", "network"])? >= 6 + 1 + 2 + 20),
        )?;
        for (text, transport, _) in &cases {
            let recs = containing(&store, text)?;
            ensure!(recs.len() == 1, "{text}: {} records: {recs:?}", recs.len());
            let r = &recs[0];
            ensure!(attr(r, "transport") == *transport, "{text}: {r}");
            ensure!(attr(r, "sender").starts_with("127.0.0.1:"), "{text}: {r}");
            ensure!(r["input"] == "network", "{text}: {r}");
            let raw = r["raw"].as_str().unwrap_or("");
            ensure!(
                raw.starts_with('<') && raw.ends_with(text),
                "{text}: raw {raw:?}"
            );
        }
        for i in 0..20 {
            let text = format!("rsyslog-tls-line {i:03}");
            let recs = containing(&store, &text)?;
            ensure!(recs.len() == 1, "{text}: {} records: {recs:?}", recs.len());
            ensure!(attr(&recs[0], "transport") == "tls", "{}", recs[0]);
            ensure!(
                attr(&recs[0], "tls_client") == "rsyslog-relay",
                "{}",
                recs[0]
            );
            ensure!(
                attr(&recs[0], "sender").starts_with("127.0.0.1:"),
                "{}",
                recs[0]
            );
            let raw = recs[0]["raw"].as_str().unwrap_or("");
            ensure!(
                raw.starts_with("<133>1 ") && raw.contains(" relay-test "),
                "{raw:?}"
            );
        }
        // Device lines: byte for byte, and normalized.
        let fgt = containing(&store, "sslvpn_login_unknown_user")?;
        ensure!(
            fgt.len() == 1 && fgt[0]["raw"] == fortigate.as_str(),
            "{fgt:?}"
        );
        ensure!(
            fgt[0]["fields"]["event.dataset"] == "fortigate",
            "{}",
            fgt[0]
        );
        ensure!(
            store.count(&[
                "--where",
                "source.ip=192.168.0.1",
                "--where",
                "event.outcome=failure"
            ])? == 1,
            "the FortiGate line is not found by its normalized fields"
        );
        let opn = containing(&store, "Web GUI authentication error")?;
        ensure!(
            opn.len() == 1 && opn[0]["raw"] == OPNSENSE_5424.trim_end(),
            "{opn:?}"
        );
        let sshd = containing(&store, sshd_msg)?;
        ensure!(sshd.len() == 1, "{sshd:?}");
        let raw = sshd[0]["raw"].as_str().unwrap_or("");
        ensure!(
            raw.starts_with("<13>1 ") && raw.contains("[origin@32473 software=\"e2e\"]"),
            "logger's RFC 5424 line with structured data: {raw:?}"
        );
        let f = &sshd[0]["fields"];
        ensure!(
            f["event.dataset"] == "sshd"
                && f["source.ip"] == "194.117.26.69"
                && f["event.outcome"] == "failure",
            "sshd over RFC 5424 normalized: {f}"
        );
        no_cert.join().expect("the no-cert client thread")?;
        ensure!(
            containing(&store, "sent-without-a-client-certificate")?.is_empty(),
            "a TLS sender without a client certificate was accepted"
        );
        ensure!(
            store.count(&["--input", "network"])? == 6 + 1 + 2 + 20,
            "unexpected extra records"
        );
        Ok(())
    });
}

/// Connects over TLS presenting no client certificate and sends one message; the agent must
/// refuse the handshake (TLS 1.3: the client learns it when it reads).
fn tls_without_client_cert(port: u16) -> Result<()> {
    use std::io::Read as _;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyServer))
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let wrote = tls.write_all(b"<13>sent-without-a-client-certificate\n");
    let mut buf = [0u8; 64];
    let read = tls.read(&mut buf);
    ensure!(
        wrote.is_err() || read.is_err() || matches!(read, Ok(0)),
        "the agent kept a TLS connection without a client certificate open"
    );
    Ok(())
}

/// Accepts any server certificate (this client only tests the agent's client-certificate check).
#[derive(Debug)]
struct AnyServer;

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Counts per number `0..n` of records of `input` whose raw text has `marker` then a number.
fn counts_by_number(store: &Store, input: &str, marker: &str, n: usize) -> Result<Vec<u8>> {
    let mut seen = vec![0u8; n];
    store.search_each(&["--input", input, "--contains", marker], |rec| {
        let raw = rec["raw"].as_str().unwrap_or_default();
        let at = raw.find(marker).context("marker")? + marker.len();
        let digits: String = raw[at..].chars().take_while(char::is_ascii_digit).collect();
        let i: usize = digits
            .parse()
            .with_context(|| format!("number in {raw:?}"))?;
        ensure!(i < n, "number {i} out of range in {raw:?}");
        seen[i] = seen[i].saturating_add(1);
        Ok(())
    })?;
    Ok(seen)
}

#[test]
fn udp_flood_of_200000_datagrams_is_received_or_counted_exactly() {
    run_test(|sb| {
        const SENT: u64 = 200_000;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let mut agent = syslog_agent(sb, &collector, "flooded", 256 << 20)?;
        let port = free_port();
        add_syslog(
            &agent,
            &format!("name = \"flood\"\nlisten = [\"udp://127.0.0.1:{port}\"]\n"),
        )?;
        agent.start()?;
        wait_listening(&mut agent, &format!("udp://127.0.0.1:{port}"))?;
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let mut sent = 0u64;
        let mut msg = Vec::with_capacity(64);
        let pid = agent.pid().context("agent pid")?.to_string();
        let signal = |sig: &str| -> Result<()> {
            let st = Command::new("kill").args([sig, &pid]).status()?;
            ensure!(st.success(), "kill {sig} {pid} failed with {st}");
            Ok(())
        };
        while sent < SENT {
            // The second half goes to a stopped agent: its socket buffer overflows and the
            // kernel drops datagrams, which must be counted too.
            if sent == SENT / 2 {
                signal("-STOP")?;
            }
            msg.clear();
            write!(msg, "<134>flood datagram n={sent:06}")?;
            match socket.send_to(&msg, ("127.0.0.1", port)) {
                Ok(_) => sent += 1,
                // The local send queue is full (ENOBUFS): nothing was sent, try again.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => std::thread::yield_now(),
                Err(e) => return Err(e.into()),
            }
        }
        signal("-CONT")?;
        let store = collector.store();
        let mut last = (0, 0);
        wait_until(ARRIVAL, "received + udp_dropped == 200000", || {
            agent.check_alive()?;
            let dropped = udp_dropped(&collector, "flooded")?.unwrap_or(0);
            let received = store.count(&["--input", "flood"])?;
            ensure!(
                received + dropped <= SENT,
                "received {received} + dropped {dropped} > sent {SENT}"
            );
            last = (received, dropped);
            Ok(received + dropped == SENT)
        })?;
        let seen = counts_by_number(&store, "flood", "n=", SENT as usize)?;
        let distinct = seen.iter().filter(|&&c| c > 0).count() as u64;
        ensure!(seen.iter().all(|&c| c <= 1), "a datagram was stored twice");
        ensure!(
            distinct == last.0,
            "distinct {distinct} != received {}",
            last.0
        );
        let kernel: u64 = udp_socket_column(port, 12)?
            .context("the agent's UDP socket")?
            .parse()?;
        ensure!(
            kernel > 0,
            "the stopped agent's socket dropped nothing: the test proves less"
        );
        eprintln!(
            "udp flood: sent {SENT}, received {}, udp_dropped {} (kernel drops {kernel})",
            last.0, last.1
        );
        Ok(())
    });
}

/// Column `col` of the `/proc/net/udp` line of the socket bound to 127.0.0.1:`port`.
fn udp_socket_column(port: u16, col: usize) -> Result<Option<String>> {
    let table = std::fs::read_to_string("/proc/net/udp")?;
    let local = format!("0100007F:{port:04X}");
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(1) == Some(&local.as_str()) {
            return Ok(cols.get(col).map(|c| c.to_string()));
        }
    }
    Ok(None)
}

/// Bytes waiting in the receive queue of the UDP socket bound to 127.0.0.1:`port`
/// (`tx_queue:rx_queue`, hexadecimal).
fn udp_rx_queue(port: u16) -> Result<Option<u64>> {
    let Some(queues) = udp_socket_column(port, 4)? else {
        return Ok(None);
    };
    let rx = queues.split_once(':').context("queue column")?.1;
    Ok(Some(u64::from_str_radix(rx, 16)?))
}

/// Writes newline-framed numbered messages until a write has been blocked for `stall`;
/// reports the stall, waits for `resume`, finishes the message in progress and returns how
/// many messages were written whole.
fn tcp_until_stalled(
    port: u16,
    stall: Duration,
    stalled: mpsc::Sender<u64>,
    resume: mpsc::Receiver<()>,
) -> Result<u64> {
    use std::io::ErrorKind;
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_write_timeout(Some(stall))?;
    let mut i = 0u64;
    loop {
        let msg = format!("<134>held {}\n", numbered_line(i, 200));
        let mut rest = msg.as_bytes();
        while !rest.is_empty() {
            match s.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    stalled.send(i)?;
                    resume.recv()?;
                    s.set_write_timeout(None)?;
                    s.write_all(rest)?;
                    s.flush()?;
                    return Ok(i + 1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        i += 1;
    }
}

#[test]
fn a_full_spool_drops_udp_with_a_count_and_holds_tcp_senders_until_it_drains() {
    run_test(|sb| {
        const UDP_SENT: u64 = 2_000;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        // The collector stays down: the agent's 2 MiB spool fills up.
        let mut agent = syslog_agent(sb, &collector, "relay", 2 << 20)?;
        let (udp, tcp) = (free_port(), free_port());
        add_syslog(
            &agent,
            &format!(
                "name = \"held\"\nlisten = [\"udp://127.0.0.1:{udp}\", \"tcp://127.0.0.1:{tcp}\"]\n"
            ),
        )?;
        agent.start()?;
        wait_listening(&mut agent, &format!("tcp://127.0.0.1:{tcp}"))?;
        let (stalled_tx, stalled_rx) = mpsc::channel();
        let (resume_tx, resume_rx) = mpsc::channel();
        let sender = std::thread::spawn(move || {
            tcp_until_stalled(tcp, Duration::from_secs(3), stalled_tx, resume_rx)
        });
        // The TCP sender is slowed to a stop: its write blocks (no timing claim beyond "blocked").
        let at = stalled_rx
            .recv_timeout(Duration::from_secs(300))
            .context("the TCP sender never blocked although the spool is full")?;
        agent.check_alive()?;
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        for i in 0..UDP_SENT {
            socket.send_to(
                format!("<134>udp while full n={i:05}").as_bytes(),
                ("127.0.0.1", udp),
            )?;
        }
        // The agent has taken every datagram off its socket (and dropped it: the spool is full)
        // before the collector comes back.
        wait_until(ARRIVAL, "the agent's UDP socket queue is empty", || {
            Ok(udp_rx_queue(udp)? == Some(0))
        })?;
        collector.start()?;
        resume_tx.send(())?;
        let tcp_sent = sender.join().expect("the TCP sender thread")?;
        ensure!(
            tcp_sent == at + 1,
            "sender wrote {tcp_sent}, stalled at {at}"
        );
        let store = collector.store();
        let mut udp_received = 0;
        let mut dropped = 0;
        wait_until(
            ARRIVAL,
            "every TCP message, and udp received + dropped == sent",
            || {
                agent.check_alive()?;
                let tcp_in = store.count(&["--input", "held", "--contains", "held app["])?;
                udp_received = store.count(&["--input", "held", "--contains", "udp while full"])?;
                dropped = udp_dropped(&collector, "relay")?.unwrap_or(0);
                ensure!(
                    udp_received + dropped <= UDP_SENT,
                    "{udp_received} + {dropped} > {UDP_SENT}"
                );
                Ok(tcp_in == tcp_sent && udp_received + dropped == UDP_SENT)
            },
        )?;
        ensure!(
            dropped > 0,
            "no UDP datagram was dropped although the spool was full"
        );
        let seen = counts_by_number(&store, "held", "line=", usize::try_from(tcp_sent)?)?;
        ensure!(
            seen.iter().all(|&c| c == 1),
            "TCP messages not exactly once: missing {:?}, twice {:?}",
            seen.iter().position(|&c| c == 0),
            seen.iter().position(|&c| c > 1)
        );
        eprintln!(
            "full spool: tcp sender blocked after {tcp_sent} messages, all stored once; \
             udp sent {UDP_SENT}, received {udp_received}, udp_dropped {dropped}"
        );
        Ok(())
    });
}

/// Reads until the peer closes (Ok(true)) or 30 s pass (Ok(false)).
fn closed_by_peer(s: &mut TcpStream) -> Result<bool> {
    use std::io::Read as _;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => Ok(true),
        Ok(_) => bail!("the agent sent bytes on a syslog connection"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[test]
fn hostile_senders_are_cut_or_closed_and_the_listeners_go_on() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let mut agent = syslog_agent(sb, &collector, "relay", 64 << 20)?;
        let (udp, tcp) = (free_port(), free_port());
        let (idle_port, cap_port) = (free_port(), free_port());
        add_syslog(
            &agent,
            &format!(
                "name = \"idle\"\nlisten = [\"tcp://127.0.0.1:{idle_port}\"]\nidle_timeout_secs = 1\n"
            ),
        )?;
        add_syslog(
            &agent,
            &format!(
                "name = \"capped\"\nlisten = [\"tcp://127.0.0.1:{cap_port}\"]\n\
                 max_connections_per_sender = 2\n"
            ),
        )?;
        add_syslog(
            &agent,
            &format!(
                "name = \"hostile\"\nlisten = [\"udp://127.0.0.1:{udp}\", \"tcp://127.0.0.1:{tcp}\"]\n\
                 max_message_bytes = 1024\n"
            ),
        )?;
        agent.start()?;
        wait_listening(&mut agent, &format!("tcp://127.0.0.1:{tcp}"))?;
        let connect = || TcpStream::connect(("127.0.0.1", tcp));

        // A malformed octet-counting length closes that connection (after the good frame).
        let mut bad = connect()?;
        bad.write_all(b"16 <13>good-frame-112x <13>never")?;
        ensure!(
            closed_by_peer(&mut bad)?,
            "a malformed length left the connection open"
        );
        // A newline-framed sender whose first message starts with a digit (no <PRI>) is read
        // as lines, not refused as a bad octet count.
        let mut digit = connect()?;
        digit.write_all(b"2026-11-29T10:00:00Z gw app: digit-first-line\n")?;
        drop(digit);
        // Too long: newline framing and octet counting are cut at 1024 and flagged; so is UDP.
        let mut long = connect()?;
        let big_line = format!("<13>long-line {}\n", "x".repeat(200_000));
        long.write_all(big_line.as_bytes())?;
        drop(long);
        // (Framing is chosen per connection: the octet-counted one gets its own.)
        let mut counted = connect()?;
        let big_frame = format!("<13>long-frame {}", "y".repeat(100_000));
        counted.write_all(format!("{} {big_frame}", big_frame.len()).as_bytes())?;
        drop(counted);
        let big_datagram = format!("<13>long-datagram {}", "z".repeat(60_000));
        UdpSocket::bind("127.0.0.1:0")?.send_to(big_datagram.as_bytes(), ("127.0.0.1", udp))?;
        let store = collector.store();
        wait_until(
            ARRIVAL,
            "the good frame, the digit-first line, the 3 long messages",
            || Ok(store.count(&["--input", "hostile"])? >= 5),
        )?;
        // A third connection from the same address is refused; the first two still work.
        let capped = || TcpStream::connect(("127.0.0.1", cap_port));
        let mut a = capped()?;
        let mut b = capped()?;
        let mut c = capped()?;
        ensure!(
            closed_by_peer(&mut c)?,
            "a third connection from one sender was kept"
        );
        a.write_all(b"<13>from-connection-a\n")?;
        b.write_all(b"<13>from-connection-b\n")?;
        drop((a, b));

        wait_until(ARRIVAL, "both messages of the capped input", || {
            Ok(store.count(&["--input", "capped"])? >= 2)
        })?;
        let digit = containing(&store, "digit-first-line")?;
        ensure!(
            digit.len() == 1 && digit[0]["raw"] == "2026-11-29T10:00:00Z gw app: digit-first-line",
            "{digit:?}"
        );
        ensure!(
            containing(&store, "never")?.is_empty(),
            "bytes after a bad length were kept"
        );
        ensure!(
            containing(&store, "good-frame-1")?.len() == 1,
            "the good frame was lost"
        );
        for (needle, full) in [
            ("long-line", big_line.trim_end().len()),
            ("long-frame", big_frame.len()),
            ("long-datagram", big_datagram.len()),
        ] {
            let r = containing(&store, needle)?;
            ensure!(r.len() == 1, "{needle}: {} records", r.len());
            let raw = r[0]["raw"].as_str().unwrap_or("");
            ensure!(raw.len() == 1024, "{needle}: stored {} bytes", raw.len());
            ensure!(
                r[0]["truncated_from"].as_u64() == Some(full as u64),
                "{needle}: truncated_from {} != {full}",
                r[0]["truncated_from"]
            );
        }
        for needle in ["from-connection-a", "from-connection-b"] {
            ensure!(containing(&store, needle)?.len() == 1, "{needle} lost");
        }
        ensure!(
            store.count(&["--input", "hostile"])? == 5 && store.count(&["--input", "capped"])? == 2,
            "unexpected records"
        );
        // A silent connection is closed after idle_timeout_secs (the other input's setting).
        let mut silent = TcpStream::connect(("127.0.0.1", idle_port))?;
        ensure!(
            closed_by_peer(&mut silent)?,
            "a silent connection was kept open"
        );
        // (A connection is closed before its reason is logged: wait for the lines.)
        wait_until(
            ARRIVAL,
            "the idle close, the bad length and the refusal logged",
            || {
                let log = agent.log_text()?;
                Ok(log.contains("idle for 1s")
                    && log.contains("malformed octet-counting length")
                    && log.contains("max_connections_per_sender"))
            },
        )?;
        agent.check_alive()?;
        Ok(())
    });
}
