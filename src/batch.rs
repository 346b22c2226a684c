//! Batch mode (DESIGN.md §7): many prompts from a JSONL file, answered by parallel
//! workers, written back as one JSON line each, in input order, resumable.
//!
//! Three kinds of thread: a reader parses input lines and hands them out; `-j` workers
//! share one [`Client`] (one connection pool, one rate-limit gate) and turn each line
//! into a result line; the calling thread writes the result lines in input order. The
//! reader never runs more than [`Window`] lines ahead of the writer, so memory stays
//! flat however long the input is.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::cli::Cli;
use crate::client::{Client, RateGate};
use crate::config::{Config, InputSpec, OutputMode, io_reason};
use crate::error::{ExitKind, Failure, one_line, usage};
use crate::output::{self, Writer};
use crate::{conversation, input, request, run, tools};

pub const DEFAULT_JOBS: u16 = 4;

/// What `--batch`, `-j` and `--output` asked for.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `-` is stdin.
    pub input: PathBuf,
    pub jobs: usize,
    pub output: Option<PathBuf>,
    /// `-q`: no progress line, and no summary when every line succeeded.
    pub quiet: bool,
}

impl Spec {
    /// `None` without `--batch`. clap's `requires` does not fire when `--batch` would
    /// conflict with another flag given (`-j 2 PROMPT`), hence the check here.
    pub fn from_cli(cli: &Cli) -> Result<Option<Spec>> {
        let Some(input) = cli.batch.clone() else {
            if cli.jobs.is_some() || cli.output.is_some() {
                return Err(usage("-j/--jobs and --output go with --batch IN.jsonl"));
            }
            return Ok(None);
        };
        // Checked before the config is built: it reads `--tools -` and the like.
        if input.as_os_str() == "-" {
            let dash = |p: Option<&Path>| p.is_some_and(|p| p.as_os_str() == "-");
            let others: Vec<&str> = [
                ("--messages -", dash(cli.messages.as_deref())),
                ("--tools -", dash(cli.tools.as_deref())),
                ("--system-file -", dash(cli.system_file.as_deref())),
                ("-f -", cli.files.iter().any(|f| f.as_os_str() == "-")),
            ]
            .into_iter()
            .filter_map(|(flag, reads)| reads.then_some(flag))
            .collect();
            if !others.is_empty() {
                return Err(usage(format!(
                    "--batch -, {} all read stdin; it can be read only once",
                    others.join(", ")
                )));
            }
        }
        Ok(Some(Spec {
            input,
            jobs: usize::from(cli.jobs.unwrap_or(DEFAULT_JOBS).max(1)),
            output: cli.output.clone(),
            quiet: cli.quiet,
        }))
    }
}

/// The fields an input line may hold: `id`, the user turn, and the request fields
/// that override the command line for that line.
const LINE_FIELDS: [&str; 14] = [
    "id",
    "prompt",
    "messages",
    "system",
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
];

/// A failed line's exit code, most important first (DESIGN.md §7: an auth failure
/// matters most, every later line would fail the same way). 6 (`--strict`) is not in
/// the design's list and comes last.
const EXIT_PRECEDENCE: [ExitKind; 6] = [
    ExitKind::Auth,
    ExitKind::Network,
    ExitKind::RateLimited,
    ExitKind::Api,
    ExitKind::Usage,
    ExitKind::Unusable,
];

/// What every line's request starts from: the flags and the `-f` files.
struct Template {
    config: Config,
    /// `-f` files, read once, prepended to each line's prompt turn.
    files: Vec<Value>,
    /// `--messages`: turns sent before each line's own.
    prior: Vec<Value>,
}

