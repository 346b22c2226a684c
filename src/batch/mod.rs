//! Batch mode: many prompts from a JSONL file, answered by parallel workers, written
//! back as one JSON line each, in input order, resumable (README "Batch").
//!
//! Three kinds of thread: a reader ([`reader`]) parses input lines and hands them
//! out; `-j` workers ([`worker`]) share one [`Client`] (one connection pool, one
//! rate-limit gate) and turn each line into a result line through the one call path;
//! the calling thread writes the result lines in input order ([`sink`]). The reader
//! never runs more than the [`window`] ahead of the writer, so memory stays flat.

mod line;
mod progress;
mod reader;
mod resume;
mod sink;
mod warmup;
mod window;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use anyhow::Result;
use serde_json::Value;

use crate::client::{Client, RateGate};
use crate::config::{BatchSpec, Config, InputSpec};
use crate::error::{ExitKind, Failure, usage};
use crate::files;
use crate::output::{self, stderr_is_terminal};
use crate::tool_loop::ToolLoop;
use crate::{conversation, input};

use progress::Progress;
use sink::{Out, Sink, Stats, Tokens};
use warmup::Warmup;
use window::Window;

/// A failed line's exit code, most important first (README "Exit codes": an auth
/// failure matters most, every later line would fail the same way). 6 (`--strict`)
/// and 7 (tool calls pending) come last.
const EXIT_PRECEDENCE: [ExitKind; 7] = [
    ExitKind::Auth,
    ExitKind::Network,
    ExitKind::RateLimited,
    ExitKind::Api,
    ExitKind::Usage,
    ExitKind::Unusable,
    ExitKind::ToolsPending,
];

/// What every line's request starts from: the flags and the `-f` files.
pub struct Template {
    pub config: Config,
    /// `-f` files, read once, prepended to each line's prompt turn.
    pub files: Vec<Value>,
    /// `--messages`: turns sent before each line's own.
    pub prior: Vec<Value>,
    /// `--exec`/`--mcp`: each line runs its own loop with the same tools.
    pub tools: Option<ToolLoop>,
}

