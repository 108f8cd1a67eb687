//! Issue 13 item 4 end to end: the normalizer's per-segment field index lets `--where` skip
//! segments and blocks, and search results never depend on it. The same searches (several
//! fields, `=`, `!=`, CIDR, ranges, case, no match, a user only in the unsealed segment) run
//! with the index, with a flipped byte in every index file's head (the file is not used) and
//! in one of its field sections (that field says nothing), with the index files deleted, and
//! with the index back but the fields sidecars gone; the outputs must be identical byte for
//! byte, the index must really have skipped blocks when it was there, and the fields columns
//! must really have ruled out blocks when the sidecars were there (and not when they were gone).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, bin, files_with_ext, flip_bit_at,
    numbered_line, run_test, wait_until,
};

const ARRIVAL: Duration = Duration::from_secs(120);
/// Rounds of appended log; each round has its own user and network, so the sealed segments
/// differ in what they hold.
const ROUNDS: u64 = 12;
/// Incompressible filler lines per round: about three rounds (blocks) fill a 1 MiB segment.
const FILLER_LINES: u64 = 600;

/// The searches compared, as `search` arguments.
const SEARCHES: &[&[&str]] = &[
    &["--where", "user.name=user3"],
    &[
        "--where",
        "user.name=user3",
        "--where",
        "event.outcome=failure",
    ],
    &[
        "--where",
        "user.name=alice",
        "--where",
        "event.outcome=success",
    ],
    &["--where", "source.ip=10.7.0.5"],
    &["--where", "source.ip=10.4.0.0/16"],
    &[
        "--where",
        "source.ip!=10.4.0.0/16",
        "--where",
        "event.dataset=sshd",
    ],
    &[
        "--where",
        "user.name!=alice",
        "--where",
        "event.dataset=sshd",
    ],
    &[
        "--where",
        "source.port>=40010",
        "--where",
        "source.port<40013",
    ],
    &["--where", "user.name=nobody"],
    &["--where", "user.name=USER3"],
    &["--where", "user.name=zelda"],
    &[
        "--where",
        "host.name=gw",
        "--where",
        "event.outcome=failure",
        "--count",
    ],
    &["--where", "event.dataset=unparsed", "--count"],
    &[
        "--where",
        "user.name=user8",
        "--where",
        "source.ip=10.8.0.1",
        "--limit",
        "2",
    ],
];

/// Round `k`'s lines: failures and a success for `user{k}` from 10.k.0.x, a success for alice,
/// and filler lines (no user, dataset "unparsed").
fn round(k: u64) -> String {
    let mut text = String::new();
    for i in 0..20u64 {
        text.push_str(&format!(
            "Nov 25 09:{:02}:{:02} gw sshd[{}]: Failed password for user{k} from 10.{k}.0.{} port {} ssh2\n",
            k, i, 800 + i, i % 7, 40000 + i
        ));
    }
    text.push_str(&format!(
        "Nov 25 09:{k:02}:30 gw sshd[900]: Accepted password for user{k} from 10.{k}.0.1 port 41000 ssh2\n"
    ));
    text.push_str(&format!(
        "Nov 25 09:{k:02}:31 gw sshd[901]: Accepted publickey for alice from 192.0.2.{k} port 41001 ssh2\n"
    ));
    for i in 0..FILLER_LINES {
        text.push_str(&numbered_line(k * FILLER_LINES + i, 600));
        text.push('\n');
    }
    text
}

/// The last round: a user seen nowhere else, left in the active (unsealed, unindexed) segment.
fn last_round() -> String {
    "Nov 25 10:00:00 gw sshd[999]: Failed password for zelda from 10.99.0.1 port 40011 ssh2\n"
        .to_string()
}

