//! The runtime's rooms and the one-way arrows between them (docs/DESIGN.md, "Layout"), read from
//! the code itself: every `crate::…` and `super::…` path in `src/` is an arrow from its file to
//! the file that defines the module it names. Arrows between rooms must go down the order below;
//! inside a room, files may use each other but never in a circle. A folder's `mod.rs` declaring
//! or re-exporting its own files (`pub mod x;`, `pub use x::f;`) is its table of contents, not
//! an arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The rooms, top to bottom; `log` and `error` are leaves under them all, and the crate root
/// (`lib.rs`: `bail!`, `errno`, `OCI_VERSION`) is last.
const ROOMS: &[&[&str]] = &[
    &["cli"],
    &["lifecycle"],
    &["cache"],
    &["state"],
    &["cgroups"],
    &["host"],
    &["log", "error"],
    &[""],
];

fn rank(room: &str) -> usize {
    ROOMS
        .iter()
        .position(|r| r.contains(&room))
        .unwrap_or_else(|| panic!("room {room:?} is in no rank of ROOMS: add it to the map"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/lifecycle/launch.rs` → `lifecycle::launch`, `src/host/mod.rs` → `host`, `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The paths a file names: `crate::a::b…` (also inside `use crate::{…}`) and `super::…`, as
/// absolute module paths of lower-case segments.
fn references(module: &str, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let own: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    // `super` of `a::b` (a file) is `a`; of `a` (a folder's mod.rs) it is the root.
    let mut parent = own.clone();
    parent.pop();
    let segments = |s: &str| -> Vec<String> {
        s.split("::")
            .map(str::trim)
            .take_while(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .map(String::from)
            .collect()
    };
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut group = Vec::new();
            if let Some(inner) = rest.strip_prefix('{') {
                let mut depth = 1;
                let end = inner
                    .char_indices()
                    .find(|(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(inner.len(), |(i, _)| i);
                let mut depth = 0;
                let mut item = String::new();
                for c in inner[..end].chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => group.push(std::mem::take(&mut item)),
                        _ => {}
                    }
                    item.push(c);
                }
                group.push(item);
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                group.push(rest[..end].to_string());
            }
            for item in group {
                let item = item.trim().trim_start_matches(',').trim();
                let mut path = base.clone();
                path.extend(segments(item));
                out.push(path);
            }
        }
    }
    out
}

/// The module that defines `path`: its longest prefix that is a file of ours.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> String {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
        .unwrap_or_default()
}

#[test]
fn src_arrows_run_one_way_and_no_files_use_each_other_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.ends_with("main.rs"));
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for f in &files {
        let from = module_of(&src, f);
        let text = std::fs::read_to_string(f).expect("read");
        for path in references(&from, &text) {
            let to = resolve(&path, &modules);
            if to == from {
                continue;
            }
            let room = |m: &str| m.split("::").next().unwrap_or("").to_string();
            let (a, b) = (room(&from), room(&to));
            if a != b && rank(&a) >= rank(&b) {
                wrong.push(format!("{from} -> {to} (`{}`)", path.join("::")));
            }
            edges.entry(from.clone()).or_default().insert(to);
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that point up or sideways between rooms:\n{}",
        wrong.join("\n")
    );
    // Every file reached from every other without coming back: a depth-first search.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == m).unwrap_or(0);
                let mut cycle = stack[at..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for n in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        let cycle = visit(m, &edges, &mut state, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "files in a circle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
    // Each room that is a folder says what it owns and what it may use.
    for dir in std::fs::read_dir(&src).expect("src").flatten() {
        if dir.path().is_dir() {
            let doc = std::fs::read_to_string(dir.path().join("mod.rs")).expect("mod.rs");
            assert!(
                doc.starts_with("//!"),
                "{} has no module doc",
                dir.path().display()
            );
        }
    }
}

#[test]
fn the_reader_finds_what_it_must() {
    // The check itself: a circle and an upward arrow are seen.
    let modules: BTreeSet<String> = ["a", "a::x", "a::y", "b"].map(String::from).into();
    let refs = references("a::x", "use super::y::f;\nuse crate::{b::g, a::y};\n");
    let got: BTreeSet<String> = refs.iter().map(|p| resolve(p, &modules)).collect();
    assert_eq!(got, ["a::y", "b"].map(String::from).into());
    let refs = references("b", "// crate::a is a comment\nlet x = crate::a::x::f();");
    let got: Vec<String> = refs.iter().map(|p| resolve(p, &modules)).collect();
    assert_eq!(got, ["a::x"]);
}
