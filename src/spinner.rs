//! A small spinner on stderr while the first bytes of an answer are awaited. Only on a
//! terminal, never in CI, and never when the answer itself streams to that terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::output::{OutputMode, stderr_is_terminal};

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/// Fast answers never flash a spinner.
const FIRST_DRAW_AFTER: Duration = Duration::from_millis(150);
const FRAME_EVERY: Duration = Duration::from_millis(80);

/// Whether a spinner belongs on stderr for this run.
pub fn wanted(mode: OutputMode, streaming: bool, verbose: bool) -> bool {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let answer_streams_to_terminal =
        mode == OutputMode::Text && streaming && std::io::stdout().is_terminal();
    stderr_is_terminal() && !in_ci && !verbose && !answer_streams_to_terminal
}

pub struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    pub fn start(label: String) -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            std::thread::park_timeout(FIRST_DRAW_AFTER);
            let mut drawn = false;
            for frame in FRAMES.iter().cycle() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let _ = write!(std::io::stderr().lock(), "\r{frame} {label}");
                drawn = true;
                std::thread::park_timeout(FRAME_EVERY);
            }
            if drawn {
                // Leave the line as it was found.
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            }
        });
        Spinner {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and erases the spinner; waits until the line is clear.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}
