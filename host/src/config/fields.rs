//! The `fields` check: required fields present with the right types,
//! unknown and repeated keys warned about. What it could read is a [`Raw`]
//! config for the later checks.

use std::collections::HashMap;

use bitstream_sdk::value::PathSegment;
use bitstream_sdk::{Value, ValueMap};

use super::json::{kind, q, RepeatedKeys};
use super::model::{check_signal, LEGACY_DISH_TYPE};
use super::suggest::suggest_key;
use crate::report::Problem;

const TOP_LEVEL_KEYS: [&str; 5] = ["id", "version", "ip_blocks", "first", "signal"];
const BLOCK_KEYS: [&str; 5] = [
    "id",
    "display_name",
    "type",
    "downstream_block_ids",
    "constants",
];

/// What the `fields` check could read. `None` fields were missing or had
/// the wrong type (already reported).
pub(super) struct Raw {
    pub(super) id: Option<String>,
    pub(super) version: Option<String>,
    pub(super) blocks: Vec<RawBlock>,
    pub(super) first: Option<First>,
    pub(super) signal: Option<ValueMap>,
    /// Every element of `ip_blocks` is an object with a valid id.
    pub(super) all_ids_known: bool,
}

/// One element of `ip_blocks` that is an object.
pub(super) struct RawBlock {
    /// The position in `ip_blocks`.
    pub(super) index: usize,
    pub(super) id: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) block_type: Option<String>,
    /// `None` when it had the wrong type.
    pub(super) downstream: Option<Vec<String>>,
    pub(super) constants: ValueMap,
}

impl RawBlock {
    /// `ip_blocks[3] (id "x")`, or `ip_blocks[3]` when the id is unknown.
    fn label(&self) -> String {
        match &self.id {
            Some(id) => format!("ip_blocks[{}] (id {})", self.index, q(id)),
            None => format!("ip_blocks[{}]", self.index),
        }
    }

    /// `block "x"`, or `ip_blocks[3]` when the id is unknown.
    pub(super) fn name(&self) -> String {
        match &self.id {
            Some(id) => format!("block {}", q(id)),
            None => format!("ip_blocks[{}]", self.index),
        }
    }

    /// Whether this is a legacy `"dish"` pseudo-block.
    pub(super) fn is_dish(&self) -> bool {
        self.block_type.as_deref() == Some(LEGACY_DISH_TYPE)
    }
}

/// The `first` field as written.
pub(super) enum First {
    /// The current format: a list of block ids.
    List(Vec<String>),
    /// Configs up to 0.0.14: one block id, normally the dish pseudo-block.
    Legacy(String),
}

/// An object's fields (each key once, with its last value), after warnings
/// for repeated and unknown keys.
struct Fields<'a> {
    map: &'a ValueMap,
}

impl<'a> Fields<'a> {
    /// `repeated`: the object's repeated keys, one per repeat.
    fn new(
        map: &'a ValueMap,
        repeated: &[String],
        known: &[&str],
        place: &str,
        problems: &mut Vec<Problem>,
    ) -> Fields<'a> {
        let mut repeats: HashMap<&str, usize> = HashMap::new();
        for key in repeated {
            *repeats.entry(key).or_insert(0) += 1;
        }
        // The map keeps each key where it first appeared.
        for key in map.keys() {
            if let Some(repeats) = repeats.get(key) {
                problems.push(Problem::warning(format!(
                    "{place}: key {} appears {} times; the last value is used",
                    q(key),
                    repeats + 1
                )));
            }
        }
        let unknown: Vec<&str> = map.keys().filter(|k| !known.contains(k)).collect();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown
                .iter()
                .map(|k| {
                    let mut name = q(k);
                    if let Some(s) = suggest_key(k, known.iter().copied()) {
                        name.push_str(&format!(" (did you mean {}?)", q(s)));
                    }
                    name
                })
                .collect();
            let (noun, pronoun) = if unknown.len() == 1 {
                ("key", "it is")
            } else {
                ("keys", "they are")
            };
            problems.push(Problem::warning(format!(
                "{place}: unknown {noun} {}; {pronoun} ignored (known keys: {})",
                names.join(", "),
                known.join(", ")
            )));
        }
        Fields { map }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }
}

