//! The one source of the examples, the environment table and the exit-code table, and
//! their renderings: `-h` and `--help` (plain text), the man page (roff) and the README's
//! tables (markdown; a test below holds README.md to them).
//!
//! The texts mark `code` with backticks, as the flags' help in src/cli.rs does: plain
//! text and markdown keep them, roff sets the code in bold.

use crate::error::ExitKind;

/// Where an example is shown. Each place shows its own examples and those of the places
/// before it: everything under -h is under --help too, and the man page has them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shown {
    /// `-h`: the pipeline basics, few enough that -h fits one screen.
    ShortHelp,
    /// `--help`: every pipeline use.
    LongHelp,
    /// The man page only.
    Man,
}

#[derive(Debug)]
pub struct Example {
    pub shown: Shown,
    /// One shell command line.
    pub command: &'static str,
}

const fn example(shown: Shown, command: &'static str) -> Example {
    Example { shown, command }
}

pub const EXAMPLES: &[Example] = &[
    example(
        Shown::ShortHelp,
        r#"echo "Explain SSE in one line" | cs-msg -m claude-haiku-4.5"#,
    ),
    example(
        Shown::ShortHelp,
        r#"git diff | cs-msg -s "Write a commit message" --max-tokens 200"#,
    ),
    example(
        Shown::ShortHelp,
        r#"cs-msg -f notes.md -f todo.txt "What is missing from the todo list?""#,
    ),
    example(
        Shown::ShortHelp,
        r#"cs-msg --json "hi" | jq -r '.content[0].text'"#,
    ),
    example(
        Shown::LongHelp,
        r#"cs-msg -f diagram.png -f spec.pdf "Do these agree?""#,
    ),
    example(
        Shown::LongHelp,
        r#"cs-msg --schema person.json "Ada Lovelace, born 1815 in London" | jq .born"#,
    ),
    example(Shown::LongHelp, r#"cs-msg -c chat.json "And in French?""#),
    example(
        Shown::LongHelp,
        "cs-msg --batch prompts.jsonl -j 8 --output results.jsonl",
    ),
    example(
        Shown::LongHelp,
        r#"cs-msg --dry-run "hi" > req.json && cs-msg --request req.json -t 0.2"#,
    ),
    example(
        Shown::Man,
        r#"CS_MSG_API_KEY=$ANTHROPIC_API_KEY cs-msg "hi""#,
    ),
];

/// A row of the environment table: variables that mean one thing together.
#[derive(Debug)]
pub struct EnvVar {
    pub names: &'static [&'static str],
    /// Lower case, no final period, `code` in backticks.
    pub meaning: &'static str,
}

/// Every variable a user may set. A flag's `env = ...` in src/cli.rs must have its row
/// here (tests/cli/generated.rs checks --help for it); the variables only tests set
/// (`CS_MSG_BACKOFF_MS`, ...) are in the README's Development section instead.
pub const ENVIRONMENT: &[EnvVar] = &[
    EnvVar {
        names: &["CS_MSG_API_KEY"],
        meaning: "the API key (there is no flag for it: arguments show in `ps`); `ANTHROPIC_API_KEY` is never read",
    },
    EnvVar {
        names: &["CS_MSG_API_KEY_FILE"],
        meaning: "a file holding the key, like `--api-key-file`",
    },
    EnvVar {
        names: &[
            "CS_MSG_MODEL",
            "CS_MSG_BASE_URL",
            "CS_MSG_MAX_TOKENS",
            "CS_MSG_MAX_RETRIES",
        ],
        meaning: "defaults for the flags of the same name",
    },
    EnvVar {
        names: &["CS_MSG_FALLBACK_MODEL"],
        meaning: "the model that answers instead when the model is overloaded, rate limited or not found, like `--fallback-model`",
    },
    EnvVar {
        names: &["CS_MSG_CACHE"],
        meaning: "`5m` or `1h`: prompt caching on, with that lifetime, as `--cache-ttl` (which wins); empty is unset",
    },
    EnvVar {
        names: &["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"],
        meaning: "the proxy: the first one set, also in lower case; a loopback base URL is always reached directly",
    },
    EnvVar {
        names: &["NO_PROXY"],
        meaning: "hosts reached without the proxy",
    },
    EnvVar {
        names: &["SSL_CERT_FILE", "SSL_CERT_DIR"],
        meaning: "on Linux, CA certificates to trust instead of the system store: a PEM bundle, directories separated by `:`",
    },
    EnvVar {
        names: &["NO_COLOR", "FORCE_COLOR"],
        meaning: "colour on stderr, which is otherwise used only on a terminal: `NO_COLOR` turns it off, `FORCE_COLOR` on (any value but empty or `0`)",
    },
    EnvVar {
        names: &["CI"],
        meaning: "when set and not empty, no spinner on stderr",
    },
];

/// A row of the exit-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRow {
    pub code: u8,
    /// Lower case, no final period, `code` in backticks.
    pub meaning: &'static str,
}

const SUCCESS: ExitRow = ExitRow {
    code: 0,
    meaning: "success (also when stdout is closed early, as in `cs-msg … | head -1`)",
};

