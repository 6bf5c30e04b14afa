//! `bitstream-emulator new`: writes a standalone IP block crate that is
//! also a bitstream package (see `templates/README.md.tmpl`).
//!
//! Nothing is written until every check passed: the type must be a
//! snake_case Rust identifier (it names the crate, the library, the
//! `emulators/<type>` folder and the block), the target folder must be
//! empty or absent (or `--force` given, which overwrites only the files
//! this command writes), and `--sdk-path` / `--testkit-path` must hold the
//! crates they name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const TEST_RS: &str = include_str!("templates/test.rs.tmpl");
const CONFIG_JSON: &str = include_str!("templates/config.json.tmpl");
const README_MD: &str = include_str!("templates/README.md.tmpl");
const GITIGNORE: &str = include_str!("templates/gitignore.tmpl");

/// Rust's keywords (strict and reserved, 2021 edition): not usable as a
/// crate or library name.
const KEYWORDS: [&str; 51] = [
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "union",
];

/// What `new` was asked for.
pub struct NewOptions {
    /// The IP block type.
    pub ip_block_type: String,
    /// The crate's folder.
    pub path: PathBuf,
    /// The SDK's folder, for a path dependency (else a version).
    pub sdk_path: Option<PathBuf>,
    /// The test kit's folder (default: `testkit` beside the SDK folder).
    pub testkit_path: Option<PathBuf>,
    /// Write into a non-empty folder, overwriting the generated files.
    pub force: bool,
}

/// Checks `name` as an IP block type; the error says what is allowed.
pub fn check_type_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it must start with a lowercase letter a-z")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Some("it may hold only lowercase letters a-z, digits and '_'")
    } else if KEYWORDS.contains(&name) {
        Some("it is a Rust keyword")
    } else {
        None
    };
    match why {
        Some(why) => bail!(
            "\"{name}\" is not a valid IP block type: {why}. The type names the crate, its \
             library (lib<type>.so), the emulators/<type> folder and the block, so it must be a \
             snake_case Rust identifier, for example \"power_meter\""
        ),
        None => Ok(()),
    }
}

/// `power_meter` -> `PowerMeter`.
fn camel_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The folder `path` as an absolute path holding the `Cargo.toml` of
/// package `package`.
fn crate_folder(path: &Path, package: &str, option: &str) -> Result<PathBuf> {
    let manifest = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "{option} {}: cannot read {}; give the folder of the {package} crate",
            path.display(),
            manifest.display()
        )
    })?;
    if !text.contains(&format!("name = \"{package}\"")) {
        bail!(
            "{option} {}: {} is not the manifest of {package}; give the folder of the {package} \
             crate",
            path.display(),
            manifest.display()
        );
    }
    std::fs::canonicalize(path).with_context(|| format!("{option} {}", path.display()))
}

/// A path as a TOML basic string.
fn toml_path(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The files `new` writes, relative to the crate folder, with their text.
pub fn files(options: &NewOptions) -> Result<Vec<(PathBuf, String)>> {
    let ty = options.ip_block_type.as_str();
    check_type_name(ty)?;
    let version = bitstream_sdk::version::SdkVersion::parse(bitstream_sdk::SDK_VERSION)
        .context("the SDK version this binary was built with is not x.y.z")?;
    let (sdk, testkit) = match &options.sdk_path {
        Some(sdk_path) => {
            let sdk = crate_folder(sdk_path, "bitstream-sdk", "--sdk-path")?;
            let testkit_path = options
                .testkit_path
                .clone()
                .unwrap_or_else(|| sdk.parent().unwrap_or(&sdk).join("testkit"));
            let testkit = crate_folder(&testkit_path, "bitstream-testkit", "--testkit-path")?;
            (
                format!("bitstream-sdk = {{ path = {} }}", toml_path(&sdk)),
                format!("bitstream-testkit = {{ path = {} }}", toml_path(&testkit)),
            )
        }
        None => {
            let testkit = match &options.testkit_path {
                Some(path) => {
                    let testkit = crate_folder(path, "bitstream-testkit", "--testkit-path")?;
                    format!("bitstream-testkit = {{ path = {} }}", toml_path(&testkit))
                }
                None => format!(
                    "bitstream-testkit = \"{}.{}\"",
                    version.major, version.minor
                ),
            };
            (
                format!("bitstream-sdk = \"{}.{}\"", version.major, version.minor),
                testkit,
            )
        }
    };
    let fill = |template: &str| {
        template
            .replace("{{sdk_dependency}}", &sdk)
            .replace("{{testkit_dependency}}", &testkit)
            .replace("{{type}}", ty)
            .replace("{{Type}}", &camel_case(ty))
    };
    let emulator = Path::new("emulators").join(ty).join("emulator");
    Ok(vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(LIB_RS)),
        (PathBuf::from("tests/block.rs"), fill(TEST_RS)),
        (PathBuf::from("emulators/config.json"), fill(CONFIG_JSON)),
        (
            emulator.join(".gitkeep"),
            "The built plugin (lib<type>.so) goes here; see README.md.\n".to_owned(),
        ),
        (PathBuf::from("README.md"), fill(README_MD)),
        (PathBuf::from(".gitignore"), fill(GITIGNORE)),
    ])
}

