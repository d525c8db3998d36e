//! The shape of the source tree a newcomer relies on: module dependencies
//! run one way (no module imports one that imports it, directly or round
//! about), and no source file grows past what one sitting can read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file (`sink::kafka` for src/sink/kafka/mod.rs).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return "crate".into();
    }
    parts.join("::")
}

/// Code without comments and without the unit tests at the end.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest known module that `path` (`a::b::C`) names.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|i| segs[..i].join("::"))
        .find(|m| modules.contains(m))
}

/// Module → the modules it uses, leaving out a module's own ancestors and
/// descendants (a parent owns its children; a child may use its parent);
/// a module's edges include those of its descendants.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        let text = code(&std::fs::read_to_string(f).unwrap());
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let base: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let base = base.trim_end_matches(':').to_owned();
            // `crate::a::{b, c::D}`: each item of the group.
            let after = &rest[base.len()..];
            if let Some(group) = after.strip_prefix("::{") {
                let group = group.split('}').next().unwrap();
                for item in group.split(',') {
                    let item = item.split_whitespace().next().unwrap_or("");
                    uses.insert(format!("{base}::{item}"));
                }
            }
            uses.insert(base);
        }
        let parent = m.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
        for (i, _) in text.match_indices("super::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            uses.insert(if parent.is_empty() {
                name
            } else {
                format!("{parent}::{name}")
            });
        }
        for u in uses {
            let Some(t) = resolve(&u, &modules) else {
                continue;
            };
            let related =
                t == m || m.starts_with(&format!("{t}::")) || t.starts_with(&format!("{m}::"));
            if related || t == "crate" {
                continue;
            }
            // A module stands for its whole subtree: what a child uses, its
            // ancestors use too (unless it lies inside them).
            let mut owner = m.clone();
            loop {
                if !t.starts_with(&format!("{owner}::")) {
                    edges.entry(owner.clone()).or_default().insert(t.clone());
                }
                match owner.rsplit_once("::") {
                    Some((p, _)) => owner = p.to_owned(),
                    None => break,
                }
            }
        }
    }
    edges
}

#[test]
fn module_dependencies_have_no_circle() {
    let edges = graph();
    // Depth-first search for a back edge; report the circle found.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for t in edges.get(m).into_iter().flatten() {
            match state.get(t.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == t).unwrap();
                    let mut circle = stack[from..].to_vec();
                    circle.push(t.clone());
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(t, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if !state.contains_key(m.as_str()) {
            if let Some(circle) = visit(m, &edges, &mut state, &mut vec![]) {
                panic!(
                    "module dependencies run in a circle: {}",
                    circle.join(" -> ")
                );
            }
        }
    }
    // The graph is read at all: the app uses the routes, the routes the recorder.
    assert!(
        edges["app"].contains("routes") && edges["routes"].contains("record"),
        "{edges:?}"
    );
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}
