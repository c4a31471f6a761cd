//! The code's shape, checked: dependencies point one way, every protocol has the same four files,
//! the capture decoder asks the registry instead of naming protocols, and no two files import each
//! other (directly or round a longer circle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A file's text without its unit tests (they may use anything).
fn code_of(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap();
    match s.find("#[cfg(test)]") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[test]
fn proto_never_imports_the_suite_model() {
    let bad: Vec<String> = rust_files(&root().join("src/proto"))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("crate::suite"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(bad.is_empty(), "proto reads YAML through `syntax`, never the suite model: {bad:?}");
}

#[test]
fn capture_names_no_protocol() {
    let names: Vec<&str> = wirecheck::proto::all().iter().map(|p| p.name()).collect();
    let folders: Vec<String> = std::fs::read_dir(root().join("src/proto"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut bad = Vec::new();
    for f in rust_files(&root().join("src/capture")) {
        let code = code_of(&f);
        for n in &names {
            if code.contains(&format!("\"{n}\"")) {
                bad.push(format!("{}: \"{n}\"", f.display()));
            }
        }
        for m in &folders {
            if code.contains(&format!("proto::{m}::")) {
                bad.push(format!("{}: proto::{m}::", f.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the capture decoder asks the registry (ports, detect, find_or_raw): {bad:?}"
    );
}

#[test]
fn every_protocol_is_a_folder_of_the_same_four_files() {
    let dir = root().join("src/proto");
    let mut protocols = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            // `common/` holds what the protocols share, in the same shape.
            protocols += usize::from(name != "common");
            for f in ["mod.rs", "codec.rs", "steps.rs", "rules.rs"] {
                assert!(p.join(f).is_file(), "{} has no {f}", p.display());
            }
        } else {
            assert_eq!(name, "mod.rs", "a protocol is a folder, and what protocols share is in common/");
        }
    }
    // Every registered protocol lives in one of the folders (line and line-crlf share one).
    assert!(
        protocols >= 7 && protocols <= wirecheck::proto::all().len(),
        "{protocols} protocol folders"
    );
}

/// A crate's files by module path (`["proto", "dns", "wire"]`), and the module path of each file.
struct Crate {
    files: BTreeMap<Vec<String>, PathBuf>,
}

impl Crate {
    fn new(src: &Path) -> Crate {
        let mut files = BTreeMap::new();
        for f in rust_files(src) {
            let rel = f.strip_prefix(src).unwrap();
            let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            let last = segs.pop().unwrap();
            match last.as_str() {
                "mod.rs" | "lib.rs" => {}
                "main.rs" => continue,
                _ => segs.push(last.trim_end_matches(".rs").to_string()),
            }
            files.insert(segs, f);
        }
        Crate { files }
    }

    fn module_of(&self, f: &Path) -> Vec<String> {
        self.files.iter().find(|(_, p)| p.as_path() == f).unwrap().0.clone()
    }

    /// A folder's entry point: `mod.rs`, `lib.rs`, or `x.rs` beside its children's folder `x/`.
    fn is_front_door(p: &Path) -> bool {
        matches!(p.file_name().and_then(|n| n.to_str()), Some("mod.rs" | "lib.rs")) || p.with_extension("").is_dir()
    }

    /// The file a path names: the longest module prefix, following a folder's `pub use` re-export
    /// of the next segment (an item, or a module) into the child that holds it.
    fn resolve(&self, path: &[String]) -> Option<PathBuf> {
        let mut path = path.to_vec();
        // Re-exports can chain (`proto` re-exports `common`'s modules); a few hops are plenty.
        for _ in 0..4 {
            let n = (0..=path.len()).rev().find(|&n| self.files.contains_key(&path[..n]))?;
            let f = &self.files[&path[..n]];
            if !(Self::is_front_door(f) && n < path.len()) {
                return Some(f.clone());
            }
            match reexported_from(f, &path[n]) {
                Some(child) if child != path[n] => path.insert(n, child),
                _ => return Some(f.clone()),
            }
        }
        None
    }
}

/// The child module a front door's `pub use child::{.., item, ..}` takes `item` from.
fn reexported_from(front: &Path, item: &str) -> Option<String> {
    let code = code_of(front);
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else { continue };
        let Some((child, items)) = rest.split_once("::") else { continue };
        if child.contains(' ') || child == "crate" || child == "super" {
            continue;
        }
        let names: Vec<&str> = items
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(|s| s.trim().rsplit(' ').next().unwrap_or(""))
            .collect();
        if names.contains(&item) {
            return Some(child.to_string());
        }
    }
    None
}

/// Every path a file's code names through `crate::`, `super::` or `self::`, braces expanded.
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':');
        let rest = &b[i..];
        let base: Option<(Vec<String>, usize)> = if !starts_word {
            None
        } else if rest.starts_with(b"crate::") {
            Some((Vec::new(), 7))
        } else if rest.starts_with(b"super::") || rest.starts_with(b"self::") {
            // Front doors are never sources, so `super` of a file is always its folder.
            let mut m = module.to_vec();
            if rest.starts_with(b"self::") {
                Some((m, 6))
            } else {
                let mut used = 0;
                while rest[used..].starts_with(b"super::") {
                    m.pop();
                    used += 7;
                }
                Some((m, used))
            }
        } else {
            None
        };
        match base {
            Some((prefix, used)) => {
                let (trees, len) = use_tree(&code[i + used..]);
                for t in trees {
                    let mut p = prefix.clone();
                    p.extend(t);
                    out.push(p);
                }
                i += used + len.max(1);
            }
            None => i += 1,
        }
    }
    out
}

/// Parses `a::b::{c, d::e}` into its paths; returns them and the bytes used.
fn use_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut segs = Vec::new();
    loop {
        if i < b.len() && b[i] == b'{' {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let inner = &s[i + 1..j.min(s.len())];
            let mut out = Vec::new();
            let mut depth = 0;
            let mut start = 0;
            let ib = inner.as_bytes();
            for k in 0..=ib.len() {
                let at_end = k == ib.len();
                if !at_end {
                    match ib[k] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                }
                if at_end || (ib[k] == b',' && depth == 0) {
                    let part = inner[start..k].trim();
                    if !part.is_empty() {
                        for t in use_tree(part).0 {
                            let mut p = segs.clone();
                            p.extend(t);
                            out.push(p);
                        }
                    }
                    start = k + 1;
                }
            }
            return (out, j + 1);
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i == start {
            return (vec![segs], i);
        }
        let seg = &s[start..i];
        if seg != "self" {
            segs.push(seg.to_string());
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![segs], i);
        }
    }
}

/// Files that import each other, directly or round a circle (a folder's `mod.rs` is its front
/// door, not a participant: it declares and re-exports its children by design; so is `x.rs` with a
/// folder `x/`).
fn cycles(src: &Path) -> Vec<Vec<String>> {
    let krate = Crate::new(src);
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in krate.files.values() {
        if Crate::is_front_door(f) {
            continue;
        }
        let module = krate.module_of(f);
        for p in paths_in(&code_of(f), &module) {
            if let Some(to) = krate.resolve(&p) {
                if to != *f && !Crate::is_front_door(&to) {
                    edges.entry(f.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Strongly connected components (Tarjan); any with two or more files is a cycle.
    struct T<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<PathBuf, usize>,
        low: BTreeMap<PathBuf, usize>,
        stack: Vec<PathBuf>,
        on: BTreeSet<PathBuf>,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T, v: &PathBuf) {
        let n = t.index.len();
        t.index.insert(v.clone(), n);
        t.low.insert(v.clone(), n);
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        for w in t.edges.get(v).cloned().unwrap_or_default() {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let l = t.low[&v.clone()].min(t.low[&w]);
                t.low.insert(v.clone(), l);
            } else if t.on.contains(&w) {
                let l = t.low[v].min(t.index[&w]);
                t.low.insert(v.clone(), l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                comp.push(w.strip_prefix(root()).unwrap_or(&w).display().to_string());
                if &w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in krate.files.values() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "pub mod x;\npub mod y;\npub mod z;\npub use z::Zed;\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::y::{self, Why};\n").unwrap();
    std::fs::write(src.join("a/y.rs"), "use crate::a::Zed;\n").unwrap();
    std::fs::write(src.join("a/z.rs"), "pub struct Zed;\nfn f() { crate::a::x::g(); }\n").unwrap();
    let c = cycles(src);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].len(), 3, "{c:?}");
    std::fs::write(src.join("a/z.rs"), "pub struct Zed;\n").unwrap();
    assert!(cycles(src).is_empty());
}

#[test]
fn no_two_files_import_each_other() {
    for src in ["src", "reference-servers/src"] {
        let c = cycles(&root().join(src));
        assert!(c.is_empty(), "{src}: files in a circle of imports: {c:#?}");
    }
}
