//! The ordering window: the reader runs at most a fixed number of lines ahead of the
//! writer, so results waiting for a slow earlier line stay few and memory stays flat
//! however long the input is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use super::lock;

/// Keeps the reader at most `size` lines ahead of the writer, so that results waiting
/// for a slow earlier line stay few.
pub struct Window {
    written: Mutex<u64>,
    moved: Condvar,
    size: u64,
    stopped: AtomicBool,
}

impl Window {
    pub fn new(size: u64) -> Window {
        Window {
            written: Mutex::new(0),
            moved: Condvar::new(),
            size: size.max(1),
            stopped: AtomicBool::new(false),
        }
    }

    /// Waits until line `index` may be handed out; false when the batch is stopping.
    pub fn admit(&self, index: u64) -> bool {
        let mut written = lock(&self.written);
        while index >= *written + self.size && !self.is_stopped() {
            written = self
                .moved
                .wait(written)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !self.is_stopped()
    }

    pub fn advance(&self, written: u64) {
        *lock(&self.written) = written;
        self.moved.notify_all();
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _guard = lock(&self.written);
        self.moved.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_window_holds_the_reader_back() {
        let window = Arc::new(Window::new(2));
        assert!(window.admit(0) && window.admit(1));
        let w = Arc::clone(&window);
        let reader = std::thread::spawn(move || w.admit(2));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!reader.is_finished());
        window.advance(1);
        assert!(reader.join().unwrap());
        let w = Arc::clone(&window);
        let reader = std::thread::spawn(move || w.admit(10));
        window.stop();
        assert!(!reader.join().unwrap());
    }
}
