#![allow(clippy::unwrap_used)]

//! The layers README's architecture section describes, kept so by reading the source: every
//! module of `src/` has a layer, no module uses one of a higher layer, the modules' `crate::`
//! references form no cycle, and the core does no I/O of its own (no files, processes,
//! network, environment or threads). Runs in milliseconds, without PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. A new module must be placed here (the test fails until it is).
const LAYERS: &[(&str, &[&str])] = &[
    // Pure: names, layout, manifest, retention policy, connection strings, the lexer, the
    // exit-code table, text for people.
    (
        "core",
        &[
            "archive",
            "catalog",
            "chain",
            "conninfo",
            "dirdump",
            "exit",
            "observer",
            "plain",
            "rdb",
            "retention",
            "secret",
            "text",
        ],
    ),
    // Storage, the pipeline, PostgreSQL and S3, verification, configuration, reporting: typed
    // outcomes, no argument parsing, no prompts.
    (
        "engine",
        &[
            "codec",
            "config",
            "crypt",
            "dbprops",
            "error",
            "fsutil",
            "job",
            "lock",
            "log",
            "metrics",
            "notify",
            "ops",
            "pipeline",
            "postgres",
            "redis",
            "redis_feed",
            "redis_server",
            "report",
            "run",
            "s3",
            "signals",
            "source",
            "state",
            "storage",
            "verify",
        ],
    ),
    // Arguments, rendering, prompts, progress.
    ("binary", &["cli", "commands", "main", "progress"]),
];

/// What a core module must not name: its I/O belongs to the engine.
const IMPURE: &[&str] = &[
    "std::fs",
    "std::process",
    "std::net",
    "std::env",
    "std::thread",
    "File::open",
    "Command::new",
];

/// The source of one file without its `#[cfg(test)]` tail and without comment lines.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file of `src/` belongs to.
fn module_of(rel: &Path) -> String {
    rel.components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The top-level modules `code` refers to with `crate::x` or `crate::{x, y::z}`.
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.insert(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module -> the modules it refers to.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all {
        let m = module_of(f.strip_prefix(&src).unwrap());
        if m == "lib" {
            continue;
        }
        let refs = references(&code(&f));
        let e = g.entry(m.clone()).or_default();
        e.extend(refs.into_iter().filter(|r| *r != m));
    }
    g
}

fn layer_of(m: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, ms))| ms.contains(&m))
        .map(|(i, (name, _))| (i, *name))
}

#[test]
fn every_module_has_a_layer_and_uses_none_above_it() {
    let g = graph();
    assert!(g.len() > 20, "found too few modules: {g:?}");
    let mut problems = Vec::new();
    for (m, refs) in &g {
        let Some((level, layer)) = layer_of(m) else {
            problems.push(format!(
                "{m}: not in tests/layers.rs LAYERS; place it in a layer"
            ));
            continue;
        };
        for r in refs {
            match layer_of(r) {
                Some((l, above)) if l > level => {
                    problems.push(format!("{m} ({layer}) uses {r} ({above})"))
                }
                None if g.contains_key(r) => problems.push(format!("{r}: not in LAYERS")),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_modules_form_no_import_cycle() {
    let g = graph();
    // Depth-first search; a back edge is a cycle, reported with its path.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            cycles.push(format!("{} -> {m}", path[i..].join(" -> ")));
            return;
        }
        if !done.insert(m.to_string()) {
            return;
        }
        path.push(m.to_string());
        for r in g.get(m).into_iter().flatten() {
            if g.contains_key(r) {
                visit(r, g, path, done, cycles);
            }
        }
        path.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_core_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for m in LAYERS[0].1 {
        let f = src.join(format!("{m}.rs"));
        let f = if f.exists() {
            f
        } else {
            src.join(m).join("mod.rs")
        };
        let text = code(&f);
        for bad in IMPURE {
            if text.contains(bad) {
                problems.push(format!("{m} (core) uses {bad}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Commands choose, call the engine and render; one never calls another (shared work is an
/// operation in `ops`, shared rendering is in `commands/mod.rs`).
#[test]
fn no_command_uses_another() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    let mut names = Vec::new();
    files(&dir, &mut names);
    let stems: Vec<String> = names
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .filter(|s| s != "mod")
        .collect();
    assert!(stems.len() >= 8, "{stems:?}");
    let mut problems = Vec::new();
    for f in &names {
        let me = f.file_stem().unwrap().to_string_lossy().to_string();
        if me == "mod" {
            continue;
        }
        let text = code(f);
        for other in stems.iter().filter(|o| **o != me) {
            for pattern in [format!("commands::{other}"), format!("super::{other}")] {
                if text.contains(&pattern) {
                    problems.push(format!("commands/{me}.rs uses {pattern}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself can fail: the references of a line that uses a higher layer are seen.
#[test]
fn the_reference_reader_sees_both_forms() {
    let refs =
        references("use crate::{log, storage::Storage};\nlet x = crate::commands::print(1);");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["commands", "log", "storage"]
    );
}
