//! The runtime's rooms and the one-way arrows between them (docs/DESIGN.md, "Rooms of `src/`"),
//! read from the code itself. An arrow goes from a file to the file that defines a module it
//! names: through `crate::…` (also inside `use crate::{…}` groups, nested or not), `super::…`,
//! or a child module's name (`bpf::attach`, `pub use create::create`). Arrows between rooms must
//! go down the order below; no files may use each other in a circle, inside a room or across.

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

/// What the crate root defines, besides its modules.
const ROOT_ITEMS: &[&str] = &["bail", "errno"];

fn rank(room: &str) -> Option<usize> {
    ROOMS.iter().position(|r| r.contains(&room))
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

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The leading lower-case segments of a path (a module path, then maybe an item).
fn segments(s: &str) -> Vec<String> {
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
}

/// Every path a `use` tree or an expression starting at `text` names, expanded through nested
/// `{…}` groups, each relative to `base`.
fn expand(base: &[String], text: &str, out: &mut Vec<Vec<String>>) {
    let text = text.trim();
    let head_end = text
        .find(|c: char| !(is_ident(c) || c == ':'))
        .unwrap_or(text.len());
    let head = text[..head_end].trim_end_matches("::");
    let mut path = base.to_vec();
    path.extend(segments(head));
    let rest = &text[head_end..];
    let group = head_end == 0 || text[..head_end].ends_with("::");
    let Some(inner) = rest.strip_prefix('{').filter(|_| group) else {
        out.push(path);
        return;
    };
    let (mut depth, mut item, mut items) = (0, String::new(), Vec::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    for i in items.iter().filter(|i| !i.trim().is_empty()) {
        expand(&path, i, out);
    }
}

/// The module paths a file of module `module` names (absolute, lower-case segments).
fn references(module: &str, text: &str) -> Vec<Vec<String>> {
    // A file's unit tests are no part of the runtime's arrows (and their `super` is the file).
    let code: String = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let own: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let children: Vec<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(String::from)
        })
        .collect();
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == ':');
        if !starts_word || !is_ident(bytes[i]) {
            i += 1;
            continue;
        }
        let rest: String = bytes[i..].iter().collect();
        if let Some(r) = rest.strip_prefix("crate::") {
            expand(&[], r, &mut out);
        } else if rest.starts_with("super::") {
            // `super` of `a::b` (a file) is `a`; of `a` (a folder's mod.rs) it is the root.
            let mut base = own.clone();
            let mut r = rest.as_str();
            while let Some(next) = r.strip_prefix("super::") {
                base.pop();
                r = next;
            }
            expand(&base, r, &mut out);
        } else if let Some(child) = children
            .iter()
            .find(|c| rest.starts_with(&format!("{c}::")))
        {
            let mut base = own.clone();
            base.push(child.clone());
            expand(&base, &rest[child.len() + 2..], &mut out);
        }
        while i < bytes.len() && (is_ident(bytes[i]) || bytes[i] == ':') {
            i += 1;
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

/// Every arrow that breaks the rules, and a circle if there is one, for files given as
/// (module, text).
fn violations(files: &[(String, String)]) -> (Vec<String>, Option<Vec<String>>) {
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let room = |m: &str| m.split("::").next().unwrap_or("").to_string();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (from, text) in files {
        for path in references(from, text) {
            let to = resolve(&path, &modules);
            if to.is_empty()
                && path
                    .first()
                    .is_some_and(|s| !ROOT_ITEMS.contains(&s.as_str()))
            {
                wrong.push(format!(
                    "{from} names {}, no module of ours",
                    path.join("::")
                ));
                continue;
            }
            if to == *from {
                continue;
            }
            let (a, b) = (room(from), room(&to));
            match (rank(&a), rank(&b)) {
                (Some(x), Some(y)) if a == b || x < y => {}
                (None, _) | (_, None) => wrong.push(format!("{from} -> {to}: a room not in ROOMS")),
                _ => wrong.push(format!("{from} -> {to} (`{}`)", path.join("::"))),
            }
            edges.entry(from.clone()).or_default().insert(to);
        }
    }
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
    let cycle = modules
        .iter()
        .find_map(|m| visit(m, &edges, &mut state, &mut Vec::new()));
    (wrong, cycle)
}

#[test]
fn src_arrows_run_one_way_and_no_files_use_each_other_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.retain(|f| !f.ends_with("main.rs"));
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|f| {
            (
                module_of(&src, f),
                std::fs::read_to_string(f).expect("read"),
            )
        })
        .collect();
    let (wrong, cycle) = violations(&files);
    assert!(
        wrong.is_empty(),
        "arrows against the rooms' order:\n{}",
        wrong.join("\n")
    );
    assert!(
        cycle.is_none(),
        "files in a circle: {}",
        cycle.unwrap_or_default().join(" -> ")
    );
    // Each room that is a folder says what it owns and what it may use.
    for (m, text) in &files {
        if !m.contains("::") && !m.is_empty() && src.join(m).is_dir() {
            let doc: String = text.lines().take_while(|l| l.starts_with("//!")).collect();
            assert!(
                doc.contains("use"),
                "{m}/mod.rs does not say what it may use"
            );
        }
    }
}

#[test]
fn the_check_sees_an_upward_arrow_a_circle_and_every_way_of_naming_a_module() {
    let file = |m: &str, t: &str| (m.to_string(), t.to_string());
    let ok = [
        file("host", "pub mod fd;\nfn f() { fd::above(); }"),
        file(
            "host::fd",
            "use crate::{log, error::{Error, Result}};\n// crate::cli in a comment",
        ),
        file("log", ""),
        file("error", "use super::bail;"),
    ];
    let (wrong, cycle) = violations(&ok);
    assert!(wrong.is_empty() && cycle.is_none(), "{wrong:?} {cycle:?}");
    let up = [file("host", "use crate::cli::main;"), file("cli", "")];
    assert_eq!(violations(&up).0.len(), 1, "an arrow up is seen");
    let nested = [
        file(
            "state",
            "use crate::{host::{fd::x, files}, cgroups::Cgroup};",
        ),
        file("host", "pub mod fd;"),
        file("host::fd", "use super::super::state::State;"),
        file("host::files", ""),
        file("cgroups", ""),
    ];
    let (wrong, cycle) = violations(&nested);
    assert_eq!(wrong.len(), 1, "super::super is followed: {wrong:?}");
    assert_eq!(
        cycle.unwrap_or_default(),
        ["host::fd", "state", "host::fd"].map(String::from),
        "a circle through a nested group"
    );
    let circle = [
        file("lifecycle::a", "use super::b::x;"),
        file("lifecycle::b", "use super::a::y;"),
    ];
    assert!(violations(&circle).1.is_some(), "a circle is seen");
    let unknown = [file("host", "use crate::nowhere::x;")];
    assert_eq!(
        violations(&unknown).0.len(),
        1,
        "a path to no module is seen"
    );
}
