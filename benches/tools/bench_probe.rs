//! Measuring helpers for benches/run.sh, std only.
//!
//!     bench_probe first-byte --runs N --pause-ms P [--marker TEXT] [--server-log PATH] -- CMD ARGS...
//!         Starts CMD N times; each time, measures from just before the spawn to the
//!         first stdout byte (or, with --marker, to the end of the first read that
//!         completes TEXT), minus P ms: the latency added on top of a server that pauses P ms
//!         before its first delta. Prints `median min max` in milliseconds.
//!         With --server-log (the mock server's --log), also measures from the moment
//!         the server wrote the first delta to the first stdout byte (wall clock, same
//!         machine), and prints its `median min max` after the first three.
//!
//!     bench_probe time --runs N [--warmup W] -- CMD ARGS...
//!         Wall time of CMD (stdout and stderr to /dev/null), the fallback when
//!         hyperfine is missing. Prints `median mean min max` in milliseconds.
//!
//! The probe itself waits as long as the command runs: benches/run.sh bounds it with
//! `timeout`, and the commands it measures are bounded themselves (the mock server
//! exits by itself, cs-msg has its idle timeout).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(split) = args.iter().position(|a| a == "--") else {
        fail("missing `-- CMD ARGS...`");
    };
    let (opts, cmd) = (&args[..split], &args[split + 1..]);
    if cmd.is_empty() {
        fail("missing CMD after --");
    }
    let mode = opts.first().map(String::as_str).unwrap_or("");
    let mut runs = 10usize;
    let mut warmup = 1usize;
    let mut pause_ms = 0f64;
    let mut marker: Option<String> = None;
    let mut server_log: Option<PathBuf> = None;
    let mut it = opts.iter().skip(1);
    while let Some(opt) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| fail(&format!("{opt} needs a value")));
        let number = || {
            value
                .parse::<f64>()
                .unwrap_or_else(|_| fail(&format!("{opt}: not a number: {value}")))
        };
        match opt.as_str() {
            "--runs" => runs = (number() as usize).max(1),
            "--warmup" => warmup = number() as usize,
            "--pause-ms" => pause_ms = number(),
            "--marker" => marker = Some(value.clone()),
            "--server-log" => server_log = Some(value.into()),
            _ => fail(&format!("unknown option {opt}")),
        }
    }
    match mode {
        "first-byte" => {
            let mut from_start = Vec::new();
            let mut from_server = Vec::new();
            for _ in 0..runs {
                let logged = server_log.as_deref().map(log_lines);
                let (start_ms, at) = first_byte(cmd, marker.as_deref());
                from_start.push(start_ms - pause_ms);
                if let (Some(log), Some(logged)) = (&server_log, logged) {
                    from_server.push(since_server_wrote(log, logged, at));
                }
            }
            let (median, min, max) = stats(&from_start).0;
            print!("{median:.3} {min:.3} {max:.3}");
            if !from_server.is_empty() {
                let (median, min, max) = stats(&from_server).0;
                print!(" {median:.3} {min:.3} {max:.3}");
            }
            println!();
        }
        "time" => {
            for _ in 0..warmup {
                wall(cmd);
            }
            let samples: Vec<f64> = (0..runs).map(|_| wall(cmd)).collect();
            let ((median, min, max), mean) = stats(&samples);
            println!("{median:.3} {mean:.3} {min:.3} {max:.3}");
        }
        _ => fail("the first argument must be first-byte or time"),
    }
}

/// ((median, min, max), mean)
fn stats(samples: &[f64]) -> ((f64, f64, f64), f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let mean = samples.iter().sum::<f64>() / n as f64;
    ((median, sorted[0], sorted[n - 1]), mean)
}

fn fail(message: &str) -> ! {
    eprintln!("bench_probe: {message}");
    std::process::exit(2);
}

fn spawn(cmd: &[String], stdout: Stdio) -> Child {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", cmd[0])))
}

fn reap(mut child: Child) {
    match child.wait() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("command failed: {status}")),
        Err(e) => fail(&format!("wait: {e}")),
    }
}

fn wall(cmd: &[String]) -> f64 {
    let started = Instant::now();
    let child = spawn(cmd, Stdio::null());
    reap(child);
    started.elapsed().as_secs_f64() * 1000.0
}

fn log_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

/// Milliseconds from the server's first-delta time for this run (line `logged` of its
/// log) to `at`. The server logs after writing the whole stream, so the line may come
/// a little after the client is done: wait for it (at most 5 s).
fn since_server_wrote(log: &Path, logged: usize, at: SystemTime) -> f64 {
    let waited = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().nth(logged) {
            let ns: u64 = line
                .trim()
                .parse()
                .unwrap_or_else(|_| fail(&format!("bad server log line {line:?}")));
            let wrote = SystemTime::UNIX_EPOCH + Duration::from_nanos(ns);
            return match at.duration_since(wrote) {
                Ok(d) => d.as_secs_f64() * 1000.0,
                Err(e) => -e.duration().as_secs_f64() * 1000.0,
            };
        }
        if waited.elapsed() > Duration::from_secs(5) {
            fail("the server logged no first-delta time");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Milliseconds from just before the spawn to the first stdout byte (or the read that
/// completes `marker`), and the wall-clock time of that read; the rest of stdout is
/// drained and the child reaped.
fn first_byte(cmd: &[String], marker: Option<&str>) -> (f64, SystemTime) {
    let started = Instant::now();
    let mut child = spawn(cmd, Stdio::piped());
    let mut stdout = child
        .stdout
        .take()
        .unwrap_or_else(|| fail("no stdout pipe"));
    let mut seen = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut at = None;
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => fail(&format!("read: {e}")),
        };
        if at.is_none() {
            let found = match marker {
                None => true,
                Some(m) => {
                    seen.extend_from_slice(&buf[..n]);
                    seen.windows(m.len()).any(|w| w == m.as_bytes())
                }
            };
            if found {
                at = Some((started.elapsed(), SystemTime::now()));
                seen = Vec::new();
            }
        }
    }
    drop(stdout);
    reap(child);
    match at {
        Some((t, wall)) => (t.as_secs_f64() * 1000.0, wall),
        None => fail("the command printed nothing (or not the marker)"),
    }
}
