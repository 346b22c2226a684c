//! Completions, the man page and help: generated from the clap definitions, committed,
//! and checked here so they never drift from the binary.

use crate::common::*;

const FILES: &[(&str, &str)] = &[
    ("bash", "completions/cs-msg.bash"),
    ("zsh", "completions/_cs-msg"),
    ("fish", "completions/cs-msg.fish"),
    ("powershell", "completions/_cs-msg.ps1"),
    ("elvish", "completions/cs-msg.elv"),
    ("man", "man/cs-msg.1"),
];

/// `CS_MSG_BLESS=1 cargo test generated` rewrites the committed files.
#[test]
fn committed_completions_and_man_page_match_the_binary() {
    let bless = std::env::var_os("CS_MSG_BLESS").is_some();
    for (kind, file) in FILES {
        let mut c = cmd();
        c.args(["--generate", kind]);
        let generated = stdout_of(&run(c).success().stderr(""));
        assert!(generated.contains("cs-msg"), "{kind}");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} is outdated: run `CS_MSG_BLESS=1 cargo test generated` and commit it"
        );
    }
}

#[test]
fn generate_touches_neither_stdin_nor_the_network() {
    let mut c = cmd();
    c.args(["--generate", "bash"])
        .env("CS_MSG_BASE_URL", "http://example.com");
    run(c).success();
    let mut c = cmd();
    c.args(["--generate", "bash", "a prompt"]);
    run(c).code(2);
}

#[test]
fn man_page_has_exit_codes_environment_and_examples() {
    let mut c = cmd();
    c.args(["--generate", "man"]);
    let man = stdout_of(&run(c).success());
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH EXAMPLES",
        ".SH OPTIONS",
    ] {
        assert!(man.contains(section), "{section}");
    }
    assert!(man.contains("\\fBCS_MSG_API_KEY\\fR"));
    // Options hidden from -h still have their help text in the man page.
    assert!(man.contains("Sample only from the K most likely tokens"));
}

#[test]
fn long_help_has_examples_groups_environment_and_exit_codes() {
    let mut c = cmd();
    c.arg("--help");
    let help = stdout_of(&run(c).success());
    for needle in [
        "\nInput:\n",
        "\nGeneration:\n",
        "\nOutput:\n",
        "\nNetwork:\n",
        "Examples:\n  echo \"Explain SSE in one line\" | cs-msg -m claude-haiku-4.5\n",
        "cs-msg --json \"hi\" | jq -r '.content[0].text'",
        "cs-msg --schema person.json",
        "cs-msg -c chat.json",
        "cs-msg --batch prompts.jsonl -j 8 --output results.jsonl",
        "cs-msg -f diagram.png -f spec.pdf",
        "Environment:\n  CS_MSG_API_KEY ",
        "Exit codes:\n  0    success",
        "--top-k <K>",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in\n{help}");
    }
}

/// The rows of an epilogue section of --help (`Exit codes:`, `Environment:`): the key
/// and its text with the wrapped lines joined.
fn help_rows(help: &str, heading: &str) -> Vec<(String, String)> {
    let start = help.find(&format!("\n{heading}\n")).expect(heading) + heading.len() + 2;
    let mut rows: Vec<(String, String)> = Vec::new();
    for line in help[start..].lines().take_while(|l| !l.is_empty()) {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        match rows.last_mut() {
            Some((_, t)) if indent > 2 => {
                t.push(' ');
                t.push_str(text);
            }
            _ => {
                let (key, text) = match text.split_once("  ") {
                    Some((k, t)) => (k, t.trim_start()),
                    None => (text, ""),
                };
                rows.push((key.to_owned(), text.to_owned()));
            }
        }
    }
    rows
}

#[test]
fn long_help_lists_every_exit_code_with_its_causes() {
    let mut c = cmd();
    c.arg("--help");
    let help = stdout_of(&run(c).success());
    let rows = help_rows(&help, "Exit codes:");
    let codes: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        codes,
        ["0", "1", "2", "3", "4", "5", "6", "7", "130", "143", "129"]
    );
    let text = |code: &str| &rows.iter().find(|(k, _)| k == code).unwrap().1;
    // The causes -h and --help once left out.
    assert!(
        text("1").contains("`error` event mid-stream"),
        "{}",
        text("1")
    );
    assert!(text("1").contains("malformed"), "{}", text("1"));
    assert!(text("6").contains("`--schema` output that does not validate"));
    assert!(text("130").starts_with("interrupted by SIGINT (Ctrl-C)"));
    assert!(text("143").contains("SIGTERM"));
    assert!(text("129").contains("SIGHUP"));
    // The man page says the same.
    let mut c = cmd();
    c.args(["--generate", "man"]);
    let man = stdout_of(&run(c).success());
    for code in codes {
        assert!(man.contains(&format!(".TP\n\\fB{code}\\fR\n")), "{code}");
    }
}

/// Every variable a flag falls back to (`[env: NAME]` in --help) is in the Environment
/// table, and so in the man page, which is rendered from the same list.
#[test]
fn every_flag_environment_variable_is_documented() {
    let mut c = cmd();
    c.arg("--help");
    let help = stdout_of(&run(c).success());
    let documented: Vec<String> = help_rows(&help, "Environment:")
        .into_iter()
        .flat_map(|(names, _)| names.split(", ").map(str::to_owned).collect::<Vec<_>>())
        .collect();
    for name in [
        "CS_MSG_API_KEY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "NO_COLOR",
    ] {
        assert!(
            documented.iter().any(|d| d == name),
            "{name}: {documented:?}"
        );
    }
    let from_flags: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .map(|s| s.split(['=', ']']).next().unwrap())
        .collect();
    assert!(from_flags.len() >= 5, "{from_flags:?}");
    for name in from_flags {
        assert!(
            documented.iter().any(|d| d == name),
            "--help names {name} under a flag but not under Environment: add it to src/help.rs"
        );
    }
}

/// One screen: 40 lines, a small terminal window.
#[test]
fn short_help_fits_one_screen() {
    let mut c = cmd();
    c.arg("-h");
    let help = stdout_of(&run(c).success());
    assert!(
        help.lines().count() <= 40,
        "{} lines:\n{help}",
        help.lines().count()
    );
    assert!(help.contains("Examples:"));
    assert!(help.contains("--model"));
    assert!(!help.contains("--top-k"));
}

#[test]
fn version_names_the_package_version() {
    let mut c = cmd();
    c.arg("--version");
    let out = stdout_of(&run(c).success());
    assert!(
        out.starts_with(&format!("cs-msg {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}
