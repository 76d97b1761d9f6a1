//! The dependency direction DESIGN.md sets: cli -> engine -> (exchange, directory, store) -> (plan,
//! inventory, config) -> leaves (time, secrets, format, text). The simulator sits beside the clients and
//! only the command line and the forecast (which replays the plan on the simulator's move model by
//! design) may import it. This test reads `src/` and fails on an import against the
//! grain, so a cycle cannot creep back in.

use std::collections::BTreeMap;
use std::path::Path;

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
    ("exchange", 3),
    // The store keeps the move figures `exchange` parses.
    ("store", 4),
    ("directory", 4),
    ("engine", 5),
    ("analytics", 5),
    ("sim", 6),
    ("ui", 6),
    ("forecast", 7),
    ("cli", 8),
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_depend_one_way_and_production_code_never_imports_the_simulator() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(&own) = layer.get(module.as_str()) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == module {
                continue;
            }
            match layer.get(name.as_str()) {
                Some(&other) if other < own => {}
                Some(_) => wrong.push(format!("{} uses crate::{name}", rel.display())),
                None => {}
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports against the grain:\n{}",
        wrong.join("\n")
    );
}
