use super::*;
use clap::Parser;

fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config> {
    let mut argv = vec!["cs-msg"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv)?;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_cli(cli, Explicit::default(), true, |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
}

#[test]
fn base_url_rules() {
    assert_eq!(
        check_base_url("https://api.example.com/").unwrap(),
        "https://api.example.com"
    );
    assert!(check_base_url("http://127.0.0.1:8080").is_ok());
    assert!(check_base_url("http://localhost:1").is_ok());
    assert!(check_base_url("http://[::1]:1").is_ok());
    assert!(check_base_url("http://example.com").is_err());
    assert!(check_base_url("ftp://example.com").is_err());
    assert!(check_base_url("not a url").is_err());
}

/// The message of a refused base URL, and that it is a usage error (exit 2).
fn base_url_error(raw: &str) -> String {
    let err = check_base_url(raw).expect_err(raw);
    let failure = err.downcast_ref::<Failure>().expect("a Failure");
    assert_eq!(failure.kind, ExitKind::Usage, "{raw}");
    failure.message.clone()
}

#[test]
fn base_url_secrets_ports_queries_and_fragments() {
    for raw in [
        "https://user:s3cret@api.example.com",
        "https://sk-ant-s3cret@api.example.com/v1",
        "http://u:s3cret@127.0.0.1:8080",
        "https://:s3cret@[::1]:443",
    ] {
        let message = base_url_error(raw);
        assert_eq!(
            message,
            "--base-url contains user info (user:password@host), which is not shown here; a URL is no place for a secret: put the key in CS_MSG_API_KEY"
        );
        assert!(!message.contains("s3cret"));
    }
    // An @ in the path is not user info.
    assert!(check_base_url("https://api.example.com/team@x").is_ok());
    for (raw, message) in [
        (
            "https://api.example.com:99999",
            "--base-url 'https://api.example.com:99999' has port '99999'; a port is a number from 1 to 65535",
        ),
        (
            "http://127.0.0.1:0",
            "--base-url 'http://127.0.0.1:0' has port '0'; a port is a number from 1 to 65535",
        ),
        (
            "http://[::1]:65536/",
            "--base-url 'http://[::1]:65536/' has port '65536'; a port is a number from 1 to 65535",
        ),
        (
            "https://api.example.com:/v1",
            "--base-url 'https://api.example.com:/v1' has port ''; a port is a number from 1 to 65535",
        ),
        (
            "https://api.example.com:+443",
            "--base-url 'https://api.example.com:+443' has port '+443'; a port is a number from 1 to 65535",
        ),
        (
            "https://api.example.com/v1#frag",
            "--base-url 'https://api.example.com/v1#frag' must not have a #fragment",
        ),
        (
            "https://api.example.com#",
            "--base-url 'https://api.example.com#' must not have a #fragment",
        ),
        (
            "https://api.example.com/?key=x",
            "--base-url 'https://api.example.com/?key=x' must not have a ?query",
        ),
    ] {
        assert_eq!(base_url_error(raw), message);
    }
    for ok in [
        "https://api.example.com:443",
        "https://api.example.com:1/",
        "http://127.0.0.1:65535",
        "http://[::1]:8080/gateway",
        "https://[2001:db8::1]/",
    ] {
        assert!(check_base_url(ok).is_ok(), "{ok}");
    }
}

#[test]
fn keys_with_invisible_or_non_ascii_characters_are_refused() {
    let message = |raw: &str| {
        let err = ApiKey::parse(raw, "CS_MSG_API_KEY")
            .err()
            .unwrap_or_else(|| panic!("{raw:?} accepted"));
        let failure = err.downcast_ref::<Failure>().expect("a Failure");
        assert_eq!(failure.kind, ExitKind::Usage, "{raw:?}");
        failure.message.clone()
    };
    assert_eq!(
        message("\u{feff}sk-abc\n"),
        "CS_MSG_API_KEY contains a byte-order mark (U+FEFF); save the key as plain text without a BOM"
    );
    for (raw, found) in [
        ("sk-a\u{200b}bc", "U+200B at character 5"),
        ("sk-abc\u{2060}", "U+2060 at character 7"),
        ("sk-ab\u{ad}c", "U+00AD at character 6"),
        ("sk-\u{430}bc", "U+0430 at character 4"),
        ("\u{201c}sk-abc\u{201d}", "U+201C at character 1"),
        ("sk-abc\u{e9}", "U+00E9 at character 7"),
    ] {
        assert_eq!(
            message(raw),
            format!(
                "CS_MSG_API_KEY contains an invisible or non-ASCII character ({found}); keys are plain ASCII: type or copy the key again"
            )
        );
    }
    assert!(message("sk-a\u{a0}bc").contains("white space"));
    assert_eq!(
        ApiKey::parse("  sk-ant_A1.b~c=\n", "k").unwrap().expose(),
        "sk-ant_A1.b~c="
    );
}

#[test]
fn key_comes_only_from_our_variables() {
    let c = config(&["hi"], &[("ANTHROPIC_API_KEY", "sk-x")]).unwrap();
    assert!(c.api_key.is_none());
    let c = config(&["hi"], &[("CS_MSG_API_KEY", " sk-y\n")]).unwrap();
    assert_eq!(c.api_key.unwrap().expose(), "sk-y");
    assert!(config(&["hi"], &[("CS_MSG_API_KEY", "sk a")]).is_err());
}

#[test]
fn key_is_redacted_in_debug() {
    let c = config(&["hi"], &[("CS_MSG_API_KEY", "sk-secret")]).unwrap();
    assert!(!format!("{c:?}").contains("sk-secret"));
}

#[test]
fn timeout_defaults_depend_on_streaming() {
    let c = config(&["hi"], &[]).unwrap();
    assert_eq!(c.network.for_transport(true).timeout, None);
    assert_eq!(
        c.network.for_transport(false).timeout,
        Some(Duration::from_secs(600))
    );
    let c = config(&["--timeout", "2.5", "hi"], &[]).unwrap();
    for streaming in [true, false] {
        assert_eq!(
            c.network.for_transport(streaming).timeout,
            Some(Duration::from_millis(2500))
        );
    }
    assert!(is_loopback("127.0.0.1"));
    assert!(is_loopback("[::1]"));
    assert!(!is_loopback("api.example.com"));
}

#[test]
fn thinking_rules() {
    let c = config(&["--thinking", "adaptive", "--effort", "max", "q"], &[]).unwrap();
    assert_eq!(c.generation.thinking, Some(json!({"type": "adaptive"})));
    assert_eq!(c.generation.effort, Some("max"));
    let c = config(&["--thinking", "2000", "--max-tokens", "3000", "q"], &[]).unwrap();
    assert_eq!(
        c.generation.thinking,
        Some(json!({"type": "enabled", "budget_tokens": 2000}))
    );
    for (args, message) in [
        (
            vec!["--thinking", "5000", "--max-tokens", "5000"],
            "the budget must be below --max-tokens (5000)",
        ),
        (vec!["--thinking", "adaptive", "-t", "0.5"], "--temperature"),
        (vec!["--thinking", "adaptive", "--top-k", "5"], "--top-k"),
        (vec!["--thinking", "adaptive", "--top-p", "0.5"], "--top-p"),
        (
            vec![
                "--thinking",
                "adaptive",
                "--schema",
                "{\"type\":\"object\"}",
            ],
            "--schema",
        ),
    ] {
        let e = config(&args, &[]).unwrap_err().to_string();
        assert!(e.contains(message), "{args:?}: {e}");
    }
}

#[test]
fn stdin_is_read_once() {
    let e = config(&["--request", "-", "-f", "-"], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--request -, -f - all read stdin; it can be read only once"
    );
    assert!(config(&["-c", "-", "q"], &[]).is_err());
    let claims = |args: &[&str]| {
        let mut argv = vec!["cs-msg"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        stdin_claimed(&cli, &mode(&cli).unwrap()).unwrap()
    };
    assert!(claims(&["--messages", "-", "q"]));
    assert!(claims(&["--system-file", "-", "q"]));
    assert!(
        !claims(&["-f", "-", "q"]),
        "-f - reads stdin in the user turn itself"
    );
    assert!(!claims(&["q"]));
}

#[test]
fn tool_choice_needs_tools() {
    let e = config(&["--tool-choice", "any", "q"], &[]).unwrap_err();
    assert_eq!(e.to_string(), "--tool-choice needs --tools");
}

#[test]
fn cache_flags_and_environment() {
    let cache = |args: &[&str], env: &[(&str, &str)]| config(args, env).map(|c| c.cache);
    assert_eq!(cache(&["q"], &[]).unwrap(), None);
    assert_eq!(
        cache(&["--cache", "q"], &[]).unwrap(),
        Some(Ttl::FiveMinutes)
    );
    // A switch: the word after it is the prompt.
    let c = config(&["--cache", "1h"], &[]).unwrap();
    assert_eq!(c.cache, Some(Ttl::FiveMinutes));
    assert_eq!(c.input.prompt.as_deref(), Some("1h"));
    assert_eq!(
        cache(&["--cache-ttl", "1h", "q"], &[]).unwrap(),
        Some(Ttl::OneHour)
    );
    assert_eq!(
        cache(&["q"], &[("CS_MSG_CACHE", "1h")]).unwrap(),
        Some(Ttl::OneHour)
    );
    assert_eq!(
        cache(&["--cache", "q"], &[("CS_MSG_CACHE", "1h")]).unwrap(),
        Some(Ttl::OneHour)
    );
    assert_eq!(
        cache(&["--cache-ttl", "5m", "q"], &[("CS_MSG_CACHE", "1h")]).unwrap(),
        Some(Ttl::FiveMinutes)
    );
    assert_eq!(cache(&["q"], &[("CS_MSG_CACHE", "")]).unwrap(), None);
    let e = cache(&["q"], &[("CS_MSG_CACHE", "on")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "CS_MSG_CACHE is 'on'; expected 5m or 1h (or unset it)"
    );
    assert_eq!(
        e.downcast_ref::<Failure>().map(|f| f.kind),
        Some(ExitKind::Usage)
    );
}

#[test]
fn prompt_words_are_joined() {
    let c = config(&["a", "b  c"], &[]).unwrap();
    assert_eq!(c.input.prompt.as_deref(), Some("a b  c"));
    assert_eq!(c.output_mode, OutputMode::Text);
    assert!(c.stream);
}
