//! The shape of the source, checked over its text (docs/ARCHITECTURE.md says why):
//!
//! - no import cycle between the top-level modules of src/ (a file src/NAME.rs or a
//!   folder src/NAME/, so everything in src/batch/ is `batch`);
//! - no file in src/ over 600 lines, not counting its `#[cfg(test)] mod … { … }` blocks
//!   and files that only tests compile (src/batch/tests.rs, src/proptests.rs);
//! - comments cite only files in the repository, and sections of them that exist;
//! - every file of src/ has its row in docs/ARCHITECTURE.md.
//!
//! An arrow A -> B means a file of A names `crate::B` (or `cs_msg::B`), directly or in a
//! `use crate::{B, …}` group. Comment lines and test code are left out: tests may reach
//! anywhere, and a comment is not a dependency. `cargo test architecture -- --nocapture`
//! prints the map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_LINES: usize = 600;

/// Files over [`MAX_LINES`] today, each to be split by responsibility. The test fails
/// when one of them grows past its figure, and when one is back under the limit (then
/// its line here goes).
const TOO_LONG_FOR_NOW: &[(&str, usize)] = &[];

/// The names by which a file of the crate reaches another module.
const CRATE_NAMES: &[&str] = &["crate", "cs_msg"];

struct SourceFile {
    /// Relative to the package root, with `/`: `src/batch/line.rs`.
    path: String,
    text: String,
}

impl SourceFile {
    /// The top-level module the file belongs to; `None` for the crate roots.
    fn module(&self) -> Option<&str> {
        let rest = self.path.strip_prefix("src/")?;
        let top = rest.split('/').next()?;
        let top = top.strip_suffix(".rs").unwrap_or(top);
        (top != "main" && top != "lib").then_some(top)
    }
}

/// Every `.rs` file under src/, in path order, without the files only tests compile.
fn sources() -> Vec<SourceFile> {
    let mut files = Vec::new();
    collect(&Path::new(ROOT).join("src"), &mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let test_only = test_only_files(&files);
    files.retain(|f| {
        !test_only
            .iter()
            .any(|t| f.path == *t || f.path.starts_with(t))
    });
    files
}

fn collect(dir: &Path, out: &mut Vec<SourceFile>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let rel = path.strip_prefix(ROOT).expect("under the package root");
            let path = rel.to_string_lossy().replace('\\', "/");
            out.push(SourceFile { path, text });
        }
    }
}

/// Files (or folders, ending in `/`) declared as `#[cfg(test)] mod NAME;`.
fn test_only_files(files: &[SourceFile]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files {
        let lines: Vec<&str> = file.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() != "#[cfg(test)]" {
                continue;
            }
            let Some(name) = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.starts_with("#["))
                .and_then(|l| {
                    l.strip_prefix("mod ")
                        .or_else(|| l.strip_prefix("pub mod "))
                })
                .and_then(|l| l.strip_suffix(';'))
            else {
                continue;
            };
            // A root (lib.rs, main.rs, mod.rs) has its children beside it; foo.rs in foo/.
            let (dir, stem) = file.path.rsplit_once('/').expect("a path under src/");
            let stem = stem.strip_suffix(".rs").unwrap_or(stem);
            let base = if matches!(stem, "lib" | "main" | "mod") {
                dir.to_owned()
            } else {
                format!("{dir}/{stem}")
            };
            out.push(format!("{base}/{name}.rs"));
            out.push(format!("{base}/{name}/"));
        }
    }
    out
}

/// The file's lines (numbered from 1) outside `#[cfg(test)] mod NAME { … }` blocks. The
/// block ends at the first `}` as indented as its `mod` line (rustfmt, which CI
/// enforces, puts it there); a block that never ends takes the rest of the file.
fn outside_tests(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            if let Some(line) = lines.get(j) {
                let indent = &line[..line.len() - line.trim_start().len()];
                let item = line.trim_start();
                let item = item.strip_prefix("pub ").unwrap_or(item);
                if item.starts_with("mod ") && item.ends_with('{') {
                    let close = format!("{indent}}}");
                    let end = (j + 1..lines.len()).find(|&k| lines[k] == close);
                    i = end.map_or(lines.len(), |k| k + 1);
                    continue;
                }
            }
        }
        out.push((i + 1, lines[i]));
        i += 1;
    }
    out
}