#[test]
fn field_search_results_do_not_depend_on_the_index() {
    run_test(|sb| {
        let opts = CollectorOpts {
            store_segment_max_bytes: 1 << 20,
            ..CollectorOpts::default()
        };
        let mut collector = Collector::init(sb, "collector", &opts)?;
        collector.start()?;
        let log = sb.path().join("auth.log");
        std::fs::write(&log, "")?;
        let agent_opts = AgentOpts::new(&collector, vec![FileInput::new("auth", &log)]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &agent_opts)?;
        agent.start()?;
        let mut total = 0u64;
        for k in 0..=ROUNDS {
            let text = if k == ROUNDS { last_round() } else { round(k) };
            total += text.lines().count() as u64;
            append(&log, &text)?;
            // One round at a time, so rounds land in different blocks and segments.
            wait_until(ARRIVAL, "round stored", || Ok(collector.count()? == total))?;
        }
        wait_until(ARRIVAL, "fields precomputed", || {
            let status = collector.status()?.context("status.json")?;
            Ok(status["normalized_records"].as_u64() == Some(total))
        })?;
        let store = collector.data_dir().join("store");
        let segments = files_with_ext(&store, "seg")?;
        ensure!(
            segments.len() >= 4,
            "want several sealed segments, got {}",
            segments.len()
        );
        // Every sealed segment gets its index once the normalizer reaches the next one.
        wait_until(ARRIVAL, "field index of every sealed segment", || {
            Ok(files_with_ext(&store, "fidx")?.len() == segments.len() - 1)
        })?;
        let last = segments.last().expect("checked above");
        ensure!(
            !last.with_extension("fidx").try_exists()?,
            "the active segment must not be indexed"
        );

        let with_index = run_all(collector.data_dir())?;
        check_answers(&with_index)?;
        let skipped = skipped_by_index(collector.data_dir(), SEARCHES[1])?;
        ensure!(
            skipped > 0,
            "the index skipped no block for user3's failures"
        );

        let saved = sb.path().join("fidx.saved");
        std::fs::create_dir_all(&saved)?;
        let indexes = files_with_ext(&store, "fidx")?;
        let restore = || -> Result<()> {
            for f in &indexes {
                std::fs::copy(saved.join(f.file_name().context("file name")?), f)?;
            }
            Ok(())
        };
        // A flipped byte in each file's head (byte 20: its segment length): no file is used.
        for f in &indexes {
            std::fs::copy(f, saved.join(f.file_name().context("file name")?))?;
            flip_bit_at(f, 20)?;
        }
        let flipped = run_all(collector.data_dir())?;
        same(&with_index, &flipped, "a flipped byte in every index head")?;
        ensure!(
            skipped_by_index(collector.data_dir(), SEARCHES[1])? == 0,
            "a damaged index was used"
        );
        // A flipped byte in the middle of each file (in one of its field sections: that
        // field's probes skip nothing, the others still may).
        restore()?;
        for f in &indexes {
            let len = std::fs::metadata(f)?.len();
            flip_bit_at(f, len / 2)?;
        }
        let flipped = run_all(collector.data_dir())?;
        same(
            &with_index,
            &flipped,
            "a flipped byte in a section of every index file",
        )?;
        restore()?;
        ensure!(
            skipped_by_index(collector.data_dir(), SEARCHES[1])? == skipped,
            "the restored index was not used"
        );

        for f in &indexes {
            std::fs::remove_file(f)?;
        }
        let deleted = run_all(collector.data_dir())?;
        same(&with_index, &deleted, "the index files deleted")?;
        // Without the index, the sidecar columns rule out the blocks without user3's failures
        // before their payloads are read (so the comparisons above cover that path too).
        ensure!(
            rejected_by_column(collector.data_dir(), SEARCHES[1])? > 0,
            "no block was ruled out by its fields column"
        );

        // The index back, the fields sidecars gone: fields are computed at search time.
        restore()?;
        let sidecars = files_with_ext(&store, "fld")?;
        ensure!(!sidecars.is_empty(), "the normalizer wrote no sidecars");
        let moved = sb.path().join("fld.moved");
        std::fs::create_dir_all(&moved)?;
        for f in &sidecars {
            std::fs::rename(f, moved.join(f.file_name().context("file name")?))?;
        }
        let no_sidecars = run_all(collector.data_dir())?;
        same(&with_index, &no_sidecars, "no fields sidecars")?;
        ensure!(
            rejected_by_column(collector.data_dir(), SEARCHES[1])? == 0,
            "a block was ruled out without a fields column"
        );
        ensure!(
            skipped_by_index(collector.data_dir(), SEARCHES[1])? == skipped,
            "the restored index was not used"
        );
        agent.stop()?;
        collector.stop()
    });
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn search(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("logship-collector"));
    cmd.arg("search")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--format", "json"])
        .args(args);
    cmd
}