pub fn run(config: Config, spec: Spec) -> Result<()> {
    let key = config.require_key()?.clone();
    let input_is_stdin = spec.input.as_os_str() == "-";
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
        Box::new(BufReader::with_capacity(
            64 * 1024,
            open_input(&spec.input)?,
        ))
    };
    let (out, answered) = match &spec.output {
        Some(path) => {
            if !input_is_stdin && same_file(path, &spec.input) {
                return Err(usage(format!(
                    "--output {} is the --batch input; results need a file of their own",
                    path.display()
                )));
            }
            let (file, answered) = prepare_output(path)?;
            (Out::File(file), answered)
        }
        None => (Out::Stdout, HashMap::new()),
    };
    let already = answered.len() as u64;

    let show_progress = io::stderr().is_terminal() && !spec.quiet && !config.verbose;
    let total = if show_progress && !input_is_stdin {
        count_lines(&spec.input)
    } else {
        None
    };

    let gate = Arc::new(RateGate::default());
    let client = Client::shared(&config.network, key, config.verbose, spec.jobs, gate);
    let shared = Arc::new(Shared {
        client,
        template: Template {
            config,
            files,
            prior,
        },
        window: Window::new(spec.jobs as u64 * 4),
        auth_failure: OnceLock::new(),
    });
    let sink = Arc::new(Mutex::new(Sink {
        out,
        pending: BTreeMap::new(),
    }));
    if matches!(lock(&sink).out, Out::File(_)) {
        let _ = SALVAGE.set(Arc::clone(&sink));
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
            work(&shared, &jobs_rx, &results_tx)
        }));
    }
    {
        let shared = Arc::clone(&shared);
        let label = spec.input.display().to_string();
        threads.push(std::thread::spawn(move || {
            read(
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
    let stats = collect(&results, &sink, &shared.window, &mut progress);
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
    finish(&stats, &spec)
}

/// The one-line summary, and the exit code (DESIGN.md §7).
fn finish(stats: &Stats, spec: &Spec) -> Result<()> {
    let mut summary = format!("{} ok, {} failed", stats.ok + stats.skipped, stats.failed);
    if stats.skipped > 0 {
        let out = spec.output.as_deref().map(|p| p.display().to_string());
        let out = out.unwrap_or_default();
        summary += &format!(" ({} answered by an earlier run in {out})", stats.skipped);
    }
    match EXIT_PRECEDENCE
        .iter()
        .find(|k| stats.kinds_seen.contains(k))
    {
        Some(&kind) => Err(Failure::new(kind, summary).into()),
        None => {
            if !spec.quiet {
                output::info(&summary);
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------
// Shared state

struct Shared {
    client: Client,
    template: Template,
    window: Window,
    /// Set by the first 401: the key is bad, so later lines are not sent at all.
    auth_failure: OnceLock<String>,
}

/// Keeps the reader at most `size` lines ahead of the writer, so that results waiting
/// for a slow earlier line stay few.
struct Window {
    written: Mutex<u64>,
    moved: Condvar,
    size: u64,
    stopped: AtomicBool,
}

impl Window {
    fn new(size: u64) -> Window {
        Window {
            written: Mutex::new(0),
            moved: Condvar::new(),
            size: size.max(1),
            stopped: AtomicBool::new(false),
        }
    }

    /// Waits until line `index` may be handed out; false when the batch is stopping.
    fn admit(&self, index: u64) -> bool {
        let mut written = lock(&self.written);
        while index >= *written + self.size && !self.is_stopped() {
            written = self
                .moved
                .wait(written)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !self.is_stopped()
    }

    fn advance(&self, written: u64) {
        *lock(&self.written) = written;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _guard = lock(&self.written);
        self.moved.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
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

// ---------------------------------------------------------------------------------
// Reader

fn open_input(path: &Path) -> Result<File> {
    let fail = |e: io::Error| usage(format!("--batch {}: {}", path.display(), io_reason(&e)));
    let file = File::open(path).map_err(fail)?;
    if file.metadata().map_err(fail)?.is_dir() {
        return Err(usage(format!(
            "--batch {}: is a directory, not a file",
            path.display()
        )));
    }
    Ok(file)
}

fn read(
    mut input: Box<dyn BufRead + Send>,
    label: &str,
    answered: HashMap<u64, Value>,
    window: &Window,
    jobs: &SyncSender<Job>,
    results: &Sender<Msg>,
) {
    let mut buf = Vec::new();
    let mut index = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let e = usage(format!("--batch {label}: {}", io_reason(&e)));
                let _ = results.send(Msg::Fatal(e));
                return;
            }
        }
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !window.admit(index) {
            return;
        }
        let job = parse_line(&buf)
            .and_then(|line| Ok((line_id(&line)?, line)))
            .map_err(|m| format!("line {line_no}: {m}"));
        let this_id = job.as_ref().map_or(Value::Null, |(id, _)| id.clone());
        if let Some(done_id) = answered.get(&index) {
            if *done_id != this_id {
                let e = usage(format!(
                    "--output already has a result for index {index} with id {done_id}, but line {line_no} of {label} has id {this_id}: the input changed since; use a new --output file"
                ));
                let _ = results.send(Msg::Fatal(e));
                return;
            }
            let skipped = Done {
                index,
                outcome: Outcome::Skipped,
            };
            if results.send(Msg::Done(skipped)).is_err() {
                return;
            }
            index += 1;
            continue;
        }
        let sent = match job {
            Ok((id, line)) => jobs
                .send(Job {
                    index,
                    line_no,
                    id,
                    line,
                })
                .is_ok(),
            Err(message) => {
                let failure = Failure::new(ExitKind::Usage, message);
                let (bytes, kind) = error_line(&Value::Null, index, &failure);
                let failed = Done {
                    index,
                    outcome: Outcome::Failed(bytes, kind),
                };
                results.send(Msg::Done(failed)).is_ok()
            }
        };
        if !sent {
            return;
        }
        index += 1;
    }
    let _ = results.send(Msg::End(index));
}

/// A line as JSON: a string or an object.
fn parse_line(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid UTF-8 (byte {}); convert the input to UTF-8 first",
            e.valid_up_to()
        )
    })?;
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("invalid JSON: {}", strip_line_number(&e.to_string())))?;
    match value {
        Value::String(_) | Value::Object(_) => Ok(value),
        other => Err(format!(
            "expected a JSON string (the prompt) or an object, found {}",
            json_type(&other)
        )),
    }
}

/// serde_json says "at line 1 column 7"; within one input line, the column is enough.
fn strip_line_number(message: &str) -> String {
    message.replace(" at line 1 column ", " at column ")
}

/// The line's `id`: a string or a number, or null when it has none.
fn line_id(line: &Value) -> Result<Value, String> {
    match line.get("id") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(id.clone()),
        Some(other) => Err(format!(
            "\"id\" must be a string or a number, not {}",
            json_type(other)
        )),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------
// Workers

fn work(shared: &Shared, jobs: &Mutex<Receiver<Job>>, results: &Sender<Msg>) {
    loop {
        let job = match lock(jobs).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if shared.window.is_stopped() {
            return;
        }
        // A bug must cost one line, not the batch: without a result for this index
        // the writer would wait for it forever.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(shared, &job)))
                .unwrap_or_else(|_| {
                    let failure =
                        Failure::new(ExitKind::Api, "internal error while answering this line");
                    let (bytes, kind) = error_line(&job.id, job.index, &failure);
                    Outcome::Failed(bytes, kind)
                });
        if results
            .send(Msg::Done(Done {
                index: job.index,
                outcome,
            }))
            .is_err()
        {
            return;
        }
    }
}

/// Sends one line's request and describes the outcome as its result line.
fn answer(shared: &Shared, job: &Job) -> Outcome {
    let failed = |failure: &Failure| {
        let (bytes, kind) = error_line(&job.id, job.index, failure);
        Outcome::Failed(bytes, kind)
    };
    let config = &shared.template.config;
    let body = match request_body(&job.line, &shared.template) {
        Ok(body) => body,
        Err(message) => {
            return failed(&Failure::new(
                ExitKind::Usage,
                format!("line {}: {message}", job.line_no),
            ));
        }
    };
    if let Some(first) = shared.auth_failure.get() {
        return failed(&Failure::new(
            ExitKind::Auth,
            format!("not sent: an earlier request failed authentication ({first})"),
        ));
    }
    let result = shared
        .client
        .post("/v1/messages", &body, config.stream, |response, info| {
            // Nothing is printed while a line is answered; the writer only collects the
            // message (in JSON mode, so a mid-stream overload stays retryable).
            let mut writer = Writer::new(io::sink(), OutputMode::Json, false);
            run::receive(
                response,
                info,
                config.stream,
                config,
                &mut writer,
                &mut || {},
            )
        });
    let message = match result {
        Ok(message) => message,
        Err(e) => {
            let failure = as_failure(&e);
            if failure.api.as_ref().and_then(|a| a.status) == Some(401) {
                let _ = shared.auth_failure.set(failure.message.clone());
            }
            return failed(&failure);
        }
    };
    match payload(config, message) {
        Ok((key, value)) => {
            let mut line = Map::new();
            line.insert("id".into(), job.id.clone());
            line.insert("index".into(), json!(job.index));
            line.insert(key.into(), value);
            Outcome::Answered(to_line(&Value::Object(line)))
        }
        Err(failure) => failed(&failure),
    }
}

/// What a successful line carries next to `id` and `index`: the message, or with
/// `--schema` the validated object (exit 6 class when it does not validate).
fn payload(config: &Config, message: Value) -> Result<(&'static str, Value), Failure> {
    if config.strict {
        let stop = message.get("stop_reason").and_then(Value::as_str);
        if let Some(
            stop @ ("max_tokens" | "refusal" | "pause_turn" | "model_context_window_exceeded"),
        ) = stop
        {
            return Err(Failure::new(
                ExitKind::Unusable,
                format!("the answer is incomplete: stop_reason {stop} (--strict)"),
            ));
        }
    }
    if let Some(schema) = &config.schema {
        let object = schema.extract(&message).map_err(|e| as_failure(&e))?;
        return Ok(("object", object));
    }
    Ok(("message", message))
}

/// The failure that decides the exit code, whatever else wraps it.
fn as_failure(e: &anyhow::Error) -> Failure {
    match e.chain().find_map(|c| c.downcast_ref::<Failure>()) {
        Some(f) => Failure {
            kind: f.kind,
            message: f.message.clone(),
            api: f.api.clone(),
        },
        None => Failure::new(ExitKind::Api, format!("{e:#}")),
    }
}

/// The request body for one line: the command line's request, with the line's user
/// turn and its overrides.
fn request_body(line: &Value, template: &Template) -> Result<Vec<u8>, String> {
    let empty = Map::new();
    let (prompt, fields) = match line {
        Value::String(prompt) => (Some(prompt.as_str()), &empty),
        Value::Object(fields) => {
            if let Some(unknown) = fields.keys().find(|k| !LINE_FIELDS.contains(&k.as_str())) {
                return Err(format!(
                    "unknown field \"{unknown}\" (a line may have: {})",
                    LINE_FIELDS.join(", ")
                ));
            }
            let prompt = match fields.get("prompt") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.as_str()),
                Some(other) => {
                    return Err(format!(
                        "\"prompt\" must be a string, not {}",
                        json_type(other)
                    ));
                }
            };
            (prompt, fields)
        }
        other => {
            return Err(format!(
                "expected a string or an object, not {}",
                json_type(other)
            ));
        }
    };
    if prompt.is_some_and(|p| p.trim().is_empty()) {
        return Err("empty prompt".into());
    }
    let history = match fields.get("messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(messages) => {
            conversation::check_messages(messages.clone(), "messages").map_err(|e| e.to_string())?
        }
    };
    if prompt.is_none() && history.is_empty() {
        return Err("nothing to send: the line has no \"prompt\" and no \"messages\"".into());
    }

    let config = &template.config;
    let mut turn = Vec::new();
    if let Some(prompt) = prompt {
        turn.extend(template.files.iter().cloned());
        turn.push(json!({"type": "text", "text": prompt}));
    }
    let mut prior = template.prior.clone();
    prior.extend(history);
    let sources = request::Sources {
        base: None,
        explicit: &|_| false,
        prior,
        stream: Some(config.stream),
    };
    let mut body = request::build(&config.generation, turn, sources);
    let Some(map) = body.as_object_mut() else {
        return Err("internal error: the request is not an object".into());
    };
    for (key, value) in fields {
        if matches!(key.as_str(), "id" | "prompt" | "messages") {
            continue;
        }
        if config.schema.is_some() && matches!(key.as_str(), "tools" | "tool_choice") {
            return Err(format!("\"{key}\" cannot be set per line with --schema"));
        }
        check_override(key, value)?;
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    request::to_bytes(&body).map_err(|e| e.to_string())
}

/// The types the API takes for the fields a line may override (API.md §1.2). `null`
/// removes an optional field the command line set.
fn check_override(key: &str, value: &Value) -> Result<(), String> {
    let ok = match key {
        "model" => value.as_str().is_some_and(|m| !m.trim().is_empty()),
        "max_tokens" => value.as_u64().is_some(),
        "system" => value.is_null() || value.is_string() || value.is_array(),
        "temperature" | "top_p" => {
            value.is_null() || value.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v))
        }
        "top_k" => value.is_null() || value.as_u64().is_some(),
        "stop_sequences" => {
            value.is_null()
                || value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string))
        }
        "metadata" => value.is_null() || value.is_object(),
        "tools" => {
            if value.is_null() {
                true
            } else {
                // The same checks as --tools, with the JSON path inside the field.
                tools::check_tools(value.clone(), "\"tools\"").map_err(|e| e.to_string())?;
                true
            }
        }
        "tool_choice" => {
            value.is_null()
                || value
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| matches!(t, "auto" | "any" | "none" | "tool"))
        }
        "thinking" => {
            value.is_null()
                || value
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| matches!(t, "adaptive" | "enabled" | "disabled"))
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let expected = match key {
        "model" => "a non-empty string",
        "max_tokens" => "a non-negative integer",
        "system" => "a string or an array of text blocks",
        "temperature" | "top_p" => "a number from 0.0 to 1.0",
        "top_k" => "a non-negative integer",
        "stop_sequences" => "an array of strings",
        "metadata" => "an object",
        "tool_choice" => "an object with type auto, any, none or tool",
        "thinking" => "an object with type adaptive, enabled or disabled",
        _ => "not a field a line may set",
    };
    Err(format!("\"{key}\" must be {expected}"))
}

