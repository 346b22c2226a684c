//! The command line, as clap definitions only. Meaning is given to these values in
//! `config/`; nothing here touches the environment beyond clap's `env` fallbacks.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cache::Ttl;
use crate::error::{ExitKind, one_line};
use crate::generation::{Explicit, rules};
use crate::output;

#[derive(Debug, Parser)]
#[command(
    name = "cs-msg",
    version = env!("CS_MSG_VERSION"),
    about = "Send one message to the claudestore Messages API and print the answer",
    // Examples, environment and exit codes: written once, in src/help.rs.
    max_term_width = 100
)]
pub struct Cli {
    /// The prompt; words are joined with single spaces
    #[arg(value_name = "PROMPT")]
    pub prompt: Vec<String>,

    // ---- Input ----
    /// Attach a file: text, image or PDF (`-` = stdin); repeatable
    #[arg(short = 'f', long = "file", value_name = "PATH", help_heading = "Input",
          value_hint = clap::ValueHint::FilePath)]
    pub files: Vec<PathBuf>,

    /// Do not read piped stdin
    #[arg(long, help_heading = "Input")]
    pub no_stdin: bool,

    /// System prompt
    #[arg(
        short = 's',
        long,
        value_name = "TEXT",
        help_heading = "Input",
        conflicts_with = "system_file"
    )]
    pub system: Option<String>,

    /// Read the system prompt from a file
    #[arg(long, value_name = "PATH", help_heading = "Input",
          value_hint = clap::ValueHint::FilePath, hide_short_help = true)]
    pub system_file: Option<PathBuf>,

    /// Prior turns: a JSON array of messages; this turn, if any, is appended
    #[arg(long, value_name = "PATH", help_heading = "Input", conflicts_with = "conversation",
          value_hint = clap::ValueHint::FilePath, hide_short_help = true)]
    pub messages: Option<PathBuf>,

    /// Chat kept in a file: its turns are sent, the reply is saved
    #[arg(short = 'c', long, value_name = "PATH", help_heading = "Input",
          value_hint = clap::ValueHint::FilePath)]
    pub conversation: Option<PathBuf>,

    /// Send a complete request body (`-` = stdin); flags given here override its fields
    #[arg(long, value_name = "PATH", help_heading = "Input",
          conflicts_with_all = ["messages", "conversation"],
          value_hint = clap::ValueHint::FilePath, hide_short_help = true)]
    pub request: Option<PathBuf>,

    // ---- Generation ----
    /// Model id, sent verbatim
    #[arg(
        short = 'm',
        long,
        env = "CS_MSG_MODEL",
        default_value = "claude-sonnet-4.6",
        value_name = "MODEL",
        value_parser = model,
        help_heading = "Generation"
    )]
    pub model: String,

    /// Maximum number of tokens to generate
    #[arg(long, env = "CS_MSG_MAX_TOKENS", default_value_t = 4096, value_name = "N",
          value_parser = max_tokens, help_heading = "Generation")]
    pub max_tokens: u32,

    /// Sampling temperature, 0.0 to 1.0
    #[arg(short = 't', long, value_name = "T", value_parser = unit_interval,
          help_heading = "Generation", hide_short_help = true)]
    pub temperature: Option<f64>,

    /// Nucleus sampling, 0.0 to 1.0
    #[arg(long, value_name = "P", value_parser = unit_interval, help_heading = "Generation", hide_short_help = true)]
    pub top_p: Option<f64>,

    /// Sample only from the K most likely tokens
    #[arg(long, value_name = "K", value_parser = top_k,
          help_heading = "Generation", hide_short_help = true)]
    pub top_k: Option<u32>,

    /// Stop when the model writes SEQ; repeatable
    #[arg(
        long = "stop",
        value_name = "SEQ",
        help_heading = "Generation",
        hide_short_help = true
    )]
    pub stop: Vec<String>,

    /// Opaque end-user id sent as metadata.user_id
    #[arg(
        long,
        value_name = "ID",
        help_heading = "Generation",
        hide_short_help = true
    )]
    pub metadata_user_id: Option<String>,

    /// Enable a beta feature (anthropic-beta header); repeatable
    #[arg(
        long = "beta",
        value_name = "NAME",
        help_heading = "Generation",
        hide_short_help = true
    )]
    pub betas: Vec<String>,

    /// Tool definitions: a JSON file holding an array of tools
    #[arg(long, value_name = "PATH", help_heading = "Generation",
          value_hint = clap::ValueHint::FilePath, hide_short_help = true)]
    pub tools: Option<PathBuf>,

    /// Which tool the model may use: auto, any, none, or a tool NAME
    #[arg(
        long,
        value_name = "CHOICE",
        help_heading = "Generation",
        hide_short_help = true
    )]
    pub tool_choice: Option<String>,

    /// Run tool NAME (defined in --tools) with COMMAND when the model calls it; repeatable
    ///
    /// The tool's input JSON is COMMAND's stdin (one line), its stdout the result.
    /// COMMAND is split into words like a shell would, but never run by one.
    #[arg(
        long = "exec",
        value_name = "NAME=COMMAND",
        help_heading = "Tools",
        hide_short_help = true
    )]
    pub exec: Vec<String>,

    /// Answer a tool call of the history's last turn: ID=TEXT, ID=@FILE or ID=- (stdin);
    /// repeatable
    #[arg(
        long = "tool-result",
        value_name = "ID=TEXT|@FILE|-",
        help_heading = "Tools",
        hide_short_help = true
    )]
    pub tool_result: Vec<String>,

    /// Like --tool-result, but the call failed (is_error: true)
    #[arg(
        long = "tool-error",
        value_name = "ID=TEXT|@FILE|-",
        help_heading = "Tools",
        hide_short_help = true
    )]
    pub tool_error: Vec<String>,

    /// Start an MCP server (COMMAND, split like --exec) and offer its tools; repeatable
    #[arg(
        long = "mcp",
        value_name = "COMMAND",
        help_heading = "Tools",
        hide_short_help = true
    )]
    pub mcp: Vec<String>,

    /// Offer only these tools of the --mcp servers (one list over all of them)
    #[arg(
        long = "mcp-tools",
        value_name = "NAME,...",
        value_delimiter = ',',
        help_heading = "Tools",
        hide_short_help = true
    )]
    pub mcp_tools: Option<Vec<String>>,

    /// The most requests one tool loop sends (--exec, --mcp)
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000), help_heading = "Tools",
          hide_short_help = true)]
    pub max_turns: u32,

    /// Seconds a tool command may run before its process group is killed
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = seconds,
          help_heading = "Tools", hide_short_help = true)]
    pub tool_timeout: f64,

    /// --tool-result and --tool-error in the order given (filled by `parse`).
    #[arg(skip)]
    pub tool_outcomes: Vec<(crate::tool_result::Flag, String)>,

    /// Print one JSON object matching this JSON Schema (file or inline)
    #[arg(long, value_name = "PATH|JSON", help_heading = "Generation",
          conflicts_with_all = ["tools", "tool_choice", "conversation", "events", "json", "exec", "mcp"])]
    pub schema: Option<String>,

    /// Extended thinking: `adaptive`, or a token budget N (at least 1024)
    #[arg(long, value_name = "adaptive|N", value_parser = thinking, help_heading = "Generation")]
    pub thinking: Option<Thinking>,

    /// How much effort the model spends (output_config.effort)
    #[arg(
        long,
        value_enum,
        value_name = "LEVEL",
        help_heading = "Generation",
        hide_short_help = true
    )]
    pub effort: Option<Effort>,

    /// Cache the stable prefix (tools, system, files, history) between calls
    #[arg(long, help_heading = "Generation", hide_short_help = true)]
    pub cache: bool,

    /// Cache lifetime: 5m or 1h; implies --cache
    #[arg(long, value_name = "5m|1h", value_parser = cache_ttl, help_heading = "Generation",
          hide_short_help = true)]
    pub cache_ttl: Option<Ttl>,

    // ---- Output ----
    /// Print the whole message object as one line of JSON
    #[arg(long, help_heading = "Output", conflicts_with = "events")]
    pub json: bool,

    /// Print every server-sent event's data as one JSON line, as it arrives
    #[arg(
        long,
        help_heading = "Output",
        conflicts_with = "no_stream",
        hide_short_help = true
    )]
    pub events: bool,

    /// Stream the answer (the default)
    #[arg(
        long,
        help_heading = "Output",
        overrides_with = "no_stream",
        hide_short_help = true
    )]
    pub stream: bool,

    /// Wait for the whole answer instead of streaming it
    #[arg(long, help_heading = "Output", overrides_with = "stream")]
    pub no_stream: bool,

    /// Count the request's input tokens instead of sending it
    #[arg(long, help_heading = "Output", conflicts_with_all = ["events", "schema", "list_models"], hide_short_help = true)]
    pub count_tokens: bool,

    /// List the available model ids, one a line
    #[arg(long, help_heading = "Output", conflicts_with_all = ["events", "schema", "dry_run"], hide_short_help = true)]
    pub list_models: bool,

    /// Print the request body that would be sent, and send nothing
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,

    /// Print the model's thinking to stderr
    #[arg(long, help_heading = "Output", hide_short_help = true)]
    pub show_thinking: bool,

    /// Print token usage to stderr after the answer
    #[arg(long, help_heading = "Output", hide_short_help = true)]
    pub usage: bool,

    /// Exit 6 instead of warning when the answer stopped early
    /// (max_tokens, refusal, pause_turn, model_context_window_exceeded)
    #[arg(long, help_heading = "Output", hide_short_help = true)]
    pub strict: bool,

    /// Print URL, model, request-id, status, retries and timings to stderr
    #[arg(short = 'v', long, help_heading = "Output")]
    pub verbose: bool,

    /// Silence warnings
    #[arg(
        short = 'q',
        long,
        help_heading = "Output",
        conflicts_with = "verbose",
        hide_short_help = true
    )]
    pub quiet: bool,

    // ---- Network ----
    /// API base URL (without /v1)
    #[arg(
        long,
        env = "CS_MSG_BASE_URL",
        // A base URL may carry a secret (a token in its path); --help never shows it.
        hide_env_values = true,
        default_value = "https://api2.claudestore.store",
        value_name = "URL",
        help_heading = "Network",
        hide_short_help = true
    )]
    pub base_url: String,

    /// Send the request once more with MODEL if the model is overloaded, rate limited or
    /// not found (after the retries, and only if nothing was printed yet)
    #[arg(long, env = "CS_MSG_FALLBACK_MODEL", value_name = "MODEL", value_parser = model,
          help_heading = "Network", hide_short_help = true)]
    pub fallback_model: Option<String>,

    /// Read the API key from a file (otherwise CS_MSG_API_KEY)
    #[arg(long, env = "CS_MSG_API_KEY_FILE", hide_env_values = true, value_name = "PATH",
          help_heading = "Network", value_hint = clap::ValueHint::FilePath, hide_short_help = true)]
    pub api_key_file: Option<PathBuf>,

    /// Retries for transient failures (429, 5xx, 529, connection errors)
    #[arg(
        long,
        env = "CS_MSG_MAX_RETRIES",
        default_value_t = 2,
        value_name = "N",
        help_heading = "Network",
        hide_short_help = true
    )]
    pub max_retries: u32,

    /// Print shell completions or the man page (for packagers)
    #[arg(long, value_enum, value_name = "KIND", hide = true,
          conflicts_with_all = ["prompt", "files", "dry_run", "list_models", "count_tokens"])]
    pub generate: Option<GenKind>,

    /// Seconds allowed to establish a connection
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = seconds,
          help_heading = "Network", hide_short_help = true)]
    pub connect_timeout: f64,

    /// Seconds of silence allowed while a stream is expected
    #[arg(long, default_value = "60", value_name = "SECS", value_parser = seconds,
          help_heading = "Network", hide_short_help = true)]
    pub idle_timeout: f64,

    /// Wall-clock limit in seconds for the whole call, retries included
    /// [default: 600 with --no-stream, none when streaming]
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Network", hide_short_help = true)]
    pub timeout: Option<f64>,

    // ---- Batch ----
    /// Answer every line of a JSONL file in parallel (`-` = stdin)
    ///
    /// Each line is a JSON string (the prompt) or an object with "prompt", "id" and request
    /// fields; one JSON result line per input line, in input order.
    #[arg(long, value_name = "IN.jsonl", help_heading = "Batch",
          conflicts_with_all = ["prompt", "events", "dry_run", "show_thinking", "usage",
                                "tool_result", "tool_error",
                                "conversation", "request", "count_tokens", "list_models"],
          value_hint = clap::ValueHint::FilePath)]
    pub batch: Option<PathBuf>,

    /// Requests in flight at once with --batch [default: 4]
    #[arg(short = 'j', long, value_name = "N", requires = "batch",
          value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Batch",
          hide_short_help = true)]
    pub jobs: Option<u16>,

    /// Append the results to OUT.jsonl instead of stdout; a re-run skips the lines
    /// already answered there (resume)
    #[arg(long, value_name = "OUT.jsonl", requires = "batch", help_heading = "Batch",
          value_hint = clap::ValueHint::FilePath, hide_short_help = true)]
    pub output: Option<PathBuf>,
}