/// Runs the `fields` check on the parsed config. `None` when the top level
/// or its `ip_blocks` list is unusable.
pub(super) fn check_fields(
    p: &str,
    root: &Value,
    repeats: &RepeatedKeys,
) -> (Vec<Problem>, Option<Raw>) {
    let mut problems = Vec::new();
    let Some(map) = root.as_map() else {
        problems.push(Problem::error(format!(
            "{p}: the top level must be an object with \"id\", \"version\", \"ip_blocks\" \
             and \"first\", found {}",
            kind(root)
        )));
        return (problems, None);
    };
    let top = Fields::new(
        map,
        repeats.at(&[]),
        &TOP_LEVEL_KEYS,
        &format!("{p}: top level"),
        &mut problems,
    );
    // Key warnings read "<path>: top level: ..."; field errors below start
    // with the path only.

    let id = top_string(p, &top, "id", "the bitstream's id", &mut problems);
    if id.as_deref() == Some("") {
        problems.push(Problem::warning(format!("{p}: field \"id\" is empty")));
    }
    let version = top_string(
        p,
        &top,
        "version",
        "the config's semantic version, for example \"0.0.16\"",
        &mut problems,
    );
    if let Some(v) = &version {
        if !is_semver(v) {
            problems.push(Problem::warning(format!(
                "{p}: field \"version\" is {}, which is not a semantic version \
                 (MAJOR.MINOR.PATCH, for example \"0.0.16\")",
                q(v)
            )));
        }
    }

    let first = match top.get("first") {
        None => {
            problems.push(Problem::error(format!(
                "{p}: missing required field \"first\" (the list of the ids of the blocks \
                 that receive the generated signal)"
            )));
            None
        }
        Some(Value::Str(s)) => Some(First::Legacy(s.to_string())),
        Some(Value::List(items)) => string_list(items)
            .map(First::List)
            .map_err(|(i, kind)| {
                problems.push(Problem::error(format!(
                    "{p}: field \"first\" must be a list of block ids, found {kind} at index {i}"
                )));
            })
            .ok(),
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field \"first\" must be a list of block ids, found {}",
                kind(other)
            )));
            None
        }
    };

    let signal = match top.get("signal") {
        None | Some(Value::Null) => None,
        Some(Value::Map(values)) => match check_signal(values) {
            Ok(()) => Some(values.clone()),
            Err(error) => {
                problems.push(Problem::error(format!("{p}: field \"signal\": {error}")));
                None
            }
        },
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field \"signal\" must be an object of signal values, found {}",
                kind(other)
            )));
            None
        }
    };

    let items = match top.get("ip_blocks") {
        None => {
            problems.push(Problem::error(format!(
                "{p}: missing required field \"ip_blocks\" (the list of IP blocks)"
            )));
            return (problems, None);
        }
        Some(Value::List(items)) => items,
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field \"ip_blocks\" must be a list of blocks, found {}",
                kind(other)
            )));
            return (problems, None);
        }
    };
    if items.is_empty() {
        problems.push(Problem::error(format!(
            "{p}: \"ip_blocks\" is empty; a bitstream needs at least one block"
        )));
    }

    let mut blocks = Vec::with_capacity(items.len());
    let mut all_ids_known = true;
    for (index, item) in items.iter().enumerate() {
        match check_block(p, index, item, repeats, &mut problems) {
            Some(block) => {
                all_ids_known &= block.id.is_some();
                blocks.push(block);
            }
            None => all_ids_known = false,
        }
    }

    let raw = Raw {
        id,
        version,
        blocks,
        first,
        signal,
        all_ids_known,
    };
    (problems, Some(raw))
}

fn top_string(
    p: &str,
    top: &Fields,
    key: &str,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match top.get(key) {
        None => {
            problems.push(Problem::error(format!(
                "{p}: missing required field {} ({what})",
                q(key)
            )));
            None
        }
        Some(Value::Str(s)) => Some(s.to_string()),
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field {} must be a string, found {}",
                q(key),
                kind(other)
            )));
            None
        }
    }
}

/// The strings of a list, or the index and kind of the first non-string.
fn string_list(items: &[Value]) -> Result<Vec<String>, (usize, &'static str)> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item.as_str().map(str::to_owned).ok_or((i, kind(item))))
        .collect()
}