// ---------------------------------------------------------------------------------
// Result lines

/// `{"id":…,"index":…,"error":{"type":…,"message":…,"status":…,"request_id":…}}`.
fn error_line(id: &Value, index: u64, failure: &Failure) -> (Vec<u8>, ExitKind) {
    let error = match &failure.api {
        Some(api) => json!({
            "type": api.error_type.clone().unwrap_or_else(|| default_type(failure.kind).into()),
            "message": one_line(&api.message),
            "status": api.status,
            "request_id": api.request_id,
        }),
        None => json!({
            "type": default_type(failure.kind),
            "message": failure.message,
            "status": null,
            "request_id": null,
        }),
    };
    let line = json!({"id": id, "index": index, "error": error});
    (to_line(&line), failure.kind)
}

/// The `error.type` of a failure that did not come from the API.
fn default_type(kind: ExitKind) -> &'static str {
    match kind {
        ExitKind::Usage => "invalid_input",
        ExitKind::Auth => "authentication_error",
        ExitKind::RateLimited => "rate_limit_error",
        ExitKind::Network => "network_error",
        ExitKind::Unusable => "unusable_answer",
        ExitKind::Api | ExitKind::Interrupted => "api_error",
    }
}

fn to_line(v: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its keys are strings.
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

// ---------------------------------------------------------------------------------
// Writer

enum Out {
    Stdout,
    /// `--output`, opened for appending.
    File(File),
}

/// Where result lines go, and those that wait for an earlier line to be written.
struct Sink {
    out: Out,
    pending: BTreeMap<u64, Outcome>,
}

impl Sink {
    /// One whole line, in a single write, flushed: a killed process leaves no torn
    /// line behind (and a torn last line from a crash is dropped on resume).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Out::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout.write_all(line)?;
                stdout.flush()
            }
            Out::File(file) => file.write_all(line),
        }
    }
}

