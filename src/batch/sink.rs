//! The ordered writer: result lines go out in input order as they arrive, each in
//! one write; on a signal, finished results that wait for an earlier line are
//! salvaged into `--output` (resume matches lines by index).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

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