/// stdout of every search in [`SEARCHES`].
fn run_all(data_dir: &Path) -> Result<Vec<Vec<u8>>> {
    SEARCHES
        .iter()
        .map(|args| {
            let out = search(data_dir, args).output()?;
            ensure!(
                out.status.success(),
                "search {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(out.stdout)
        })
        .collect()
}

/// Blocks the field index let `args` skip, from the search's debug log.
fn skipped_by_index(data_dir: &Path, args: &[&str]) -> Result<u64> {
    search_stat(data_dir, args, "blocks_skipped_by_field_index")
}

/// Blocks `args` read whose fields column ruled out every record (not decompressed).
fn rejected_by_column(data_dir: &Path, args: &[&str]) -> Result<u64> {
    search_stat(data_dir, args, "blocks_rejected_by_fields")
}

/// A figure of the search's debug log line "Search walked the store.".
fn search_stat(data_dir: &Path, args: &[&str], name: &str) -> Result<u64> {
    let out = search(data_dir, args)
        .env("LOGSHIP_LOG", "debug")
        .output()?;
    ensure!(out.status.success(), "search {args:?} failed");
    let log = String::from_utf8_lossy(&out.stderr);
    let key = format!(" {name}=");
    let at = log
        .find(&key)
        .with_context(|| format!("no{key} in the search log: {log}"))?
        + key.len();
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    Ok(digits.parse()?)
}

fn same(want: &[Vec<u8>], got: &[Vec<u8>], case: &str) -> Result<()> {
    for ((args, w), g) in SEARCHES.iter().zip(want).zip(got) {
        ensure!(
            w == g,
            "search {args:?} differs with {case}:\n--- with the index\n{}\n--- {case}\n{}",
            String::from_utf8_lossy(w),
            String::from_utf8_lossy(g)
        );
    }
    Ok(())
}

/// The answers themselves, so that "identical" is not "identically empty".
fn check_answers(out: &[Vec<u8>]) -> Result<()> {
    let lines = |i: usize| -> Vec<String> {
        String::from_utf8_lossy(&out[i])
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let count =
        |i: usize| -> Result<u64> { Ok(String::from_utf8(out[i].clone())?.trim().parse()?) };
    ensure!(lines(0).len() == 21, "user3: {:?}", lines(0));
    ensure!(lines(1).len() == 20, "user3 failures: {:?}", lines(1));
    ensure!(lines(2).len() == ROUNDS as usize, "alice's successes");
    // 10.7.0.5: i % 7 == 5 for i in 0..20 → i = 5, 12, 19.
    ensure!(lines(3).len() == 3, "10.7.0.5: {:?}", lines(3));
    ensure!(lines(4).len() == 21, "10.4.0.0/16: {:?}", lines(4));
    // Every sshd record (22 a round, and zelda's) but round 4's 21 from 10.4.0.x.
    ensure!(
        lines(5).len() == ROUNDS as usize * 22 + 1 - 21,
        "outside 10.4/16"
    );
    ensure!(
        lines(6).len() == ROUNDS as usize * 21 + 1,
        "sshd without alice"
    );
    // ports 40010, 40011, 40012 in every round, plus zelda's 40011.
    ensure!(lines(7).len() == ROUNDS as usize * 3 + 1, "port range");
    ensure!(lines(8).is_empty() && lines(9).is_empty(), "no match, case");
    ensure!(lines(10).len() == 1, "zelda, only in the unsealed segment");
    ensure!(count(11)? == ROUNDS * 20 + 1, "failures on gw");
    ensure!(count(12)? == ROUNDS * FILLER_LINES, "unparsed filler");
    ensure!(lines(13).len() == 2, "--limit with two filters");
    Ok(())
}
