//! The structure rules of ARCHITECTURE.md, checked on the source tree:
//! - no module imports another that imports it back (directly or through others);
//! - the core names no upstream system: only a system's own folder (`src/systems/<system>/`)
//!   and the registry (`src/systems/mod.rs`, used by `config` alone) name a system's module,
//!   and no string literal outside `src/systems/` spells a system's name;
//! - the serving side (`server`, `landing`, `web`, `listen`) reaches neither a poller, a
//!   source, a system, the store (its write side: the server reads the exposition's views) nor
//!   the app, not even through other modules;
//! - no file of the project refers to the developers' shared folder beside the clone.
//!
//! The module graph is read from the `crate::`, `super::`, `self::` paths and the relative
//! paths to child modules in every file of a crate (test-only modules left out: a test
//! module may look at anything). An edge A -> B means a file of A names B or something
//! declared in B. Each crate of the workspace is its own graph: the exporter's `src/` and the
//! simulator's `crates/simulator/src/` (which cannot name the exporter at all: it does not
//! depend on it). Each rule is a function of the graph, shown to fail on a graph that breaks
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// The workspace root (the exporter package is its root package).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The simulator crate's sources.
fn simulator_src() -> PathBuf {
    root().join("crates/simulator/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> `["a", "b"]`; the crate root is `[]`.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin" || p == "main.rs") {
        return None; // binaries are separate crates that use the library by its name
    }
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    Some(parts)
}

/// The file's text without its test-only parts: every item under `#[cfg(test)]`
/// (the convention here: test modules, inline or in their own file, come last).
fn non_test_text(text: &str, test_children: &mut BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            match lines.next() {
                Some(next)
                    if next.trim_start().starts_with("mod ") && next.trim_end().ends_with(';') =>
                {
                    let name = next.trim().trim_start_matches("mod ").trim_end_matches(';');
                    test_children.insert(name.trim().to_string());
                    continue;
                }
                Some(next) if next.trim_start().starts_with("mod ") => break,
                // A single test-only item (a helper fn or use line): skip that line only.
                _ => continue,
            }
        }
        // Comments (doc links included) name paths without importing them.
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path the text names, as segments, braces expanded:
/// `crate::a::{self, b::C, d}` -> `crate::a`, `crate::a::b::C`, `crate::a::d`.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !(is_ident_char(chars[i - 1]) || chars[i - 1] == ':');
        if at_word_start && is_ident_char(chars[i]) {
            let (segs, end) = read_path(&chars, i, &mut found, &[]);
            if segs.len() > 1 {
                found.push(segs);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// Reads `a::b::c` or `a::b::{...}` from `start`; nested groups are pushed to `found`.
fn read_path(
    chars: &[char],
    start: usize,
    found: &mut Vec<Vec<String>>,
    prefix: &[String],
) -> (Vec<String>, usize) {
    let mut segs: Vec<String> = prefix.to_vec();
    let mut i = start;
    loop {
        let begin = i;
        while i < chars.len() && is_ident_char(chars[i]) {
            i += 1;
        }
        if i == begin {
            break;
        }
        segs.push(chars[begin..i].iter().collect());
        if i + 2 < chars.len() && chars[i] == ':' && chars[i + 1] == ':' {
            i += 2;
            if chars[i] == '{' {
                i += 1;
                loop {
                    while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                        i += 1;
                    }
                    if i >= chars.len() || chars[i] == '}' {
                        i += 1;
                        break;
                    }
                    if chars[i] == '*' {
                        i += 1;
                        continue;
                    }
                    let (inner, end) = read_path(chars, i, found, &segs);
                    let inner = if inner.last().is_some_and(|s| s == "self") {
                        inner[..inner.len() - 1].to_vec()
                    } else {
                        inner
                    };
                    if inner.len() > segs.len() || !inner.is_empty() {
                        found.push(inner);
                    }
                    i = end.max(i + 1);
                    // skip `as name` and anything else up to the next separator
                    while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                        i += 1;
                    }
                }
                return (Vec::new(), i);
            }
        } else {
            break;
        }
    }
    (segs, i)
}

