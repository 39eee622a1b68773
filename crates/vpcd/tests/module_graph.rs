//! The crate reads top-down: no module imports a module that imports it
//! back.
//!
//! Every `crate::`, `super::` and `self::` path in `src/` (use lines, use
//! groups and paths written inline) is an edge from the module whose file
//! holds it to the module it names. At every level of the module tree, the
//! edges between sibling modules (from anything inside one to anything
//! inside another) must form no cycle. A module using its own parent's items
//! (`super::List`) or declaring its children does not count: that is the
//! tree itself, not a dependency between parts. Unit-test modules
//! (`#[cfg(test)] mod tests`, last in their file) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root (`["v2", "params"]`; the root is `[]`).
type Module = Vec<String>;

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let cycles = cycles(&src);
    assert!(
        cycles.is_empty(),
        "import cycles between modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn a_cycle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("a.rs", "use crate::b::X;\n"),
        ("b/mod.rs", "mod inner;\npub(crate) struct X;\n"),
        // Inside `b`, but what counts is that `b` reaches `c`...
        ("b/inner.rs", "fn f() { crate::c::g(); }\n"),
        // ...and `c` reaches `a` through a use group.
        (
            "c.rs",
            "use crate::{a, b::X};\n// crate::nothing in a comment\n",
        ),
    ];
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let found = cycles(dir.path());
    assert_eq!(found, ["a -> b -> c -> a"], "{found:?}");
}

/// Every cycle among sibling modules, as `a -> b -> a` (paths joined by
/// `::`), at most one per level of the tree.
fn cycles(src: &Path) -> Vec<String> {
    let files = rust_files(src);
    let known: BTreeSet<Module> = files.iter().map(|f| module_of(src, f)).collect();
    // Parent module -> (child -> children it reaches).
    let mut levels: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for path in references(&code_of(&text), &from) {
            let to = resolve(&known, &path);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                // The same module, an ancestor or a descendant.
                continue;
            }
            levels
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    levels
        .iter()
        .filter_map(|(parent, edges)| {
            find_cycle(edges).map(|c| {
                c.iter()
                    .map(|m| {
                        [parent.as_slice(), std::slice::from_ref(m)]
                            .concat()
                            .join("::")
                    })
                    .collect::<Vec<_>>()
                    .join(" -> ")
            })
        })
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    // The binary is its own crate: it reaches the library as `vpcd::`.
    out.retain(|p| p.file_name().is_some_and(|n| n != "main.rs") || p.parent() != Some(dir));
    out.sort();
    out
}

/// `src/v2/params.rs` -> `v2::params`; `src/v2/mod.rs` -> `v2`; `src/lib.rs` -> root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text without comments and without the trailing unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every absolute module path that `code`, the text of module `here`,
/// names through `crate::`, `super::` or `self::`.
fn references(code: &str, here: &Module) -> Vec<Module> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]);
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        let anchor = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|a| starts_word && rest.starts_with(a));
        let Some(anchor) = anchor else {
            i += 1;
            continue;
        };
        let mut base: Module = match anchor {
            "crate::" => Vec::new(),
            "super::" => here[..here.len().saturating_sub(1)].to_vec(),
            _ => here.clone(),
        };
        let mut pos = i + anchor.len();
        // `super::super::...`
        while chars[pos..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
            base.pop();
            pos += "super::".len();
        }
        let (paths, end) = use_tree(&chars, pos);
        out.extend(paths.into_iter().map(|p| [base.clone(), p].concat()));
        i = end.max(i + 1);
    }
    out
}

/// Parse `a::b::{c, d::e}` from `pos`: the paths it names, and where it
/// ends.
fn use_tree(chars: &[char], mut pos: usize) -> (Vec<Module>, usize) {
    let skip_ws = |p: &mut usize| {
        while *p < chars.len() && chars[*p].is_whitespace() {
            *p += 1;
        }
    };
    let mut prefix: Module = Vec::new();
    loop {
        skip_ws(&mut pos);
        if chars.get(pos) == Some(&'{') {
            pos += 1;
            let mut all = Vec::new();
            loop {
                skip_ws(&mut pos);
                match chars.get(pos) {
                    Some('}') => return (all, pos + 1),
                    Some(',') => pos += 1,
                    None => return (all, pos),
                    _ => {
                        let (inner, end) = use_tree(chars, pos);
                        all.extend(inner.into_iter().map(|p| [prefix.clone(), p].concat()));
                        pos = end;
                    }
                }
            }
        }
        let start = pos;
        while pos < chars.len() && is_ident(chars[pos]) {
            pos += 1;
        }
        if pos > start {
            prefix.push(chars[start..pos].iter().collect());
        }
        skip_ws(&mut pos);
        if chars[pos..].starts_with(&[':', ':']) {
            pos += 2;
        } else {
            return (vec![prefix], pos);
        }
    }
}

/// The module a path names: its longest prefix that is a module.
fn resolve(known: &BTreeSet<Module>, path: &Module) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains(m))
        .unwrap_or_default()
}

/// One cycle in a directed graph, as the nodes along it (first repeated
/// last).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}
