//! A crate's top-level modules and which of them each one imports, read
//! from its source: shared by the layer tests of `runner-lab` and `runner`
//! (each includes this file with `#[path]`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A top-level module's name and every file of it.
pub fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules.insert(name, rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.insert(name, vec![path]);
        }
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// How many `super::` climb from `file` to the crate root: a file's module
/// is its path under `src` (a `mod.rs` is its folder's module).
fn depth(src: &Path, file: &Path) -> usize {
    let relative = file.strip_prefix(src).unwrap();
    let parts = relative.components().count();
    if file.file_name().is_some_and(|n| n == "mod.rs") { parts - 1 } else { parts }
}

/// The first identifiers after each `crate::` (and after a `super::` chain
/// that reaches the root), including each one in a `crate::{a, b::c}` group.
pub fn crate_references(code: &str, depth: usize) -> BTreeSet<String> {
    let root_prefixes = [Some("crate::".to_string()), (depth > 0).then(|| "super::".repeat(depth))];
    let mut found = BTreeSet::new();
    // Comments dropped, lines joined: a `use crate::{...}` group may span lines.
    let code: String = code.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    {
        let line = code.as_str();
        for prefix in root_prefixes.iter().flatten() {
            for (at, _) in line.match_indices(prefix.as_str()) {
                // `super::super::x` seen from a shallower depth is not the root.
                if prefix.starts_with("super") && line[..at].ends_with("super::") {
                    continue;
                }
                let rest = &line[at + prefix.len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or_default();
                    found.extend(group.split(',').map(|item| first_identifier(item.trim())));
                } else {
                    found.insert(first_identifier(rest));
                }
            }
        }
    }
    found.retain(|name| !name.is_empty() && name != "super" && name != "self");
    found
}

fn first_identifier(path: &str) -> String {
    path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// Which top-level modules each one imports.
pub fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut graph = BTreeMap::new();
    for (name, files) in &modules {
        let mut targets = BTreeSet::new();
        for file in files {
            let code = std::fs::read_to_string(file).unwrap();
            targets.extend(crate_references(&code, depth(src, file)));
        }
        targets.retain(|t| t != name && modules.contains_key(t));
        graph.insert(name.clone(), targets);
    }
    graph
}

/// The first cycle, as the modules along it (the first one repeated at the end).
pub fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
