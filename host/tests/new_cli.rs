//! `bitstream-emulator new`, run as the real binary: what it writes, and
//! that bad input is refused with a clear message and writes nothing.
//! (CI's `ci/out-of-tree.sh` builds, tests, validates and serves a
//! generated crate.)

use std::path::Path;
use std::process::{Command, Output};

fn new(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitstream-emulator"))
        .arg("new")
        .args(args)
        .output()
        .expect("runs bitstream-emulator")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sdk_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sdk")
        .display()
        .to_string()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn writes_a_crate_that_is_also_a_package() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("meter");
    let dir_text = dir.display().to_string();
    let out = new(&["power_meter", "--path", &dir_text, "--sdk-path", &sdk_dir()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        files_under(&dir),
        [
            ".gitignore",
            "Cargo.toml",
            "README.md",
            "emulators/config.json",
            "emulators/power_meter/emulator/.gitkeep",
            "src/lib.rs",
            "tests/block.rs",
        ]
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let sdk = std::fs::canonicalize(sdk_dir()).unwrap();
    assert!(
        manifest.contains(&format!(
            "bitstream-sdk = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "{manifest}"
    );
    let testkit = sdk.parent().unwrap().join("testkit");
    assert!(
        manifest.contains(&format!(
            "bitstream-testkit = {{ path = \"{}\" }}",
            testkit.display()
        )),
        "{manifest}"
    );
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("pub struct PowerMeter"));
    assert!(!lib.contains("{{"));
    // The package config is one the host accepts, naming the block.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("emulators/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["ip_blocks"][0]["type"], "power_meter");
    assert_eq!(config["first"], serde_json::json!(["power_meter"]));

    // Without --sdk-path: the SDK and the kit by version.
    let by_version = tmp.path().join("by_version");
    let out = new(&["power_meter", "--path", &by_version.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(by_version.join("Cargo.toml")).unwrap();
    let version = bitstream_sdk::version::SdkVersion::parse(bitstream_sdk::SDK_VERSION).unwrap();
    let wanted = format!("\"{}.{}\"", version.major, version.minor);
    assert!(
        manifest.contains(&format!("bitstream-sdk = {wanted}"))
            && manifest.contains(&format!("bitstream-testkit = {wanted}")),
        "{manifest}"
    );
}

#[test]
fn a_type_that_is_no_identifier_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["Power-Meter", "1meter", "fn", "../escape", ""] {
        let dir = tmp.path().join("out");
        let out = new(&[bad, "--path", &dir.display().to_string()]);
        assert!(!out.status.success(), "{bad}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("\"{bad}\" is not a valid IP block type"))
                && err.contains("snake_case Rust identifier"),
            "{bad}: {err}"
        );
        assert!(!dir.exists(), "{bad}: wrote {}", dir.display());
    }
    assert!(files_under(tmp.path()).is_empty());
}

#[test]
fn a_non_empty_folder_is_refused_without_force_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("Cargo.toml"), "mine\n").unwrap();
    let dir_text = dir.display().to_string();

    let out = new(&["power_meter", "--path", &dir_text]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the folder is not empty; nothing was written") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(files_under(dir), ["Cargo.toml"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
        "mine\n"
    );

    // A bad --sdk-path is refused before anything is written, even with --force.
    let out = new(&[
        "power_meter",
        "--path",
        &dir_text,
        "--force",
        "--sdk-path",
        &dir_text,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not the manifest of bitstream-sdk"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_under(dir), ["Cargo.toml"]);

    // --force writes the generated files over it, keeping the others.
    std::fs::write(dir.join("notes.txt"), "keep\n").unwrap();
    let out = new(&["power_meter", "--path", &dir_text, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap()
        .contains("name = \"power_meter\""));
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep\n"
    );
}
