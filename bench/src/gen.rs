//! Generator of the benchmark's input: a realistic, verifiable mixed log file.
//!
//! Every line is one of sshd authentication, web access (nginx "combined"), proxy access (squid
//! native) or syslog (cron, systemd, kernel firewall, postfix) and carries its line number
//! where its format has room for it, so that every line stays a real line its parser accepts:
//!
//! ```text
//! <line in its usual format> seq=<n>\n             web, squid, cron, systemd, kernel, postfix
//! Mmm dd hh:mm:ss host sshd[<n>]: <message>\n      sshd: the number is the pid
//!                                                  n = 1, 2, 3, … with no gaps
//! ```
//!
//! (sshd's parser rightly refuses trailing text after `ssh2`; before the number moved into the
//! pid, every generated `Failed password` line was `unparsed`.) [`parse_seq`] reads both forms.
//!
//! Design constraints:
//! - deterministic: the same seed and size give the same bytes (own SplitMix64, no crate RNG);
//! - compressible like real logs (zstd -1 about 5–10×): values come from skewed pools of IPs,
//!   users, URLs and agents, not from uniform noise; timestamps advance by a few milliseconds;
//! - about 150 bytes a line on average; the file ends after the first line that reaches the size.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Start of the generated time range: 2024-03-05T00:00:00Z.
const START_EPOCH_MS: u64 = 1_709_596_800_000;
/// Size of the write buffer; large writes keep generation far faster than any shipper.
const WRITE_BUF_BYTES: usize = 1 << 20;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const HOSTS: [&str; 8] = [
    "web01", "web02", "proxy01", "mail01", "db01", "db02", "bastion", "app03",
];
const USERS: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "trent", "victor", "deploy",
];
const BAD_USERS: [&str; 12] = [
    "admin", "test", "oracle", "ubuntu", "git", "postgres", "guest", "support", "pi", "ftpuser",
    "user", "hadoop",
];
const AGENTS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/7.88.1",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const PATHS: [&str; 10] = [
    "/api/v1/orders/",
    "/api/v1/items/",
    "/static/js/app.",
    "/products/",
    "/search?q=",
    "/login",
    "/wp-login.php",
    "/images/p/",
    "/api/v2/session/",
    "/index.html",
];
const DOMAINS: [&str; 12] = [
    "www.example.com",
    "cdn.jsdelivr.net",
    "update.microsoft.com",
    "api.github.com",
    "fonts.gstatic.com",
    "www.google.com",
    "slack.com",
    "outlook.office365.com",
    "s3.amazonaws.com",
    "news.ycombinator.com",
    "registry.npmjs.org",
    "deb.debian.org",
];
const STATUSES: [u16; 8] = [200, 200, 200, 200, 304, 302, 404, 500];

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GenSummary {
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
}

/// SplitMix64: tiny, fast and stable across crate versions.
struct Rng(u64);

/// Produces lines; pools are drawn once from the seed.
pub(crate) struct LineGen {
    rng: Rng,
    public_ips: Vec<[u8; 4]>,
    time_ms: u64,
    pid: u32,
}

/// Writes about `size_bytes` of log lines to `path` (replacing it).
pub(crate) fn generate(path: &Path, size_bytes: u64, seed: u64) -> io::Result<GenSummary> {
    let mut out = BufWriter::with_capacity(WRITE_BUF_BYTES, File::create(path)?);
    let mut lines = LineGen::new(seed);
    let mut line = String::with_capacity(512);
    let mut summary = GenSummary { lines: 0, bytes: 0 };
    while summary.bytes < size_bytes {
        summary.lines += 1;
        line.clear();
        lines.write_line(summary.lines, &mut line);
        out.write_all(line.as_bytes())?;
        summary.bytes += line.len() as u64;
    }
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(summary)
}