/// Exit statuses no error of ours produces: a shell reports 128 + N for a process that
/// died of signal N. SIGINT (130) is [`ExitKind::Interrupted`].
const SIGNALS: &[ExitRow] = &[
    ExitRow {
        code: 143,
        meaning: "terminated by SIGTERM, with the same cleanup as SIGINT",
    },
    ExitRow {
        code: 129,
        meaning: "hung up (SIGHUP), with the same cleanup as SIGINT",
    },
];

/// The exit-code table: success, every [`ExitKind`], then the other signals.
pub fn exit_rows() -> Vec<ExitRow> {
    let kinds = ExitKind::ALL.iter().map(|&k| ExitRow {
        code: k.code(),
        meaning: k.describe(),
    });
    std::iter::once(SUCCESS)
        .chain(kinds)
        .chain(SIGNALS.iter().copied())
        .collect()
}

// ---- Plain text: -h and --help ----

/// Help text is wrapped here, narrower than clap's 100 columns, so clap leaves it as is.
const WIDTH: usize = 80;
const ENV_COLUMN: usize = 23;
const EXIT_COLUMN: usize = 7;

/// The epilogue of `-h`: the basic examples.
pub fn short_help() -> String {
    examples_plain(Shown::ShortHelp)
}

/// The epilogue of `--help`: examples, environment and exit codes.
pub fn long_help() -> String {
    let mut out = examples_plain(Shown::LongHelp);
    out.push_str("\n\nEnvironment:");
    for var in ENVIRONMENT {
        let names = var.names.join(", ");
        out.push_str(&row_plain(&names, var.meaning, ENV_COLUMN));
    }
    out.push_str("\n\nExit codes:");
    for row in exit_rows() {
        out.push_str(&row_plain(&row.code.to_string(), row.meaning, EXIT_COLUMN));
    }
    out
}

fn examples_plain(upto: Shown) -> String {
    let mut out = String::from("Examples:");
    for e in EXAMPLES.iter().filter(|e| e.shown <= upto) {
        out.push_str("\n  ");
        out.push_str(e.command);
    }
    out
}

/// One table row: the key indented by two, the text from `column` on, wrapped; a key
/// too wide for its column gets a line of its own.
fn row_plain(key: &str, text: &str, column: usize) -> String {
    let mut out = String::new();
    let mut lines = wrap(text, WIDTH - column).into_iter();
    let pad = " ".repeat(column);
    if key.len() + 4 <= column {
        let first = lines.next().unwrap_or_default();
        out.push_str(&format!("\n  {key:<w$}{first}", w = column - 2));
    } else {
        for line in wrap(key, WIDTH - 2) {
            out.push_str(&format!("\n  {line}"));
        }
    }
    for line in lines {
        out.push_str(&format!("\n{pad}{line}"));
    }
    out
}

/// Greedy word wrap; a word longer than `width` stands alone on its line.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

// ---- roff: the man page ----

pub fn man_environment() -> String {
    let mut out = String::from(".SH ENVIRONMENT\n");
    for var in ENVIRONMENT {
        let names: Vec<String> = var
            .names
            .iter()
            .map(|n| format!("\\fB{}\\fR", roff_escape(n)))
            .collect();
        out.push_str(&format!(
            ".TP\n{}\n{}\n",
            names.join(", "),
            roff_sentence(var.meaning)
        ));
    }
    out
}

pub fn man_exit_status() -> String {
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for row in exit_rows() {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            row.code,
            roff_sentence(row.meaning)
        ));
    }
    out
}

