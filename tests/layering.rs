//! The house has no back stairs: every top-level module of `src/` imports only modules below it
//! in the order a request meets them, so the import graph between them has no cycle. Read from
//! the `crate::` paths of non-test code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. Ground floor, the layers in the order a request meets them, the config and the
/// snapshot compiled from it, the decision, then what accepts, forwards and records requests.
const ORDER: &[&str] = &[
    // ground floor
    "clock",
    "ids",
    "net",
    "pattern",
    "worker",
    "decision",
    // layers
    "tls",
    "identity",
    "admit",
    "route",
    "authz",
    "headers",
    "protocol",
    "upstream",
    "telemetry",
    "anomaly",
    "agents",
    "cluster",
    // the config, compiled
    "config",
    "snapshot",
    // the decision and the request's way
    "pipeline",
    "forward",
    "server",
    "admin",
    "explain",
    "suggest",
    "app",
    // tools around the proxy
    "certs",
    "demo",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::x` references in the code of `text` before its first `#[cfg(test)]`, comments skipped.
fn references(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = tail;
        }
    }
    found
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
        let first = parts.next().unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" || file.file_name().is_some_and(|n| n == "tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        let refs = references(&text);
        graph
            .entry(module.clone())
            .or_default()
            .extend(refs.into_iter().filter(|r| *r != module));
    }
    graph
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let graph = import_graph();
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        let Some(r) = rank(module) else {
            wrong.push(format!("`{module}` has no place in ORDER"));
            continue;
        };
        for target in imports {
            match rank(target) {
                Some(t) if t < r => {}
                Some(_) => wrong.push(format!("{module} -> {target} runs against the layering")),
                None => wrong.push(format!(
                    "{module} -> {target}: `{target}` has no place in ORDER"
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_import_graph_has_no_cycle() {
    let graph = import_graph();
    // Kahn's algorithm: a graph is acyclic when every node can be removed in dependency order.
    let mut remaining = graph.clone();
    loop {
        let leaves: Vec<String> = remaining
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !remaining.contains_key(d)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for l in leaves {
            remaining.remove(&l);
        }
    }
    assert!(
        remaining.is_empty(),
        "modules in a cycle: {:?}",
        remaining.keys().collect::<Vec<_>>()
    );
    assert!(graph.len() >= 20, "the graph was not read: {graph:?}");
}

#[test]
fn the_reader_sees_imports_and_skips_tests() {
    let text = "use crate::ids::AgentId;\n// crate::server in a comment\nfn f() { crate::net::canonical_ip(x); }\n#[cfg(test)]\nmod tests { use crate::certs; }\n";
    let refs = references(text);
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["ids", "net"]);
}
