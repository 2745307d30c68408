#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The layering of ARCHITECTURE.md, executable. Every `use` (and every path in code or macros)
//! that names `crate::…`, `super::…`, `self::…` or a child module is resolved to the file that
//! defines it; the test fails on an import from a layer to one it may not use, and on any import
//! cycle between files.
//!
//! The two fixture tests show the check failing: an upward import and a cycle added in memory to
//! the crate's real sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Each layer, from the bottom up: the modules it holds (a module belongs to the layer with the
/// longest matching prefix) and the layers it may use besides its own.
const LAYERS: &[(&str, &[&str])] = &[
    // LSP's own types, re-exported: a leaf every layer may use.
    ("protocol::lsp", &[]),
    // Our extensions to LSP: wire types only, built on LSP's. The domain below the faces never
    // sees them; the faces convert (`report`, `lsp_server::to_proto`/`from_proto`).
    ("protocol::lsp_ext", &["protocol::lsp"]),
    // `protocol` itself only declares its two modules.
    ("protocol", &[]),
    ("base", &[]),
    ("claude", &["base"]),
    ("model", &["base", "claude", "protocol::lsp"]),
    ("engine", &["base", "claude", "model", "protocol::lsp"]),
    // What both faces put out about a run, in wire form.
    ("report", &["base", "claude", "model", "engine", "protocol::lsp", "protocol::lsp_ext"]),
    (
        "headless",
        &["base", "claude", "model", "engine", "protocol::lsp", "protocol::lsp_ext", "report"],
    ),
    (
        "lsp_server",
        &["base", "claude", "model", "engine", "protocol::lsp", "protocol::lsp_ext", "report"],
    ),
];

type Module = Vec<String>;

fn show(module: &[String]) -> String {
    if module.is_empty() { "crate".into() } else { module.join("::") }
}

/// The crate's files by module path (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`).
fn read_crate(src: &Path) -> BTreeMap<Module, String> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("main.rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module =
                relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|last| last == "mod" || last == "lib") {
                module.pop();
            }
            files.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
    files
}

/// Every path a file mentions, as written, with the inline module it was written in.
#[derive(Default)]
struct Paths {
    scope: Vec<String>,
    found: Vec<(Vec<String>, Vec<String>)>,
}

impl Paths {
    fn add(&mut self, segments: Vec<String>) {
        self.found.push((self.scope.clone(), segments));
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.add(extend(prefix, &name.ident)),
            syn::UseTree::Rename(rename) => self.add(extend(prefix, &rename.ident)),
            syn::UseTree::Glob(_) => self.add(prefix.clone()),
            syn::UseTree::Group(group) => group.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    /// `crate :: a :: b` inside macro arguments (`json!`, `tokio::select!`, …).
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) if ident == "crate" || ident == "super" => {
                    let mut segments = vec![ident.to_string()];
                    while let [
                        TokenTree::Punct(a),
                        TokenTree::Punct(b),
                        TokenTree::Ident(next),
                        ..,
                    ] = &tokens[i + 1..]
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        i += 3;
                    }
                    self.add(segments);
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn extend(prefix: &[String], last: &syn::Ident) -> Vec<String> {
    let mut segments = prefix.to_vec();
    segments.push(last.to_string());
    segments
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.add(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    /// `pub(super)` and `pub(in crate::a)` say who may see an item; they import nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.scope.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.scope.pop();
    }
}

/// The file each path leads to (the longest module prefix that is a file), if it is ours.
fn resolve(
    files: &BTreeMap<Module, String>,
    module: &[String],
    scope: &[String],
    segments: &[String],
) -> Option<Module> {
    let mut here: Module = module.iter().chain(scope).cloned().collect();
    let mut rest = segments;
    let absolute: Module = match rest.first()?.as_str() {
        "crate" => rest[1..].to_vec(),
        "super" | "self" => {
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => here.pop()?,
                    "self" => String::new(),
                    _ => break,
                };
                rest = &rest[1..];
            }
            here.iter().chain(rest).cloned().collect()
        }
        // A child module named without `self::` (2018 paths).
        child if files.contains_key(&[here.as_slice(), &[child.to_string()]].concat()) => {
            here.iter().chain(rest).cloned().collect()
        }
        _ => return None,
    };
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| files.contains_key(prefix))
        .filter(|target| !target.is_empty() && target.as_slice() != module)
}

