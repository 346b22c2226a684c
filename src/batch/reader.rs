//! The reader thread: input lines parsed and handed to the workers, in order, never
//! more than the window ahead of the writer; lines answered by an earlier run are
//! passed over.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::sync::mpsc::{Sender, SyncSender};

use serde_json::Value;

use crate::error::{ExitKind, Failure, usage};
use crate::files::{self, io_reason};

use super::sink::Tokens;
use super::window::Window;
use super::worker::error_line;
use super::{Done, Job, Msg, Outcome, line};

pub fn read(
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
        // Through a limit while it is read: a line with no end must not fill memory.
        let limit = files::MAX_INPUT_BYTES + 1;
        match input.by_ref().take(limit).read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let e = usage(format!("--batch {label}: {}", io_reason(&e)));
                let _ = results.send(Msg::Fatal(e));
                return;
            }
        }
        line_no += 1;
        if buf.len() as u64 > files::MAX_INPUT_BYTES {
            let e = usage(format!(
                "--batch {label}: line {line_no} is longer than {} (the most one input may hold)",
                files::human_size(files::MAX_INPUT_BYTES)
            ));
            let _ = results.send(Msg::Fatal(e));
            return;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !window.admit(index) {
            return;
        }
        let job = line::parse(&buf)
            .and_then(|line| Ok((line::id(&line)?, line)))
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
                tokens: Tokens::default(),
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
                    tokens: Tokens::default(),
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
