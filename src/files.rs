//! The one home for files: reading a path or `-` (stdin) through a size limit, JSON
//! with line and column in its errors, and the one atomic write.
//!
//! Every input is read through a limit while it is read, not after: `-f /dev/zero`
//! or an endless FIFO is refused as soon as the limit is passed, with bounded memory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::error::usage;
use crate::interrupt;

/// The most any one input (a file, stdin, a JSON file) may hold: the API's request
/// limit (docs/PROTOCOL.md), since every input ends up in one request.
pub const MAX_INPUT_BYTES: u64 = 32 * 1024 * 1024;
/// A key file holds one line.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A short reason for an I/O error, without Rust's "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => "no such file".into(),
        PermissionDenied => "permission denied".into(),
        IsADirectory => "is a directory, not a file".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads everything from `reader`, refusing more than `limit` bytes. `what` names the
/// input in the error ("file notes.md", "--messages chat.json").
pub fn read_limited(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| usage(format!("{what}: {}", io_reason(&e))))?;
    if buf.len() as u64 > limit {
        return Err(usage(format!(
            "{what}: larger than {} (the most one input may hold)",
            human_size(limit)
        )));
    }
    Ok(buf)
}

/// Opens a file for reading; a directory is an error naming it.
pub fn open(path: &Path, what: &str) -> Result<std::fs::File> {
    let fail = |e: std::io::Error| usage(format!("{what}: {}", io_reason(&e)));
    let file = std::fs::File::open(path).map_err(fail)?;
    if file.metadata().map_err(fail)?.is_dir() {
        return Err(usage(format!("{what}: is a directory, not a file")));
    }
    Ok(file)
}

/// Reads a path, or stdin for `-`, through `limit`.
pub fn read_bytes(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    if is_stdin(path) {
        read_limited(std::io::stdin().lock(), limit, what)
    } else {
        read_limited(open(path, what)?, limit, what)
    }
}

/// Reads a whole file (`-` = stdin) as UTF-8; errors name the flag and the path.
pub fn read_text(path: &Path, flag: &str) -> Result<String> {
    let what = format!("{flag} {}", path.display());
    let bytes = read_bytes(path, MAX_INPUT_BYTES, &what)?;
    String::from_utf8(bytes).map_err(|e| {
        usage(format!(
            "{what}: not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Parses JSON text; a syntax error names its line and column.
pub fn parse_json(text: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(text).map_err(|e| {
        let full = e.to_string();
        let reason = full
            .rfind(" at line ")
            .map_or(full.as_str(), |i| &full[..i]);
        usage(format!(
            "{what}: invalid JSON at line {}, column {}: {reason}",
            e.line(),
            e.column()
        ))
    })
}

/// Reads a JSON file (`-` = stdin).
pub fn read_json(path: &Path, flag: &str) -> Result<Value> {
    let what = format!("{flag} {}", path.display());
    let bytes = read_bytes(path, MAX_INPUT_BYTES, &what)?;
    parse_json(&bytes, &what)
}

pub fn human_size(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", n.div_ceil(1024))
    }
}

/// Where a write to `path` really lands: a symlink is followed, so the file it points
/// to is replaced (atomically) and the link stays a link.
pub fn write_target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fails early when `path` could not be written atomically later: its directory must
/// let a temporary file be created. Called before an answer is paid for.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    let target = write_target(path);
    tempfile::Builder::new()
        .prefix(".cs-msg-")
        .suffix(".tmp")
        .tempfile_in(parent_dir(&target))
        .map(drop)
        .map_err(|e| {
            usage(format!(
                "{what}: cannot write in {}: {}",
                parent_dir(&target).display(),
                io_reason(&e)
            ))
        })
}

/// Replaces `path` with what `fill` writes, atomically: a temporary file in the same
/// directory, synced, then renamed over the target, keeping the target's permissions.
/// On any failure, or a signal meanwhile, the target is untouched and no temporary
/// file stays behind (the interrupt handler removes registered ones).
pub fn atomic_write(
    path: &Path,
    what: &str,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let target = write_target(path);
    let fail = |e: std::io::Error| usage(format!("{what}: could not save: {}", io_reason(&e)));
    let mut tmp = tempfile::Builder::new()
        .prefix(".cs-msg-")
        .suffix(".tmp")
        .tempfile_in(parent_dir(&target))
        .map_err(fail)?;
    let _registered = interrupt::TempFile::register(tmp.path());
    {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut out).map_err(fail)?;
        out.flush().map_err(fail)?;
    }
    if let Ok(meta) = std::fs::metadata(&target) {
        let _ = tmp.as_file().set_permissions(meta.permissions());
    }
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(&target).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_while_reading() {
        let endless = std::io::repeat(b'x');
        let e = read_limited(endless, 1024, "file /dev/zero").unwrap_err();
        assert_eq!(
            e.to_string(),
            "file /dev/zero: larger than 1 KiB (the most one input may hold)"
        );
        assert_eq!(read_limited(&b"abc"[..], 3, "x").unwrap(), b"abc");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse_json(b"[\n  {\"a\": 1,}\n]", "--messages m.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--messages m.json: invalid JSON at line 2, column 11: trailing comma"
        );
    }

    #[test]
    fn atomic_write_follows_symlinks_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        atomic_write(&link, "-c link.json", |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn failed_fill_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "old").unwrap();
        let e = atomic_write(&path, "-c c.json", |_| {
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "-c c.json: could not save: disk full");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
    }
}
