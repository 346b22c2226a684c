//! Flags and environment turned into plain settings, and the one decision of what
//! this run does ([`Mode`]). No clap value is read after this; nothing here touches
//! the network. Files the flags name (`--system-file`, `--tools`, `--schema`, the key
//! file) are read here, so a bad one fails before anything else happens.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cache::Ttl;
use crate::cli::{Cli, GenKind, Thinking};
use crate::error::{ExitKind, Failure, usage};
use crate::executor::{self, Executor, Limits};
use crate::files;
use crate::generation::{self, Explicit, Generation, rules};
use crate::output::OutputMode;
use crate::tool_result::{self, ToolResult};
use crate::tools::{self, Schema};

/// What this invocation does: decided once, here, and dispatched in one `match` in
/// `run.rs`. A tool loop, when there is one, is a property of a message call.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// `--generate`: completions or the man page; nothing else is read.
    Generate(GenKind),
    ListModels,
    CountTokens,
    #[default]
    Message,
    Batch(BatchSpec),
}

/// What `--mcp` and `--mcp-tools` asked for.
#[derive(Debug, Clone, Default)]
pub struct McpSpec {
    pub commands: Vec<String>,
    /// `--mcp-tools`: offer only these.
    pub only: Option<Vec<String>>,
}

/// What `--batch`, `-j` and `--output` asked for.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    /// `-` is stdin.
    pub input: PathBuf,
    pub jobs: usize,
    /// `--output`: the results file, appended to and resumed from.
    pub results: Option<PathBuf>,
}

pub const DEFAULT_JOBS: u16 = 4;

