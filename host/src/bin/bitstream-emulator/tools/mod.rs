//! Command-line tools for device buffers and Smart Device messages (the
//! `buffer` and `message` subcommands of `bitstream-emulator`).
//!
//! Every tool is a function that returns JSON (or a plain value) so
//! that `main.rs` only parses arguments and prints:
//!
//! - [`layout`]: the C layout of a catalog's buffer types
//!   (`buffer layout`).
//! - [`message`]: Smart Device frames to JSON and back
//!   (`message decode`, `message encode`).
//! - [`shm`]: shared buffers in `/dev/shm`: list, dump, get and set a
//!   parameter (`buffer ls`, `dump`, `get`, `set`). The tools attach; they
//!   never own, create or remove a buffer.
//!
//! Errors are [`anyhow::Error`]s whose message names the file, buffer or
//! parameter concerned and, where it helps, what to do.

pub mod layout;
pub mod message;
pub mod shm;

use std::path::Path;

use anyhow::{bail, Context, Result};
use bitstream_buffer::catalog::{Catalog, DeviceType};

/// Reads and validates the catalog at `path`; errors name the file.
pub fn load_catalog(path: &Path) -> Result<Catalog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read catalog {}", path.display()))?;
    Catalog::from_json(&text).with_context(|| format!("catalog {}", path.display()))
}

/// The type `name` of `catalog` (read from `path`); an unknown name is an
/// error listing the known ones.
pub fn catalog_type<'a>(catalog: &'a Catalog, path: &Path, name: &str) -> Result<&'a DeviceType> {
    match catalog.get(name) {
        Some(t) => Ok(t),
        None => bail!(
            "catalog {} has no type `{name}`; its types are: {}",
            path.display(),
            known_types(catalog)
        ),
    }
}

/// The type a message tool works with: `name` if given, else the
/// catalog's only type, else its only Smart Device type.
pub fn resolve_type<'a>(
    catalog: &'a Catalog,
    path: &Path,
    name: Option<&str>,
) -> Result<&'a DeviceType> {
    if let Some(name) = name {
        return catalog_type(catalog, path, name);
    }
    let smart: Vec<&DeviceType> = catalog.types().iter().filter(|t| t.is_smart()).collect();
    match (catalog.types(), smart.as_slice()) {
        ([only], _) | (_, &[only]) => Ok(only),
        _ => bail!(
            "catalog {} has several types ({}): choose one with --type",
            path.display(),
            known_types(catalog)
        ),
    }
}

/// The catalog's type names, comma-separated (or "none").
pub(crate) fn known_types(catalog: &Catalog) -> String {
    if catalog.is_empty() {
        "none".to_owned()
    } else {
        catalog.names().collect::<Vec<_>>().join(", ")
    }
}

/// Bytes as lowercase hex pairs separated by spaces (`"02 10 02 10"`), the
/// form of `fixtures/buffers/vectors.json`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses hex bytes, with or without whitespace between them (an optional
/// `0x` prefix is allowed on the whole string). `what` names the input in
/// errors.
pub fn parse_hex(text: &str, what: &str) -> Result<Vec<u8>> {
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: Vec<(usize, char)> = trimmed
        .chars()
        .enumerate()
        .filter(|(_, c)| !c.is_whitespace())
        .collect();
    if let Some(&(at, c)) = digits.iter().find(|(_, c)| !c.is_ascii_hexdigit()) {
        bail!("{what}: `{c}` at character {at} is not a hex digit (give bytes as hex, e.g. \"02 10 02 10\")");
    }
    let pairs = digits.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        bail!(
            "{what}: odd number of hex digits ({}); every byte needs two digits",
            digits.len()
        );
    }
    Ok(pairs
        .map(|pair| {
            let hi = pair[0].1.to_digit(16).unwrap_or(0);
            let lo = pair[1].1.to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_with_and_without_spaces() {
        assert_eq!(parse_hex("02 10 02 10", "x").unwrap(), [2, 0x10, 2, 0x10]);
        assert_eq!(parse_hex(" 0210\n0210 ", "x").unwrap(), [2, 0x10, 2, 0x10]);
        assert_eq!(parse_hex("0xFFee", "x").unwrap(), [0xff, 0xee]);
        assert_eq!(parse_hex("", "x").unwrap(), Vec::<u8>::new());
        assert_eq!(to_hex(&[2, 0x10, 0xab]), "02 10 ab");
        assert_eq!(to_hex(&[]), "");
        let e = parse_hex("02 1", "the message").unwrap_err().to_string();
        assert!(
            e.starts_with("the message: odd number of hex digits"),
            "{e}"
        );
        let e = parse_hex("02 zz", "the message").unwrap_err().to_string();
        assert!(e.contains("`z` at character 3 is not a hex digit"), "{e}");
    }

    #[test]
    fn catalog_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(
            &path,
            r#"{"t": {"params": [{"name": "p", "type": "quad"}]}}"#,
        )
        .unwrap();
        let e = format!("{:#}", load_catalog(&path).unwrap_err());
        assert!(e.contains("bad.json"), "{e}");
        assert!(e.contains("unknown scalar type `quad`"), "{e}");
        let e = format!(
            "{:#}",
            load_catalog(&dir.path().join("none.json")).unwrap_err()
        );
        assert!(
            e.starts_with("cannot read catalog") && e.contains("none.json"),
            "{e}"
        );
        std::fs::write(&path, r#"{"a": {}, "b": {}}"#).unwrap();
        let c = load_catalog(&path).unwrap();
        let e = catalog_type(&c, &path, "z").unwrap_err().to_string();
        assert!(e.ends_with("has no type `z`; its types are: a, b"), "{e}");
        let e = resolve_type(&c, &path, None).unwrap_err().to_string();
        assert!(
            e.ends_with("has several types (a, b): choose one with --type"),
            "{e}"
        );
        assert_eq!(resolve_type(&c, &path, Some("b")).unwrap().name, "b");
        std::fs::write(&path, r#"{"a": {}, "b": {"device_id": 1}}"#).unwrap();
        let c = load_catalog(&path).unwrap();
        assert_eq!(resolve_type(&c, &path, None).unwrap().name, "b");
    }
}