/// Checks one element of `ip_blocks`; `None` when it is not an object.
fn check_block(
    p: &str,
    index: usize,
    item: &Value,
    repeats: &RepeatedKeys,
    problems: &mut Vec<Problem>,
) -> Option<RawBlock> {
    let Some(map) = item.as_map() else {
        problems.push(Problem::error(format!(
            "{p}: ip_blocks[{index}] must be an object, found {}",
            kind(item)
        )));
        return None;
    };
    // Find the id first, so that every message can name the block.
    let id_hint = map
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let mut block = RawBlock {
        index,
        id: id_hint,
        display_name: None,
        block_type: None,
        downstream: Some(Vec::new()),
        constants: ValueMap::new(),
    };
    let place = format!("{p}: {}", block.label());
    let mut path = vec![
        PathSegment::Key("ip_blocks".into()),
        PathSegment::Index(index),
    ];
    let fields = Fields::new(map, repeats.at(&path), &BLOCK_KEYS, &place, problems);

    match fields.get("id") {
        None => problems.push(Problem::error(format!(
            "{place}: missing required field \"id\" (the block's unique id)"
        ))),
        Some(Value::Str(s)) if s.is_empty() => problems.push(Problem::error(format!(
            "{place}: field \"id\" must not be empty"
        ))),
        Some(Value::Str(s)) => {
            if !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                problems.push(Problem::warning(format!(
                    "{place}: the block id is used in URLs but has characters other than \
                     letters, digits, `_`, `-` and `.`; clients will have to percent-encode it"
                )));
            }
        }
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"id\" must be a string, found {}",
            kind(other)
        ))),
    }

    match fields.get("type") {
        None => problems.push(Problem::error(format!(
            "{place}: missing required field \"type\" (the IP block emulator type, the \
             folder name under emulators/)"
        ))),
        Some(Value::Str(s)) if s.is_empty() => problems.push(Problem::error(format!(
            "{place}: field \"type\" must not be empty"
        ))),
        Some(Value::Str(s)) if s == "." || s == ".." || s.contains(['/', '\\', '\0']) => problems
            .push(Problem::error(format!(
                "{place}: field \"type\" is {}, which is not a folder name under emulators/",
                q(s)
            ))),
        Some(Value::Str(s)) => block.block_type = Some(s.to_string()),
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"type\" must be a string, found {}",
            kind(other)
        ))),
    }

    match fields.get("display_name") {
        None | Some(Value::Null) => {}
        Some(Value::Str(s)) => block.display_name = Some(s.to_string()),
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"display_name\" must be a string, found {}",
            kind(other)
        ))),
    }

    match fields.get("downstream_block_ids") {
        None | Some(Value::Null) => {}
        Some(Value::List(items)) => match string_list(items) {
            Ok(ids) => block.downstream = Some(ids),
            Err((i, kind)) => {
                block.downstream = None;
                problems.push(Problem::error(format!(
                    "{place}: field \"downstream_block_ids\" must be a list of block ids, \
                     found {kind} at index {i}"
                )));
            }
        },
        Some(other) => {
            block.downstream = None;
            problems.push(Problem::error(format!(
                "{place}: field \"downstream_block_ids\" must be a list of block ids, found {}",
                kind(other)
            )));
        }
    }

    match fields.get("constants") {
        None | Some(Value::Null) => {}
        Some(Value::Map(constants)) => {
            path.push(PathSegment::Key("constants".into()));
            for key in repeats.at(&path) {
                problems.push(Problem::warning(format!(
                    "{place}: constant {} is given more than once; the last value is used",
                    q(key)
                )));
            }
            block.constants = constants.clone();
        }
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"constants\" must be an object of constant values \
             (name: value), found {}",
            kind(other)
        ))),
    }

    // The id hint was only valid if the id field itself was.
    if !matches!(&block.id, Some(id) if !id.is_empty()) {
        block.id = None;
    }
    Some(block)
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` / `+build` suffix.
fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && (core.len() == v.len() || v.len() > core.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{errors, failed, status, text, warnings_of};
    use crate::report::CheckStatus;

    #[test]
    fn field_errors() {
        let (_, report) = text("[]");
        assert!(errors(&report)[0].contains("the top level must be an object"));
        assert_eq!(failed(&report), ["fields"]);

        let (_, report) = text(r#"{"id": 3, "version": "1.0.0", "ip_blocks": [], "first": 7}"#);
        let errs = errors(&report);
        assert!(errs
            .iter()
            .any(|e| e.contains("field \"id\" must be a string, found a number")));
        assert!(errs
            .iter()
            .any(|e| e.contains("field \"first\" must be a list of block ids, found a number")));
        assert!(errs.iter().any(|e| e.contains("\"ip_blocks\" is empty")));

        let (_, report) = text(
            r#"{"id": "x", "version": "1.0.0", "ip_blocks": [{"id": "a", "type": "counter"}]}"#,
        );
        assert!(errors(&report)[0].contains("missing required field \"first\""));
        // The edges are still checked.
        assert_eq!(failed(&report), ["fields"]);
        assert_eq!(status(&report, "cycles"), CheckStatus::Passed);

        let (_, report) = text(
            r#"{"id": "x", "version": "1.0.0", "first": ["a"],
                "ip_blocks": ["a", {"id": "", "type": "../x"}, {"type": 1, "downstream_block_ids": [1]},
                              {"id": "a", "type": "counter"}]}"#,
        );
        let errs = errors(&report);
        assert!(errs
            .iter()
            .any(|e| e.contains("ip_blocks[0] must be an object, found a string")));
        assert!(errs
            .iter()
            .any(|e| e.contains("ip_blocks[1]: field \"id\" must not be empty")));
        assert!(errs
            .iter()
            .any(|e| e
                .contains("ip_blocks[1]: field \"type\" is \"../x\", which is not a folder name")));
        assert!(errs
            .iter()
            .any(|e| e.contains("ip_blocks[2]: missing required field \"id\"")));
        assert!(errs.iter().any(|e| e.contains("ip_blocks[2]: field \"downstream_block_ids\" must be a list of block ids, found a number at index 0")));
        assert_eq!(status(&report, "references"), CheckStatus::Skipped);
        assert_eq!(status(&report, "cycles"), CheckStatus::Skipped);
    }

    #[test]
    fn repeated_keys() {
        // Top-level and block keys: one warning per key with its count;
        // constants: one warning per repeat, in file order. Repeats deeper
        // down (inside a constant's value, in "signal") are silent. Every
        // repeated key keeps its first position and its last value.
        let (config, report) = text(
            r#"{"id": "x", "id": "y", "version": "0.0.16", "id": "z", "first": ["a"],
                "signal": {"packet_rate": 1, "packet_rate": 2},
                "ip_blocks": [
                  {"id": "a", "type": "counter", "type": "counter",
                   "constants": {"k": 1, "j": 2, "k": 3, "j": 4, "k": 5, "n": {"m": 1, "m": 2}}}]}"#,
        );
        let config = config.unwrap_or_else(|| panic!("{report:#?}"));
        assert_eq!(
            warnings_of(&report, "fields"),
            [
                "emulators/config.json: top level: key \"id\" appears 3 times; the last value is used",
                "emulators/config.json: ip_blocks[0] (id \"a\"): key \"type\" appears 2 times; the last value is used",
                "emulators/config.json: ip_blocks[0] (id \"a\"): constant \"k\" is given more than once; the last value is used",
                "emulators/config.json: ip_blocks[0] (id \"a\"): constant \"j\" is given more than once; the last value is used",
                "emulators/config.json: ip_blocks[0] (id \"a\"): constant \"k\" is given more than once; the last value is used",
            ]
        );
        assert_eq!(config.id, "z");
        let constants = &config.block("a").unwrap().constants;
        assert_eq!(constants.keys().collect::<Vec<_>>(), ["k", "j", "n"]);
        assert_eq!(constants.get("k"), Some(&Value::Int(5)));
        assert_eq!(constants.get("j"), Some(&Value::Int(4)));
        assert_eq!(constants.get("n").unwrap().to_string(), r#"{"m":2}"#);
        assert_eq!(
            config.signal.unwrap().get("packet_rate"),
            Some(&Value::Int(2))
        );

        // The repeats inside a value that a later one replaces are not
        // reported: only the last "ip_blocks" is read.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["b"],
                "ip_blocks": [{"id": "a", "id": "a", "type": "counter",
                               "constants": {"k": 1, "k": 2}}],
                "ip_blocks": [{"id": "b", "type": "counter"}]}"#,
        );
        assert_eq!(
            warnings_of(&report, "fields"),
            ["emulators/config.json: top level: key \"ip_blocks\" appears 2 times; the last value is used"]
        );
        assert_eq!(config.expect("valid").ip_blocks.len(), 1);
    }

    #[test]
    fn key_suggestion_and_semver() {
        assert_eq!(
            suggest_key("downstream_blocks", BLOCK_KEYS.into_iter()),
            Some("downstream_block_ids")
        );
        assert!(
            is_semver("0.0.16")
                && is_semver("1.2.3-rc.1")
                && !is_semver("1.2")
                && !is_semver("1.2.3-")
        );
    }
}