/// The API key. Its `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Checks a key read from the environment or a file. A key with white space or
    /// control characters would be mangled in a header, or is a copy-paste accident;
    /// so is one with a byte-order mark (a file saved by an editor "with BOM"), a
    /// zero-width or other invisible character, or anything beyond printable ASCII
    /// (keys are ASCII; a curly quote or a look-alike letter came from a document).
    /// Messages name the character and where it is, never the key.
    pub fn parse(raw: &str, source: &str) -> Result<ApiKey> {
        let key = raw.trim();
        if key.is_empty() {
            return Err(Failure::new(ExitKind::Auth, format!("{source} is empty")).into());
        }
        if key.contains('\u{feff}') {
            return Err(usage(format!(
                "{source} contains a byte-order mark (U+FEFF); save the key as plain text without a BOM"
            )));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(usage(format!(
                "{source} contains white space or control characters; check how the key was pasted"
            )));
        }
        if let Some((at, c)) = key.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
            return Err(usage(format!(
                "{source} contains an invisible or non-ASCII character (U+{:04X} at character {}); keys are plain ASCII: type or copy the key again",
                u32::from(c),
                at + 1
            )));
        }
        Ok(ApiKey(key.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How the user turn is sourced; resolved into content blocks by `input.rs`.
#[derive(Debug, Clone, Default)]
pub struct InputSpec {
    pub files: Vec<PathBuf>,
    /// Read piped stdin (stdin is not a terminal and `--no-stdin` was not given).
    pub read_stdin: bool,
    pub prompt: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Base URL without a trailing slash; endpoints are appended (`/v1/messages`).
    pub base_url: String,
    pub betas: Vec<String>,
    pub max_retries: u32,
    pub connect_timeout: Duration,
    /// Longest silence while a stream is expected.
    pub idle_timeout: Duration,
    /// Wall-clock limit of the whole call, retries included, as given; see
    /// [`Network::for_transport`] for the default.
    pub timeout: Option<Duration>,
    /// First backoff delay; 0.5 s, shortened by tests through `CS_MSG_BACKOFF_MS`.
    pub backoff_initial: Duration,
    /// `--fallback-model`: the model that answers when this one is overloaded, rate
    /// limited or not found (`call.rs`).
    pub fallback_model: Option<String>,
    /// How long the end of a finished stream's body is waited for, to reuse its
    /// connection (`client::finish_body`); 50 ms, set by tests through `CS_MSG_DRAIN_MS`.
    pub drain_bound: Duration,
}

/// A call that is not streamed sends nothing until it is done, so no idle timeout can
/// catch a dead one: it gets this wall-clock limit unless `--timeout` says otherwise.
pub const NON_STREAMING_TIMEOUT: Duration = Duration::from_secs(600);

impl Network {
    /// The settings for one call: streams have no wall-clock limit unless one was
    /// given; other calls default to [`NON_STREAMING_TIMEOUT`]. Decided per call, as
    /// a `--request` body may choose the transport.
    pub fn for_transport(&self, streaming: bool) -> Network {
        Network {
            timeout: self
                .timeout
                .or((!streaming).then_some(NON_STREAMING_TIMEOUT)),
            ..self.clone()
        }
    }
}

#[derive(Debug, Default)]
pub struct Config {
    pub mode: Mode,
    pub input: InputSpec,
    /// `--messages`: prior turns to send before this one.
    pub messages_file: Option<PathBuf>,
    /// `-c`: prior turns read from, and the reply saved to, this file.
    pub conversation: Option<PathBuf>,
    /// `--request`: a whole body to start from.
    pub request_file: Option<PathBuf>,
    pub schema: Option<Schema>,
    /// `--cache`, `--cache-ttl`, `CS_MSG_CACHE`: breakpoints on the stable prefix.
    pub cache: Option<Ttl>,
    /// With `--cache`, a batch sends its first line alone; `CS_MSG_NO_WARMUP` (for
    /// benches/cache_warmup.py, which measures what that saves) sends all at once.
    pub batch_warmup: bool,
    /// `--exec`: the tools a loop runs itself (`tool_loop.rs`); `None` without any.
    pub executors: Option<Vec<Executor>>,
    /// `--max-turns`: the most requests one tool loop sends.
    pub max_turns: u32,
    /// `--tool-timeout`, and how a tool is stopped.
    pub tool_limits: Limits,
    /// `--tool-result`/`--tool-error`: answers to the history's last tool calls.
    pub tool_results: Vec<ToolResult>,
    /// `--mcp`: servers to start before the first request (`run.rs`).
    pub mcp: McpSpec,
    /// Fields given on the command line: only those override a `--request` body.
    pub explicit: Explicit,
    pub generation: Generation,
    pub network: Network,
    pub api_key: Option<ApiKey>,
    pub output_mode: OutputMode,
    pub stream: bool,
    pub dry_run: bool,
    pub show_thinking: bool,
    /// `--usage`: token counts on stderr after the answer.
    pub show_usage: bool,
    pub strict: bool,
    pub verbose: bool,
    pub quiet: bool,
    /// How long a silent stdin is waited for before the hint; 3 s, shortened by tests
    /// through `CS_MSG_STDIN_HINT_MS`.
    pub stdin_hint_after: Duration,
}

impl Config {
    /// Reads what the flags point at (`--system-file`, `--tools`, `--schema`, the key
    /// file) and checks every rule that needs no network. `stdin_is_terminal` and
    /// `env` are passed in so tests can set them.
    pub fn from_cli(
        cli: Cli,
        explicit: Explicit,
        stdin_is_terminal: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        if let Some(kind) = cli.generate {
            return Ok(Config {
                mode: Mode::Generate(kind),
                ..Config::default()
            });
        }
        let base_url = check_base_url(&cli.base_url)?;
        let mode = mode(&cli)?;
        // Before any file is read: only one of them may be stdin.
        let stdin_taken = stdin_claimed(&cli, &mode)?;

        let system = match (&cli.system, &cli.system_file) {
            (Some(s), _) => Some(json!(s)),
            (None, Some(path)) => Some(json!(files::read_text(path, "--system-file")?)),
            (None, None) => None,
        };

        let prompt = (!cli.prompt.is_empty()).then(|| cli.prompt.join(" "));
        let output_mode = if cli.schema.is_some() {
            OutputMode::Schema
        } else if cli.json {
            OutputMode::Json
        } else if cli.events {
            OutputMode::Events
        } else {
            OutputMode::Text
        };
        // --events is the raw stream: it implies streaming.
        let stream = !cli.no_stream || cli.events;

        let mut tools = cli.tools.as_deref().map(tools::read_tools).transpose()?;
        let mut tool_choice = cli.tool_choice.as_deref().map(tools::tool_choice);
        let schema = cli.schema.as_deref().map(Schema::load).transpose()?;
        if let Some(schema) = &schema {
            tools = Some(vec![schema.tool()]);
            tool_choice = Some(Schema::choice());
        }
        let thinking = cli.thinking.map(|t| match t {
            Thinking::Adaptive => rules::adaptive(),
            Thinking::Budget(n) => json!({"type": "enabled", "budget_tokens": n}),
        });
        let generation = Generation {
            model: cli.model,
            max_tokens: cli.max_tokens,
            system,
            temperature: cli.temperature,
            top_p: cli.top_p,
            top_k: cli.top_k,
            stop: cli.stop,
            metadata: cli.metadata_user_id.as_deref().map(Generation::user_id),
            tools,
            tool_choice,
            thinking,
            effort: cli.effort.map(|e| e.as_str()),
        };
        generation
            .validate(generation::Context {
                schema: schema.is_some(),
                more_tools: cli.request.is_some() || !cli.mcp.is_empty(),
            })
            .map_err(usage)?;

        let cache = cache_setting(cli.cache, cli.cache_ttl, &env)?;
        let executors = cli
            .exec
            .iter()
            .map(|e| Executor::parse(e))
            .collect::<Result<Vec<_>>>()?;
        let executors = if executors.is_empty() {
            None
        } else {
            executor::check_bound(&executors, generation.tools.as_deref().unwrap_or(&[]))?;
            Some(executors)
        };
        if cli.mcp_tools.is_some() && cli.mcp.is_empty() {
            return Err(usage(
                "--mcp-tools picks among the tools of --mcp servers: give --mcp",
            ));
        }
        let outcomes: Vec<(tool_result::Flag, &str)> = cli
            .tool_outcomes
            .iter()
            .map(|(f, v)| (*f, v.as_str()))
            .collect();
        let tool_results = tool_result::read_results(&outcomes)?;
        if !tool_results.is_empty() && cli.conversation.is_none() && cli.messages.is_none() {
            return Err(usage(
                "--tool-result/--tool-error answer the calls of a history: give -c or --messages",
            ));
        }

        let api_key = resolve_api_key(cli.api_key_file.as_deref(), &env)?;
        let ms = |name: &str, default: u64| {
            env(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        Ok(Config {
            mode,
            input: InputSpec {
                files: cli.files,
                read_stdin: !cli.no_stdin && !stdin_is_terminal && !stdin_taken,
                prompt,
            },
            messages_file: cli.messages,
            conversation: cli.conversation,
            request_file: cli.request,
            schema,
            cache,
            batch_warmup: cache.is_some() && env("CS_MSG_NO_WARMUP").is_none(),
            executors,
            max_turns: cli.max_turns,
            tool_limits: Limits::with_timeout(Duration::from_secs_f64(cli.tool_timeout)),
            tool_results,
            mcp: McpSpec {
                commands: cli.mcp,
                only: cli.mcp_tools,
            },
            explicit,
            generation,
            network: Network {
                base_url,
                betas: cli.betas,
                max_retries: cli.max_retries,
                connect_timeout: Duration::from_secs_f64(cli.connect_timeout),
                idle_timeout: Duration::from_secs_f64(cli.idle_timeout),
                timeout: cli.timeout.map(Duration::from_secs_f64),
                backoff_initial: Duration::from_millis(ms("CS_MSG_BACKOFF_MS", 500)),
                fallback_model: cli.fallback_model,
                drain_bound: Duration::from_millis(ms("CS_MSG_DRAIN_MS", 50)),
            },
            api_key,
            output_mode,
            stream,
            dry_run: cli.dry_run,
            show_thinking: cli.show_thinking,
            show_usage: cli.usage,
            strict: cli.strict,
            verbose: cli.verbose,
            quiet: cli.quiet,
            stdin_hint_after: Duration::from_millis(ms("CS_MSG_STDIN_HINT_MS", 3000)),
        })
    }

    /// The key, or exit 3 with a hint. Only called when something is to be sent.
    pub fn require_key(&self) -> Result<&ApiKey> {
        self.api_key.as_ref().ok_or_else(|| {
            Failure::new(
                ExitKind::Auth,
                "no API key: set CS_MSG_API_KEY (e.g. CS_MSG_API_KEY=$ANTHROPIC_API_KEY) or pass --api-key-file PATH",
            )
            .into()
        })
    }
}

/// `--cache-ttl` wins, then `CS_MSG_CACHE` (which turns caching on by itself), then
/// `--cache` with the API's 5 minutes. An empty `CS_MSG_CACHE` is unset.
fn cache_setting(
    switch: bool,
    ttl: Option<Ttl>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Ttl>> {
    let from_env = match env("CS_MSG_CACHE").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(Ttl::parse(&v).ok_or_else(|| {
            usage(format!(
                "CS_MSG_CACHE is '{}'; expected 5m or 1h (or unset it)",
                crate::error::sanitize(&v)
            ))
        })?),
    };
    Ok(ttl.or(from_env).or(switch.then_some(Ttl::FiveMinutes)))
}

/// The one decision of what this run does. clap's `requires` does not fire when
/// `--batch` would conflict with another flag given (`-j 2 PROMPT`), hence the check.
fn mode(cli: &Cli) -> Result<Mode> {
    if let Some(input) = &cli.batch {
        return Ok(Mode::Batch(BatchSpec {
            input: input.clone(),
            jobs: usize::from(cli.jobs.unwrap_or(DEFAULT_JOBS).max(1)),
            results: cli.output.clone(),
        }));
    }
    if cli.jobs.is_some() || cli.output.is_some() {
        return Err(usage("-j/--jobs and --output go with --batch IN.jsonl"));
    }
    Ok(if cli.list_models {
        Mode::ListModels
    } else if cli.count_tokens {
        Mode::CountTokens
    } else {
        Mode::Message
    })
}

/// Whether a flag other than `-f -` reads stdin; stdin can be read only once, so
/// two readers are refused before either reads.
fn stdin_claimed(cli: &Cli, mode: &Mode) -> Result<bool> {
    let dash = |p: &Option<PathBuf>| p.as_deref().is_some_and(files::is_stdin);
    if dash(&cli.conversation) {
        return Err(usage(
            "--conversation -: a conversation must be a file it can be saved to",
        ));
    }
    let batch_stdin = matches!(mode, Mode::Batch(spec) if files::is_stdin(&spec.input));
    let mut readers: Vec<&str> = [
        ("--batch -", batch_stdin),
        ("--request -", dash(&cli.request)),
        ("--messages -", dash(&cli.messages)),
        ("--tools -", dash(&cli.tools)),
        ("--system-file -", dash(&cli.system_file)),
        (
            "--tool-result -",
            tool_result::uses_stdin(
                &cli.tool_outcomes
                    .iter()
                    .map(|(f, v)| (*f, v.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, reads)| reads.then_some(flag))
    .collect();
    if cli.files.iter().any(|f| files::is_stdin(f)) {
        readers.push("-f -");
    }
    if readers.len() > 1 {
        return Err(usage(format!(
            "{} all read stdin; it can be read only once",
            readers.join(", ")
        )));
    }
    Ok(readers.first().is_some_and(|r| *r != "-f -"))
}

/// `--api-key-file` (or `CS_MSG_API_KEY_FILE`) when given, else `CS_MSG_API_KEY`.
/// Other providers' variables are never read: the key would leak to this gateway.
fn resolve_api_key(
    file: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<ApiKey>> {
    if let Some(path) = file {
        let what = format!("--api-key-file {}", path.display());
        let mut raw = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(files::MAX_KEY_FILE_BYTES + 1).read_to_end(&mut raw))
            .map_err(|e| {
                Failure::new(ExitKind::Auth, format!("{what}: {}", files::io_reason(&e)))
            })?;
        if raw.len() as u64 > files::MAX_KEY_FILE_BYTES {
            return Err(usage(format!("{what}: too large to be a key file")));
        }
        let raw = String::from_utf8(raw)
            .map_err(|_| usage(format!("{what}: not valid UTF-8; a key is ASCII")))?;
        warn_if_key_file_is_shared(path);
        return ApiKey::parse(&raw, &format!("--api-key-file {}", path.display())).map(Some);
    }
    match env("CS_MSG_API_KEY") {
        Some(raw) => ApiKey::parse(&raw, "CS_MSG_API_KEY").map(Some),
        None => Ok(None),
    }
}

#[cfg(unix)]
fn warn_if_key_file_is_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            crate::output::warn(&format!(
                "{} is readable by others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
}

#[cfg(not(unix))]
fn warn_if_key_file_is_shared(_path: &Path) {}

/// The key must not travel in clear text: `http://` only to a loopback host. Nor in
/// the URL: user info (`https://user:pw@host`) is refused without echoing it (it
/// would be sent to the host, and shown in every message that names the URL). A
/// `?query` or `#fragment` would swallow the `/v1/messages` appended to the base, and
/// a port outside 1–65535 is not silently replaced.
pub fn check_base_url(raw: &str) -> Result<String> {
    let trimmed = raw.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        return Err(usage(
            "--base-url contains user info (user:password@host), which is not shown here; a URL is no place for a secret: put the key in CS_MSG_API_KEY",
        ));
    }
    if trimmed.contains('#') {
        return Err(usage(format!(
            "--base-url '{raw}' must not have a #fragment"
        )));
    }
    if trimmed.contains('?') {
        return Err(usage(format!("--base-url '{raw}' must not have a ?query")));
    }
    // The port as written: the URL parser takes an out-of-range port for none.
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(_, rest)| rest),
        None => Some(authority),
    }
    .and_then(|rest| rest.rsplit_once(':'))
    .map(|(_, port)| port);
    if let Some(port) = port
        && !matches!(port.parse::<u32>(), Ok(1..=65535) if port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(usage(format!(
            "--base-url '{raw}' has port '{port}'; a port is a number from 1 to 65535"
        )));
    }
    let uri: ureq::http::Uri = trimmed
        .parse()
        .map_err(|_| usage(format!("--base-url '{raw}' is not a valid URL")))?;
    let host = uri
        .host()
        .ok_or_else(|| usage(format!("--base-url '{raw}' has no host")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => {
            return Err(usage(format!(
                "--base-url '{raw}' is plain http to a non-loopback host; the API key would travel in clear text (use https)"
            )));
        }
        _ => {
            return Err(usage(format!(
                "--base-url '{raw}' must start with https://"
            )));
        }
    }
    Ok(trimmed.to_owned())
}

/// 127.0.0.0/8, ::1 or localhost.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