/// With `--output`, the sink the Ctrl-C handler saves finished results through.
static SALVAGE: OnceLock<Arc<Mutex<Sink>>> = OnceLock::new();

/// Called by the Ctrl-C handler just before it exits: results that are complete but
/// wait for an earlier, unfinished line are appended to `--output` out of order, so
/// an interruption loses only the requests in flight (resume matches by index).
pub fn interrupted() {
    if let Some(temp) = lock(&REWRITING).take() {
        let _ = std::fs::remove_file(temp);
    }
    if let Some(sink) = SALVAGE.get() {
        // The writer holds the lock only while writing one line.
        let mut sink = lock(sink);
        let pending = std::mem::take(&mut sink.pending);
        for outcome in pending.into_values() {
            if let Outcome::Answered(line) | Outcome::Failed(line, _) = outcome {
                let _ = sink.write_line(&line);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    ok: u64,
    failed: u64,
    skipped: u64,
    kinds_seen: Vec<ExitKind>,
}

/// Writes outcomes in input order as they arrive, until every line has its result.
fn collect(
    results: &Receiver<Msg>,
    sink: &Mutex<Sink>,
    window: &Window,
    progress: &mut Progress,
) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut next = 0u64;
    let mut total = None;
    while total != Some(next) {
        let done = match results.recv() {
            Ok(Msg::Done(done)) => done,
            Ok(Msg::End(n)) => {
                total = Some(n);
                continue;
            }
            Ok(Msg::Fatal(e)) => return Err(e),
            Err(_) => {
                return Err(anyhow::anyhow!(
                    "internal error: a batch worker stopped before line index {next} was answered"
                ));
            }
        };
        let mut sink = lock(sink);
        sink.pending.insert(done.index, done.outcome);
        while let Some(outcome) = sink.pending.remove(&next) {
            match outcome {
                Outcome::Skipped => stats.skipped += 1,
                Outcome::Answered(line) => {
                    sink.write_line(&line).context("writing a result")?;
                    stats.ok += 1;
                }
                Outcome::Failed(line, kind) => {
                    sink.write_line(&line).context("writing a result")?;
                    stats.failed += 1;
                    if !stats.kinds_seen.contains(&kind) {
                        stats.kinds_seen.push(kind);
                    }
                }
            }
            next += 1;
        }
        drop(sink);
        window.advance(next);
        progress.update(&stats);
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------------
// Resume

/// Opens `--output` for appending, and returns the lines it already answered
/// (index → id). Error lines and a torn last line (from a crash) are dropped from the
/// file first, so those lines are asked again and every index ends up with one line.
fn prepare_output(path: &Path) -> Result<(File, HashMap<u64, Value>)> {
    let fail = |e: io::Error| usage(format!("--output {}: {}", path.display(), io_reason(&e)));
    let mut answered = HashMap::new();
    let existing = match File::open(path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e)),
    };
    if let Some(file) = existing {
        if file.metadata().map_err(fail)?.is_dir() {
            return Err(usage(format!(
                "--output {}: is a directory, not a file",
                path.display()
            )));
        }
        let scan = scan_output(BufReader::new(file), path, &mut answered)?;
        if scan.dropped > 0 {
            rewrite_answered(path).map_err(fail)?;
        } else if let Some(len) = scan.torn_at {
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(len))
                .map_err(fail)?;
        }
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    Ok((file, answered))
}

#[derive(Debug)]
struct Scan {
    /// Lines to drop: error lines, blank lines.
    dropped: u64,
    /// Where a torn last line starts.
    torn_at: Option<u64>,
}

/// Reads an `--output` file: which indices were answered, and whether anything is to
/// be dropped. A line that is not a batch result means this is not our file.
fn scan_output(
    mut reader: impl BufRead,
    path: &Path,
    answered: &mut HashMap<u64, Value>,
) -> Result<Scan> {
    let mut scan = Scan {
        dropped: 0,
        torn_at: None,
    };
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| usage(format!("--output {}: {}", path.display(), io_reason(&e))))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if !buf.ends_with(b"\n") {
            // Cut short by a crash: that line is asked again.
            scan.torn_at = Some(offset);
            break;
        }
        offset += n as u64;
        match result_line(&buf) {
            Some(ResultLine::Answered(index, id)) => {
                answered.insert(index, id);
            }
            Some(ResultLine::Failed) => scan.dropped += 1,
            None if buf.iter().all(u8::is_ascii_whitespace) => scan.dropped += 1,
            None => {
                return Err(usage(format!(
                    "--output {}: line {line_no} is not a cs-msg batch result; refusing to append to this file",
                    path.display()
                )));
            }
        }
    }
    Ok(scan)
}

