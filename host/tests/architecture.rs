//! The architecture rules of the host, checked on its source code.
//!
//! - No import cycles between the host's top-level modules
//!   (`host/src/<module>.rs` or `host/src/<module>/**`): the `crate::...`
//!   paths of each module, `#[cfg(test)]` items left out, make an acyclic
//!   graph; and the lower modules (`model`, `report`, `fsm`)
//!   name only the modules listed for them in `LOWER_MODULES`.
//! - One FFI edge: outside `host/src/plugin/`, no host source file (nor the
//!   validator's, nor the test kit's) names `abi_stable` or
//!   `bitstream_sdk::ffi`.
//! - One state-machine implementation: the test kit fires triggers through
//!   `bitstream_host::fsm::Machine`, and nothing outside the SDK and
//!   `host/src/fsm/` matches transitions itself.
//!
//! Files are read as Rust tokens (`syn`/`proc-macro2`), so comments and doc
//! comments never count, while paths inside macro calls do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;
use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use walkdir::WalkDir;

/// The workspace root (the folder holding `host/`, `validate/`, ...).
fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = WalkDir::new(dir)
        .into_iter()
        .map(|entry| entry.unwrap_or_else(|e| panic!("walking {}: {e}", dir.display())))
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    files
}

/// `path` relative to the workspace root, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(workspace_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A file's code as tokens, comments dropped (doc comments become `#[doc =
/// "..."]` attributes: string literals, never paths).
fn tokens(path: &Path) -> TokenStream {
    TokenStream::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} does not tokenize: {e}", path.display()))
}

/// A file's code as tokens without its `#[cfg(test)]` items (at any depth
/// of inline modules).
fn tokens_without_tests(path: &Path) -> TokenStream {
    let mut file = syn::parse_file(&read(path))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    strip_cfg_test(&mut file.items);
    file.into_token_stream()
}

fn strip_cfg_test(items: &mut Vec<syn::Item>) {
    items.retain(|item| {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            _ => &[],
        };
        !attrs.iter().any(|attr| {
            attr.path().is_ident("cfg")
                && attr
                    .meta
                    .require_list()
                    .is_ok_and(|list| list.tokens.to_string() == "test")
        })
    });
    for item in items {
        if let syn::Item::Mod(syn::ItemMod {
            content: Some((_, items)),
            ..
        }) = item
        {
            strip_cfg_test(items);
        }
    }
}

fn is_ident(token: Option<&TokenTree>, name: &str) -> bool {
    matches!(token, Some(TokenTree::Ident(ident)) if ident == name)
}

/// Whether `tokens[i..]` starts with `::`.
fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!(
        (tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}

/// The first segment of each path that starts at `tokens[i]`: an ident
/// (`x::...`), or each item of a use group (`{x::..., y}`), with its line.
fn path_heads(tokens: &[TokenTree], i: usize) -> Vec<(String, usize)> {
    match tokens.get(i) {
        Some(TokenTree::Ident(ident)) => {
            vec![(ident.to_string(), ident.span().start().line)]
        }
        Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
            let inner: Vec<TokenTree> = group.stream().into_iter().collect();
            let mut heads = Vec::new();
            let mut at_item_start = true;
            for (k, token) in inner.iter().enumerate() {
                match token {
                    TokenTree::Punct(p) if p.as_char() == ',' => at_item_start = true,
                    _ if at_item_start => {
                        at_item_start = false;
                        heads.extend(path_heads(&inner, k));
                    }
                    _ => {}
                }
            }
            heads
        }
        _ => Vec::new(),
    }
}

