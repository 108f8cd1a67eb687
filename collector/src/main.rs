//! `logship-collector` binary: parse the CLI, set up logging, run one command, exit with a
//! meaningful code (0 ok, 1 failure, 64 bad config or usage, 130 interrupted by Ctrl-C).
//!
//! Every command prints through `output::stdout()`: a closed stdout (`| head`) is a normal end,
//! status 0 and no message.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use logship_collector::cli::{
    AgentsAction, Cli, Command, ForwardersAction, IssueArgs, TokenAction, VerifyArgs,
};
use logship_collector::output::progress::{EXIT_INTERRUPTED, Interrupt};
use logship_collector::output::{self, Format};
use logship_collector::{
    config, enroll, forward, integrity, normalize, pki, report, search, serve, timearg,
};
use tokio_util::sync::CancellationToken;

/// Exit code for a bad configuration (EX_USAGE-like, as in sysexits).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    logship_collector::heap::keep_heap_pad();
    let cli = Cli::parse();
    logship_logging::init(&cli.log_level);
    match try_main(cli) {
        Ok(code) => code,
        Err(error) if output::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: Cli) -> Result<ExitCode> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    match cli.command {
        Command::Init {
            data_dir,
            sans,
            listen,
        } => init(&data_dir, &sans, &listen),
        Command::IssueAgentCert(args) => issue(&args),
        Command::ServerCert { data_dir, sans } => server_cert(&data_dir, &sans),
        Command::CheckConfig { config } => check_config(&config),
        Command::Serve { config, listen } => run_serve(&config, listen),
        Command::Search(args) => {
            let interrupt = Interrupt::install()?;
            let format = Format::choose(args.format, args.json);
            let outcome = search::run(&args, format, &mut output::stdout(), &interrupt)?;
            Ok(exit_code(true, outcome.interrupted))
        }
        Command::Verify(args) => verify(&args),
        Command::Export(args) => {
            integrity::export::run(&args, &mut output::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Forwarders {
            data_dir,
            format,
            action,
        } => {
            let data_dir = data_dir.context("--data-dir is required")?;
            match action {
                None => {
                    let format = Format::choose(format, false);
                    forward::report::run(&data_dir, format, &mut output::stdout())?;
                }
                Some(ForwardersAction::Replay { name, since }) => {
                    let since = timearg::parse_time(&since, jiff::Timestamp::now())?;
                    forward::report::replay(&data_dir, &name, since, &mut output::stdout())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { data_dir, format } => {
            let format = Format::choose(format, false);
            report::status::run(&data_dir, format, &mut output::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agents {
            action,
            data_dir,
            stale,
            format,
        } => agents(action, data_dir, stale, format),
        Command::CaFingerprint { data_dir } => {
            let mut out = output::stdout();
            writeln!(out, "{}", pki::ca_fingerprint(&data_dir)?)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { action } => token(action),
        Command::Fields { format } => {
            report::fields::run(Format::choose(format, false), &mut output::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Normalize {
            dataset,
            tz,
            host,
            files,
        } => {
            normalize::run_offline(&files, &dataset, &tz, &host, &mut output::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ParserAccuracy {
            table,
            min_recall,
            min_precision,
        } => {
            let mut out = output::stdout();
            let ok = normalize::run_accuracy(&table, min_recall, min_precision, &mut out)?;
            out.flush()?;
            Ok(exit_code(ok, false))
        }
    }
}

/// `verify`: the store of a data directory (held against checkpoint files when given), or an
/// evidence archive.
fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let format = Format::choose(args.format, false);
    let mut found = Vec::new();
    for path in &args.checkpoints {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let here = logship_store::find_checkpoints_in(std::io::BufReader::new(file))
            .with_context(|| format!("reading {}", path.display()))?;
        if here.is_empty() {
            anyhow::bail!("{} holds no LOGSHIP-CHECKPOINT text", path.display());
        }
        found.extend(here);
    }
    let key = args
        .public_key
        .as_deref()
        .map(integrity::key::read_public)
        .transpose()?;
    if let Some(archive) = &args.archive {
        let ok = report::verify::run_archive(archive, &found, key, format, &mut output::stdout())?;
        return Ok(exit_code(ok, false));
    }
    let data_dir = args.data_dir.as_deref().context("--data-dir is required")?;
    let witness = if found.is_empty() {
        None
    } else {
        let key = match key {
            Some(k) => k,
            None => integrity::key::read_public(&data_dir.join(integrity::key::WITNESS_PUB))?,
        };
        Some(logship_store::Witness {
            key,
            checkpoints: found,
        })
    };
    let interrupt = Interrupt::install()?;
    let report = report::verify::run(
        data_dir,
        witness.as_ref(),
        format,
        &mut output::stdout(),
        &interrupt,
    )?;
    Ok(exit_code(report.is_ok(), report.interrupted))
}

fn agents(
    action: Option<AgentsAction>,
    data_dir: Option<std::path::PathBuf>,
    stale: Option<String>,
    format: Option<Format>,
) -> Result<ExitCode> {
    let (data_dir, stale, format) = match action {
        Some(AgentsAction::Revoke {
            data_dir,
            name,
            reason,
        }) => {
            enroll::agent_revoke(&data_dir, &name, &reason, &mut output::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(AgentsAction::List {
            data_dir,
            stale,
            format,
        }) => (data_dir, stale, format),
        None => (data_dir.context("--data-dir is required")?, stale, format),
    };
    let format = Format::choose(format, false);
    report::agents::run(&data_dir, stale.as_deref(), format, &mut output::stdout())?;
    Ok(ExitCode::SUCCESS)
}

fn token(action: TokenAction) -> Result<ExitCode> {
    let mut out = output::stdout();
    match action {
        TokenAction::Create {
            data_dir,
            ttl,
            uses,
            label,
            replace,
        } => enroll::token_create(&data_dir, &ttl, uses, &label, replace, &mut out)?,
        TokenAction::List { data_dir } => enroll::token_list(&data_dir, &mut out)?,
        TokenAction::Revoke { data_dir, id } => enroll::token_revoke(&data_dir, &id, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// 130 after Ctrl-C, else 0 when `ok`, else 1.
fn exit_code(ok: bool, interrupted: bool) -> ExitCode {
    match (interrupted, ok) {
        (true, _) => ExitCode::from(EXIT_INTERRUPTED),
        (false, true) => ExitCode::SUCCESS,
        (false, false) => ExitCode::FAILURE,
    }
}

fn init(data_dir: &Path, sans: &[String], listen: &str) -> Result<ExitCode> {
    pki::init_ca(data_dir, sans)?;
    let witness = integrity::key::create(data_dir)?;
    let abs = std::path::absolute(data_dir)?;
    let config_path = data_dir.join("collector.toml");
    pki::write_public(&config_path, &config::template(&abs, listen))?;
    let mut out = output::stdout();
    writeln!(
        out,
        "created CA and server certificate in {}",
        abs.display()
    )?;
    writeln!(
        out,
        "witness key {} (give witness.pub to your SOC): {}",
        witness.id(),
        data_dir.join(integrity::key::WITNESS_PUB).display()
    )?;
    writeln!(out, "config: {}", config_path.display())?;
    writeln!(out, "ca fingerprint: {}", pki::ca_fingerprint(data_dir)?)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn issue(args: &IssueArgs) -> Result<ExitCode> {
    let validity = match (&args.not_before, &args.not_after) {
        (Some(nb), Some(na)) => pki::Validity {
            not_before: rfc3339(nb)?,
            not_after: rfc3339(na)?,
        },
        _ => pki::Validity::days_from_now(args.valid_days),
    };
    let issued = pki::issue_agent_cert(&args.data_dir, &args.name, validity, args.force)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ca = std::fs::read_to_string(args.data_dir.join(pki::CA_CERT))?;
    pki::write_public(&args.out.join("ca.pem"), &ca)?;
    pki::write_public(&args.out.join("agent.pem"), &issued.cert_pem)?;
    pki::write_private(&args.out.join("agent.key"), &issued.key_pem)?;
    let out_abs = std::path::absolute(&args.out)?;
    let layout = if args.for_service {
        config::AgentLayout::Service
    } else {
        config::AgentLayout::BesideConfig
    };
    let toml = config::agent_template(&args.collectors, layout);
    pki::write_public(&args.out.join("agent.toml"), &toml)?;
    let mut out = output::stdout();
    writeln!(
        out,
        "issued certificate for agent {:?} into {}",
        args.name,
        out_abs.display()
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn server_cert(data_dir: &Path, sans: &[String]) -> Result<ExitCode> {
    let names = pki::reissue_server_cert(data_dir, sans)?;
    let mut out = output::stdout();
    writeln!(
        out,
        "re-issued {} for: {}",
        data_dir.join(pki::SERVER_CERT).display(),
        names.join(", ")
    )?;
    writeln!(
        out,
        "a running collector uses it for new connections within 10 s; the CA and the agents' \
         certificates are unchanged"
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(text: &str) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))
}

fn check_config(path: &Path) -> Result<ExitCode> {
    match config::load(path) {
        Ok(cfg) => {
            let report = config::check_host(&cfg, time::OffsetDateTime::now_utc());
            for w in &report.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            for e in &report.errors {
                eprintln!("{}: {e}", path.display());
            }
            if !report.errors.is_empty() {
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let mut out = output::stdout();
            writeln!(out, "{}: ok", path.display())?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            Ok(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn run_serve(path: &Path, listen: Option<String>) -> Result<ExitCode> {
    let mut cfg = match config::load(path) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if let Some(l) = listen {
        cfg.listen = l.parse().with_context(|| format!("--listen {l:?}"))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        serve::serve(cfg, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Cancel first: the stop must not depend on logging.
    shutdown.cancel();
    tracing::info!("Stop signal received; draining.");
}
