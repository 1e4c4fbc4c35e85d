//! The workspace's module import graphs have no cycles: a module may use its own submodules
//! and its ancestors, but two modules that are neither must not use each other, directly or
//! around a ring. Read from the sources, so a new `use` that closes a ring fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`ops::flags`, `` for the crate root) → its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut segs: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                segs.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segs.pop();
            }
            out.insert(segs.join("::"), p);
        }
    }
    out
}

/// The code of a file without comments and without its unit-test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths a file names through `crate::` or `super::`, as module-relative segments; a
/// `{a, b::c}` group gives one path per member.
fn named_paths(module: &str, text: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = match module.rsplit_once("::") {
        Some((p, _)) => p.split("::").map(str::to_owned).collect(),
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let head: Vec<String> = rest[..end]
                .trim_end_matches(':')
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let mut group = Vec::new();
            if rest[end..].starts_with('{') {
                let close = rest[end..].find('}').map_or(rest.len(), |j| end + j);
                for member in rest[end + 1..close].split(',') {
                    let member = member.split(" as ").next().unwrap_or("").trim();
                    group.push(member.split("::").map(str::to_owned).collect::<Vec<_>>());
                }
            } else {
                group.push(Vec::new());
            }
            for tail in group {
                let mut p = base.clone();
                p.extend(head.iter().cloned());
                p.extend(tail);
                out.push(p);
            }
        }
    }
    out
}

fn related(a: &str, b: &str) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.starts_with(&format!("{b}::"))
        || b.starts_with(&format!("{a}::"))
}

/// Module → the modules it uses (neither itself, an ancestor nor a descendant).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        let uses = g.entry(m.clone()).or_default();
        for path in named_paths(m, &code(file)) {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|c| mods.contains_key(c));
            if let Some(t) = target.filter(|t| t != m && !related(m, t)) {
                uses.insert(t);
            }
        }
    }
    g
}

/// A ring of modules, if the graph has one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| p == n).unwrap();
                let mut ring = path[start..].to_vec();
                ring.push(n.to_owned());
                return Some(ring);
            }
            None => {}
        }
        marks.insert(n.to_owned(), Mark::Open);
        path.push(n.to_owned());
        for next in g.get(n).into_iter().flatten() {
            if let Some(ring) = visit(next, g, marks, path) {
                return Some(ring);
            }
        }
        path.pop();
        marks.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut marks, &mut Vec::new()))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for e in std::fs::read_dir(crates).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let g = graph(&src);
        assert!(
            g.len() > 1 || g.contains_key(""),
            "read no modules in {}",
            src.display()
        );
        if let Some(ring) = find_cycle(&g) {
            panic!(
                "{name}: modules use each other in a ring: {}",
                ring.join(" → ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "found only {checked} crates");
}

#[test]
fn the_checker_sees_a_ring_through_use_groups_and_super() {
    let text_a = "use crate::{b::Thing, c};";
    let paths = named_paths("a", text_a);
    assert!(paths.contains(&vec!["b".into(), "Thing".into()]));
    assert!(paths.contains(&vec!["c".into()]));
    let paths = named_paths("x::y", "fn f() { super::z::g(); }");
    assert_eq!(paths, vec![vec!["x".to_string(), "z".into(), "g".into()]]);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).map(|r| r.len()), Some(4));
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
