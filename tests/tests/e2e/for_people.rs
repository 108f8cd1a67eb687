//! Issue 7 end to end: output for people. On a terminal (a real pty from util-linux `script`)
//! the read commands print tables cut to the width; piped, the same commands print JSON. Search
//! says what it did (ages, `--limit 0`, ranges, `-i`, unknown fields, `--host` vs `--agent`);
//! status.json has RFC 3339 times, `online` and counter scopes, and keeps every agent ever seen.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{Collector, bin, run_test, wait_until};
use serde_json::Value;

use crate::support::shipped;

/// Terminal width given to the pty (through `COLUMNS`: a pty made by `script` without a
/// terminal on its own stdin has no size).
const WIDTH: usize = 160;

/// Runs `logship-collector ARGS` on a pty; returns what the terminal showed (stdout and stderr)
/// and the exit status. Fails when `script` is missing.
fn on_terminal(args: &[String]) -> Result<(String, i32)> {
    let mut line = format!("{:?}", bin("logship-collector"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    // script(1) stops copying the terminal's output once its own stdin ends: keep it open.
    let (stdin, _keep_open) = std::io::pipe()?;
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("COLUMNS", WIDTH.to_string())
        .stdin(stdin)
        .output()
        .context("running script(1) from util-linux (apt-get install bsdutils)")?;
    Ok((
        screen(&String::from_utf8_lossy(&out.stdout)),
        out.status.code().unwrap_or(-1),
    ))
}

/// What a terminal shows of `raw`: escape sequences dropped, and on each line only what was
/// written after its last carriage return (a progress line overwritten in place).
fn screen(raw: &str) -> String {
    let mut plain = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .lines()
        .map(|l| l.trim_end_matches('\r').rsplit('\r').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn piped(args: &[String]) -> Result<String> {
    let out = Command::new(bin("logship-collector")).args(args).output()?;
    ensure!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn args(cmd: &str, dir: &Path, rest: &[&str]) -> Vec<String> {
    let mut v = vec![
        cmd.to_owned(),
        "--data-dir".into(),
        dir.display().to_string(),
    ];
    v.extend(rest.iter().map(|s| (*s).to_owned()));
    v
}

#[test]
fn tables_on_a_terminal_and_json_when_piped() {
    run_test(|sb| {
        let (c, _agent, _) = shipped(sb, "agent1", 20)?;
        let dir = c.data_dir();
        let search = args(
            "search",
            dir,
            &["--contains", "request done", "--limit", "5"],
        );
        let (shown, code) = on_terminal(&search)?;
        ensure!(code == 0, "search on a terminal exited {code}: {shown}");
        // stdout and stderr share the terminal: the table lines are those of stdout's shape.
        let lines: Vec<&str> = shown.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("TIME ") && l.contains("KEY FIELDS") && l.contains("RAW"));
        let header = header.with_context(|| format!("no table header: {shown}"))?;
        let rows = &lines[header + 1..header + 6];
        for row in rows {
            ensure!(
                row.contains(" app ") && row.contains("request done"),
                "row: {row:?}"
            );
            ensure!(row.chars().count() <= WIDTH, "cut to the width: {row:?}");
        }
        ensure!(
            rows.iter().all(|r| r.ends_with('…')),
            "long raw lines are cut: {rows:?}"
        );
        ensure!(
            shown.contains("5 matched"),
            "summary line on the terminal: {shown}"
        );
        let json = piped(&search)?;
        ensure!(json.lines().count() == 5, "piped: five JSON lines: {json}");
        for l in json.lines() {
            serde_json::from_str::<Value>(l)?;
        }
        for (cmd, want) in [
            ("status", "records_stored"),
            ("agents", "agent1"),
            ("verify", "verdict"),
        ] {
            let a = args(cmd, dir, &[]);
            let (shown, code) = on_terminal(&a)?;
            ensure!(code == 0 && shown.contains(want), "{cmd} table: {shown}");
            ensure!(
                !shown.trim_start().starts_with('{'),
                "{cmd} on a terminal is a table"
            );
            let json = piped(&a)?;
            let first = json.lines().next().unwrap_or("");
            ensure!(first.starts_with('{'), "{cmd} piped is JSON: {json}");
        }
        let (shown, _) = on_terminal(&args("status", dir, &[]))?;
        ensure!(
            shown.contains("all time (whole store)") && shown.contains("online"),
            "{shown}"
        );
        let (fields, _) = on_terminal(&["fields".to_owned()])?;
        ensure!(
            fields.starts_with("FIELD") && fields.contains("source.ip"),
            "{fields}"
        );
        Ok(())
    });
}

#[test]
fn search_says_what_it_did() {
    run_test(|sb| {
        let (c, _agent, total) = shipped(sb, "cert-name-7f3", 10)?;
        let store = c.store();
        ensure!(store.count(&["--since", "1h"])? == total, "--since 1h");
        ensure!(store.count(&["--since", "-1h"])? == total, "--since -1h");
        ensure!(store.count(&["--until", "1h"])? == 0, "--until 1h");
        ensure!(store.search(&["--limit", "0"])?.is_empty(), "--limit 0");
        let limited = store.search(&["--limit", "0", "--where", "event.dataset=web.access"])?;
        ensure!(limited.is_empty(), "--limit 0 with a field filter");
        ensure!(store.count(&["--limit", "0"])? == 0);
        let errors = store.search(&["--where", "http.response.status_code>=400"])?;
        let codes: Vec<&Value> = errors
            .iter()
            .map(|r| &r["fields"]["http.response.status_code"])
            .collect();
        ensure!(codes == [404, 500], "status >= 400: {codes:?}");
        ensure!(store.count(&["--where", "http.response.status_code<300"])? == 1);
        ensure!(
            store.count(&["--contains", "FAILED PASSWORD"])? == 0,
            "case-sensitive"
        );
        ensure!(
            store.count(&["--contains", "FAILED PASSWORD", "-i"])? == 1,
            "-i"
        );
        // --agent is the certificate identity; --host the name the agent claims.
        let claimed = store.search(&["--limit", "1"])?[0]["host"]
            .as_str()
            .context("host")?
            .to_owned();
        ensure!(claimed != "cert-name-7f3");
        ensure!(store.count(&["--agent", "cert-name-7f3"])? == total);
        ensure!(store.count(&["--host", &claimed])? == total);
        ensure!(store.count(&["--agent", &claimed])? == 0);
        ensure!(store.count(&["--host", "cert-name-7f3"])? == 0);
        unknown_field_is_an_error(&c)
    });
}

fn unknown_field_is_an_error(c: &Collector) -> Result<()> {
    let out = Command::new(bin("logship-collector"))
        .args(args("search", c.data_dir(), &["--where", "user.nam=alice"]))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "unknown field must fail");
    ensure!(
        stderr.contains("unknown field \"user.nam\"") && stderr.contains("user.name"),
        "lists the known fields: {stderr}"
    );
    let fields = piped(&["fields".into(), "--format".into(), "json".into()])?;
    let names: Vec<Value> = fields
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(
        names
            .iter()
            .any(|f| f["name"] == "user.name" && f["example"].is_string())
    );
    Ok(())
}

#[test]
fn agents_are_kept_across_restarts_and_marked_stale() {
    run_test(|sb| {
        let (mut c, mut agent, _) = shipped(sb, "agent1", 5)?;
        wait_until(
            Duration::from_secs(30),
            "a heartbeat with read positions",
            || {
                Ok(c.status()?
                    .is_some_and(|s| s["agents"]["agent1"]["files"].as_u64() > Some(0)))
            },
        )?;
        let status = c.status()?.context("status.json")?;
        for t in [
            &status["started_at"],
            &status["written_at"],
            &status["agents"]["agent1"]["last_heartbeat"],
        ] {
            let text = t.as_str().context("an RFC 3339 string")?;
            text.parse::<jiff::Timestamp>()
                .with_context(|| format!("RFC 3339: {text}"))?;
        }
        let scope = |s: &str| {
            status["counter_scope"][s]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        ensure!(
            scope("all_time").contains(&"records_stored".into()),
            "{status}"
        );
        ensure!(
            scope("since_start").contains(&"duplicate_records".into()),
            "{status}"
        );
        let text = std::fs::read_to_string(c.data_dir().join("status.json"))?;
        ensure!(
            text.matches("\"records_stored\":").count() == 1,
            "the quick start greps \"records_stored\": N; the key appears once"
        );
        agent.stop()?;
        c.stop()?;
        c.start()?;
        let agents = |stale: &str| -> Result<Vec<Value>> {
            let out = piped(&args("agents", c.data_dir(), &["--stale", stale]))?;
            Ok(out
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?)
        };
        wait_until(
            Duration::from_secs(30),
            "status.json rewritten by the new process",
            || {
                Ok(c.status()?
                    .is_some_and(|s| s["started_at"] != status["started_at"]))
            },
        )?;
        let listed = agents("10m")?;
        ensure!(
            listed.len() == 1 && listed[0]["agent"] == "agent1",
            "{listed:?}"
        );
        ensure!(
            listed[0]["online"] == false && listed[0]["stale"] == false,
            "{listed:?}"
        );
        ensure!(
            listed[0]["positions"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        );
        wait_until(
            Duration::from_secs(30),
            "a silent agent becomes stale",
            || Ok(agents("1s")?.first().is_some_and(|a| a["stale"] == true)),
        )
    });
}