/// The top-level modules a file's tokens name, with the lines: the first
/// segment after `crate::`, or after as many `super::` as take a file
/// `depth` modules deep back to the crate root. (A `super::` inside an
/// inline module of the file is counted from the file's own module.)
fn crate_references(stream: TokenStream, depth: usize, out: &mut Vec<(String, usize)>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if let TokenTree::Group(group) = &tokens[i] {
            crate_references(group.stream(), depth, out);
        } else if is_ident(tokens.get(i), "crate") && is_path_sep(&tokens, i + 1) {
            out.extend(path_heads(&tokens, i + 3));
            i += 3;
            continue;
        } else if is_ident(tokens.get(i), "super") {
            let mut j = i;
            let mut supers = 0;
            while is_ident(tokens.get(j), "super") && is_path_sep(&tokens, j + 1) {
                supers += 1;
                j += 3;
            }
            if supers >= depth {
                out.extend(path_heads(&tokens, j));
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
}

/// The top-level module of a library source file, and how many modules
/// deep the file is (`fsm/check.rs`: `fsm`, 2); `None` for the crate roots
/// `lib.rs` and `main.rs` (the binary, a crate of its own).
fn module_of(src: &Path, file: &Path) -> Option<(String, usize)> {
    let relative = file.strip_prefix(src).ok()?;
    let parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let first = parts.first()?;
    if parts.len() == 1 {
        let name = first.strip_suffix(".rs")?;
        return (name != "lib" && name != "main").then(|| (name.to_owned(), 1));
    }
    let depth = if parts.last().is_some_and(|last| last == "mod.rs") {
        parts.len() - 1
    } else {
        parts.len()
    };
    Some((first.clone(), depth))
}

/// Prints one cycle through each strongly connected set of modules, with
/// the `file:line`s that make every edge.
fn describe_cycles(graph: &DiGraphMap<&str, ()>, witnesses: &Witnesses) -> String {
    let mut out = String::new();
    for scc in tarjan_scc(graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: BTreeSet<&str> = scc.iter().copied().collect();
        // A shortest way from the first member back to it, inside the set.
        let start = scc[0];
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(node) = queue.pop_front() {
            for next in graph.neighbors(node) {
                if !members.contains(next) || previous.contains_key(next) {
                    continue;
                }
                previous.insert(next, node);
                if next == start {
                    break 'search;
                }
                queue.push_back(next);
            }
        }
        let mut cycle = vec![start];
        let mut node = previous[start];
        while node != start {
            cycle.push(node);
            node = previous[node];
        }
        cycle.push(start);
        cycle.reverse();
        out.push_str(&format!("cycle: {}\n", cycle.join(" -> ")));
        for pair in cycle.windows(2) {
            let key = (pair[0].to_owned(), pair[1].to_owned());
            out.push_str(&format!("  {} -> {}:\n", pair[0], pair[1]));
            for witness in witnesses.get(&key).into_iter().flatten() {
                out.push_str(&format!("    {witness}\n"));
            }
        }
    }
    out
}

/// For each pair (from, to) of different top-level modules, the
/// `file:line`s where `from` names `to`.
type Witnesses = BTreeMap<(String, String), Vec<String>>;

/// The host library's top-level modules and the places they name each
/// other.
fn module_graph() -> (BTreeSet<String>, Witnesses) {
    let src = workspace_dir().join("host/src");
    let files: Vec<(PathBuf, String, usize)> = rust_files(&src)
        .into_iter()
        .filter_map(|file| module_of(&src, &file).map(|(m, depth)| (file, m, depth)))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(_, m, _)| m.clone()).collect();
    assert!(
        ["fsm", "checks", "plugin", "engine", "model"]
            .iter()
            .all(|m| modules.contains(*m)),
        "unexpected module list {modules:?}"
    );

    let mut witnesses = Witnesses::new();
    for (file, module, depth) in &files {
        let mut references = Vec::new();
        crate_references(tokens_without_tests(file), *depth, &mut references);
        for (target, line) in references {
            if &target != module && modules.contains(&target) {
                witnesses
                    .entry((module.clone(), target))
                    .or_default()
                    .push(format!("{}:{line}", shown(file)));
            }
        }
    }
    (modules, witnesses)
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let (modules, witnesses) = module_graph();
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for module in &modules {
        graph.add_node(module);
    }
    for (from, to) in witnesses.keys() {
        graph.add_edge(from, to, ());
    }

    let cycles = describe_cycles(&graph, &witnesses);
    assert!(
        cycles.is_empty(),
        "the host's top-level modules import each other in a cycle:\n{cycles}"
    );
}

/// The modules at the bottom of the host, and the only modules each may
/// name: the FSM runs machines as data and never reaches the plugin code,
/// the checks or the engine.
const LOWER_MODULES: [(&str, &[&str]); 3] = [
    ("model", &[]),
    ("report", &[]),
    ("fsm", &["model", "report"]),
];

#[test]
fn lower_modules_depend_only_on_lower_ones() {
    let (_, witnesses) = module_graph();
    let mut offending = Vec::new();
    for ((from, to), places) in &witnesses {
        let Some((_, allowed)) = LOWER_MODULES.iter().find(|(m, _)| m == from) else {
            continue;
        };
        if !allowed.contains(&to.as_str()) {
            offending.push(format!("{from} -> {to}: {}", places.join(", ")));
        }
    }
    assert!(
        offending.is_empty(),
        "a lower module names a module it must not:\n{}",
        offending.join("\n")
    );
}

/// Where a file's code names `abi_stable` or `bitstream_sdk::ffi` (or
/// `bitstream_sdk::__private`, which re-exports abi_stable for the SDK's
/// macros).
fn ffi_mentions(stream: TokenStream, out: &mut Vec<(usize, String)>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => ffi_mentions(group.stream(), out),
            TokenTree::Ident(ident) if ident == "abi_stable" => {
                out.push((ident.span().start().line, "abi_stable".to_owned()));
            }
            TokenTree::Ident(ident) if ident == "bitstream_sdk" && is_path_sep(&tokens, i + 1) => {
                for (head, line) in path_heads(&tokens, i + 3) {
                    if head == "ffi" || head == "__private" {
                        out.push((line, format!("bitstream_sdk::{head}")));
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn only_the_plugin_module_names_ffi_types() {
    let root = workspace_dir();
    let plugin = root.join("host/src/plugin");
    let mut offending = Vec::new();
    let mut checked = 0;
    for dir in ["host/src", "validate/src", "testkit/src"] {
        for file in rust_files(&root.join(dir)) {
            if file.starts_with(&plugin) {
                continue;
            }
            checked += 1;
            let mut mentions = Vec::new();
            ffi_mentions(tokens(&file), &mut mentions);
            for (line, what) in mentions {
                offending.push(format!("{}:{line}: {what}", shown(&file)));
            }
        }
    }
    assert!(checked > 10, "only {checked} files found");
    assert!(
        offending.is_empty(),
        "only host/src/plugin/ may name ABI types (convert to crate::model types there):\n{}",
        offending.join("\n")
    );
}

/// The most lines a library or binary source file may have before its
/// `#[cfg(test)]` module.
const MAX_SOURCE_LINES: usize = 800;

/// Lines of `text` before its first `#[cfg(test)]` line (all of it when it
/// has none).
fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .count()
}

#[test]
fn no_source_file_is_over_800_lines_before_its_tests() {
    assert_eq!(lines_before_tests("a\nb\n#[cfg(test)]\nmod tests {}\n"), 2);
    let root = workspace_dir();
    let mut sources: Vec<PathBuf> = Vec::new();
    for crate_dir in ["sdk", "buffer", "host", "testkit", "validate"] {
        sources.extend(rust_files(&root.join(crate_dir).join("src")));
    }
    for group in ["plugins", "fixtures/plugins"] {
        for entry in std::fs::read_dir(root.join(group)).expect("listing crates") {
            let src = entry.expect("a crate folder").path().join("src");
            if src.is_dir() {
                sources.extend(rust_files(&src));
            }
        }
    }
    assert!(sources.len() > 50, "found only {} files", sources.len());
    let too_long: Vec<String> = sources
        .iter()
        .map(|path| (path, lines_before_tests(&read(path))))
        .filter(|(_, lines)| *lines > MAX_SOURCE_LINES)
        .map(|(path, lines)| format!("{}: {lines} lines before its tests", shown(path)))
        .collect();
    assert!(
        too_long.is_empty(),
        "split these along their jobs (at most {MAX_SOURCE_LINES} lines before #[cfg(test)]):\n{}",
        too_long.join("\n")
    );
}

/// What a second state-machine engine needs from the SDK's machine: the
/// condition closures and the source matching of its transitions.
const FSM_INTERNALS: [&str; 3] = ["leaves_from", "into_parts", "Condition"];

/// Every identifier in `stream`, with its line.
fn identifiers(stream: TokenStream, out: &mut Vec<(usize, String)>) {
    for token in stream {
        match token {
            TokenTree::Ident(ident) => out.push((ident.span().start().line, ident.to_string())),
            TokenTree::Group(group) => identifiers(group.stream(), out),
            _ => {}
        }
    }
}

#[test]
fn one_state_machine_implementation() {
    let root = workspace_dir();
    // The kit fires triggers through the host's compiled machine.
    let kit_host = read(&root.join("testkit/src/host.rs"));
    assert!(
        kit_host.contains("use bitstream_host::fsm::{Machine, StateId};")
            && kit_host.contains("machine.fire(state.get(), trigger, args, mode, &mut eval)"),
        "testkit/src/host.rs must fire triggers with bitstream_host::fsm::Machine::fire"
    );
    // Nothing else evaluates the SDK's transitions: only the SDK (which
    // builds the machine) and host::fsm (which runs it) use its internals.
    let mut offending = Vec::new();
    let mut checked = 0;
    let mut dirs = vec![root.join("testkit/src"), root.join("validate/src")];
    dirs.push(root.join("host/src"));
    for group in ["plugins", "fixtures/plugins"] {
        for entry in std::fs::read_dir(root.join(group)).expect("listing crates") {
            let src = entry.expect("a crate folder").path().join("src");
            if src.is_dir() {
                dirs.push(src);
            }
        }
    }
    for dir in dirs {
        for file in rust_files(&dir) {
            if file.starts_with(root.join("host/src/fsm")) {
                continue;
            }
            checked += 1;
            let mut idents = Vec::new();
            identifiers(tokens(&file), &mut idents);
            // `into_parts` is a common name (http's `Request::into_parts`):
            // it counts only in a file that names the SDK's `StateMachine`.
            let names_machine = idents.iter().any(|(_, i)| i == "StateMachine");
            for (line, ident) in idents {
                if ident == "into_parts" && !names_machine {
                    continue;
                }
                if FSM_INTERNALS.contains(&ident.as_str()) {
                    offending.push(format!("{}:{line}: {ident}", shown(&file)));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} files found");
    assert!(
        offending.is_empty(),
        "a second state-machine implementation? run machines with host::fsm (bitstream-testkit in tests):\n{}",
        offending.join("\n")
    );
}
