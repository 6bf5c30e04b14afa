//! A fleet: many emulators in one process, each with its own id, package
//! and HTTP address, so that clients address each one at its own
//! `host:port` exactly as they address a `bitstream-emulator run` (the same
//! [`crate::http::router`]).
//!
//! - [`manifest`]: the TOML format (documented there, with an example in
//!   `deploy/fleet.example.toml`) and its parser, which reports every
//!   unknown or missing key with its line.
//! - [`plan`]: what to start — from a manifest or from the shortcut "N
//!   copies of one package" — with the checks that need no loading: ids,
//!   addresses (parse, duplicates, clashes), package folders.
//! - [`start`]: loading every distinct package once (its libraries through
//!   the process-wide cache, so emulators of one package share each plugin
//!   library), binding every listener, starting the emulators; any problem
//!   anywhere is reported with all the others and nothing is left started.
//! - [`admin`]: the fleet's index (`GET /` as JSON, `GET /ui` as a page).
//!
//! The binary's `fleet` command drives these.

pub mod admin;
pub mod manifest;
pub mod plan;
pub mod start;

pub use plan::{EmulatorPlan, Overrides, Plan, Replicas};
pub use start::{Fleet, Member};

/// One problem found in a fleet's description or while starting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The manifest line it concerns, when it comes from a manifest.
    pub line: Option<usize>,
    /// What is wrong, naming the emulator, address or package, and what to
    /// do.
    pub message: String,
}

impl Problem {
    /// A problem at `line` (if known).
    pub fn at(line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            line,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem that kept a fleet from starting (nothing was started).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} in {}; nothing was started:\n{}", count(.problems.len()), .origin, list(.problems))]
pub struct Problems {
    /// Where the fleet was described: the manifest's path, or "the command
    /// line".
    pub origin: String,
    /// Each problem, in the order found.
    pub problems: Vec<Problem>,
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{n} problems")
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {}", p.to_string().replace('\n', "\n    ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_listed_one_a_line_with_their_lines() {
        let problems = Problems {
            origin: "fleet.toml".to_owned(),
            problems: vec![
                Problem::at(Some(3), "emulator \"a\": bad"),
                Problem::at(None, "two\nlines"),
            ],
        };
        assert_eq!(
            problems.to_string(),
            "2 problems in fleet.toml; nothing was started:\n  - line 3: emulator \"a\": bad\n  - two\n    lines"
        );
    }
}
