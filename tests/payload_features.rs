//! aelimg builds ael and native-tools in separate `cargo build -p` runs,
//! so a dependency they share is compiled once only if both ask for the same
//! features of it and of everything below it. crates/payload-features asks
//! for the union; this test fails when the two graphs drift apart, naming
//! the crates and features, so the cold build does not silently grow.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::ok;

/// Each crate of `package`'s graph for `target` (normal and build edges,
/// as cargo compiles them) with its features and its dependencies.
fn graph(package: &str, target: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let out = ok(std::process::Command::new("cargo")
        .current_dir(common::repo())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal,build",
            "--prefix",
            "depth",
            "--no-dedupe",
            "--format",
            "{p}|{f}",
            "--target",
            target,
            "-p",
            package,
        ]));
    let mut nodes: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    for line in out.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let (pkg, features) = line[digits..].split_once('|').unwrap();
        // "name v1.2.3 (path or proc-macro)" -> "name v1.2.3"
        let id = pkg.split(" (").next().unwrap().trim().to_string();
        let features = features.trim_end_matches(" (*)").trim().to_string();
        nodes
            .entry(id.clone())
            .or_insert_with(|| (features, BTreeSet::new()));
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            nodes.get_mut(parent).unwrap().1.insert(id.clone());
        }
        stack.push(id);
    }
    nodes
}

#[test]
fn the_payload_crates_share_every_dependency_build() {
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let ael = graph("ael", target);
        let tools = graph("native-tools", target);
        assert!(
            ael.len() > 100 && tools.len() > 100,
            "{target}: graphs too small"
        );
        let mut differ = Vec::new();
        for (id, (features, deps)) in &ael {
            let Some((their_features, their_deps)) = tools.get(id) else {
                continue;
            };
            if features != their_features || deps != their_deps {
                differ.push(format!(
                    "{id}: ael [{features}] {deps:?}, native-tools [{their_features}] {their_deps:?}"
                ));
            }
        }
        assert!(
            differ.is_empty(),
            "{target}: shared crates built differently for ael and native-tools (add the \
             features to crates/payload-features/Cargo.toml):\n{}",
            differ.join("\n")
        );
    }
}
