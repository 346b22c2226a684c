//! Measuring helpers for benches/run.sh, std only.
//!
//!     bench_probe first-byte --runs N --pause-ms P [--marker TEXT] -- CMD ARGS...
//!         Starts CMD N times; each time, measures from just before the spawn to the
//!         first stdout byte (or, with --marker, to the end of the first read that
//!         completes TEXT), minus P ms: the latency added on top of a server that pauses P ms
//!         before its first delta. Prints `median min max` in milliseconds.
//!
//!     bench_probe time --runs N [--warmup W] -- CMD ARGS...
//!         Wall time of CMD (stdout and stderr to /dev/null), the fallback when
//!         hyperfine is missing. Prints `median mean min max` in milliseconds.
//!
//! The probe itself waits as long as the command runs: benches/run.sh bounds it with
//! `timeout`, and the commands it measures are bounded themselves (the mock server
//! exits by itself, cs-msg has its idle timeout).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

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
            _ => fail(&format!("unknown option {opt}")),
        }
    }
    let samples: Vec<f64> = match mode {
        "first-byte" => (0..runs)
            .map(|_| first_byte(cmd, marker.as_deref()) - pause_ms)
            .collect(),
        "time" => {
            for _ in 0..warmup {
                wall(cmd);
            }
            (0..runs).map(|_| wall(cmd)).collect()
        }
        _ => fail("the first argument must be first-byte or time"),
    };
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    match mode {
        "time" => println!("{median:.3} {mean:.3} {min:.3} {max:.3}"),
        _ => println!("{median:.3} {min:.3} {max:.3}"),
    }
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

/// Milliseconds from just before the spawn to the first stdout byte (or the read that
/// completes `marker`); the rest of stdout is drained and the child reaped.
fn first_byte(cmd: &[String], marker: Option<&str>) -> f64 {
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
                at = Some(started.elapsed());
                seen = Vec::new();
            }
        }
    }
    drop(stdout);
    reap(child);
    match at {
        Some(t) => t.as_secs_f64() * 1000.0,
        None => fail("the command printed nothing (or not the marker)"),
    }
}