enum ResultLine {
    Answered(u64, Value),
    Failed,
}

/// A line this program wrote: an object with an `index`, and an `error` when it failed.
fn result_line(bytes: &[u8]) -> Option<ResultLine> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let index = v.get("index")?.as_u64()?;
    if v.get("error").is_some() {
        Some(ResultLine::Failed)
    } else {
        Some(ResultLine::Answered(
            index,
            v.get("id").cloned().unwrap_or(Value::Null),
        ))
    }
}

/// Rewrites `path` with only its answered lines, atomically (a temporary file in the
/// same directory, renamed over it), keeping its permissions.
fn rewrite_answered(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let permissions = std::fs::metadata(path)?.permissions();
    let mut temp = tempfile::Builder::new()
        .prefix(".cs-msg-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    *lock(&REWRITING) = Some(temp.path().to_path_buf());
    let result = (|| {
        let mut reader = BufReader::new(File::open(path)?);
        let mut out = io::BufWriter::new(temp.as_file_mut());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 || !buf.ends_with(b"\n") {
                break;
            }
            if let Some(ResultLine::Answered(..)) = result_line(&buf) {
                out.write_all(&buf)?;
            }
        }
        out.flush()?;
        drop(out);
        temp.as_file().set_permissions(permissions)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    *lock(&REWRITING) = None;
    result
}

/// The temporary file of a rewrite in progress, for the Ctrl-C handler to remove (it
/// exits without running destructors).
static REWRITING: Mutex<Option<PathBuf>> = Mutex::new(None);

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// Progress

/// Non-blank lines in the input file, for the progress line's total and ETA. `None`
/// when the file cannot be read twice (the batch reports that itself).
fn count_lines(path: &Path) -> Option<u64> {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path).ok()?);
    let mut buf = Vec::new();
    let mut count = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).ok()? == 0 {
            return Some(count);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            count += 1;
        }
    }
}

