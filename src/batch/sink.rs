//! The ordered writer: result lines go out in input order as they arrive, each in
//! one write; on a signal, finished results that wait for an earlier line are
//! salvaged into `--output` (resume matches lines by index).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::error::ExitKind;
use crate::interrupt;

use super::progress::Progress;
use super::window::Window;
use super::{Msg, Outcome, lock};

pub enum Out {
    Stdout,
    /// `--output`, opened for appending.
    File(File),
}

/// Where result lines go, and those that wait for an earlier line to be written.
pub struct Sink {
    pub out: Out,
    pub pending: BTreeMap<u64, Outcome>,
}

impl Sink {
    /// One whole line, in a single write, flushed: a killed process leaves no torn
    /// line behind (and a torn last line from a crash is dropped on resume).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
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

/// With `--output`, a signal salvages the results that are complete but wait for an
/// earlier, unfinished line: they are appended out of order, so an interruption loses
/// only the requests in flight.
pub fn salvage_on_signal(sink: &Arc<Mutex<Sink>>) {
    let sink = Arc::clone(sink);
    interrupt::on_signal(move || {
        // The writer holds the lock only while writing one line.
        let mut sink = lock(&sink);
        let pending = std::mem::take(&mut sink.pending);
        for outcome in pending.into_values() {
            if let Outcome::Answered(line) | Outcome::Failed(line, _) = outcome {
                let _ = sink.write_line(&line);
            }
        }
    });
}

#[derive(Debug, Default)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    pub kinds_seen: Vec<ExitKind>,
    /// Summed over every line that got an answer.
    pub tokens: Tokens,
}

/// Token counts of one line, or summed over many.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Some answer reported usage at all; some reported cache counts.
    pub reported: bool,
    pub cache_reported: bool,
}

impl Tokens {
    /// The counts of one answer's (or one tool loop's summed) `usage`.
    pub fn of(usage: Option<&Value>) -> Tokens {
        let Some(usage) = usage.filter(|u| u.is_object()) else {
            return Tokens::default();
        };
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        let (read, write) = (
            count("cache_read_input_tokens"),
            count("cache_creation_input_tokens"),
        );
        Tokens {
            input: count("input_tokens").unwrap_or(0),
            output: count("output_tokens").unwrap_or(0),
            cache_read: read.unwrap_or(0),
            cache_write: write.unwrap_or(0),
            reported: true,
            cache_reported: read.is_some() || write.is_some(),
        }
    }

    pub fn add(&mut self, other: Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.reported |= other.reported;
        self.cache_reported |= other.cache_reported;
    }

    /// `tokens: input 1200, output 800, cache read 51000, cache write 2550 (hit ratio
    /// 93%)`; the hit ratio is the share of input tokens read from the cache, rounded
    /// down (100% only when every one was). `None` when no answer reported usage.
    pub fn summary(&self) -> Option<String> {
        if !self.reported {
            return None;
        }
        let mut s = format!("tokens: input {}, output {}", self.input, self.output);
        if self.cache_reported {
            s += &format!(
                ", cache read {}, cache write {}",
                self.cache_read, self.cache_write
            );
            let all = self.input + self.cache_read + self.cache_write;
            if all > 0 {
                let ratio = u128::from(self.cache_read) * 100 / u128::from(all);
                s += &format!(" (hit ratio {ratio}%)");
            }
        }
        Some(s)
    }
}

/// Writes outcomes in input order as they arrive, until every line has its result.
pub fn collect(
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
        stats.tokens.add(done.tokens);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_add_up_and_show_the_hit_ratio() {
        let mut sum = Tokens::default();
        assert_eq!(sum.summary(), None);
        sum.add(Tokens::of(None));
        assert_eq!(sum.summary(), None);
        sum.add(Tokens::of(Some(
            &json!({"input_tokens": 7, "output_tokens": 3}),
        )));
        assert_eq!(sum.summary().as_deref(), Some("tokens: input 7, output 3"));
        sum.add(Tokens::of(Some(
            &json!({"input_tokens": 5, "output_tokens": 1,
            "cache_creation_input_tokens": 2550, "cache_read_input_tokens": 0}),
        )));
        for _ in 0..3 {
            sum.add(Tokens::of(Some(
                &json!({"input_tokens": 396, "output_tokens": 265,
                "cache_read_input_tokens": 17000}),
            )));
        }
        assert_eq!(
            sum.summary().as_deref(),
            Some(
                "tokens: input 1200, output 799, cache read 51000, cache write 2550 (hit ratio 93%)"
            )
        );
        let zero = Tokens::of(Some(&json!({"input_tokens": 0, "output_tokens": 0,
            "cache_read_input_tokens": 0})));
        assert_eq!(
            zero.summary().as_deref(),
            Some("tokens: input 0, output 0, cache read 0, cache write 0")
        );
        // 99.9% read is not 100%.
        let most = Tokens::of(Some(
            &json!({"input_tokens": 1, "cache_read_input_tokens": 999}),
        ));
        assert!(most.summary().unwrap().ends_with("(hit ratio 99%)"));
    }
}