/// Runs `new`: checks everything, then writes the files.
pub fn run(options: &NewOptions) -> Result<()> {
    let files = files(options)?;
    let dir = &options.path;
    if dir.exists() {
        if !dir.is_dir() {
            bail!(
                "--path {}: exists and is not a folder; give a new or empty folder",
                dir.display()
            );
        }
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("--path {}: cannot read the folder", dir.display()))?;
        if entries.next().is_some() && !options.force {
            bail!(
                "--path {}: the folder is not empty; nothing was written. Give an empty or new \
                 folder, or --force to overwrite the generated files (others are kept)",
                dir.display()
            );
        }
    }
    for (relative, text) in &files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "Created the IP block crate {} ({} files) in {}.\nNext: cd {} && cargo test; the loop \
         (build, validate, run) is in its README.md.",
        options.ip_block_type,
        files.len(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_must_be_snake_case_identifiers() {
        for good in ["power_meter", "a", "fs2", "x_1_y"] {
            assert!(check_type_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1st",
            "_x",
            "PowerMeter",
            "power-meter",
            "a b",
            "fn",
            "ü",
            "../x",
        ] {
            let err = check_type_name(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid IP block type"), "{bad}: {err}");
        }
    }

    #[test]
    fn camel_case_names_the_struct() {
        assert_eq!(camel_case("power_meter"), "PowerMeter");
        assert_eq!(camel_case("fs2_x"), "Fs2X");
    }

    /// The `key = value` lines of section `[name]` of a TOML text.
    fn toml_section<'a>(text: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
        let header = format!("[{name}]");
        text.lines()
            .map(str::trim)
            .skip_while(|line| *line != header)
            .skip(1)
            .take_while(|line| !line.starts_with('['))
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect()
    }

    #[test]
    fn the_generated_crate_builds_stripped_plugins_in_release() {
        assert_eq!(
            toml_section("[a]\nx = 1\n# c\n[b]\ny = 2\n", "a"),
            [("x", "1")]
        );
        let options = NewOptions {
            ip_block_type: "power_meter".to_owned(),
            path: PathBuf::from("unused"),
            sdk_path: None,
            testkit_path: None,
            force: false,
        };
        let files = files(&options).unwrap();
        let (_, manifest) = files
            .iter()
            .find(|(path, _)| path == Path::new("Cargo.toml"))
            .unwrap();
        let release = toml_section(manifest, "profile.release");
        assert!(release.contains(&("strip", "true")), "{release:?}");
    }

    #[test]
    fn templates_leave_no_placeholder() {
        let options = NewOptions {
            ip_block_type: "power_meter".to_owned(),
            path: PathBuf::from("unused"),
            sdk_path: None,
            testkit_path: None,
            force: false,
        };
        for (path, text) in files(&options).unwrap() {
            assert!(!text.contains("{{"), "{}", path.display());
        }
    }
}