/// One status line on stderr, redrawn in place at most every 200 ms, only when stderr
/// is a terminal. Hand-written rather than a progress-bar crate: it is one line of
/// counts, and the crate would be the binary's biggest dependency after ureq.
struct Progress {
    enabled: bool,
    total: Option<u64>,
    started: Instant,
    last_drawn: Option<Instant>,
    /// Lines answered by an earlier run (they do not count towards the rate).
    already: u64,
    drawn: bool,
}

impl Progress {
    fn new(enabled: bool, total: Option<u64>, already: u64) -> Progress {
        Progress {
            enabled,
            total,
            started: Instant::now(),
            last_drawn: None,
            already,
            drawn: false,
        }
    }

    fn update(&mut self, stats: &Stats) {
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let line = progress_line(stats, self.total, self.already, self.started.elapsed());
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[2Kcs-msg: {line}");
        let _ = err.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// `120/200 done, 3 failed, 7.9/s, ETA 10 s`.
fn progress_line(stats: &Stats, total: Option<u64>, already: u64, elapsed: Duration) -> String {
    let done = stats.ok + stats.failed + stats.skipped;
    let answered_now = (done.saturating_sub(already)) as f64;
    let rate = answered_now / elapsed.as_secs_f64().max(0.001);
    let mut line = match total {
        Some(t) => format!("{done}/{t} done"),
        None => format!("{done} done"),
    };
    line += &format!(", {} failed, {rate:.1}/s", stats.failed);
    if let Some(t) = total
        && rate > 0.0
    {
        let eta = t.saturating_sub(done) as f64 / rate;
        line += &format!(", ETA {}", human_duration(eta));
    }
    line
}

fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn template(args: &[&str]) -> Template {
        let mut argv = vec!["cs-msg", "--batch", "in.jsonl", "--no-stream"];
        argv.extend_from_slice(args);
        let config = Config::from_cli(
            Cli::try_parse_from(argv).unwrap(),
            Default::default(),
            true,
            |_| None,
        )
        .unwrap();
        Template {
            config,
            files: vec![json!({"type":"text","text":"FILE"})],
            prior: Vec::new(),
        }
    }

    fn body(line: &str, t: &Template) -> Result<Value, String> {
        let line = parse_line(line.as_bytes())?;
        request_body(&line, t).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn lines_parse_as_strings_or_objects() {
        assert_eq!(parse_line(b"\"hi\"\r\n"), Ok(json!("hi")));
        assert_eq!(
            parse_line(b"[1]\n"),
            Err("expected a JSON string (the prompt) or an object, found an array".into())
        );
        assert_eq!(
            parse_line(b"{\"a\":}\n"),
            Err("invalid JSON: expected value at column 6".into())
        );
        assert!(parse_line(b"\"caf\xe9\"").unwrap_err().contains("UTF-8"));
        assert_eq!(line_id(&json!({"id": 3})), Ok(json!(3)));
        assert_eq!(line_id(&json!("prompt")), Ok(Value::Null));
        assert!(line_id(&json!({"id": true})).is_err());
    }

    #[test]
    fn a_line_overrides_the_flags() {
        let t = template(&["-m", "m1", "-s", "sys", "-t", "0.5"]);
        assert_eq!(
            body("\"hi\"", &t).unwrap(),
            json!({"model":"m1","max_tokens":4096,"system":"sys",
                   "messages":[{"role":"user","content":[{"type":"text","text":"FILE"},{"type":"text","text":"hi"}]}],
                   "temperature":0.5})
        );
        let b = body(
            r#"{"prompt":"x","model":"m2","system":[{"type":"text","text":"s"}],"temperature":null,"top_k":5}"#,
            &t,
        )
        .unwrap();
        assert_eq!(b["model"], "m2");
        assert_eq!(b["system"], json!([{"type":"text","text":"s"}]));
        assert_eq!(b.get("temperature"), None);
        assert_eq!(b["top_k"], 5);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let t = template(&[]);
        for (line, error) in [
            (r#"{"prompt":" \n"}"#, "empty prompt"),
            (
                r#"{"prompt":5}"#,
                "\"prompt\" must be a string, not a number",
            ),
            (
                r#"{"id":1}"#,
                "nothing to send: the line has no \"prompt\" and no \"messages\"",
            ),
            (
                r#"{"messages":[]}"#,
                "nothing to send: the line has no \"prompt\" and no \"messages\"",
            ),
            (
                r#"{"messages":{}}"#,
                "messages: $: expected an array of messages",
            ),
            (
                r#"{"messages":[{"role":"bot","content":"x"}]}"#,
                "messages: $[0].role: expected \"user\" or \"assistant\"",
            ),
            (
                r#"{"messages":[{"role":"user"}]}"#,
                "messages: $[0].content: expected a string or an array of content blocks",
            ),
            (
                r#"{"prompt":"x","max_tokens":-1}"#,
                "\"max_tokens\" must be a non-negative integer",
            ),
            (
                r#"{"prompt":"x","model":null}"#,
                "\"model\" must be a non-empty string",
            ),
            (
                r#"{"prompt":"x","top_p":1.5}"#,
                "\"top_p\" must be a number from 0.0 to 1.0",
            ),
            (
                r#"{"prompt":"x","stop_sequences":[1]}"#,
                "\"stop_sequences\" must be an array of strings",
            ),
            (
                r#"{"prompt":"x","metadata":"u"}"#,
                "\"metadata\" must be an object",
            ),
        ] {
            assert_eq!(body(line, &t), Err(error.to_owned()), "{line}");
        }
    }

    #[test]
    fn error_lines_have_a_fixed_shape() {
        let f = Failure::new(ExitKind::Network, "could not connect");
        let (line, kind) = error_line(&json!("x"), 4, &f);
        assert_eq!(kind, ExitKind::Network);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"id\":\"x\",\"index\":4,\"error\":{\"type\":\"network_error\",\"message\":\"could not connect\",\"status\":null,\"request_id\":null}}\n"
        );
        let api = crate::error::ApiError::from_body(
            Some(529),
            br#"{"error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some("req_9".into()),
        );
        let (line, kind) = error_line(
            &Value::Null,
            0,
            &api.into_failure().with_suffix(" (after 2 retries)"),
        );
        assert_eq!(kind, ExitKind::RateLimited);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"id\":null,\"index\":0,\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\",\"status\":529,\"request_id\":\"req_9\"}}\n"
        );
    }

    #[test]
    fn scanning_an_output_file() {
        let text = concat!(
            "{\"id\":\"a\",\"index\":0,\"message\":{}}\n",
            "{\"id\":null,\"index\":1,\"error\":{}}\n",
            "\n",
            "{\"id\":null,\"index\":2,\"object\":{}}\n",
            "{\"id\":\"d\",\"ind",
        );
        let mut answered = HashMap::new();
        let scan = scan_output(text.as_bytes(), Path::new("o"), &mut answered).unwrap();
        assert_eq!(answered.len(), 2);
        assert_eq!(answered[&0], json!("a"));
        assert_eq!(answered[&2], Value::Null);
        assert_eq!(scan.dropped, 2);
        assert_eq!(scan.torn_at, Some(text.rfind('{').unwrap() as u64));
        let e = scan_output(
            &b"{\"index\":0}\nhello\n"[..],
            Path::new("o"),
            &mut answered,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--output o: line 2 is not a cs-msg batch result; refusing to append to this file"
        );
    }

    #[test]
    fn the_window_holds_the_reader_back() {
        let window = Arc::new(Window::new(2));
        assert!(window.admit(0) && window.admit(1));
        let w = Arc::clone(&window);
        let reader = std::thread::spawn(move || w.admit(2));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!reader.is_finished());
        window.advance(1);
        assert!(reader.join().unwrap());
        let w = Arc::clone(&window);
        let reader = std::thread::spawn(move || w.admit(10));
        window.stop();
        assert!(!reader.join().unwrap());
    }

    #[test]
    fn progress_line_and_summary_exit_codes() {
        let stats = Stats {
            ok: 90,
            failed: 3,
            skipped: 7,
            kinds_seen: vec![ExitKind::Usage, ExitKind::Network],
        };
        assert_eq!(
            progress_line(&stats, Some(200), 7, Duration::from_secs(10)),
            "100/200 done, 3 failed, 9.3/s, ETA 11 s"
        );
        assert_eq!(
            progress_line(&stats, None, 0, Duration::from_secs(10)),
            "100 done, 3 failed, 10.0/s"
        );
        assert_eq!(human_duration(3725.0), "1h02m");
        assert_eq!(human_duration(75.0), "1m15s");
        let spec = Spec {
            input: "in.jsonl".into(),
            jobs: 4,
            output: Some("o.jsonl".into()),
            quiet: false,
        };
        let e = finish(&stats, &spec).unwrap_err();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.kind, ExitKind::Network);
        assert_eq!(
            f.message,
            "97 ok, 3 failed (7 answered by an earlier run in o.jsonl)"
        );
    }
}
