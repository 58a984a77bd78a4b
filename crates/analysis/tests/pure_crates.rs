//! The pure crates stay pure: `scimtrail-scim`, `scimtrail-rules`, `scimtrail-intent` and
//! `scimtrail-analysis` do no I/O. Checked on the dependency graph — none depends, even
//! through another crate, on an async runtime, an HTTP or TLS stack, a database driver or a
//! scimtrail crate that does I/O — and on their sources, which name no socket, file,
//! thread, process, environment, clock or `async` code.
//!
//! The graph is read from the workspace's `Cargo.lock` (every platform's dependencies, so
//! no download is needed), starting from each pure crate's own `[dependencies]` (its
//! dev-dependencies are the tests', not the crate's).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure crates, by package name and folder.
const PURE: [(&str, &str); 4] = [
    ("scimtrail-scim", "scim"),
    ("scimtrail-rules", "rules"),
    ("scimtrail-intent", "intent"),
    ("scimtrail-analysis", "analysis"),
];

/// Crates that do I/O (or exist to): runtimes, sockets, HTTP and TLS, databases.
const DOING_IO: [&str; 22] = [
    "tokio",
    "mio",
    "socket2",
    "async-std",
    "futures-io",
    "hyper",
    "hyper-util",
    "hyper-rustls",
    "h2",
    "http-body-util",
    "axum",
    "tower",
    "reqwest",
    "rustls",
    "tokio-rustls",
    "sqlx",
    "sqlx-core",
    "rusqlite",
    "libsqlite3-sys",
    "tracing-subscriber",
    "notify",
    "rustls-native-certs",
];

/// What a pure crate's source never names.
const NOT_IN_PURE_SOURCE: [&str; 11] = [
    "std::net",
    "std::fs",
    "std::thread",
    "std::process",
    "std::env",
    "SystemTime",
    "Instant::now",
    "tokio",
    "async fn",
    "async move",
    ".await",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each package of the lock file, by name, with the names of its dependencies (every
/// version of a name merged: a name's versions are alike for this check).
fn lock_graph() -> BTreeMap<String, BTreeSet<String>> {
    let lock: toml::Table = read(&workspace().join("Cargo.lock")).parse().unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in lock["package"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_owned();
        let deps = package.get("dependencies").and_then(|d| d.as_array());
        let names = deps.into_iter().flatten().map(|d| {
            // "name", "name version" or "name version (source)".
            d.as_str().unwrap().split(' ').next().unwrap().to_owned()
        });
        graph.entry(name).or_default().extend(names);
    }
    graph
}

/// A crate's own `[dependencies]`, by package name (`package = "…"` renames included).
fn own_dependencies(folder: &str) -> BTreeSet<String> {
    let manifest: toml::Table = read(&workspace().join("crates").join(folder).join("Cargo.toml"))
        .parse()
        .unwrap();
    let Some(deps) = manifest.get("dependencies").and_then(|d| d.as_table()) else {
        return BTreeSet::new();
    };
    deps.iter()
        .map(|(key, spec)| spec.get("package").and_then(|p| p.as_str()).unwrap_or(key).to_owned())
        .collect()
}

/// Everything `start` depends on, through any path, with the path to each.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, start: BTreeSet<String>) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut todo: Vec<(String, String)> = start.into_iter().map(|d| (d.clone(), d)).collect();
    while let Some((name, path)) = todo.pop() {
        if seen.contains_key(&name) {
            continue;
        }
        // A workspace crate's own dependencies, not its dev-dependencies.
        let next = match PURE.iter().find(|(package, _)| *package == name) {
            Some((_, folder)) => own_dependencies(folder),
            None => graph.get(&name).cloned().unwrap_or_default(),
        };
        todo.extend(next.into_iter().map(|d| (d.clone(), format!("{path} → {d}"))));
        seen.insert(name, path);
    }
    seen
}

#[test]
fn the_pure_crates_depend_on_nothing_that_does_io() {
    let graph = lock_graph();
    let mut wrong = Vec::new();
    for (package, folder) in PURE {
        for (name, path) in reachable(&graph, own_dependencies(folder)) {
            let impure_scimtrail = name.starts_with("scimtrail-") && !PURE.iter().any(|(p, _)| *p == name);
            if DOING_IO.contains(&name.as_str()) || impure_scimtrail {
                wrong.push(format!("{package} → {path}"));
            }
        }
    }
    assert!(wrong.is_empty(), "pure crates depending on I/O:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_a_crate_that_does_io() {
    // The proxy depends on tokio and the store: the check must see both.
    let graph = lock_graph();
    let reached = reachable(&graph, BTreeSet::from(["scimtrail-proxy".to_owned()]));
    assert!(reached.contains_key("tokio"), "{reached:?}");
    assert!(reached.contains_key("scimtrail-store"), "{reached:?}");
    assert!(reached.contains_key("sqlx"), "{reached:?}");
}

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

#[test]
fn the_pure_crates_sources_name_no_io() {
    let mut wrong = Vec::new();
    for (_, folder) in PURE {
        let mut files = Vec::new();
        sources(&workspace().join("crates").join(folder).join("src"), &mut files);
        assert!(!files.is_empty(), "no sources in crates/{folder}/src");
        for file in files {
            let text = read(&file);
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for word in NOT_IN_PURE_SOURCE.iter().filter(|w| code.contains(**w)) {
                    wrong.push(format!("{}:{}: {word}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "I/O in a pure crate:\n{}", wrong.join("\n"));
}
