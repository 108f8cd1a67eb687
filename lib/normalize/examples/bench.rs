//! Normalization throughput: lines/s on one core per parser (fixture lines repeated in memory)
//! and for the mix of all of them, by wall clock and per CPU-second of the benchmark thread (the
//! figure that holds on a loaded machine). Run:
//! `cargo run --release --example bench -p logship-normalize`.

use std::time::Instant;

use logship_normalize::{Context, Normalizer};

const FILES: &[(&str, &str)] = &[
    ("sshd", "crowdsec-sshd.log"),
    ("postfix", "postfix-ecs-pipeline-mail.log"),
    ("squid", "beats-squid-access1-first40.log"),
    ("web.access", "elastic-examples-apache_logs-first150.log"),
    ("squid combined", "proxy-squid-combined.log"),
    ("web.access forward proxy", "proxy-apache-forward.log"),
    ("netfilter", "crowdsec-iptables-scan-multi-port.log"),
    ("fortigate", "crowdsec-fortigate-sslvpn-event.log"),
    ("fortigate <PRI>", "beats-fortinet-firewall-selected.log"),
    ("opensmtpd", "wazuh-ruletest-opensmtpd.log"),
    ("sshd iso", "wazuh-ruletest-sshd-iso.log"),
    ("cisco.asa", "wazuh-ruletest-cisco-asa.log"),
    ("openvpn", "crowdsec-openvpn__openvpn.log"),
    ("auditd", "go-libaudit-audit-rhel7.log"),
    ("filterlog", "elastic-integrations-pfsense-filterlog.log"),
    ("dovecot", "fail2ban-dovecot-selected.log"),
    ("strongswan", "crowdsec-charon-ipsec-logs.log"),
    (
        "cisco.asa/ftd (beats)",
        "beats-cisco-asa-additional-messages.log",
    ),
    ("paloalto", "beats-panw-traffic-selected.log"),
    (
        "exchange",
        "elastic-integrations-exchange-messagetracking.log",
    ),
    ("su/sudo/pam", "wazuh-ruletest-su-sudo.log"),
    ("samba", "crowdsec-smb-logs.log"),
    ("pulse_secure", "elastic-integrations-pulse-vpn.log"),
    ("softether security_log", "softether-security_log.log"),
    ("softether syslog", "softether-syslog-rsyslog.log"),
    ("windows xml", "evtxrs-selected.xml"),
    ("windows json", "otrf-selected.json"),
];

const TARGET_LINES: usize = 200_000;

fn main() {
    let ctx = Context {
        host: "bench",
        input: "bench",
        path: "bench",
        agent_tz: "Asia/Tokyo",
        observed_unix_nanos: 1_735_689_600_000_000_000,
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut mix: Vec<String> = Vec::new();
    println!(
        "| input | lines | lines/s (wall, 1 thread) | lines per CPU-second |\n|---|---:|---:|---:|"
    );
    for (name, file) in FILES {
        let text = std::fs::read_to_string(dir.join(file)).expect("fixture present");
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let reps = (TARGET_LINES / 10 / lines.len()).max(1);
        let input: Vec<&str> = lines
            .iter()
            .cycle()
            .take(lines.len() * reps)
            .copied()
            .collect();
        let (wall, cpu) = rate(&input, &ctx);
        println!("| {name} | {} | {wall:.0} | {cpu:.0} |", input.len());
        // The mix weights the syslog/text sources like a typical site (Windows events are larger).
        let weight = if name.starts_with("windows") { 1 } else { 4 };
        for _ in 0..weight {
            mix.extend(lines.iter().map(|l| (*l).to_owned()));
        }
    }
    let mix_refs: Vec<&str> = mix
        .iter()
        .map(String::as_str)
        .cycle()
        .take(TARGET_LINES)
        .collect();
    let (wall, cpu) = rate(&mix_refs, &ctx);
    println!("| **mix** | {} | {wall:.0} | {cpu:.0} |", mix_refs.len());
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (first field, ns):
/// unlike wall time it does not count time the thread waited for a core on a loaded machine.
fn thread_cpu_ns() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// (lines per wall second, lines per CPU second) for one pass over `lines`.
fn rate(lines: &[&str], ctx: &Context<'_>) -> (f64, f64) {
    let mut n = Normalizer::new();
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut fields = 0usize;
    for l in lines {
        fields += n.normalize(l.as_bytes(), ctx).fields.len();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - cpu0) / 1e9;
    assert!(fields > 0, "normalizer produced fields");
    (lines.len() as f64 / secs, lines.len() as f64 / cpu)
}