/// The file-to-file import graph.
fn imports(files: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    files
        .iter()
        .map(|(module, text)| {
            let syntax = syn::parse_file(text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", show(module)));
            let mut paths = Paths::default();
            paths.visit_file(&syntax);
            let targets = paths
                .found
                .iter()
                .filter_map(|(scope, segments)| resolve(files, module, scope, segments))
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

fn starts_with(module: &[String], prefix: &str) -> bool {
    let prefix: Vec<&str> = prefix.split("::").collect();
    module.len() >= prefix.len() && module.iter().zip(&prefix).all(|(a, b)| a == b)
}

fn layer_of(module: &[String]) -> Option<usize> {
    (0..LAYERS.len())
        .filter(|&layer| starts_with(module, LAYERS[layer].0))
        .max_by_key(|&layer| LAYERS[layer].0.len())
}

/// Imports from a layer to one it may not use, as `from -> to` lines.
fn upward_imports(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, targets) in graph {
        if from.is_empty() {
            continue; // lib.rs only declares the layers
        }
        let Some(layer) = layer_of(from) else {
            wrong.push(format!("{} is in no layer (ARCHITECTURE.md lists them)", show(from)));
            continue;
        };
        let may_use = LAYERS[layer].1;
        for to in targets {
            let allowed = layer_of(to) == Some(layer)
                || may_use.iter().any(|below| layer_of(to) == layer_of(&module(below)));
            if !allowed {
                wrong.push(format!("{} -> {}", show(from), show(to)));
            }
        }
    }
    wrong
}

/// The import cycles (strongly connected components of more than one file), Tarjan's way.
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a Module) -> usize {
            let n = self.index.len();
            self.index.insert(node, (n, n));
            self.stack.push(node);
            self.on_stack.insert(node);
            let mut low = n;
            for next in self.graph.get(node).into_iter().flatten() {
                let next = self.graph.get_key_value(next).map_or(next, |(key, _)| key);
                low = match self.index.get(next) {
                    None => low.min(self.visit(next)),
                    Some(&(index, _)) if self.on_stack.contains(next) => low.min(index),
                    Some(_) => low,
                };
            }
            self.index.insert(node, (n, low));
            if low == n {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(show(top));
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
            low
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found
}

fn real_crate() -> BTreeMap<Module, String> {
    read_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn module(path: &str) -> Module {
    path.split("::").map(String::from).collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let wrong = upward_imports(&imports(&real_crate()));
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let graph = imports(&real_crate());
    let found = cycles(&graph);
    // Each file of a cycle with the files of the same cycle it imports: the edges to cut.
    let shown: Vec<String> = found
        .iter()
        .flat_map(|cycle| {
            let edges = cycle.iter().map(|file| {
                let inside: Vec<String> = graph[&module(file)]
                    .iter()
                    .map(|to| show(to))
                    .filter(|to| cycle.contains(to))
                    .collect();
                format!("  {file} -> {}", inside.join(", "))
            });
            std::iter::once("cycle:".to_string()).chain(edges)
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", shown.join("\n"));
}

#[test]
fn an_upward_import_added_to_the_base_layer_is_caught() {
    let mut files = real_crate();
    files
        .get_mut(&module("base::time"))
        .unwrap()
        .push_str("\nuse crate::lsp_server::state::ServerState;\n");
    assert!(upward_imports(&imports(&files)).contains(&"base::time -> lsp_server::state".into()));
}

#[test]
fn a_domain_type_in_the_protocol_is_caught() {
    let mut files = real_crate();
    files
        .get_mut(&module("protocol::lsp_ext"))
        .unwrap()
        .push_str("\nuse crate::model::findings::Finding;\n");
    assert!(
        upward_imports(&imports(&files)).contains(&"protocol::lsp_ext -> model::findings".into())
    );
}

#[test]
fn the_wire_types_in_the_engine_are_caught() {
    let mut files = real_crate();
    files
        .get_mut(&module("engine::run"))
        .unwrap()
        .push_str("\nfn f(_: crate::protocol::lsp_ext::ActionResult) {}\n");
    assert!(upward_imports(&imports(&files)).contains(&"engine::run -> protocol::lsp_ext".into()));
}

#[test]
fn a_cycle_added_between_two_files_is_caught() {
    let mut files = real_crate();
    files.get_mut(&module("base::time")).unwrap().push_str("\nuse super::secrets::redact;\n");
    files
        .get_mut(&module("base::secrets"))
        .unwrap()
        .push_str("\nfn f() { crate::base::time::now_secs(); }\n");
    assert!(cycles(&imports(&files)).contains(&vec!["base::secrets".into(), "base::time".into()]));
}

#[test]
fn paths_in_macros_and_inline_modules_are_followed() {
    let mut files = real_crate();
    files.insert(
        module("base::fixture"),
        "mod inner { fn f() { serde_json::json!({\"a\": super::super::time::now_secs()}); } }"
            .into(),
    );
    let graph = imports(&files);
    assert_eq!(graph[&module("base::fixture")], BTreeSet::from([module("base::time")]));
}