/// What the workers share.
struct Shared {
    client: Client,
    template: Template,
    window: Window,
    /// Set by the first 401: the key is bad, so later lines are not sent at all.
    auth_failure: OnceLock<String>,
    /// `--cache`: the first line is sent alone (see `warmup.rs`).
    warmup: Warmup,
    /// A line's endpoint refused `cache_control` (the summary then hints at it).
    cache_refused: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One input line, parsed, on its way to a worker.
struct Job {
    index: u64,
    /// 1-based line number in the input file (blank lines included), for messages.
    line_no: u64,
    id: Value,
    line: Value,
}

/// One line's outcome, on its way to the writer.
struct Done {
    index: u64,
    outcome: Outcome,
    /// What the line's answer (or tool loop) used, for the summary.
    tokens: Tokens,
}

enum Outcome {
    /// Already answered in `--output` by an earlier run: nothing to write.
    Skipped,
    Answered(Vec<u8>),
    Failed(Vec<u8>, ExitKind),
}

enum Msg {
    Done(Done),
    /// The reader reached the end of the input after this many non-blank lines.
    End(u64),
    /// The batch cannot go on (unreadable input, an `--output` from another input).
    Fatal(anyhow::Error),
}

pub fn run(config: Config, spec: &BatchSpec, tools: Option<ToolLoop>) -> Result<()> {
    let key = config.require_key()?.clone();
    let input_is_stdin = files::is_stdin(&spec.input);
    let prior = match &config.messages_file {
        Some(path) => conversation::read_messages(path, "--messages")?,
        None => Vec::new(),
    };
    // Piped stdin is not read into each line (it is the input with `--batch -`, and a
    // CI job's stray open stdin must not hang the batch).
    let files = input::user_blocks(
        &InputSpec {
            files: config.input.files.clone(),
            read_stdin: false,
            prompt: None,
        },
        config.stdin_hint_after,
    )?;
    let reader: Box<dyn BufRead + Send> = if input_is_stdin {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let what = format!("--batch {}", spec.input.display());
        Box::new(BufReader::with_capacity(
            64 * 1024,
            files::open(&spec.input, &what)?,
        ))
    };
    let (out, answered) = match &spec.results {
        Some(path) => {
            if !input_is_stdin && resume::same_file(path, &spec.input) {
                return Err(usage(format!(
                    "--output {} is the --batch input; results need a file of their own",
                    path.display()
                )));
            }
            let (file, answered) = resume::prepare_output(path)?;
            (Out::File(file), answered)
        }
        None => (Out::Stdout, HashMap::new()),
    };
    let already = answered.len() as u64;

    let show_progress = stderr_is_terminal() && !config.quiet && !config.verbose;
    let total = if show_progress && !input_is_stdin {
        progress::count_lines(&spec.input)
    } else {
        None
    };

    let gate = Arc::new(RateGate::default());
    let client = Client::shared(&config.network, key, config.verbose, spec.jobs, gate);
    let quiet = config.quiet;
    let warmup = Warmup::new(config.batch_warmup);
    let shared = Arc::new(Shared {
        client,
        template: Template {
            config,
            files,
            prior,
            tools,
        },
        window: Window::new(spec.jobs as u64 * 4),
        auth_failure: OnceLock::new(),
        warmup,
        cache_refused: AtomicBool::new(false),
    });
    let sink = Arc::new(Mutex::new(Sink {
        out,
        pending: BTreeMap::new(),
    }));
    if matches!(lock(&sink).out, Out::File(_)) {
        sink::salvage_on_signal(&sink);
    }

    let (results_tx, results) = mpsc::channel::<Msg>();
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(spec.jobs);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let mut threads = Vec::new();
    for _ in 0..spec.jobs {
        let (shared, jobs_rx, results_tx) = (
            Arc::clone(&shared),
            Arc::clone(&jobs_rx),
            results_tx.clone(),
        );
        threads.push(std::thread::spawn(move || {
            worker::work(&shared, &jobs_rx, &results_tx)
        }));
    }
    {
        let shared = Arc::clone(&shared);
        let label = spec.input.display().to_string();
        threads.push(std::thread::spawn(move || {
            reader::read(
                reader,
                &label,
                answered,
                &shared.window,
                &jobs_tx,
                &results_tx,
            )
        }));
    }

    let mut progress = Progress::new(show_progress, total, already);
    let stats = sink::collect(&results, &sink, &shared.window, &mut progress);
    progress.clear();
    let stats = match stats {
        Ok(stats) => stats,
        Err(e) => {
            // Workers may still be waiting on the network: leave without them.
            shared.window.stop();
            return Err(e);
        }
    };
    for t in threads {
        let _ = t.join();
    }
    let refused = shared.cache_refused.load(Ordering::Relaxed);
    finish(&stats, spec, quiet, refused)
}

/// The one-line summary, and the exit code.
/// `cache_refused`: some line failed because the endpoint refuses `cache_control`.
fn finish(stats: &Stats, spec: &BatchSpec, quiet: bool, cache_refused: bool) -> Result<()> {
    let mut summary = format!("{} ok, {} failed", stats.ok + stats.skipped, stats.failed);
    if stats.skipped > 0 {
        let out = spec.results.as_deref().map(|p| p.display().to_string());
        let out = out.unwrap_or_default();
        summary += &format!(" ({} answered by an earlier run in {out})", stats.skipped);
    }
    if let Some(tokens) = stats.tokens.summary() {
        summary += &format!("; {tokens}");
    }
    match EXIT_PRECEDENCE
        .iter()
        .find(|k| stats.kinds_seen.contains(k))
    {
        Some(&kind) => {
            let failure = Failure::new(kind, summary);
            Err(match cache_refused {
                true => failure.with_hint(crate::cache::REJECTION_HINT),
                false => failure,
            }
            .into())
        }
        None => {
            if !quiet {
                output::info(&summary);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
