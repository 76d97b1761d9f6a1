//! The layout DESIGN.md sets, read from `src/`:
//! - dependencies point one way: cli -> (ui, forecast) -> engine -> (exchange, directory, store) ->
//!   (plan, inventory, config) -> leaves (time, secrets, format, text, http);
//! - the simulator sits beside the clients: production code, the forecast included, never imports
//!   it; only the command line (which serves and drives it) does;
//! - no file's code (its lines before the first `#[cfg(test)]`) passes 1,000 lines.
//!
//! Imports are read as use trees, so `use crate::{a, b::{c, d}}` names `a` and `b` as surely as
//! `crate::a::x` in an expression does. What exists today against these rules is listed as known
//! exceptions, so nothing new of the kind can appear and each one can only go.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may use modules of lower layers only.
const LAYERS: &[(&str, u32)] = &[
    ("time", 0),
    ("secrets", 0),
    ("format", 0),
    ("text", 0),
    ("http", 0),
    ("private", 0),
    ("config", 1),
    ("inventory", 1),
    ("auth", 2),
    ("plan", 2),
    // The clients and the store are side by side: neither imports the other.
    ("exchange", 3),
    ("store", 3),
    ("directory", 4),
    ("engine", 5),
    ("analytics", 5),
    ("sim", 6),
    ("ui", 6),
    ("forecast", 7),
    ("cli", 8),
];

/// The modules that may import the simulator besides itself.
const SIM_USERS: &[&str] = &["cli"];

/// Imports against the rules that exist today and are being removed by issue 21 item 2 (the move
/// model moves to its own leaf, `mrs`): the forecast replays on the simulator's move model, and the
/// store keeps the figures `exchange` parses. (file under src/, module it imports). No other may
/// appear; when one goes, delete its line here (the test says so).
const KNOWN_AGAINST_THE_GRAIN: &[(&str, &str)] = &[
    ("forecast/calibrate.rs", "sim"),
    ("forecast/mod.rs", "sim"),
    ("forecast/replay.rs", "sim"),
    ("store/figures.rs", "exchange"),
    ("store/status.rs", "exchange"),
];

/// DESIGN.md: no file's code (tests aside) passes 1,000 lines.
const MAX_CODE_LINES: usize = 1_000;

/// Files whose code passes the limit today, with their length when this list was made; each may
/// shrink, none may grow, and no other may join them. Splitting them is other work (issue 21).
const KNOWN_LONG_FILES: &[(&str, usize)] = &[("sim/moves.rs", 1_768)];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/`: its path relative to `src/` (with `/`) and its text.
fn source_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap();
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            (rel, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// A file's code: its text before the first `#[cfg(test)]` (unit tests may reach anywhere).
fn code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap()
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules named by one use tree (what follows `crate::`): `a::b` names `a`;
/// `{a, b::{c, d}, self}` names `a` and `b` (`self` is the crate root, not a module).
fn tree_heads(tree: &str, out: &mut BTreeSet<String>) {
    let tree = tree.trim_start();
    let Some(group) = tree.strip_prefix('{') else {
        let name = ident(tree);
        if !name.is_empty() && name != "self" {
            out.insert(name.to_string());
        }
        return;
    };
    // Split the group at its top-level commas, up to its closing brace.
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                tree_heads(&group[start..i], out);
                return;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                tree_heads(&group[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    panic!("a use tree without its closing brace: crate::{tree:.60}");
}

/// The crate's top-level modules that `code` names: in `use crate::...;` trees (grouped imports
/// included) and in `crate::x` paths anywhere.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `pub(crate)::` is not a thing; `super::crate::` neither: any `crate::` starts a path,
        // unless it ends a longer name (`my_crate::`).
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        tree_heads(&code[i + "crate::".len()..], &mut out);
    }
    out
}

#[test]
fn use_trees_are_read_whole() {
    let names = |code: &str| crate_imports(code).into_iter().collect::<Vec<_>>();
    assert_eq!(names("use crate::time::Clock;"), ["time"]);
    assert_eq!(
        names("use crate::{\n    sim::{self, moves::Status},\n    time, store::{a, b},\n};"),
        ["sim", "store", "time"]
    );
    assert_eq!(
        names("pub(crate) use crate::{self as root, exchange};"),
        ["exchange"]
    );
    assert_eq!(names("let x = crate::sim::Profile::default();"), ["sim"]);
    assert_eq!(
        names("use my_crate::sim; fn f() -> pub(crate) u8"),
        Vec::<String>::new()
    );
}

#[test]
fn modules_depend_one_way_and_production_code_never_imports_the_simulator() {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let known: BTreeSet<(String, String)> = KNOWN_AGAINST_THE_GRAIN
        .iter()
        .map(|&(f, m)| (f.to_string(), m.to_string()))
        .collect();
    let mut found = BTreeSet::new();
    for (rel, text) in source_files() {
        let module = ident(&rel).to_string();
        let Some(&own) = layer.get(module.as_str()) else {
            continue; // lib.rs, main.rs
        };
        for name in crate_imports(code(&text)) {
            if name == module {
                continue;
            }
            let against = match layer.get(name.as_str()) {
                _ if name == "sim" => !SIM_USERS.contains(&module.as_str()),
                Some(&other) => other >= own,
                None => false,
            };
            if against {
                found.insert((rel.clone(), name));
            }
        }
    }
    let new: Vec<String> = found
        .difference(&known)
        .map(|(f, m)| format!("src/{f} uses crate::{m}"))
        .collect();
    assert!(
        new.is_empty(),
        "imports against the grain:\n{}",
        new.join("\n")
    );
    let gone: Vec<String> = known
        .difference(&found)
        .map(|(f, m)| format!("(\"{f}\", \"{m}\")"))
        .collect();
    assert!(
        gone.is_empty(),
        "known exceptions that no longer exist; delete them from KNOWN_AGAINST_THE_GRAIN:\n{}",
        gone.join("\n")
    );
}

#[test]
fn no_files_code_passes_a_thousand_lines() {
    let known: BTreeMap<&str, usize> = KNOWN_LONG_FILES.iter().copied().collect();
    let mut wrong = Vec::new();
    for (rel, text) in source_files() {
        let lines = code(&text).lines().count();
        match known.get(rel.as_str()) {
            Some(&then) if lines > then => wrong.push(format!(
                "src/{rel}: {lines} lines of code, more than the {then} it had when listed"
            )),
            Some(_) => {}
            None if lines > MAX_CODE_LINES => wrong.push(format!(
                "src/{rel}: {lines} lines of code, more than {MAX_CODE_LINES}"
            )),
            None => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