/// The modules a piece of code names, each with the line that first names it.
fn references(code: &[(usize, &str)]) -> BTreeMap<String, usize> {
    // Comment lines are not code. One text, so a `use` group may span lines.
    let mut text = String::new();
    let mut line_at = Vec::new(); // byte offset → line number, per line start
    for &(n, line) in code {
        if line.trim_start().starts_with("//") {
            continue;
        }
        line_at.push((text.len(), n));
        text.push_str(line);
        text.push('\n');
    }
    let line_of = |offset: usize| {
        let i = line_at.partition_point(|&(start, _)| start <= offset);
        line_at[i.saturating_sub(1)].1
    };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let leading_ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|&c| is_ident(c))
            .collect()
    };
    let mut found = BTreeMap::new();
    for name in CRATE_NAMES {
        let pattern = format!("{name}::");
        for (at, _) in text.match_indices(&pattern) {
            if text[..at].chars().next_back().is_some_and(is_ident) {
                continue; // `foocrate::`
            }
            let rest = &text[at + pattern.len()..];
            let line = line_of(at);
            let Some(group) = rest.strip_prefix('{') else {
                let target = leading_ident(rest);
                if !target.is_empty() {
                    found.entry(target).or_insert(line);
                }
                continue;
            };
            // `use crate::{a, b::c, d::{e, f}}` names a, b and d.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let target = leading_ident(&item);
                        if !target.is_empty() {
                            found.entry(target).or_insert(line);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            let target = leading_ident(&item);
            if !target.is_empty() {
                found.entry(target).or_insert(line);
            }
        }
    }
    found
}

/// Arrows between top-level modules, each with the file and line that makes it.
type Map = BTreeMap<String, BTreeMap<String, String>>;