/// The command, with the help epilogues (examples, environment, exit codes) only when
/// help may be printed: rendering them costs every other run its start-up time.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let asks_for_help = std::env::args_os().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == "--help" || (a.starts_with('-') && !a.starts_with("--") && a.contains('h'))
    });
    if asks_for_help {
        cmd.after_help(crate::help::short_help())
            .after_long_help(crate::help::long_help())
    } else {
        cmd
    }
}

/// Parses the command line. `--help` and `--version` print and exit here; a usage
/// error is one line like every other error (clap's first line, and its tip), exit 2.
pub fn parse() -> Result<(Cli, Explicit), std::process::ExitCode> {
    let matches = command().try_get_matches().map_err(usage_error)?;
    let explicit = Explicit::from_args(|id| {
        matches.try_contains_id(id).unwrap_or(false)
            && matches.value_source(id) == Some(ValueSource::CommandLine)
    });
    let mut cli = Cli::from_arg_matches(&matches).map_err(usage_error)?;
    cli.tool_outcomes = in_order(&matches);
    Ok((cli, explicit))
}

/// `--tool-result` and `--tool-error` values in command-line order: the results
/// go into the user turn in the order given.
fn in_order(matches: &clap::ArgMatches) -> Vec<(crate::tool_result::Flag, String)> {
    use crate::tool_result::Flag;
    let mut all: Vec<(usize, Flag, String)> = Vec::new();
    for (id, flag) in [("tool_result", Flag::Result), ("tool_error", Flag::Error)] {
        let values = matches.get_many::<String>(id).into_iter().flatten();
        let indices = matches.indices_of(id).into_iter().flatten();
        all.extend(indices.zip(values).map(|(i, v)| (i, flag, v.clone())));
    }
    all.sort_by_key(|(i, _, _)| *i);
    all.into_iter().map(|(_, f, v)| (f, v)).collect()
}

fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind::*;
    if matches!(
        e.kind(),
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Keep what helps fix the command: clap's tip and the possible values.
    let extra: String = lines
        .filter_map(|l| {
            l.strip_prefix("tip: ")
                .or_else(|| l.strip_prefix('[')?.strip_suffix(']'))
        })
        .map(|t| format!(" ({t})"))
        .collect();
    output::error(&one_line(&format!("{first}{extra}; see cs-msg --help")));
    std::process::ExitCode::from(ExitKind::Usage.code())
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GenKind {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
    Man,
}

/// `--thinking`: adaptive, or enabled with a token budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    Adaptive,
    Budget(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Effort {
    Low,
    Medium,
    High,
    Max,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Max => "max",
        }
    }
}

// The value parsers apply the rules batch lines get too (generation.rs), so the same
// bad value is refused with the same message in both forms.

fn whole_number(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a whole number"))
}

fn model(s: &str) -> Result<String, String> {
    rules::model(s)
}

fn max_tokens(s: &str) -> Result<u32, String> {
    rules::max_tokens(whole_number(s)?)
}

fn top_k(s: &str) -> Result<u32, String> {
    rules::top_k(whole_number(s)?)
}

fn thinking(s: &str) -> Result<Thinking, String> {
    if s == "adaptive" {
        return Ok(Thinking::Adaptive);
    }
    let n = s
        .parse::<u32>()
        .map_err(|_| format!("expected `adaptive` or a token budget, not '{s}'"))?;
    rules::thinking_budget(u64::from(n))?;
    Ok(Thinking::Budget(n))
}

