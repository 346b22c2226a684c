//! The retry policy: how long to wait (`retry-after` headers, backoff with jitter),
//! and the rate-limit gate the workers of a batch share.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use ureq::http::header::HeaderMap;

use super::header;

/// `retry-after` values above this are capped (a CLI should not sleep for hours).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A "not before" time shared by the workers of a batch: when one of them is told to
/// slow down (429, 529, overloaded), no attempt starts anywhere until the pause is over,
/// instead of every worker hammering the gateway on its own schedule.
#[derive(Debug, Default)]
pub struct RateGate {
    not_before: Mutex<Option<Instant>>,
}

impl RateGate {
    /// Extends the pause to `until`; a pause is never shortened.
    pub fn pause_until(&self, until: Instant) {
        let mut not_before = self.lock();
        if not_before.is_none_or(|t| t < until) {
            *not_before = Some(until);
        }
    }

    /// How much of the pause is left at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.lock()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Sleeps until the pause is over (also when it is extended meanwhile), but not
    /// past `deadline`. Workers that waited then stagger their restart by up to a
    /// quarter of the pause (at most 1 s), so they do not all hit the gateway in the
    /// same instant that it asked them to slow down.
    pub fn wait(&self, deadline: Option<Instant>) {
        let started = Instant::now();
        loop {
            let now = Instant::now();
            let mut left = self.remaining(now);
            if let Some(d) = deadline {
                left = left.min(d.saturating_duration_since(now));
            }
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left);
        }
        let waited = started.elapsed();
        if !waited.is_zero() && self.remaining(Instant::now()).is_zero() {
            let stagger = restart_stagger(waited, jitter());
            let stagger = match deadline {
                Some(d) => stagger.min(d.saturating_duration_since(Instant::now())),
                None => stagger,
            };
            std::thread::sleep(stagger);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `retry-after-ms` (milliseconds), then `retry-after` (seconds or an HTTP date),
/// capped at 60 s. Negative or unparsable values fall back to backoff.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    // Capped before the conversion: a huge value must not overflow a Duration.
    let from_secs = |s: f64| {
        (s.is_finite() && s >= 0.0)
            .then(|| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())))
    };
    let delay = header(headers, "retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| from_secs(ms / 1000.0))
        .or_else(|| {
            let v = header(headers, "retry-after")?;
            match v.parse::<f64>() {
                Ok(secs) => from_secs(secs),
                Err(_) => {
                    let at = httpdate::parse_http_date(&v).ok()?;
                    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
                }
            }
        })?;
    Some(delay.min(MAX_RETRY_AFTER))
}

/// min(initial × 2^n, 8 s), less up to 25 % jitter so parallel clients spread out.
pub fn backoff(initial: Duration, retries_taken: u32) -> Duration {
    let base = initial
        .saturating_mul(2u32.saturating_pow(retries_taken))
        .min(MAX_BACKOFF);
    base.mul_f64(1.0 - 0.25 * jitter())
}

/// How long a worker that waited `waited` for a shared pause holds back before its
/// restart: `share` (in [0, 1)) of a quarter of the pause, at most 1 s in all.
pub(super) fn restart_stagger(waited: Duration, share: f64) -> Duration {
    (waited / 4).min(Duration::from_secs(1)).mul_f64(share)
}

/// A number in [0, 1) that differs between processes and calls; not cryptographic.
pub(super) fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed =
        (nanos as u64 ^ ((std::process::id() as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}
