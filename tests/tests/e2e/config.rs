//! Config files: every example in `deploy/config/` passes the matching `check-config`, and
//! `check-config` reports several problems of a broken file at once (exit 64).
//!
//! check-config also checks that certificate files exist, so each example is checked as
//! deployed on a machine with its PKI in place: copied into the sandbox next to freshly issued
//! certificates (agent), or with `data_dir` pointing at a freshly initialised one (collector).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};
use logship_e2e::{Collector, CollectorOpts, Sandbox, bin, run_test};

/// Exit code of both binaries for a bad config.
const EXIT_CONFIG: i32 = 64;

fn check_config(binary: &str, config: &Path) -> Result<Output> {
    Command::new(bin(binary))
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .output()
        .with_context(|| format!("running {binary} check-config"))
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn deploy_configs() -> Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn deploy_configs_pass_check_config() {
    run_test(|sb| {
        let files = deploy_configs()?;
        let pki = Collector::init(sb, "pki", &CollectorOpts::default())?;
        let (mut agents, mut collectors) = (0, 0);
        for file in &files {
            let name = file
                .file_name()
                .context("name")?
                .to_string_lossy()
                .into_owned();
            if name.contains("windows") {
                // [[eventlog]] is Windows only: checked by the Windows agent under Wine
                // (e2e::windows).
                continue;
            }
            let binary = if name.contains("collector") {
                collectors += 1;
                "logship-collector"
            } else {
                agents += 1;
                "logship-agent"
            };
            let out = check_config(binary, &in_place(sb, &pki, file, binary)?)?;
            ensure!(out.status.success(), "{name}: {}", output_text(&out));
        }
        ensure!(
            agents >= 1,
            "no agent example in deploy/config/ (files: {files:?})"
        );
        ensure!(
            collectors >= 1,
            "no collector example (*collector*.toml) in deploy/config/"
        );
        Ok(())
    });
}

/// A copy of the example `file` whose certificate paths resolve to real files.
fn in_place(sb: &Sandbox, pki: &Collector, file: &Path, binary: &str) -> Result<PathBuf> {
    let name = file.file_name().context("name")?;
    let text = std::fs::read_to_string(file)?;
    if binary == "logship-collector" {
        let data_dir = format!("data_dir = {:?}", pki.data_dir().display().to_string());
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("data_dir") {
                    data_dir.clone()
                } else {
                    l.to_string()
                }
            })
            .collect();
        let copy = sb.path().join(name);
        std::fs::write(&copy, lines.join("\n"))?;
        return Ok(copy);
    }
    let dir = sb.path().join(format!("agent-{}", name.to_string_lossy()));
    // One certificate name per example file (a name is issued once).
    let agent: String = name
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    pki.issue_agent_cert(&agent, &dir, &[])?;
    // The syslog relay example names its TLS files: stand-ins from the same PKI.
    for (from, to) in [
        ("agent.pem", "syslog.pem"),
        ("agent.key", "syslog.key"),
        ("ca.pem", "devices-ca.pem"),
    ] {
        std::fs::copy(dir.join(from), dir.join(to))?;
    }
    let copy = dir.join(name);
    std::fs::write(&copy, text)?;
    Ok(copy)
}

#[test]
fn agent_check_config_lists_every_problem() {
    run_test(|sb| {
        let config = sb.path().join("agent.toml");
        let text = "version = 1\n[collector]\nendpoints = [\"127.0.0.1:7443\"]\n\
                    ca_cert = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n\
                    [batch]\nmax_records = 0\nzstd_level = 50\n\
                    [shipper]\nmax_in_flight = 0\n\
                    [[file]]\nname = \"\"\ninclude = [\"/var/log/*.log\"]\n";
        std::fs::write(&config, text)?;
        let out = check_config("logship-agent", &config)?;
        let report = output_text(&out);
        ensure!(
            out.status.code() == Some(EXIT_CONFIG),
            "exit {:?}: {report}",
            out.status
        );
        for needle in ["max_records", "zstd_level", "max_in_flight", "name"] {
            ensure!(report.contains(needle), "{needle} not reported: {report}");
        }
        Ok(())
    });
}

#[test]
fn collector_check_config_lists_every_problem() {
    run_test(|sb| {
        let config = sb.path().join("collector.toml");
        let text = "version = 2\ndata_dir = \"nowhere\"\nlisten = \"not an address\"\n\
                    [limits]\nmax_connections = 0\n";
        std::fs::write(&config, text)?;
        let out = check_config("logship-collector", &config)?;
        let report = output_text(&out);
        ensure!(
            out.status.code() == Some(EXIT_CONFIG),
            "exit {:?}: {report}",
            out.status
        );
        for needle in ["version", "listen", "max_connections", "ca_cert"] {
            ensure!(report.contains(needle), "{needle} not reported: {report}");
        }
        Ok(())
    });
}