/// The module a path names: the longest prefix of its absolute form that is a module.
fn resolve(
    from: &Module,
    path: &[String],
    modules: &BTreeSet<Module>,
    children: &BTreeSet<String>,
) -> Option<Module> {
    let mut abs: Module = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => {
            let mut m = from.clone();
            m.pop()?;
            m
        }
        first if children.contains(first) => from.clone(),
        _ => return None,
    };
    let mut rest = &path[1..];
    if path[0] != "crate" && path[0] != "self" && path[0] != "super" {
        rest = path;
    }
    let mut iter = rest.iter().peekable();
    while let Some(seg) = iter.peek() {
        if *seg == "super" {
            abs.pop()?;
            iter.next();
        } else {
            break;
        }
    }
    let tail: Vec<&String> = iter.collect();
    let mut best = if modules.contains(&abs) {
        Some(abs.clone())
    } else {
        None
    };
    let mut cur = abs;
    for seg in tail {
        cur.push(seg.clone());
        if modules.contains(&cur) {
            best = Some(cur.clone());
        }
    }
    best
}

type Edges = BTreeMap<Module, BTreeSet<Module>>;

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Edges {
    crate_model(src).0
}

/// The module graph and each module's non-test text.
fn crate_model(src: &Path) -> (Edges, BTreeMap<Module, String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut texts = BTreeMap::new();
    let mut test_only: BTreeSet<Module> = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        let mut test_children = BTreeSet::new();
        let body = non_test_text(&text, &mut test_children);
        for child in test_children {
            let mut m = module.clone();
            m.push(child);
            test_only.insert(m);
        }
        texts.insert(module, body);
    }
    // A module under a test-only module is test-only too.
    let modules: BTreeSet<Module> = texts
        .keys()
        .filter(|m| !test_only.iter().any(|t| m.starts_with(t)))
        .cloned()
        .collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for module in &modules {
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .filter_map(|m| m.last().cloned())
            .collect();
        let out = edges.entry(module.clone()).or_default();
        for path in paths(&texts[module]) {
            // `pub mod x;` declarations are not paths; `mod` lines never reach here.
            if let Some(target) = resolve(module, &path, &modules, &children) {
                if &target != module {
                    out.insert(target);
                }
            }
        }
    }
    texts.retain(|m, _| modules.contains(m));
    (edges, texts)
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// Whether `a` has an edge to `b`: the sanity checks that the reader sees what it must.
fn has_edge(edges: &Edges, a: &[&str], b: &[&str]) -> bool {
    let a: Module = a.iter().map(|s| s.to_string()).collect();
    let b: Module = b.iter().map(|s| s.to_string()).collect();
    edges.get(&a).is_some_and(|e| e.contains(&b))
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let edges = graph(&root().join("src"));
    assert!(
        edges.len() > 20,
        "expected the whole crate, found {} modules",
        edges.len()
    );
    assert!(
        has_edge(&edges, &["poller"], &["sources"]),
        "poller uses sources"
    );
    assert!(
        has_edge(&edges, &["server"], &["exposition"]),
        "server uses exposition"
    );
    let cycles = cycles(&edges);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_simulator_module_imports_another_that_imports_it_back() {
    let edges = graph(&simulator_src());
    assert!(
        edges.len() > 20,
        "expected the whole simulator crate, found {} modules",
        edges.len()
    );
    assert!(
        has_edge(&edges, &["router"], &["system"]),
        "the router dispatches through the System trait"
    );
    assert!(
        has_edge(
            &edges,
            &["systems", "zdm", "routes"],
            &["systems", "zdm", "wire"]
        ),
        "zdm's routes use its wire format"
    );
    assert!(
        has_edge(&edges, &["demo"], &["targets"]),
        "demo uses targets"
    );
    let cycles = cycles(&edges);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// Every cycle of the graph, as `a -> b -> a`.
fn cycles(edges: &Edges) -> Vec<String> {
    let mut cycles = Vec::new();
    // Depth-first search with colours; every back edge is a cycle.
    let mut state: BTreeMap<&Module, u8> = BTreeMap::new();
    fn visit<'a>(
        m: &'a Module,
        edges: &'a Edges,
        state: &mut BTreeMap<&'a Module, u8>,
        stack: &mut Vec<&'a Module>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(m, 1);
        stack.push(m);
        for next in edges.get(m).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|s| *s == next).unwrap_or(0);
                    let mut names: Vec<String> = stack[from..].iter().map(|s| name(s)).collect();
                    names.push(name(next));
                    cycles.push(names.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m, 2);
    }
    for m in edges.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            visit(m, edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

/// A graph from `a -> b` lines, for the checks' own tests.
fn edges_of(lines: &[&str]) -> Edges {
    let module = |s: &str| -> Module {
        if s == "crate" {
            Vec::new()
        } else {
            s.split("::").map(str::to_string).collect()
        }
    };
    let mut edges = Edges::new();
    for line in lines {
        let (a, b) = line.split_once(" -> ").expect("a -> b");
        edges.entry(module(b)).or_default();
        edges.entry(module(a)).or_default().insert(module(b));
    }
    edges
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let found = cycles(&edges_of(&["a -> b", "b -> c::d", "c::d -> a", "e -> a"]));
    assert_eq!(found, ["a -> b -> c::d -> a"]);
    assert!(cycles(&edges_of(&["a -> b", "b -> c", "a -> c"])).is_empty());
}

#[test]
fn the_path_reader_sees_every_form_of_path() {
    let text = "use crate::a::{self, b::C};\nfn f() { super::x::y(); child::z(); }";
    let found = paths(text);
    let shown: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert!(shown.contains(&"crate::a".to_string()), "{shown:?}");
    assert!(shown.contains(&"crate::a::b::C".to_string()), "{shown:?}");
    assert!(shown.contains(&"super::x::y".to_string()), "{shown:?}");
    assert!(shown.contains(&"child::z".to_string()), "{shown:?}");
}

#[test]
fn no_file_refers_to_the_shared_folder_beside_the_clone() {
    let needle = format!("../{}", "shared");
    let mut offenders = Vec::new();
    let mut read = BTreeSet::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(Result::ok)
        {
            let path = entry.path();
            let file_name = entry.file_name();
            let n = file_name.to_string_lossy();
            if path.is_dir() {
                if n != "target" && n != ".git" {
                    stack.push(path);
                }
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                if text.contains(&needle) {
                    offenders.push(path.display().to_string());
                }
                read.insert(path);
            }
        }
    }
    // The walk covers every crate of the workspace, not only the root package.
    for file in [root().join("src/lib.rs"), simulator_src().join("lib.rs")] {
        assert!(read.contains(&file), "{} was not read", file.display());
    }
    assert!(offenders.is_empty(), "files naming {needle}: {offenders:?}");
}

/// The systems of the crate whose sources are in `src`: the folders under `src/systems/`.
fn systems(src: &Path) -> Vec<String> {
    let dir = src.join("systems");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every edge that names a system from outside it: `systems::<s>` (or inside it) may be
/// named from `systems::<s>` itself and from the registry `systems`; the registry only from
/// a system's folder, the crate root and the `registry_users`.
fn system_named_outside_its_folder(
    edges: &Edges,
    systems: &[String],
    registry_users: &[&str],
) -> Vec<String> {
    let registry: Module = vec!["systems".to_string()];
    let mut found = Vec::new();
    for (from, tos) in edges {
        for to in tos {
            let allowed = if to == &registry {
                // The crate root may re-export what the registry gathers.
                from.is_empty()
                    || from.starts_with(&registry)
                    || from
                        .first()
                        .is_some_and(|m| registry_users.contains(&m.as_str()))
            } else if to.starts_with(&registry) && to.len() > 1 {
                let folder = &to[..2];
                from.starts_with(folder) || from == &registry
            } else {
                true
            };
            if !allowed {
                found.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    // Only folders that exist are systems; a system module the graph does not know is a
    // reader bug, not a pass.
    for system in systems {
        let m: Module = vec!["systems".to_string(), system.clone()];
        if !edges.contains_key(&m) {
            found.push(format!("systems::{system} is not in the module graph"));
        }
    }
    found
}

/// Every module outside `src/systems/` whose non-test code holds a string literal spelling a
/// system's name (`"zdm"`): the core tells systems apart by their descriptors, not by name.
fn system_spelled_outside_its_folder(
    texts: &BTreeMap<Module, String>,
    systems: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    for (module, text) in texts {
        if module.first().is_some_and(|m| m == "systems") {
            continue;
        }
        for system in systems {
            if text.to_lowercase().contains(&format!("\"{system}\"")) {
                found.push(format!("{} spells \"{system}\"", name(module)));
            }
        }
    }
    found
}

/// Every module of the serving side that reaches, through any chain of imports, a module
/// only the polling and recording side may use.
fn serving_side_reaches_the_write_side(edges: &Edges) -> Vec<String> {
    const SERVING: &[&str] = &["server", "landing", "web", "listen"];
    const WRITE_SIDE: &[&str] = &["poller", "sources", "systems", "store", "app", "http"];
    let mut found = Vec::new();
    for start in edges.keys() {
        if !start.first().is_some_and(|m| SERVING.contains(&m.as_str())) {
            continue;
        }
        // Breadth-first, remembering how each module was reached.
        let mut via: BTreeMap<&Module, &Module> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(m) = queue.pop_front() {
            for next in edges.get(m).into_iter().flatten() {
                if next == start || via.contains_key(next) {
                    continue;
                }
                via.insert(next, m);
                if next
                    .first()
                    .is_some_and(|n| WRITE_SIDE.contains(&n.as_str()))
                {
                    let mut chain = vec![name(next)];
                    let mut at = next;
                    while let Some(prev) = via.get(at) {
                        chain.push(name(prev));
                        if *prev == start {
                            break;
                        }
                        at = prev;
                    }
                    chain.reverse();
                    found.push(chain.join(" -> "));
                } else {
                    queue.push_back(next);
                }
            }
        }
    }
    found
}

#[test]
fn the_core_names_no_system() {
    let (edges, texts) = crate_model(&root().join("src"));
    let systems = systems(&root().join("src"));
    assert!(systems.len() >= 3, "systems found: {systems:?}");
    assert!(
        has_edge(&edges, &["config"], &["systems"]),
        "config looks types up in the registry"
    );
    let registry = &texts[&vec!["systems".to_string()]];
    for system in &systems {
        assert!(
            registry.contains(&format!("    {system},\n")),
            "the registry lists {system}"
        );
    }
    let named = system_named_outside_its_folder(&edges, &systems, &["config"]);
    assert!(
        named.is_empty(),
        "systems named outside their folder:\n{}",
        named.join("\n")
    );
    let spelled = system_spelled_outside_its_folder(&texts, &systems);
    assert!(spelled.is_empty(), "{}", spelled.join("\n"));
}

/// The simulator the same way: a system is its folder plus one line of its registry; the
/// router, the admin API and `--demo` reach systems through the `System` and `Setup` traits.
#[test]
fn the_simulator_names_no_system_outside_its_folder() {
    let src = simulator_src();
    let (edges, texts) = crate_model(&src);
    let systems = systems(&src);
    assert!(systems.len() >= 3, "systems found: {systems:?}");
    let registry = &texts[&vec!["systems".to_string()]];
    for system in &systems {
        assert!(
            registry.contains(&format!("    {system},\n")),
            "the registry lists {system}"
        );
    }
    // The options gather every system's flags from the registry.
    let named = system_named_outside_its_folder(&edges, &systems, &["options"]);
    assert!(
        named.is_empty(),
        "systems named outside their folder:\n{}",
        named.join("\n")
    );
    let spelled = system_spelled_outside_its_folder(&texts, &systems);
    assert!(spelled.is_empty(), "{}", spelled.join("\n"));
}

#[test]
fn the_system_checks_see_a_system_named_outside_its_folder() {
    let systems = ["zdm".to_string()];
    let edges = edges_of(&[
        "config -> systems",
        "systems -> systems::zdm",
        "systems::zdm::map -> systems::zdm::wire",
        "systems::zdm -> systems::zdm::map",
        "systems::zdm -> model",
        "store -> systems::zdm::labels",
        "poller -> systems",
        "systems::scp -> systems::zdm::wire",
    ]);
    assert_eq!(
        system_named_outside_its_folder(&edges, &systems, &["config"]),
        [
            "poller -> systems",
            "store -> systems::zdm::labels",
            "systems::scp -> systems::zdm::wire",
        ]
    );
    let gone =
        system_named_outside_its_folder(&edges_of(&["config -> systems"]), &systems, &["config"]);
    assert_eq!(gone, ["systems::zdm is not in the module graph"]);
    let texts = BTreeMap::from([
        (
            vec!["metrics".to_string()],
            "if s == \"ZDM\" {}".to_string(),
        ),
        (
            vec!["systems".to_string(), "zdm".to_string()],
            "\"zdm\"".to_string(),
        ),
        (
            vec!["store".to_string()],
            "// zdm\nlet zdm = 1;".to_string(),
        ),
    ]);
    assert_eq!(
        system_spelled_outside_its_folder(&texts, &systems),
        ["metrics spells \"zdm\""]
    );
}

#[test]
fn the_server_reaches_no_poller_source_or_store_write_side() {
    let edges = graph(&root().join("src"));
    assert!(
        has_edge(&edges, &["server"], &["landing"]),
        "server uses landing"
    );
    assert!(
        has_edge(&edges, &["landing"], &["exposition"]),
        "landing reads the exposition's views"
    );
    let found = serving_side_reaches_the_write_side(&edges);
    assert!(
        found.is_empty(),
        "the serving side reaches:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_serving_check_sees_a_write_side_import_through_other_modules() {
    let edges = edges_of(&[
        "server -> exposition",
        "exposition -> metrics",
        "metrics -> store::render",
        "landing -> poller",
        "app -> server",
        "listen -> text",
    ]);
    assert_eq!(
        serving_side_reaches_the_write_side(&edges),
        [
            "landing -> poller",
            "server -> exposition -> metrics -> store::render",
        ]
    );
}