/// The line number of a generated line (with or without its newline, and behind any prefix
/// such as a `<PRI>`), if it has one: the ` seq=N` suffix, else an sshd line's pid.
pub(crate) fn parse_seq(line: &str) -> Option<u64> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(n) = line.rsplit_once(" seq=").and_then(|(_, n)| n.parse().ok()) {
        return Some(n);
    }
    // The last one: a forwarded line has its own header (with a `seq="…"` parameter) before it.
    let (_, rest) = line.rsplit_once(" sshd[")?;
    let (n, _) = rest.split_once("]: ")?;
    n.parse().ok()
}

// === impl Rng ===

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` fits in 32 bits).
    fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Skewed towards small indices, like real "top talkers".
    fn skewed(&mut self, n: usize) -> usize {
        let bound = self.below(n) + 1;
        self.below(bound)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.skewed(items.len())]
    }
}

// === impl LineGen ===

impl LineGen {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let public_ips = (0..20_000)
            .map(|_| {
                let v = rng.next_u64().to_be_bytes();
                [v[0] % 223 + 1, v[1], v[2], v[3]]
            })
            .collect();
        Self {
            rng,
            public_ips,
            time_ms: START_EPOCH_MS,
            pid: 1000,
        }
    }

    /// Appends line number `seq` (with its newline) to `out`.
    pub(crate) fn write_line(&mut self, seq: u64, out: &mut String) {
        self.time_ms += self.rng.below(4) as u64;
        if self.rng.below(50) == 0 {
            self.pid = 1000 + self.rng.below(60_000) as u32;
        }
        match self.rng.below(100) {
            0..30 => self.web(out).and_then(|()| writeln!(out, " seq={seq}")),
            30..45 => self.squid(out).and_then(|()| writeln!(out, " seq={seq}")),
            45..72 => self.sshd(out, seq).and_then(|()| writeln!(out)),
            _ => self.syslog(out).and_then(|()| writeln!(out, " seq={seq}")),
        }
        .expect("writing to a String cannot fail");
    }

    fn ip(&mut self) -> [u8; 4] {
        let i = self.rng.skewed(self.public_ips.len());
        self.public_ips[i]
    }

    fn web(&mut self, out: &mut String) -> std::fmt::Result {
        let [a, b, c, d] = self.ip();
        let path = *self.rng.pick(&PATHS);
        let id = self.rng.skewed(100_000);
        let status = *self.rng.pick(&STATUSES);
        let size = 200 + self.rng.skewed(60_000);
        let agent = *self.rng.pick(&AGENTS);
        let method = if self.rng.below(10) == 0 {
            "POST"
        } else {
            "GET"
        };
        write!(out, "{a}.{b}.{c}.{d} - - [")?;
        self.clf_time(out)?;
        write!(
            out,
            "] \"{method} {path}{id} HTTP/1.1\" {status} {size} \"https://www.example.com/\" \"{agent}\""
        )
    }

    fn squid(&mut self, out: &mut String) -> std::fmt::Result {
        let (secs, ms) = (self.time_ms / 1000, self.time_ms % 1000);
        let elapsed = self.rng.skewed(3000);
        let client = self.rng.skewed(250);
        let size = 300 + self.rng.skewed(90_000);
        let domain = *self.rng.pick(&DOMAINS);
        let id = self.rng.skewed(5000);
        let (result, method) = match self.rng.below(4) {
            0 => ("TCP_TUNNEL/200", "CONNECT"),
            1 => ("TCP_HIT/200", "GET"),
            _ => ("TCP_MISS/200", "GET"),
        };
        write!(
            out,
            "{secs}.{ms:03} {elapsed:>6} 10.0.{}.{} {result} {size} {method} http://{domain}/r/{id} - HIER_DIRECT/{domain} text/html",
            client / 100,
            client % 100 + 2,
        )
    }

    /// An sshd line whose pid is `seq` (its parser accepts no trailing text).
    fn sshd(&mut self, out: &mut String, seq: u64) -> std::fmt::Result {
        self.syslog_prefix_pid(out, "sshd", seq)?;
        let [a, b, c, d] = self.ip();
        let port = 1024 + self.rng.below(64_000);
        match self.rng.below(6) {
            0..3 => {
                let user = *self.rng.pick(&BAD_USERS);
                write!(
                    out,
                    "Failed password for invalid user {user} from {a}.{b}.{c}.{d} port {port} ssh2"
                )
            }
            3 => {
                let user = *self.rng.pick(&USERS);
                write!(
                    out,
                    "Accepted publickey for {user} from {a}.{b}.{c}.{d} port {port} ssh2: ED25519 SHA256:uX3q{a:02x}{b:02x}Lk9PzR"
                )
            }
            4 => {
                let user = *self.rng.pick(&USERS);
                write!(
                    out,
                    "pam_unix(sshd:session): session opened for user {user}(uid={}) by (uid=0)",
                    1000 + user.len()
                )
            }
            _ => write!(
                out,
                "Connection closed by authenticating user root {a}.{b}.{c}.{d} port {port} [preauth]"
            ),
        }
    }

    fn syslog(&mut self, out: &mut String) -> std::fmt::Result {
        match self.rng.below(4) {
            0 => {
                self.syslog_prefix(out, "CRON")?;
                let user = *self.rng.pick(&USERS);
                write!(
                    out,
                    "({user}) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
                )
            }
            1 => {
                self.syslog_prefix(out, "systemd")?;
                let user = *self.rng.pick(&USERS);
                write!(
                    out,
                    "Started session-{}.scope - Session {} of User {user}.",
                    self.pid, self.pid
                )
            }
            2 => self.kernel(out),
            _ => {
                self.syslog_prefix(out, "postfix/smtpd")?;
                let [a, b, c, d] = self.ip();
                write!(out, "connect from unknown[{a}.{b}.{c}.{d}]")
            }
        }
    }

    fn kernel(&mut self, out: &mut String) -> std::fmt::Result {
        self.syslog_prefix(out, "kernel")?;
        let [a, b, c, d] = self.ip();
        let dpt = [22, 23, 445, 3389, 8080][self.rng.skewed(5)];
        let spt = 1024 + self.rng.below(64_000);
        let uptime = (self.time_ms - START_EPOCH_MS) / 1000;
        write!(
            out,
            "[{uptime}.{:06}] [UFW BLOCK] IN=eth0 OUT= SRC={a}.{b}.{c}.{d} DST=10.0.0.5 LEN=60 PROTO=TCP SPT={spt} DPT={dpt} SYN",
            self.rng.below(1_000_000)
        )
    }

    /// `Mar  5 10:11:12 host prog[pid]: `
    fn syslog_prefix(&mut self, out: &mut String, prog: &str) -> std::fmt::Result {
        self.syslog_prefix_pid(out, prog, u64::from(self.pid))
    }

    /// `Mar  5 10:11:12 host prog[pid]: ` with the given pid.
    fn syslog_prefix_pid(&mut self, out: &mut String, prog: &str, pid: u64) -> std::fmt::Result {
        let host = *self.rng.pick(&HOSTS);
        let (_, month, day, h, m, s) = civil(self.time_ms / 1000);
        write!(
            out,
            "{} {day:>2} {h:02}:{m:02}:{s:02} {host} {prog}[{pid}]: ",
            MONTHS[month - 1],
        )
    }

    /// `05/Mar/2024:10:11:12 +0000`
    fn clf_time(&self, out: &mut String) -> std::fmt::Result {
        let (year, month, day, h, m, s) = civil(self.time_ms / 1000);
        write!(
            out,
            "{day:02}/{}/{year}:{h:02}:{m:02}:{s:02} +0000",
            MONTHS[month - 1]
        )
    }
}

/// UTC calendar fields of a Unix time (Howard Hinnant's `civil_from_days`).
fn civil(secs: u64) -> (u64, usize, u64, u64, u64, u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (
        year,
        month as usize,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn same_seed_same_bytes_and_lines_are_numbered_from_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let sa = generate(&a, 200_000, 7).expect("generate a");
        let sb = generate(&b, 200_000, 7).expect("generate b");
        assert_eq!(sa, sb);
        assert_eq!(
            std::fs::read(&a).expect("read a"),
            std::fs::read(&b).expect("read b")
        );
        assert!(sa.bytes >= 200_000 && sa.bytes < 200_000 + 512);
        assert_eq!(std::fs::metadata(&a).expect("stat").len(), sa.bytes);
        let reader = BufReader::new(File::open(&a).expect("open"));
        let mut n = 0;
        for line in reader.lines() {
            n += 1;
            assert_eq!(parse_seq(&line.expect("line")), Some(n));
        }
        assert_eq!(n, sa.lines);
    }

    #[test]
    fn lines_average_about_150_bytes_and_mix_all_kinds() {
        let mut lines = LineGen::new(1);
        let (mut text, mut count) = (String::new(), 0);
        for seq in 1..=20_000 {
            lines.write_line(seq, &mut text);
            count += 1;
        }
        let avg = text.len() / count;
        assert!((120..=180).contains(&avg), "average line length {avg}");
        for needle in [
            "sshd[",
            "HTTP/1.1\"",
            "TCP_MISS/200",
            "CRON[",
            "UFW BLOCK",
            "postfix/smtpd[",
        ] {
            assert!(text.contains(needle), "no {needle} line");
        }
    }

    /// Every line of a kind that has a parser is parsed by it (before the fix, the sshd lines'
    /// trailing ` seq=N` made every `Failed password` line `unparsed`).
    #[test]
    fn every_kind_with_a_parser_parses() {
        let mut lines = LineGen::new(3);
        let mut normalizer = logship_normalize::Normalizer::new();
        let ctx = logship_normalize::Context {
            host: "bench",
            input: "mixed",
            path: "mixed.log",
            agent_tz: "UTC",
            observed_unix_nanos: 1_709_596_800_000_000_000,
        };
        let mut seen = std::collections::BTreeMap::new();
        let mut line = String::new();
        for seq in 1..=5_000 {
            line.clear();
            lines.write_line(seq, &mut line);
            assert_eq!(parse_seq(&line), Some(seq), "{line}");
            let want = if line.contains(" sshd[") {
                if line.contains("pam_unix(") {
                    "pam"
                } else {
                    "sshd"
                }
            } else if line.contains("HIER_DIRECT") {
                "squid"
            } else if line.contains(" kernel[") {
                "netfilter"
            } else if line.contains(" postfix/smtpd[") {
                "postfix"
            } else if line.contains(" CRON[") || line.contains(" systemd[") {
                // No parser for these programs.
                "unparsed"
            } else {
                "web.access"
            };
            let ev = normalizer.normalize(line.trim_end().as_bytes(), &ctx);
            assert_eq!(ev.dataset, want, "{line}");
            if want != "unparsed" {
                assert!(ev.get("event.category").is_some(), "{line}");
            }
            *seen.entry(want).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 7, "{seen:?}");
    }

    #[test]
    fn parse_seq_rejects_lines_without_a_number() {
        assert_eq!(parse_seq("foo seq=12\n"), Some(12));
        assert_eq!(
            parse_seq(
                "<38>Mar  5 10:11:12 web01 sshd[77]: Failed password for x from 1.2.3.4 port 2 ssh2\n"
            ),
            Some(77)
        );
        assert_eq!(parse_seq("Mar  5 10:11:12 web01 sshd[7x]: y"), None);
        assert_eq!(
            parse_seq(r#"<38>1 - h logship - i [x seq="9"] Mar  5 10:11:12 h sshd[78]: y"#),
            Some(78)
        );
        assert_eq!(parse_seq("foo seq=x"), None);
        assert_eq!(parse_seq("foo"), None);
    }

    #[test]
    fn civil_matches_known_dates() {
        assert_eq!(civil(START_EPOCH_MS / 1000), (2024, 3, 5, 0, 0, 0));
        assert_eq!(civil(951_782_400 + 3_723), (2000, 2, 29, 1, 2, 3));
    }
}
