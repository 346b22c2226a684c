//! Embeds the git commit in `--version` when built from a checkout, and packs the
//! release binary's relative relocations where the toolchain allows it.

use std::process::Command;

fn main() {
    pack_relative_relocations();
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let full = match commit {
        Some(c) => format!("{version} ({c})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=CS_MSG_VERSION={full}");
    // Rebuild when HEAD moves (a commit, a checkout); harmless outside a checkout.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=build.rs");
}

/// `-z pack-relative-relocs` (DT_RELR) stores the ~13,000 relative relocations of a
/// position-independent binary in a few KB instead of ~320 KB. It needs GNU ld 2.38+
/// to write them and glibc 2.36+ to load them, so it is used only for release builds
/// on linux-gnu when both are there (the binary runs where it is built).
fn pack_relative_relocations() {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if env("PROFILE") != "release"
        || env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || env("TARGET") != env("HOST")
    {
        return;
    }
    let version_of = |cmd: &str, arg: &str| -> Option<(u32, u32)> {
        let out = Command::new(cmd).arg(arg).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // The last "X.Y" on the first line: "GNU ld (GNU Binutils for Debian) 2.40",
        // "ldd (Debian GLIBC 2.36-9+deb12u14) 2.36".
        let first = text.lines().next()?;
        let word = first.split_whitespace().last()?;
        let mut parts = word.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    };
    let ld_ok = version_of("ld", "-v").is_some_and(|v| v >= (2, 38));
    let glibc_ok = version_of("ldd", "--version").is_some_and(|v| v >= (2, 36));
    if ld_ok && glibc_ok {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
