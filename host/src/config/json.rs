//! The `json` check: reads the config text into an ordered [`Value`] tree
//! (the SDK's one JSON reader), noting the keys repeated in each object;
//! and how messages show JSON values.

use std::collections::HashMap;

use bitstream_sdk::value::{PathSegment, RepeatedKey};
use bitstream_sdk::Value;

use crate::report::Problem;

/// The keys given more than once in each object of the config.
#[derive(Debug, Default)]
pub(super) struct RepeatedKeys {
    by_object: HashMap<Vec<PathSegment>, Vec<String>>,
}

impl RepeatedKeys {
    fn new(repeats: Vec<RepeatedKey>) -> Self {
        let mut by_object: HashMap<Vec<PathSegment>, Vec<String>> = HashMap::new();
        for RepeatedKey { path, key } in repeats {
            by_object.entry(path).or_default().push(key);
        }
        RepeatedKeys { by_object }
    }

    /// The repeats of the object at `path`: one per repeat after the first,
    /// in file order.
    pub(super) fn at(&self, path: &[PathSegment]) -> &[String] {
        self.by_object.get(path).map_or(&[], Vec::as_slice)
    }
}

/// Parses the config text. `p` is the path shown in messages.
pub(super) fn check_json(p: &str, text: &str) -> (Vec<Problem>, Option<(Value, RepeatedKeys)>) {
    let mut problems = Vec::new();
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            problems.push(Problem::warning(format!(
                "{p}: the file starts with a UTF-8 byte order mark, which is ignored; \
                 save it without one"
            )));
            rest
        }
        None => text,
    };
    if text.trim().is_empty() {
        problems.push(Problem::error(format!(
            "{p}: the file is empty; expected a JSON object with \"id\", \"version\", \
             \"ip_blocks\" and \"first\""
        )));
        return (problems, None);
    }
    match Value::from_json_with_repeats(text) {
        Ok((root, repeats)) => (problems, Some((root, RepeatedKeys::new(repeats)))),
        Err(e) => {
            let (line, column) = (e.line(), e.column());
            let full = e.to_string();
            let message = full
                .strip_suffix(&format!(" at line {line} column {column}"))
                .unwrap_or(&full);
            let hint = if message.starts_with("expected `,` or") {
                " (is a comma missing before this point?)"
            } else {
                ""
            };
            problems.push(Problem::error(format!(
                "{p}: invalid JSON at line {line}, column {column}: {message}{hint}"
            )));
            (problems, None)
        }
    }
}

/// How messages name a value's type.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::List(_) => "a list",
        Value::Map(_) => "an object",
    }
}

/// A quoted, escaped string for messages.
pub(super) fn q(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::check_config;
    use crate::config::test_support::{errors, text};
    use crate::report::CheckStatus;

    #[test]
    fn json_errors() {
        let (_, report) = text("{\n  \"id\": \"x\",\n  \"version\": \"0.0.1\"\n  \"first\": []\n}");
        assert_eq!(
            errors(&report),
            ["emulators/config.json: invalid JSON at line 4, column 3: expected `,` or `}` (is a comma missing before this point?)"]
        );
        let (_, report) = text("");
        assert!(errors(&report)[0].contains("the file is empty"));
        let (_, report) = text("[1, 2,]");
        assert!(
            errors(&report)[0].contains("line 1, column 7"),
            "{report:#?}"
        );

        let missing = Path::new("/no/such/dir/emulators/config.json");
        let (config, report) = check_config(missing, None);
        assert!(config.is_none());
        let message = &report.checks[0].problems[0].message;
        assert!(
            message.starts_with("/no/such/dir/emulators/config.json: cannot read"),
            "{message}"
        );
        assert!(message.contains("os error 2"), "{message}");
        assert!(report.checks[1..]
            .iter()
            .all(|c| c.status == CheckStatus::Skipped));
    }

    #[test]
    fn repeats_are_grouped_by_object() {
        let (problems, parsed) = check_json(
            "c.json",
            r#"{"a": [{"b": 1, "b": 2}], "a": [{"c": 1, "c": 2, "c": 3}]}"#,
        );
        assert!(problems.is_empty());
        let (root, repeats) = parsed.unwrap();
        assert_eq!(root.to_string(), r#"{"a":[{"c":3}]}"#);
        assert_eq!(repeats.at(&[]), ["a"]);
        let block = [PathSegment::Key("a".into()), PathSegment::Index(0)];
        assert_eq!(repeats.at(&block), ["c", "c"]);
        assert!(repeats.at(&block[..1]).is_empty());
        assert_eq!(kind(&root), "an object");
        assert_eq!(kind(&Value::Float(0.5)), "a number");
    }
}
