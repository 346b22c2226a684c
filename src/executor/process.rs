//! Running one tool command: its stdout and stderr read through caps on threads,
//! how it ended described in words, and its process group killed on a timeout or a
//! signal (the registry the interrupt handler uses).

use super::*;

pub(super) enum Ended {
    NotStarted(String),
    Ran {
        status: ExitStatus,
        timed_out: bool,
        stdout: Captured,
        stderr: Captured,
    },
}

/// What was kept of one output stream.
#[derive(Debug, Default)]
pub(super) struct Captured {
    pub(super) bytes: Vec<u8>,
    /// All bytes read, kept or not.
    pub(super) total: usize,
}

#[derive(Clone, Copy)]
pub(super) enum Keep {
    /// The first N bytes.
    Head(usize),
    /// The last N bytes.
    Tail(usize),
}

/// Reads a pipe to its end on a thread of its own. The thread is not joined: a
/// process that escaped the group may hold the pipe open for ever.
pub(super) struct Reader {
    pub(super) captured: Arc<Mutex<Captured>>,
    pub(super) done: mpsc::Receiver<()>,
}

impl Reader {
    pub(super) fn spawn(mut pipe: impl Read + Send + 'static, keep: Keep) -> Reader {
        let captured = Arc::new(Mutex::new(Captured::default()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&captured);
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut c = shared.lock().unwrap_or_else(PoisonError::into_inner);
                c.total += n;
                match keep {
                    Keep::Head(max) => {
                        let room = max.saturating_sub(c.bytes.len());
                        c.bytes.extend_from_slice(&chunk[..n.min(room)]);
                    }
                    Keep::Tail(max) => {
                        c.bytes.extend_from_slice(&chunk[..n]);
                        // Trimmed in batches, so a chatty stderr costs linear time.
                        if c.bytes.len() > 2 * max {
                            let cut = c.bytes.len() - max;
                            c.bytes.drain(..cut);
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
        Reader { captured, done }
    }

    /// What was read by the end of the stream, or by the deadline.
    pub(super) fn finish(self, deadline: Instant) -> Captured {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The result text of a successful call: stdout, cut at [`MAX_OUTPUT_BYTES`] with a
/// marker line. The byte offset of the first invalid byte when it is not UTF-8.
pub(super) fn stdout_text(out: &Captured) -> std::result::Result<String, usize> {
    let cut = out.total > out.bytes.len();
    let text = match std::str::from_utf8(&out.bytes) {
        Ok(text) => text,
        // A character split by the cut is not an error: the cut drops it.
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&out.bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(e) => return Err(e.valid_up_to()),
    };
    if !cut {
        return Ok(text.to_owned());
    }
    let newline = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    Ok(format!(
        "{text}{newline}[cs-msg: output cut at {} of {} bytes]",
        text.len(),
        out.total
    ))
}

/// An error text and the tail of stderr, if there is any.
pub(super) fn with_tail(what: String, stderr: &Captured) -> String {
    let start = stderr.bytes.len().saturating_sub(STDERR_TAIL_BYTES);
    let mut tail = &stderr.bytes[start..];
    let cut = stderr.total > tail.len();
    if cut {
        // Start at a character, not inside one.
        while let Some((&b, rest)) = tail.split_first()
            && b & 0xC0 == 0x80
        {
            tail = rest;
        }
    }
    let tail = String::from_utf8_lossy(tail);
    let tail = tail.trim();
    if tail.is_empty() {
        what
    } else if cut {
        format!("{what}: …{tail}")
    } else {
        format!("{what}: {tail}")
    }
}

/// "120", "0.3": seconds as given, without a trailing ".0".
pub(super) fn seconds(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

pub(super) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return signal.to_string(),
    };
    format!("{signal} ({name})")
}

/// Blocks until the process has exited, without reaping it (`WNOWAIT`): until it is
/// reaped its pid stays taken, so signalling its group cannot hit another one.
pub(super) fn wait_exited(pid: libc::pid_t) {
    loop {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`, which lives across the call.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

pub(super) fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) touches no memory of ours; a negative pid names a process group.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Process groups of the tools running now, so that Ctrl-C can kill them.
pub(super) static RUNNING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
/// Set by [`kill_running`]: no tool starts after it.
pub(super) static STOPPED: AtomicBool = AtomicBool::new(false);

pub(super) fn running() -> MutexGuard<'static, Vec<libc::pid_t>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills every running tool's process group (SIGKILL) and lets no other start: for the
/// Ctrl-C handler, before it exits.
pub fn kill_running() {
    let running = running();
    STOPPED.store(true, Ordering::SeqCst);
    for &pgid in running.iter() {
        signal_group(pgid, libc::SIGKILL);
    }
}
