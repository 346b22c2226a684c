//! Embeds the git commit in `--version` when built from a checkout, and, only when
//! asked (`CS_MSG_PACK_RELOCS=1`), packs the binary's relative relocations.

use std::process::Command;

fn main() {
    pack_relative_relocations();
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=10", "HEAD"]) {
        Some(c) => format!("{version} ({c})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=CS_MSG_VERSION={full}");
    // Rebuild when HEAD moves (a commit, a checkout). git says where HEAD and the
    // branch refs are: in a linked worktree `.git` is a file, not a directory. Only
    // paths that exist are watched; cargo treats a missing one as changed on every build.
    let mut watch = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watch.push(format!("{dir}/HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        watch.push(format!("{common}/refs/heads"));
        watch.push(format!("{common}/packed-refs"));
    }
    for path in watch.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// The trimmed output of a successful `git ARGS`, if not empty.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `-z pack-relative-relocs` (DT_RELR) stores the ~13,000 relative relocations of a
/// position-independent binary in a few KB instead of ~320 KB. It is off unless
/// `CS_MSG_PACK_RELOCS=1`: the linker must support it (GNU ld 2.38+, lld 15+), and the
/// binary then starts only where the C library's loader knows DT_RELR (glibc 2.36+),
/// so a default build is the same on every machine and runs on older systems.
fn pack_relative_relocations() {
    println!("cargo:rerun-if-env-changed=CS_MSG_PACK_RELOCS");
    if std::env::var("CS_MSG_PACK_RELOCS").as_deref() != Ok("1") {
        return;
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    } else {
        println!("cargo:warning=CS_MSG_PACK_RELOCS=1 is for Linux targets; ignored");
    }
}