fn module_map(files: &[SourceFile]) -> Map {
    let modules: BTreeSet<&str> = files.iter().filter_map(SourceFile::module).collect();
    let mut map = Map::new();
    for file in files {
        let Some(from) = file.module() else { continue };
        let arrows = map.entry(from.to_owned()).or_default();
        for (target, line) in references(&outside_tests(&file.text)) {
            if target != from && modules.contains(target.as_str()) {
                arrows
                    .entry(target)
                    .or_insert_with(|| format!("{}:{line}", file.path));
            }
        }
    }
    map
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(map: &Map) -> Vec<Vec<String>> {
    struct State<'a> {
        map: &'a Map,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        let map = s.map;
        for w in map.get(v).into_iter().flat_map(|arrows| arrows.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        map,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in map.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let files = sources();
    let map = module_map(&files);
    for (from, arrows) in &map {
        if !arrows.is_empty() {
            let targets: Vec<&str> = arrows.keys().map(String::as_str).collect();
            println!("{from} -> {}", targets.join(", "));
        }
    }
    let found = cycles(&map);
    println!("{} cycle(s) among {} modules", found.len(), map.len());
    assert!(
        map.len() > 10 && map.values().any(|a| !a.is_empty()),
        "the module map looks empty: is src/ where it should be?"
    );
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle: {}\n", component.join(" <-> ")));
        for from in component {
            for (to, at) in &map[from] {
                if component.contains(to) {
                    report.push_str(&format!("  {from} -> {to} ({at})\n"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between top-level modules (move the shared piece down, \
         see docs/ARCHITECTURE.md):\n{report}"
    );
}

#[test]
fn no_source_file_over_600_lines_outside_tests() {
    let mut problems = Vec::new();
    for file in sources() {
        let lines = outside_tests(&file.text).len();
        let allowed = TOO_LONG_FOR_NOW
            .iter()
            .find(|(path, _)| *path == file.path)
            .map(|&(_, n)| n);
        match allowed {
            None if lines > MAX_LINES => problems.push(format!(
                "{}: {lines} lines outside tests, more than {MAX_LINES}: split it by responsibility",
                file.path
            )),
            Some(_) if lines <= MAX_LINES => problems.push(format!(
                "{}: {lines} lines now: take it off TOO_LONG_FOR_NOW in tests/cli/architecture.rs",
                file.path
            )),
            Some(n) if lines > n => problems.push(format!(
                "{}: {lines} lines outside tests, more than the {n} it is allowed until it is split",
                file.path
            )),
            _ => {}
        }
    }
    for (path, _) in TOO_LONG_FOR_NOW {
        if !Path::new(ROOT).join(path).exists() {
            problems.push(format!(
                "{path} is gone: take it off TOO_LONG_FOR_NOW in tests/cli/architecture.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Headings of a markdown file, lower case, without their `#`s.
fn headings(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim().to_lowercase())
            .collect(),
    )
}

#[test]
fn comments_cite_files_and_sections_that_exist() {
    let root = Path::new(ROOT);
    let readme = headings(&root.join("README.md")).expect("README.md");
    let mut problems = Vec::new();
    for file in sources() {
        for (n, line) in file.text.lines().enumerate() {
            let Some(comment) = line.trim_start().strip_prefix("//") else {
                continue;
            };
            let at = format!("{}:{}", file.path, n + 1);
            for missing in ["DESIGN.md", "API.md"] {
                if comment.contains(missing) {
                    problems.push(format!(
                        "{at}: cites {missing}, which is not in the repository (docs/PROTOCOL.md, README)"
                    ));
                }
            }
            // docs/NAME.md, optionally followed by ", Section, Section".
            for (i, _) in comment.match_indices("docs/") {
                let rest = &comment[i..];
                let Some(end) = rest.find(".md") else {
                    continue;
                };
                let doc = &rest[..end + 3];
                let Some(sections) = headings(&root.join(doc)) else {
                    problems.push(format!("{at}: cites {doc}, which does not exist"));
                    continue;
                };
                let Some(cited) = rest[end + 3..].strip_prefix(", ") else {
                    continue;
                };
                let cited = cited.split([')', ';', ':']).next().unwrap_or("");
                for section in cited.split(',').map(|s| s.trim().trim_end_matches('.')) {
                    if !section.is_empty() && !sections.contains(&section.to_lowercase()) {
                        problems.push(format!("{at}: {doc} has no section \"{section}\""));
                    }
                }
            }
            // README "Section".
            for (i, _) in comment.match_indices("README \"") {
                let rest = &comment[i + "README \"".len()..];
                let Some(end) = rest.find('"') else { continue };
                if !readme.contains(&rest[..end].to_lowercase()) {
                    problems.push(format!(
                        "{at}: README.md has no section \"{}\"",
                        &rest[..end]
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_source_file_has_a_row_in_architecture_md() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md");
    let mut files = Vec::new();
    collect(&Path::new(ROOT).join("src"), &mut files);
    let mut missing: Vec<String> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix("src/"))
        .filter(|name| !doc.contains(&format!("| `{name}` |")))
        .map(str::to_owned)
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md has no row `| `NAME` | what it owns |` for: {}",
        missing.join(", ")
    );
}

/// The reader itself, on code written to trip it.
#[test]
fn module_map_reads_paths_groups_and_skips_tests_and_comments() {
    let code = "\
use crate::{alpha, beta::{x, y}, gamma::z as w};
use cs_msg::delta;
// crate::in_a_comment
fn f() { crate::epsilon::call(); notcrate::zeta(); }
use crate::{
    eta,
    theta::Thing,
};

#[cfg(test)]
mod tests {
    use crate::only_in_tests;
    fn g() {
        let _ = \"}\";
    }
}
fn after() { crate::iota(); }
";
    let names: Vec<String> = references(&outside_tests(code)).into_keys().collect();
    assert_eq!(
        names,
        [
            "alpha", "beta", "delta", "epsilon", "eta", "gamma", "iota", "theta"
        ]
    );
    let lines = outside_tests(code);
    assert_eq!(lines.len(), 10, "{lines:?}");
    assert_eq!(lines.last().map(|l| l.0), Some(17));
}
