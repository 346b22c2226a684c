//! The cache warm-up (`--batch` with `--cache`): the first line is sent alone, and the
//! others wait until its answer has begun. By then the server has written the shared
//! prefix (tools, system, `-f` files) to the cache, so the other lines read it instead
//! of each writing it again, `-j` times in parallel, at 1.25× the input price.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use super::lock;

pub struct Warmup {
    /// The first line has been taken by a worker.
    led: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Warmup {
    /// `enabled`: with `--cache`; otherwise every line goes at once.
    pub fn new(enabled: bool) -> Warmup {
        Warmup {
            led: AtomicBool::new(!enabled),
            open: Mutex::new(!enabled),
            opened: Condvar::new(),
        }
    }

    /// True for the first caller only: it sends its line at once and must open the
    /// gate (see [`Lead`]). Called with the job queue locked, so the first caller
    /// holds the first line.
    pub fn claim(&self) -> Option<Lead<'_>> {
        // `then`, not `then_some`: a `Lead` made and dropped would open the gate.
        (!self.led.swap(true, Ordering::SeqCst)).then(|| Lead(self))
    }

    /// Lets every waiting line go.
    pub fn open(&self) {
        let mut open = lock(&self.open);
        if !*open {
            *open = true;
            self.opened.notify_all();
        }
    }

    /// Waits until the first line's answer began (or that line ended some other way).
    pub fn wait(&self) {
        let mut open = lock(&self.open);
        while !*open {
            open = self
                .opened
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The first line's duty: the gate opens when its answer begins ([`Warmup::open`]),
/// and at the latest when this is dropped (the line failed before an answer began,
/// could not be built, or its worker panicked).
pub struct Lead<'a>(&'a Warmup);

impl Lead<'_> {
    pub fn open(&self) {
        self.0.open();
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn off_means_open_and_nobody_leads() {
        let w = Warmup::new(false);
        assert!(w.claim().is_none());
        w.wait();
    }

    #[test]
    fn the_others_wait_for_the_lead() {
        let w = Arc::new(Warmup::new(true));
        let lead = w.claim();
        assert!(lead.is_some());
        assert!(w.claim().is_none(), "one lead only");
        let waiter = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.wait())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        drop(lead); // a lead that failed opens too
        waiter.join().unwrap();
        w.wait();
    }
}
