//! Command line of `logship-collector` (clap derive). Pipeline semantics live in the config file;
//! flags are runtime knobs and one-off commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

/// logship collector: receives agents' records over mutual TLS and keeps them in a
/// tamper-evident store.
#[derive(Debug, Parser)]
#[command(name = "logship-collector", version)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "logship_collector=debug".
    #[arg(long, global = true, default_value = "info", env = "LOGSHIP_LOG")]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the CA, the server certificate and a commented collector.toml in DIR.
    Init {
        /// Data directory to create.
        #[arg(long)]
        data_dir: PathBuf,
        /// Extra subject alternative name for the server certificate (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Listen address written into collector.toml.
        #[arg(long, default_value = crate::config::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Print the CA fingerprint (sha256:HEX of the CA certificate's DER bytes) that `logship-agent
    /// enroll --ca-fingerprint` needs.
    CaFingerprint {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Enrollment tokens: `token create`, `token list`, `token revoke ID`.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Issue a client certificate and a ready-to-run agent.toml for one agent.
    IssueAgentCert(IssueArgs),
    /// Re-issue the server certificate with new names (the LAN IP or DNS name agents use; a
    /// running collector picks it up within 10 s),
    /// signed by the existing CA; the CA and the agents' certificates stay valid.
    ServerCert {
        /// The collector's data directory (holds the CA).
        #[arg(long)]
        data_dir: PathBuf,
        /// Name agents connect to: DNS name or IP address (repeatable). localhost, 127.0.0.1,
        /// ::1 and this host's name are always included.
        #[arg(long = "san", required = true)]
        sans: Vec<String>,
    },
    /// Run the ingest server.
    Serve {
        /// collector.toml.
        #[arg(long)]
        config: PathBuf,
        /// Override the listen address from the config.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Check a config file and report every problem; exits non-zero on any.
    CheckConfig {
        /// collector.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Search the store: a table on a terminal, JSON lines (one per record) when piped or with
    /// --json. Ctrl-C stops a long search and prints what was found so far.
    Search(SearchArgs),
    /// Print DATA_DIR/status.json for people (a table on a terminal, JSON when piped).
    Status {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Output format (default: table on a terminal, JSON otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// List every agent that has sent a heartbeat (the fleet view): certificate, host facts,
    /// addresses, last seen, spool, drops, gaps, lag per input, and whether it is stale.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Agents {
        /// `revoke NAME` (or `list`, the same as no subcommand).
        #[command(subcommand)]
        action: Option<AgentsAction>,
        /// The collector's data directory.
        #[arg(long, required = true)]
        data_dir: Option<PathBuf>,
        /// An agent silent for longer than this is stale (30s, 10m, 2h, 1d). Default: the
        /// collector's `[agents] stale_after` (as recorded in status.json), else 10m.
        #[arg(long)]
        stale: Option<String>,
        /// Output format (default: table on a terminal, JSON lines otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// List the ECS fields the parsers produce (the names --where accepts), with an example each.
    Fields {
        /// Output format (default: table on a terminal, JSON lines otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Normalize raw lines (or one event XML/JSON per line) offline and print JSON lines with
    /// the raw text and the ECS fields, to check a parser on your own logs.
    Normalize {
        /// Parser to use (e.g. sshd, postfix, windows.security) or "auto".
        #[arg(long, default_value = "auto")]
        dataset: String,
        /// Time zone for timestamps without one (IANA name or +09:00).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Host name to assume when a line names none.
        #[arg(long, default_value = "localhost")]
        host: String,
        /// Files to read.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a parser accuracy table and print per-parser recall and field precision; exits
    /// non-zero when any parser is under the bounds.
    ParserAccuracy {
        /// JSON-lines table (see lib/normalize/tests/data/README.md).
        #[arg(long)]
        table: PathBuf,
        /// Lowest acceptable recall.
        #[arg(long, default_value_t = 0.99)]
        min_recall: f64,
        /// Lowest acceptable field precision.
        #[arg(long, default_value_t = 0.99)]
        min_precision: f64,
    },
    /// Show each forwarder (`[[forward]]`): state, records delivered, last delivered event, lag
    /// in records and seconds, errors. `forwarders replay NAME --since T` sends again.
    Forwarders {
        /// The collector's data directory.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        /// Output format (default: table on a terminal, JSON lines otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Replay instead of showing.
        #[command(subcommand)]
        action: Option<ForwardersAction>,
    },
    /// Walk the whole store and check its hash chain; exits non-zero on any problem. Ctrl-C
    /// stops it and prints what was checked so far. With --checkpoint, also prove the store
    /// still holds everything up to each signed checkpoint, unchanged. With --archive, check an
    /// evidence archive made by `export` instead (no data directory needed).
    Verify(VerifyArgs),
    /// Write a self-verifying evidence archive of the blocks holding records from a time range
    /// (and matching --where): the blocks in chain order, the checkpoints covering them, the
    /// public key, a manifest with SHA-256 sums and a README saying how to verify it.
    Export(ExportArgs),
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory of the store to verify.
    #[arg(long, required_unless_present = "archive", conflicts_with = "archive")]
    pub data_dir: Option<PathBuf>,
    /// File holding signed checkpoint texts (`LOGSHIP-CHECKPOINT v1 ...`) anywhere in its lines,
    /// e.g. what the SOC received (syslog, CEF or JSON lines); repeatable.
    #[arg(long = "checkpoint")]
    pub checkpoints: Vec<PathBuf>,
    /// The collector's witness public key file (default: witness.pub of the data directory or
    /// of the archive). Give the copy kept off the box to rule out a swapped key.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// An evidence archive directory written by `export`.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Output format (default: table on a terminal, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The collector's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Oldest observed time: RFC 3339 or an age (1h, 2d...).
    #[arg(long, allow_hyphen_values = true)]
    pub since: String,
    /// Newest observed time (exclusive): RFC 3339 or an age.
    #[arg(long, allow_hyphen_values = true)]
    pub until: String,
    /// Only blocks holding a record that matches FIELD=VALUE (as in `search --where`);
    /// repeatable, all must match one record. Whole blocks are exported, with every block
    /// between them in chain order.
    #[arg(long = "where")]
    pub filters: Vec<String>,
    /// Output directory (created; must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
}

/// Subcommands of `forwarders`.
#[derive(Debug, Subcommand)]
pub enum ForwardersAction {
    /// Move forwarder NAME's cursor back so it sends again every record from the first stored
    /// block holding one observed at or after --since. Run it with the collector stopped (it
    /// refuses while one runs on the data directory: the running forwarder would overwrite it).
    Replay {
        /// Forwarder name (as in collector.toml).
        name: String,
        /// RFC 3339 time, or an age (1h, 2d: that long ago).
        #[arg(long, allow_hyphen_values = true)]
        since: String,
    },
}

/// Enrollment token commands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create an enrollment token; the token is printed once, as the last line of stdout.
    Create {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// How long the token can be used (30m, 24h, 7d).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// How many agents can enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Free text shown by `token list` (e.g. "office PCs, floor 2").
        #[arg(long, default_value = "")]
        label: String,
        /// Agents enrolling with this token may take a name that is already enrolled
        /// (re-enrolling a reinstalled PC under its old name).
        #[arg(long)]
        replace: bool,
    },
    /// List the tokens (id, state, uses, expiry, label, agents enrolled); never the tokens.
    List {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Revoke a token by its id (as `token list` shows it); a running collector honours it at
    /// once.
    Revoke {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Token id.
        id: String,
    },
}

/// `agents` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentsAction {
    /// The fleet view (the same as `agents` alone).
    List {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// As for `agents --stale`.
        #[arg(long)]
        stale: Option<String>,
        /// Output format (default: table on a terminal, JSON lines otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Revoke an agent: refused from now on; a running collector closes its connections within
    /// seconds. Persists across restarts.
    Revoke {
        /// The collector's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Agent name (certificate CN).
        name: String,
        /// Why (kept with the revocation and logged).
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
    },
}

/// Arguments of `issue-agent-cert`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The collector's data directory (holds the CA).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Agent name (certificate CN), e.g. the host name.
    #[arg(long)]
    pub name: String,
    /// Collector address the agent connects to, HOST:PORT (repeatable for failover).
    #[arg(long = "collector", required = true)]
    pub collectors: Vec<String>,
    /// Output directory for ca.pem, agent.pem, agent.key and agent.toml.
    #[arg(long)]
    pub out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 90)]
    pub valid_days: i64,
    /// Explicit start of validity (RFC 3339); overrides --valid-days with --not-after.
    #[arg(long, requires = "not_after")]
    pub not_before: Option<String>,
    /// Explicit end of validity (RFC 3339).
    #[arg(long, requires = "not_before")]
    pub not_after: Option<String>,
    /// Issue even though a certificate was issued for this name before (re-enrollment).
    #[arg(long)]
    pub force: bool,
    /// Write agent.toml for the packaged service: absolute paths, certificates (which the agent
    /// renews) and spool in /var/lib/logship-agent,
    /// spool in /var/lib/logship-agent.
    #[arg(long)]
    pub for_service: bool,
}

/// Arguments of `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The collector's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Oldest observed time: RFC 3339, or an age (1h and -1h both mean one hour ago; s, m, h,
    /// d, w).
    #[arg(long, allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Newest observed time (exclusive): RFC 3339 or an age.
    #[arg(long, allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only records whose agent claimed this host name (a payload value, not verified; use
    /// --agent for the certificate identity).
    #[arg(long)]
    pub host: Option<String>,
    /// Only records from this agent input.
    #[arg(long)]
    pub input: Option<String>,
    /// Only records stored by this agent identity (the verified certificate name).
    #[arg(long)]
    pub agent: Option<String>,
    /// Only records whose raw text contains TEXT (case-sensitive unless -i).
    #[arg(long)]
    pub contains: Option<String>,
    /// Make --contains ignore case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// Field filter FIELD=VALUE, FIELD!=VALUE, or a range FIELD>VALUE, >=, <, <= (CIDR for IP
    /// fields); repeatable, all must match. `logship-collector fields` lists the fields.
    #[arg(long = "where")]
    pub filters: Vec<String>,
    /// At most N records (0: none).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print only the number of matching records.
    #[arg(long)]
    pub count: bool,
    /// Output format (default: table on a terminal, JSON lines otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}
