//! Issue 7 end to end: every command that prints ends quietly (status 0, nothing on stderr) when
//! its stdout is closed, as `grep` does under `| head`; and Ctrl-C stops a long search at a record
//! boundary with a summary and status 130.
//!
//! The closed stdout is made deterministic: the command's stdout is a pipe whose reading end is
//! already closed, so its very first write fails with EPIPE (what `| head -n 1` does to a long
//! output, without depending on who is faster).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use logship_e2e::{bin, run_test};

use crate::support::shipped;

/// Runs `cmd` with stdout a pipe nobody reads any more; it must exit 0 and print nothing on
/// stderr.
fn ends_quietly(cmd: &mut Command) -> Result<()> {
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    let out = cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && stderr.is_empty(),
        "{cmd:?} into a closed pipe: {} with stderr {stderr:?}",
        out.status
    );
    Ok(())
}

fn collector(args: &[&str], data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin("logship-collector"));
    cmd.args(&args[..1])
        .arg("--data-dir")
        .arg(data_dir)
        .args(&args[1..]);
    cmd
}

#[test]
fn every_command_that_prints_ends_quietly_on_a_closed_stdout() {
    run_test(|sb| {
        let (c, agent, _) = shipped(sb, "agent1", 2000)?;
        let dir = c.data_dir();
        for args in [
            &["search"][..],
            &["search", "--format", "table"],
            &["search", "--count"],
            &["search", "--where", "http.response.status_code>=400"],
            &["verify"],
            &["verify", "--format", "table"],
            &["status"],
            &["status", "--format", "table"],
            &["agents"],
            &["agents", "--format", "table"],
        ] {
            ends_quietly(&mut collector(args, dir))?;
        }
        let fresh = sb.path().join("fresh");
        ends_quietly(&mut collector(&["init"], &fresh))?;
        let certs = sb.path().join("certs");
        ends_quietly(
            collector(&["issue-agent-cert", "--name", "pc-1"], dir)
                .args(["--collector", "127.0.0.1:1", "--out"])
                .arg(&certs),
        )?;
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lib/normalize/tests/data");
        let plain = |args: &[&str]| {
            let mut cmd = Command::new(bin("logship-collector"));
            cmd.args(args);
            cmd
        };
        ends_quietly(&mut plain(&["fields"]))?;
        ends_quietly(&mut plain(&["fields", "--format", "table"]))?;
        ends_quietly(plain(&["normalize"]).arg(data.join("crowdsec-sshd.log")))?;
        ends_quietly(plain(&["parser-accuracy", "--table"]).arg(data.join("accuracy.jsonl")))?;
        ends_quietly(plain(&["check-config", "--config"]).arg(dir.join("collector.toml")))?;
        ends_quietly(&mut plain(&["--help"]))?;
        ends_quietly(&mut plain(&["search", "--help"]))?;
        let agent_cmd = |args: &[&str]| {
            let mut cmd = Command::new(bin("logship-agent"));
            cmd.args(args);
            cmd
        };
        ends_quietly(agent_cmd(&["check-config", "--config"]).arg(agent.config_path()))?;
        ends_quietly(&mut agent_cmd(&["--help"]))?;
        // And the quick start's own shape: a pipeline under pipefail.
        let script = format!(
            "set -o pipefail; {:?} search --data-dir {:?} | head -n 1 && \
             {:?} verify --data-dir {:?} | head -n 1",
            bin("logship-collector"),
            dir,
            bin("logship-collector"),
            dir
        );
        let out = Command::new("bash").args(["-c", &script]).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success() && stderr.is_empty(),
            "pipeline: {} {stderr:?}",
            out.status
        );
        ensure!(String::from_utf8(out.stdout)?.lines().count() == 2);
        Ok(())
    });
}

#[test]
fn ctrl_c_stops_a_search_with_what_it_found_and_a_summary() {
    run_test(|sb| {
        let (c, _agent, total) = shipped(sb, "agent1", 4000)?;
        let mut child = collector(&["search", "--json"], c.data_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut first = String::new();
        // Output has started, so the handler is installed; the search now blocks on the full
        // pipe (far less than its whole output fits), and Ctrl-C lands mid-search.
        stdout.read_line(&mut first)?;
        // kill(1) rather than libc::kill: the workspace denies unsafe code.
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()?;
        ensure!(sent.success(), "kill -INT failed");
        let mut lines = vec![first];
        for line in stdout.lines() {
            lines.push(line?);
        }
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .context("stderr")?
            .read_to_string(&mut stderr)?;
        let status = child.wait()?;
        ensure!(
            status.code() == Some(130),
            "exit {status}, stderr {stderr:?}"
        );
        ensure!(
            stderr.contains("interrupted:") && stderr.contains("matched"),
            "summary on stderr: {stderr:?}"
        );
        let printed = lines.len() as u64;
        ensure!(
            printed < total,
            "stopped early: {printed} of {total} printed"
        );
        for l in &lines {
            serde_json::from_str::<serde_json::Value>(l)
                .with_context(|| format!("a cut record: {l:?}"))?;
        }
        Ok(())
    });
}
