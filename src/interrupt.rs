//! SIGINT, SIGTERM and SIGHUP: one registry of what must be cleaned up, then the
//! signal is re-raised with its default action, so the process dies of it and a
//! calling shell loop (`for f in *; do cs-msg …; done`) stops too. A plain
//! `exit(130)` would look like a normal exit to the shell, which then keeps looping.
//!
//! What is cleaned up: temporary files of atomic writes in progress, and whatever
//! a running stage registered with [`on_signal`] (batch results to salvage, tool
//! processes to kill).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static TEMP_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// A signal came and its cleanup is under way: the process is about to die of it.
static SIGNALLED: AtomicBool = AtomicBool::new(false);
type Hook = Box<dyn Fn() + Send>;
static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the thread that waits for the signals. Called once, after the arguments
/// are parsed (`--help` does not pay for the thread).
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return; // no handler: the default action still ends the process
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                SIGNALLED.store(true, Ordering::SeqCst);
                clean_up();
                crate::output::interrupted(signal_name(signal));
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                // Not reached: the default action of these signals ends the process.
                std::process::exit(128 + signal);
            }
        });
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "interrupted",
        SIGTERM => "terminated (SIGTERM)",
        _ => "hung up (SIGHUP)",
    }
}

/// Called before the program ends on its own: if a signal's cleanup is under way (it
/// killed a tool or a server, so the main thread saw that fail), wait for the signal
/// thread to re-raise it, so the process dies of the signal and not of the failure.
pub fn wait_if_signalled() {
    if SIGNALLED.load(Ordering::SeqCst) {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Runs every registered hook, then removes every registered temporary file.
fn clean_up() {
    for hook in lock(&HOOKS).iter() {
        hook();
    }
    for path in lock(&TEMP_FILES).iter() {
        let _ = std::fs::remove_file(path);
    }
}

/// Registers work to do when a signal arrives, before the process dies.
pub fn on_signal(hook: impl Fn() + Send + 'static) {
    lock(&HOOKS).push(Box::new(hook));
}

/// A temporary file removed if a signal arrives while this guard lives.
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn register(path: &Path) -> TempFile {
        lock(&TEMP_FILES).push(path.to_path_buf());
        TempFile(path.to_path_buf())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        lock(&TEMP_FILES).retain(|p| p != &self.0);
    }
}
