//! The fuzz targets on stable Rust, without libFuzzer: each target runs on
//! its seeds (`fuzz/seeds/<target>/`, plus `fuzz/corpus/<target>/` when
//! `cargo fuzz` has grown one) and then on mutations of them (bit flips,
//! byte edits, insertions, deletions, splices, repeated slices, random
//! bytes) from a fixed-seed generator, for a bounded number of cases.
//!
//! ```text
//! stable [--cases N] [--seed S] [--max-len BYTES] [TARGET...]
//! ```
//!
//! A panic is a failure: the input is written to
//! `fuzz/artifacts/<target>/crash-<hash>` (replay it with `cargo fuzz run
//! <target> <file>` or `stable --replay <target> <file>`) and the exit code
//! is 1. Prints the cases tried per target.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bitstream_fuzz::TARGETS;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to the formats under test.
const INTERESTING: &[u8] = b"\x00\x01\x02\x7f\x80\xff{}[]\":,0-9eE.+ntfu\\";
/// Tokens spliced in whole.
const TOKENS: &[&[u8]] = &[
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"1e308",
    b"-0",
    b"18446744073709551616",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"{\"a\":1,\"a\":2}",
    b"[[[[[[[[[[[[[[[[",
    b"\"ip_blocks\"",
    b"\"downstream_block_ids\"",
    b"\"first\"",
    b"\"type\"",
    b"\"constants\"",
    b"\"params\"",
    b"\"devices\"",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(16)).min(input.len());
                input.drain(start..end);
            }
            4 => {
                let i = rng.below(input.len() + 1);
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(i..i, token.iter().copied());
            }
            5 if !pool.is_empty() => {
                // Splice a slice of another input.
                let other = &pool[rng.below(pool.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(64)).min(other.len());
                    let at = rng.below(input.len() + 1);
                    input.splice(at..at, other[start..end].iter().copied());
                }
            }
            6 if !input.is_empty() => {
                // Repeat a slice (nesting, long lists, many keys).
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(32)).min(input.len());
                let slice = input[start..end].to_vec();
                for _ in 0..1 + rng.below(8) {
                    input.splice(end..end, slice.iter().copied());
                }
            }
            7 if !input.is_empty() => {
                input.truncate(rng.below(input.len()));
            }
            _ => {
                let n = rng.below(32);
                input.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    input.truncate(max_len);
}

fn seeds(root: &Path, target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in [
        root.join("seeds").join(target),
        root.join("corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    out
}

/// Runs `run` on `input`; on a panic, saves the input and answers its path.
fn try_one(root: &Path, name: &str, run: fn(&[u8]), input: &[u8]) -> Result<(), PathBuf> {
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_ok() {
        return Ok(());
    }
    let mut hasher = DefaultHasher::new();
    input.hash(&mut hasher);
    let dir = root.join("artifacts").join(name);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("crash-{:016x}", hasher.finish()));
    let _ = std::fs::write(&path, input);
    Err(path)
}

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cases: usize = 5_000;
    let mut seed: u64 = 0x5eed_b175_7eea_u64;
    let mut max_len: usize = 64 * 1024;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().unwrap_or_else(|| panic!("{arg} needs {what}"));
        match arg.as_str() {
            "--cases" => cases = value("a number").parse().expect("--cases N"),
            "--seed" => seed = value("a number").parse().expect("--seed S"),
            "--max-len" => max_len = value("a number").parse().expect("--max-len BYTES"),
            "--replay" => {
                let target = value("a target");
                let file = value("a file");
                let run = TARGETS
                    .iter()
                    .find(|(n, _)| *n == target)
                    .unwrap_or_else(|| panic!("no target {target}"))
                    .1;
                run(&std::fs::read(&file).expect("reading the input"));
                println!("{target}: {file} passes");
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("stable [--cases N] [--seed S] [--max-len BYTES] [TARGET...] | --replay TARGET FILE");
                return ExitCode::SUCCESS;
            }
            name => only.push(name.to_owned()),
        }
    }
    // Keep the default hook's message for the first panic only.
    let mut failed = false;
    for (name, run) in TARGETS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let started = Instant::now();
        let pool = seeds(&root, name);
        let mut rng = Rng(seed ^ (name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut tried = 0usize;
        let mut crash = None;
        for input in &pool {
            tried += 1;
            if let Err(path) = try_one(&root, name, run, input) {
                crash = Some(path);
                break;
            }
        }
        while crash.is_none() && tried < cases.max(pool.len()) {
            let mut input = if pool.is_empty() || rng.below(16) == 0 {
                Vec::new()
            } else {
                pool[rng.below(pool.len())].clone()
            };
            mutate(&mut rng, &mut input, &pool, max_len);
            tried += 1;
            if let Err(path) = try_one(&root, name, run, &input) {
                crash = Some(path);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        match crash {
            None => println!(
                "{name}: {tried} cases ({} seeds), no failure, {seconds:.1} s",
                pool.len()
            ),
            Some(path) => {
                failed = true;
                println!(
                    "{name}: FAILED after {tried} cases; input saved to {}",
                    path.display()
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
