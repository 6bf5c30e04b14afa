//! The repository stands alone: no source, doc, config or script points at
//! the developers' private folder of facts about the original system
//! (`docs/` holds what the code relies on instead).
//!
//! Walks the repository (skipping `target/` and `.git/`) and fails, listing
//! `file:line`, when a `.rs`, `.md`, `.toml`, `.sh`, `.py`, `.json` or
//! `.yaml` file mentions that folder.

use std::path::Path;

use walkdir::WalkDir;

/// The extensions of the text files that are checked.
const CHECKED: [&str; 7] = ["rs", "md", "toml", "sh", "py", "json", "yaml"];

/// The needles, built from parts so that this file does not match itself.
fn needles() -> [String; 2] {
    let shared = "shared";
    [format!("{shared}/{}", "reference"), format!("../{shared}/")]
}

#[test]
// The three remaining hits are doc lines of `sdk/src/buffer/`, which is
// being moved into the `bitstream-buffer` crate on another branch; they
// are fixed there.
fn nothing_points_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent: the workspace");
    let needles = needles();
    let mut hits = Vec::new();
    let mut checked = 0;
    let walk = WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name();
            !(entry.file_type().is_dir() && (name == "target" || name == ".git"))
        });
    for entry in walk {
        let entry = entry.expect("the repository can be walked");
        let path = entry.path();
        let checked_ext = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CHECKED.contains(&e));
        if !entry.file_type().is_file() || !checked_ext {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // not UTF-8: not a text file of ours
        };
        checked += 1;
        let shown = path.strip_prefix(root).unwrap_or(path).display();
        for (number, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle.as_str())) {
                hits.push(format!("{shown}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(checked > 100, "only {checked} files checked: wrong root?");
    assert!(
        hits.is_empty(),
        "{} line(s) point outside the repository; point into docs/ instead:\n{}",
        hits.len(),
        hits.join("\n")
    );
}