fn cache_ttl(s: &str) -> Result<Ttl, String> {
    Ttl::parse(s).ok_or_else(|| format!("expected 5m or 1h, not '{s}'"))
}

fn unit_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    rules::unit_interval(v)
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 1e9 {
        Ok(v)
    } else {
        Err(format!("{s} is not a positive number of seconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::Field;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_field_names_real_argument_ids() {
        let cmd = Cli::command();
        for field in Field::ALL {
            for id in field.arg_ids() {
                assert!(
                    cmd.get_arguments().any(|a| a.get_id() == *id),
                    "{field:?}: no argument with id {id}"
                );
            }
        }
    }

    #[test]
    fn value_parsers() {
        assert_eq!(unit_interval("0.5"), Ok(0.5));
        assert!(unit_interval("1.5").is_err());
        assert!(unit_interval("x").is_err());
        assert_eq!(seconds("0.25"), Ok(0.25));
        assert!(seconds("0").is_err());
        assert!(seconds("inf").is_err());
        assert_eq!(thinking("adaptive"), Ok(Thinking::Adaptive));
        assert_eq!(thinking("2048"), Ok(Thinking::Budget(2048)));
        assert!(thinking("100").is_err());
        assert!(thinking("lots").is_err());
        assert_eq!(cache_ttl("1h"), Ok(Ttl::OneHour));
        assert_eq!(cache_ttl("2h"), Err("expected 5m or 1h, not '2h'".into()));
    }
}