pub fn man_examples() -> String {
    let mut out = String::from(".SH EXAMPLES\n.nf\n");
    for e in EXAMPLES {
        out.push_str(&roff_line(&roff_escape(e.command)));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// A table text as a sentence: capital first letter, final period, code in bold.
fn roff_sentence(text: &str) -> String {
    let mut chars = text.chars();
    let capital: String = chars
        .next()
        .into_iter()
        .flat_map(char::to_uppercase)
        .collect();
    let mut out = String::new();
    for (i, part) in format!("{capital}{}.", chars.as_str())
        .split('`')
        .enumerate()
    {
        let part = roff_escape(part);
        // Odd parts are inside backticks.
        if i % 2 == 1 {
            out.push_str(&format!("\\fB{part}\\fR"));
        } else {
            out.push_str(&part);
        }
    }
    roff_line(&out)
}

/// Backslashes, hyphens and apostrophes escaped, so that they print as typed (a plain
/// `-` or `'` may become typographic, which breaks copy and paste of a command).
fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\(aq")
}

/// A line that starts with `.` or `'` would be read as a request.
fn roff_line(line: &str) -> String {
    if line.starts_with(['.', '\'']) {
        format!("\\&{line}")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

    /// The README's tables in markdown: a header, then one row per entry.
    fn markdown_environment() -> Vec<String> {
        let mut rows = vec!["| variable | meaning |".to_owned(), "|---|---|".to_owned()];
        for var in ENVIRONMENT {
            let names: Vec<String> = var.names.iter().map(|n| format!("`{n}`")).collect();
            rows.push(markdown_row(&names.join(", "), var.meaning));
        }
        rows
    }

    fn markdown_exit_codes() -> Vec<String> {
        let mut rows = vec!["| code | meaning |".to_owned(), "|---|---|".to_owned()];
        for row in exit_rows() {
            rows.push(markdown_row(&row.code.to_string(), row.meaning));
        }
        rows
    }

    fn markdown_row(key: &str, text: &str) -> String {
        format!("| {key} | {} |", text.replace('|', "\\|"))
    }

    /// The table under `heading`: its lines from the first `|` line to the next line
    /// that is not one, with their line numbers (from 1).
    fn readme_table<'a>(readme: &'a str, heading: &str) -> Vec<(usize, &'a str)> {
        let mut lines = readme.lines().enumerate();
        let found = lines.by_ref().any(|(_, l)| l.trim() == heading);
        assert!(found, "README.md has no `{heading}`");
        lines
            .skip_while(|(_, l)| !l.starts_with('|'))
            .take_while(|(_, l)| l.starts_with('|'))
            .map(|(i, l)| (i + 1, l))
            .collect()
    }

    /// Compares row by row; `CS_MSG_BLESS=1 cargo test readme_tables` rewrites the table.
    fn check(heading: &str, expected: Vec<String>) {
        let readme = std::fs::read_to_string(README).unwrap();
        let table = readme_table(&readme, heading);
        if std::env::var_os("CS_MSG_BLESS").is_some() && !table.is_empty() {
            let first = table[0].0 - 1;
            let mut lines: Vec<&str> = readme.lines().collect();
            lines.splice(
                first..first + table.len(),
                expected.iter().map(String::as_str),
            );
            std::fs::write(README, lines.join("\n") + "\n").unwrap();
            return;
        }
        let fix = "edit src/help.rs or src/error.rs, then run \
                   `CS_MSG_BLESS=1 cargo test readme_tables`";
        for (i, want) in expected.iter().enumerate() {
            match table.get(i) {
                Some((n, got)) => assert_eq!(
                    got, want,
                    "README.md:{n} (`{heading}`) differs from the help text; {fix}"
                ),
                None => panic!("README.md `{heading}` lacks the row {want:?}; {fix}"),
            }
        }
        if let Some((n, extra)) = table.get(expected.len()) {
            panic!("README.md:{n} `{extra}` is not in the help text; {fix}");
        }
    }

    #[test]
    fn readme_tables_match_the_help() {
        check("### Environment", markdown_environment());
        check("### Exit codes", markdown_exit_codes());
    }

    #[test]
    fn readme_table_is_found_between_text() {
        let text =
            "# A\n| no |\n### T\n\nIntro.\n\n| a | b |\n|---|---|\n| 1 | x |\n\nAfter.\n| z |\n";
        assert_eq!(
            readme_table(text, "### T"),
            vec![(7, "| a | b |"), (8, "|---|---|"), (9, "| 1 | x |")]
        );
    }

    #[test]
    fn exit_rows_follow_the_kinds() {
        let codes: Vec<u8> = exit_rows().iter().map(|r| r.code).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 130, 143, 129]);
        for row in exit_rows() {
            assert!(!row.meaning.ends_with('.'), "{row:?}");
            assert!(row.meaning.starts_with(char::is_lowercase), "{row:?}");
        }
    }

    #[test]
    fn plain_rows_wrap_under_their_column() {
        let row = row_plain("1", &"word ".repeat(30), EXIT_COLUMN);
        let lines: Vec<&str> = row.lines().skip(1).collect();
        assert!(lines.len() > 1);
        assert!(lines[0].starts_with("  1    word"));
        for line in &lines {
            assert!(line.len() <= WIDTH, "{line:?}");
        }
        for line in &lines[1..] {
            assert!(line.starts_with("       word"), "{line:?}");
        }
        assert_eq!(
            row_plain("A_VERY_LONG_NAME, ANOTHER", "text", ENV_COLUMN),
            format!(
                "\n  A_VERY_LONG_NAME, ANOTHER\n{}text",
                " ".repeat(ENV_COLUMN)
            )
        );
        assert_eq!(
            row_plain("CI", "`x` y", ENV_COLUMN),
            format!("\n  CI{}`x` y", " ".repeat(19))
        );
    }

    #[test]
    fn roff_escapes_and_bolds_code() {
        assert_eq!(roff_escape("jq -r '.a'"), "jq \\-r \\(aq.a\\(aq");
        assert_eq!(
            roff_sentence("with `--strict` or `a\\b`"),
            "With \\fB\\-\\-strict\\fR or \\fBa\\eb\\fR."
        );
        assert_eq!(roff_line(".x"), "\\&.x");
        assert_eq!(roff_line("'x"), "\\&'x");
    }

    #[test]
    fn every_place_has_examples_and_each_shows_more() {
        let count = |upto| EXAMPLES.iter().filter(|e| e.shown <= upto).count();
        assert!(count(Shown::ShortHelp) >= 3);
        assert!(count(Shown::ShortHelp) < count(Shown::LongHelp));
        assert!(count(Shown::LongHelp) < count(Shown::Man));
    }
}
