//! A worker thread: one line at a time, through the one call path (`call.rs`) and
//! the one set of answer checks (`answer.rs`), into its result line.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};

use serde_json::{Map, Value, json};

use crate::answer::{self, Checks};
use crate::error::{ExitKind, Failure, one_line};
use crate::output::{OutputMode, Writer};
use crate::tool_loop;

use super::line::Line;
use super::sink::Tokens;
use super::warmup::Lead;
use super::{Done, Job, Msg, Outcome, Shared, lock};

pub fn work(shared: &Shared, jobs: &Mutex<Receiver<Job>>, results: &Sender<Msg>) {
    loop {
        // The lead is claimed with the queue locked: the first line taken leads.
        let (job, lead) = {
            let jobs = lock(jobs);
            match jobs.recv() {
                Ok(job) => (job, shared.warmup.claim()),
                Err(_) => return,
            }
        };
        if shared.window.is_stopped() {
            return;
        }
        // A bug must cost one line, not the batch: without a result for this index
        // the writer would wait for it forever.
        let (outcome, tokens) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(shared, &job, lead)))
                .unwrap_or_else(|_| {
                    let failure =
                        Failure::new(ExitKind::Api, "internal error while answering this line");
                    let (bytes, kind) = error_line(&job.id, job.index, &failure);
                    (Outcome::Failed(bytes, kind), Tokens::default())
                });
        let done = Done {
            index: job.index,
            outcome,
            tokens,
        };
        if results.send(Msg::Done(done)).is_err() {
            return;
        }
    }
}

/// Sends one line's request and describes the outcome as its result line, with the
/// tokens its answer used. `lead`: this is the first line of a warm-up (`warmup.rs`);
/// dropping it, however this returns, lets the others go.
fn answer(shared: &Shared, job: &Job, lead: Option<Lead<'_>>) -> (Outcome, Tokens) {
    let failed = |failure: &Failure| {
        let (bytes, kind) = error_line(&job.id, job.index, failure);
        (Outcome::Failed(bytes, kind), Tokens::default())
    };
    let config = &shared.template.config;
    let request =
        Line::from_value(job.line.clone()).and_then(|line| line.request(&shared.template));
    let (body, cache) = match request {
        Ok(request) => request,
        Err(message) => {
            return failed(&Failure::new(
                ExitKind::Usage,
                format!("line {}: {message}", job.line_no),
            ));
        }
    };
    if lead.is_none() {
        shared.warmup.wait();
    }
    if let Some(first) = shared.auth_failure.get() {
        return failed(&Failure::new(
            ExitKind::Auth,
            format!("not sent: an earlier request failed authentication ({first})"),
        ));
    }
    let mut began = || {
        if let Some(lead) = &lead {
            lead.open();
        }
    };
    // Nothing is printed while a line is answered: the result line carries it.
    let mut writer = Writer::new(std::io::sink(), OutputMode::Collect, false);
    let mut turns = None;
    let mut tokens = Tokens::default();
    // Each line runs its own loop, when there are tools, with the same executors.
    let tools = shared.template.tools.as_ref();
    let options = tool_loop::Options {
        keep_text: true,
        verbose: config.verbose,
        cache,
    };
    let message = tool_loop::answer(
        &shared.client,
        tools,
        body.clone(),
        &mut writer,
        options,
        &mut began,
    )
    .and_then(|exchange| {
        turns = tools.map(|_| exchange.requests);
        tokens = Tokens::of(Some(&exchange.usage));
        match exchange.pending_failure() {
            Some(failure) => Err(failure.into()),
            None => Ok(exchange.message),
        }
    });
    let checked = message.and_then(|message| {
        answer::check(
            message,
            &body,
            Checks {
                strict: config.strict,
                schema: config.schema.as_ref(),
            },
        )
    });
    let checked = match checked {
        Ok(checked) => checked,
        Err(e) => {
            let failure = Failure::of(&e);
            if failure.api.as_ref().and_then(|a| a.status) == Some(401) {
                let _ = shared.auth_failure.set(failure.message.clone());
            }
            if config.cache.is_some()
                && let Some(api) = &failure.api
                && crate::cache::is_rejection(api.status, &api.message)
            {
                shared.cache_refused.store(true, Ordering::Relaxed);
            }
            let (outcome, _) = failed(&failure);
            return (outcome, tokens);
        }
    };
    let mut line = Map::new();
    line.insert("id".into(), job.id.clone());
    line.insert("index".into(), json!(job.index));
    match checked.object {
        Some(object) => line.insert("object".into(), object),
        None => line.insert("message".into(), checked.message),
    };
    if let Some(n) = turns {
        line.insert("turns".into(), json!(n));
    }
    (Outcome::Answered(to_line(&Value::Object(line))), tokens)
}

/// `{"id":…,"index":…,"error":{"type":…,"message":…,"status":…,"request_id":…}}`.
pub fn error_line(id: &Value, index: u64, failure: &Failure) -> (Vec<u8>, ExitKind) {
    let error = match &failure.api {
        Some(api) => json!({
            "type": api.error_type.clone().unwrap_or_else(|| default_type(failure.kind).into()),
            "message": one_line(&api.message),
            "status": api.status,
            "request_id": api.request_id,
        }),
        None => json!({
            "type": default_type(failure.kind),
            "message": failure.message,
            "status": null,
            "request_id": null,
        }),
    };
    let line = json!({"id": id, "index": index, "error": error});
    (to_line(&line), failure.kind)
}

/// The `error.type` of a failure that did not come from the API.
fn default_type(kind: ExitKind) -> &'static str {
    match kind {
        ExitKind::Usage => "invalid_input",
        ExitKind::Auth => "authentication_error",
        ExitKind::RateLimited => "rate_limit_error",
        ExitKind::Network => "network_error",
        ExitKind::Unusable => "unusable_answer",
        ExitKind::ToolsPending => "tool_calls_pending",
        _ => "api_error",
    }
}

fn to_line(v: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its keys are strings.
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_have_a_fixed_shape() {
        let f = Failure::new(ExitKind::Network, "could not connect");
        let (line, kind) = error_line(&json!("x"), 4, &f);
        assert_eq!(kind, ExitKind::Network);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"id\":\"x\",\"index\":4,\"error\":{\"type\":\"network_error\",\"message\":\"could not connect\",\"status\":null,\"request_id\":null}}\n"
        );
        let api = crate::error::ApiError::from_body(
            Some(529),
            br#"{"error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some("req_9".into()),
        );
        let (line, kind) = error_line(
            &Value::Null,
            0,
            &api.into_failure().with_suffix(" (after 2 retries)"),
        );
        assert_eq!(kind, ExitKind::RateLimited);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"id\":null,\"index\":0,\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\",\"status\":529,\"request_id\":\"req_9\"}}\n"
        );
    }
}
