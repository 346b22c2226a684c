//! The progress line on stderr (only on a terminal): counts, rate and ETA.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::sink::Stats;

/// Non-blank lines in the input file, for the progress line's total and ETA. `None`
/// when the file cannot be read twice (the batch reports that itself).
pub fn count_lines(path: &Path) -> Option<u64> {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path).ok()?);
    let mut buf = Vec::new();
    let mut count = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).ok()? == 0 {
            return Some(count);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            count += 1;
        }
    }
}

/// One status line on stderr, redrawn in place at most every 200 ms, only when stderr
/// is a terminal. Hand-written rather than a progress-bar crate: it is one line of
/// counts, and the crate would be the binary's biggest dependency after ureq.
pub struct Progress {
    enabled: bool,
    total: Option<u64>,
    started: Instant,
    last_drawn: Option<Instant>,
    /// Lines answered by an earlier run (they do not count towards the rate).
    already: u64,
    drawn: bool,
}

impl Progress {
    pub fn new(enabled: bool, total: Option<u64>, already: u64) -> Progress {
        Progress {
            enabled,
            total,
            started: Instant::now(),
            last_drawn: None,
            already,
            drawn: false,
        }
    }

    pub fn update(&mut self, stats: &Stats) {
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let line = progress_line(stats, self.total, self.already, self.started.elapsed());
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[2Kcs-msg: {line}");
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// `120/200 done, 3 failed, 7.9/s, ETA 10 s`.
fn progress_line(stats: &Stats, total: Option<u64>, already: u64, elapsed: Duration) -> String {
    let done = stats.ok + stats.failed + stats.skipped;
    let answered_now = (done.saturating_sub(already)) as f64;
    let rate = answered_now / elapsed.as_secs_f64().max(0.001);
    let mut line = match total {
        Some(t) => format!("{done}/{t} done"),
        None => format!("{done} done"),
    };
    line += &format!(", {} failed, {rate:.1}/s", stats.failed);
    if let Some(t) = total
        && rate > 0.0
    {
        let eta = t.saturating_sub(done) as f64 / rate;
        line += &format!(", ETA {}", human_duration(eta));
    }
    line
}

fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let stats = Stats {
            ok: 90,
            failed: 3,
            skipped: 7,
            kinds_seen: Vec::new(),
            ..Stats::default()
        };
        assert_eq!(
            progress_line(&stats, Some(200), 7, Duration::from_secs(10)),
            "100/200 done, 3 failed, 9.3/s, ETA 11 s"
        );
        assert_eq!(
            progress_line(&stats, None, 0, Duration::from_secs(10)),
            "100 done, 3 failed, 10.0/s"
        );
        assert_eq!(human_duration(3725.0), "1h02m");
        assert_eq!(human_duration(75.0), "1m15s");
    }
}
