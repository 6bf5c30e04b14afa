//! Reads and checks `emulators/config.json`, the bitstream configuration.
//!
//! The config names the bitstream (`id`, `version`), lists its IP blocks
//! (`ip_blocks`: each with an `id`, a `type` naming the emulator plugin at
//! `emulators/<type>/emulator`, optional `display_name`,
//! `downstream_block_ids` and `constants`) and says which blocks receive the
//! generated signal (`first`).
//!
//! [`check_config`] runs six named checks, in this order, and records each
//! in a [`ConfigReport`]:
//!
//! | check        | what it checks |
//! |--------------|----------------|
//! | `json`       | the file can be read and is valid JSON (errors give line and column) |
//! | `fields`     | required fields are present with the right types; unknown keys are warnings |
//! | `block_ids`  | block ids are unique |
//! | `emulators`  | every block type has an emulator folder (only when the available types are given) |
//! | `references` | every downstream id and every `first` id names a block; unreachable blocks are warnings |
//! | `cycles`     | the signal chain is acyclic (an error names one concrete cycle) |
//!
//! A check that an earlier failure makes meaningless is recorded as skipped.
//! The parsed [`BitstreamConfig`] is returned only when no check failed.
//!
//! ## Legacy configs
//!
//! Configs up to version 0.0.14 had a pseudo-block of type `"dish"` standing
//! for the signal generator, and `"first": "<dish id>"` (a string). Such a
//! config is normalised: the dish is dropped from
//! [`BitstreamConfig::ip_blocks`], its id is kept in
//! [`BitstreamConfig::legacy_dish`], and [`BitstreamConfig::first`] becomes
//! the dish's `downstream_block_ids`.
//!
//! ## Leniencies
//!
//! - A leading UTF-8 byte order mark is ignored (with a warning).
//! - `null` for an optional block field means "absent".
//! - When a key appears twice in one object, the last value is used (with a
//!   warning), as Python's `json` module does.
//! - A block listing the same downstream id twice, or `first` listing an id
//!   twice, gets a warning; the duplicate is ignored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::Path;

use bitstream_sdk::{Value, ValueMap};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::report::{CheckOutcome, ConfigReport, Problem, Severity};

/// The config's file name. It lives at `<package>/emulators/config.json`,
/// next to the `emulators/<ip_block_type>/emulator` plugin folders.
pub const CONFIG_FILE: &str = "config.json";

/// The `type` of the pseudo-block that legacy configs (up to 0.0.14) used to
/// stand for the signal generator. It needs no emulator.
pub const LEGACY_DISH_TYPE: &str = "dish";

/// The names of the checks [`check_config`] records, in order.
pub const CHECK_NAMES: [&str; 6] = [
    "json",
    "fields",
    "block_ids",
    "emulators",
    "references",
    "cycles",
];

const TOP_LEVEL_KEYS: [&str; 5] = ["id", "version", "ip_blocks", "first", "signal"];
const BLOCK_KEYS: [&str; 5] = [
    "id",
    "display_name",
    "type",
    "downstream_block_ids",
    "constants",
];

/// A checked bitstream configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BitstreamConfig {
    /// The bitstream's id, for example `vcc_processing`.
    pub id: String,
    /// The config's (semantic) version, for example `0.0.16`.
    pub version: String,
    /// The IP blocks, in file order (without a legacy dish pseudo-block).
    pub ip_blocks: Vec<BlockConfig>,
    /// The ids of the blocks that receive the generated signal. Never empty.
    /// For a legacy config, the dish's downstream blocks.
    pub first: Vec<String>,
    /// For a legacy config (`"first": "<id>"` naming a block of type
    /// `"dish"`): the dish pseudo-block's id. It is not in `ip_blocks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_dish: Option<String>,
    /// The optional `signal` section: the values the signal generator sends
    /// to the `first` blocks every pulse (see [`SIGNAL_KEYS`]). `None` when
    /// the config has none (the engine's default is used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<ValueMap>,
}

/// The keys a `signal` section (and `PUT /signal`) may hold, with what
/// each means:
/// - `packet_rate`: packets per second the generated signal carries, a
///   number `>= 0` (0 models a lost link).
pub const SIGNAL_KEYS: [&str; 1] = ["packet_rate"];

/// Checks the values of a `signal` section or a `PUT /signal` body: only
/// [`SIGNAL_KEYS`], each with a value of the right type.
pub fn check_signal(values: &ValueMap) -> Result<(), String> {
    for (key, value) in values.iter() {
        match key {
            "packet_rate" => match value.as_f64() {
                Some(rate) if rate >= 0.0 && rate.is_finite() => {}
                _ => {
                    return Err(format!(
                        "signal value \"packet_rate\" must be a number >= 0, found {value}"
                    ))
                }
            },
            other => {
                return Err(format!(
                    "unknown signal value \"{other}\"; known: {}",
                    SIGNAL_KEYS.join(", ")
                ))
            }
        }
    }
    Ok(())
}

/// One IP block of a [`BitstreamConfig`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockConfig {
    /// Unique within the bitstream; used in URLs.
    pub id: String,
    /// A human-readable name, when given.
    pub display_name: Option<String>,
    /// The IP block emulator type (JSON key `type`): the plugin at
    /// `emulators/<type>/emulator`.
    #[serde(rename = "type")]
    pub block_type: String,
    /// The blocks this block's output goes to: the signal chain's edges.
    /// Without duplicates, in file order.
    pub downstream_block_ids: Vec<String>,
    /// Values assigned onto the freshly constructed ip_block, in file order.
    pub constants: ValueMap,
}

impl BitstreamConfig {
    /// The block with this id.
    pub fn block(&self, id: &str) -> Option<&BlockConfig> {
        self.ip_blocks.iter().find(|b| b.id == id)
    }

    /// The distinct block types, in order of first appearance.
    pub fn block_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for block in &self.ip_blocks {
            if !types.contains(&block.block_type.as_str()) {
                types.push(&block.block_type);
            }
        }
        types
    }

    /// The blocks of type `ty`, in file order.
    pub fn blocks_of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a BlockConfig> {
        self.ip_blocks.iter().filter(move |b| b.block_type == ty)
    }

    /// Every edge of the signal chain as `(upstream id, downstream id)`, in
    /// file order.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ip_blocks.iter().flat_map(|b| {
            b.downstream_block_ids
                .iter()
                .map(move |d| (b.id.as_str(), d.as_str()))
        })
    }

    /// The ids of the blocks that list `id` downstream, in file order.
    pub fn upstream_block_ids(&self, id: &str) -> Vec<&str> {
        self.ip_blocks
            .iter()
            .filter(|b| b.downstream_block_ids.iter().any(|d| d == id))
            .map(|b| b.id.as_str())
            .collect()
    }
}

/// A config that could not be used: every error [`check_config`] found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", describe_errors(.report))]
pub struct ConfigError {
    /// The full report, including warnings and skipped checks.
    pub report: ConfigReport,
}

impl ConfigError {
    /// The error problems, in check order.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.report
            .checks
            .iter()
            .flat_map(|c| c.problems.iter())
            .filter(|p| p.severity == Severity::Error)
    }
}

fn describe_errors(report: &ConfigReport) -> String {
    let errors: Vec<&Problem> = report
        .checks
        .iter()
        .flat_map(|c| c.problems.iter())
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let mut text = format!("invalid bitstream config {}", report.path.display());
    match errors.len() {
        0 => {}
        1 => text.push_str(" (1 error):"),
        n => text.push_str(&format!(" ({n} errors):")),
    }
    for error in errors {
        text.push_str("\n  ");
        text.push_str(&error.message);
    }
    text
}

/// Reads and checks a config.
///
/// `available_types`: the ip_block types that have an emulator folder
/// (`None` = do not check that; the `emulators` check is then skipped).
/// Returns the parsed config when it is usable (no check failed) and the
/// report. Never panics on bad input.
pub fn check_config(
    path: &Path,
    available_types: Option<&[String]>,
) -> (Option<BitstreamConfig>, ConfigReport) {
    let p = path.display().to_string();
    let failed_json = |message: String| {
        let mut checks = vec![CheckOutcome::from_problems(
            "json",
            vec![Problem::error(message)],
        )];
        skip_rest(&mut checks, "the config file could not be read");
        (
            None,
            ConfigReport {
                path: path.to_path_buf(),
                checks,
            },
        )
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return failed_json(format!("{p}: cannot read the config file: {e}")),
    };
    match String::from_utf8(bytes) {
        Ok(text) => check_config_text(path, &text, available_types),
        Err(e) => failed_json(format!(
            "{p}: the config file is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )),
    }
}

/// The same checks as [`check_config`], on text already read. `path` is used
/// only in messages and in the report.
pub fn check_config_text(
    path: &Path,
    text: &str,
    available_types: Option<&[String]>,
) -> (Option<BitstreamConfig>, ConfigReport) {
    let p = path.display().to_string();
    let mut checks = Vec::with_capacity(CHECK_NAMES.len());
    let config = run_checks(&p, text, available_types, &mut checks);
    let report = ConfigReport {
        path: path.to_path_buf(),
        checks,
    };
    let config = config.filter(|_| report.is_valid());
    (config, report)
}

/// Reads and checks a config for the engine: the config, or a
/// [`ConfigError`] whose message lists every error.
pub fn load_config(
    path: &Path,
    available_types: Option<&[String]>,
) -> Result<BitstreamConfig, ConfigError> {
    match check_config(path, available_types) {
        (Some(config), _) => Ok(config),
        (None, report) => Err(ConfigError { report }),
    }
}

/// Marks every check not yet in `checks` as skipped.
fn skip_rest(checks: &mut Vec<CheckOutcome>, why: &str) {
    for name in CHECK_NAMES.iter().skip(checks.len()) {
        checks.push(CheckOutcome::skipped(*name, format!("not checked: {why}")));
    }
}

fn run_checks(
    p: &str,
    text: &str,
    available_types: Option<&[String]>,
    checks: &mut Vec<CheckOutcome>,
) -> Option<BitstreamConfig> {
    // json
    let (problems, root) = check_json(p, text);
    checks.push(CheckOutcome::from_problems("json", problems));
    let Some(root) = root else {
        skip_rest(checks, "the config is not valid JSON");
        return None;
    };

    // fields
    let (problems, raw) = check_fields(p, root);
    checks.push(CheckOutcome::from_problems("fields", problems));
    let Some(raw) = raw else {
        skip_rest(
            checks,
            "the top level or its \"ip_blocks\" list is unusable (see the \"fields\" check)",
        );
        return None;
    };
    if raw.blocks.is_empty() {
        skip_rest(checks, "the config has no ip_blocks");
        return None;
    }

    // block_ids
    checks.push(CheckOutcome::from_problems(
        "block_ids",
        check_block_ids(p, &raw),
    ));
    let ids_unique = !checks[2].failed();

    // emulators
    checks.push(match available_types {
        Some(types) => CheckOutcome::from_problems("emulators", check_emulators(p, &raw, types)),
        None => CheckOutcome::skipped(
            "emulators",
            "not checked: no list of available emulator types was given",
        ),
    });

    // references
    let references = if raw.all_ids_known {
        let (problems, resolved) = check_references(p, &raw);
        let outcome = CheckOutcome::from_problems("references", problems);
        let ok = !outcome.failed();
        checks.push(outcome);
        ok.then_some(resolved)
    } else {
        checks.push(CheckOutcome::skipped(
            "references",
            "not checked: some blocks have no valid id (see the \"fields\" check)",
        ));
        None
    };

    // cycles
    let resolved = match references {
        None => {
            checks.push(CheckOutcome::skipped(
                "cycles",
                "not checked: the block references are not all valid",
            ));
            return None;
        }
        Some(_) if !ids_unique => {
            checks.push(CheckOutcome::skipped(
                "cycles",
                "not checked: block ids are not unique",
            ));
            return None;
        }
        // `None` when "first" could not be read (a "fields" error): the
        // chain's edges can still be checked.
        Some(resolved) => resolved,
    };
    let legacy_dish = resolved.as_ref().and_then(|r| r.legacy_dish.as_deref());
    checks.push(CheckOutcome::from_problems(
        "cycles",
        check_cycles(p, &raw, legacy_dish),
    ));

    match resolved {
        Some(resolved) if !checks.iter().any(CheckOutcome::failed) => {
            Some(build_config(raw, resolved))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// JSON: an order-preserving parse tree
// ---------------------------------------------------------------------------

/// A JSON value that keeps object keys in file order, duplicates included
/// (`serde_json::Value` sorts keys and drops duplicates).
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// How messages name this value's type.
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "a list",
            Json::Object(_) => "an object",
        }
    }

    fn into_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::from(serde_json::Value::Number(n)),
            Json::String(s) => Value::from(s),
            Json::Array(items) => Value::List(items.into_iter().map(Json::into_value).collect()),
            Json::Object(entries) => Value::Map(object_to_map(entries)),
        }
    }
}

fn object_to_map(entries: Vec<(String, Json)>) -> ValueMap {
    let mut map = ValueMap::new();
    for (key, value) in entries {
        // A repeated key keeps its first position and its last value.
        map.insert(key, value.into_value());
    }
    map
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = access.next_entry::<String, Json>()? {
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

fn check_json(p: &str, text: &str) -> (Vec<Problem>, Option<Json>) {
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
    match serde_json::from_str::<Json>(text) {
        Ok(root) => (problems, Some(root)),
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

// ---------------------------------------------------------------------------
// fields
// ---------------------------------------------------------------------------

/// What the `fields` check could read. `None` fields were missing or had
/// the wrong type (already reported).
struct Raw {
    id: Option<String>,
    version: Option<String>,
    blocks: Vec<RawBlock>,
    first: Option<First>,
    signal: Option<ValueMap>,
    /// Every element of `ip_blocks` is an object with a valid id.
    all_ids_known: bool,
}

struct RawBlock {
    index: usize,
    id: Option<String>,
    display_name: Option<String>,
    block_type: Option<String>,
    /// `None` when it had the wrong type.
    downstream: Option<Vec<String>>,
    constants: ValueMap,
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
    fn name(&self) -> String {
        match &self.id {
            Some(id) => format!("block {}", q(id)),
            None => format!("ip_blocks[{}]", self.index),
        }
    }

    fn is_dish(&self) -> bool {
        self.block_type.as_deref() == Some(LEGACY_DISH_TYPE)
    }
}

enum First {
    /// The current format: a list of block ids.
    List(Vec<String>),
    /// Configs up to 0.0.14: one block id, normally the dish pseudo-block.
    Legacy(String),
}

/// A quoted, escaped string for messages.
fn q(s: &str) -> String {
    format!("{s:?}")
}

/// An object's fields, last value winning, with warnings for repeated and
/// unknown keys.
struct Fields {
    map: HashMap<String, Json>,
}

impl Fields {
    fn new(
        entries: Vec<(String, Json)>,
        known: &[&str],
        place: &str,
        problems: &mut Vec<Problem>,
    ) -> Fields {
        let mut order: Vec<String> = Vec::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut map = HashMap::new();
        for (key, value) in entries {
            let count = counts.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                order.push(key.clone());
            }
            map.insert(key, value);
        }
        for key in &order {
            let count = counts.get(key).copied().unwrap_or(1);
            if count > 1 {
                problems.push(Problem::warning(format!(
                    "{place}: key {} appears {count} times; the last value is used",
                    q(key)
                )));
            }
        }
        let unknown: Vec<&String> = order
            .iter()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
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

    fn take(&mut self, key: &str) -> Option<Json> {
        self.map.remove(key)
    }
}

fn check_fields(p: &str, root: Json) -> (Vec<Problem>, Option<Raw>) {
    let mut problems = Vec::new();
    let entries = match root {
        Json::Object(entries) => entries,
        other => {
            problems.push(Problem::error(format!(
                "{p}: the top level must be an object with \"id\", \"version\", \"ip_blocks\" \
                 and \"first\", found {}",
                other.kind()
            )));
            return (problems, None);
        }
    };
    let mut top = Fields::new(
        entries,
        &TOP_LEVEL_KEYS,
        &format!("{p}: top level"),
        &mut problems,
    );
    // Key warnings read "<path>: top level: ..."; field errors below start
    // with the path only.

    let id = top_string(p, &mut top, "id", "the bitstream's id", &mut problems);
    if id.as_deref() == Some("") {
        problems.push(Problem::warning(format!("{p}: field \"id\" is empty")));
    }
    let version = top_string(
        p,
        &mut top,
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

    let first = match top.take("first") {
        None => {
            problems.push(Problem::error(format!(
                "{p}: missing required field \"first\" (the list of the ids of the blocks \
                 that receive the generated signal)"
            )));
            None
        }
        Some(Json::String(s)) => Some(First::Legacy(s)),
        Some(Json::Array(items)) => string_list(items)
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
                other.kind()
            )));
            None
        }
    };

    let signal = match top.take("signal") {
        None | Some(Json::Null) => None,
        Some(Json::Object(entries)) => {
            let values = object_to_map(entries);
            match check_signal(&values) {
                Ok(()) => Some(values),
                Err(message) => {
                    problems.push(Problem::error(format!("{p}: field \"signal\": {message}")));
                    None
                }
            }
        }
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field \"signal\" must be an object of signal values, found {}",
                other.kind()
            )));
            None
        }
    };

    let items = match top.take("ip_blocks") {
        None => {
            problems.push(Problem::error(format!(
                "{p}: missing required field \"ip_blocks\" (the list of IP blocks)"
            )));
            return (problems, None);
        }
        Some(Json::Array(items)) => items,
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field \"ip_blocks\" must be a list of blocks, found {}",
                other.kind()
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
    for (index, item) in items.into_iter().enumerate() {
        match check_block(p, index, item, &mut problems) {
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
    top: &mut Fields,
    key: &str,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match top.take(key) {
        None => {
            problems.push(Problem::error(format!(
                "{p}: missing required field {} ({what})",
                q(key)
            )));
            None
        }
        Some(Json::String(s)) => Some(s),
        Some(other) => {
            problems.push(Problem::error(format!(
                "{p}: field {} must be a string, found {}",
                q(key),
                other.kind()
            )));
            None
        }
    }
}

/// The strings of a list, or the index and kind of the first non-string.
fn string_list(items: Vec<Json>) -> Result<Vec<String>, (usize, &'static str)> {
    let mut strings = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Json::String(s) => strings.push(s),
            other => return Err((i, other.kind())),
        }
    }
    Ok(strings)
}

/// Checks one element of `ip_blocks`; `None` when it is not an object.
fn check_block(p: &str, index: usize, item: Json, problems: &mut Vec<Problem>) -> Option<RawBlock> {
    let entries = match item {
        Json::Object(entries) => entries,
        other => {
            problems.push(Problem::error(format!(
                "{p}: ip_blocks[{index}] must be an object, found {}",
                other.kind()
            )));
            return None;
        }
    };
    // Find the id first, so that every message can name the block.
    let id_hint = entries
        .iter()
        .rev()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| match v {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
    let mut block = RawBlock {
        index,
        id: id_hint,
        display_name: None,
        block_type: None,
        downstream: Some(Vec::new()),
        constants: ValueMap::new(),
    };
    let place = format!("{p}: {}", block.label());
    let mut fields = Fields::new(entries, &BLOCK_KEYS, &place, problems);

    match fields.take("id") {
        None => problems.push(Problem::error(format!(
            "{place}: missing required field \"id\" (the block's unique id)"
        ))),
        Some(Json::String(s)) if s.is_empty() => problems.push(Problem::error(format!(
            "{place}: field \"id\" must not be empty"
        ))),
        Some(Json::String(s)) => {
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
            other.kind()
        ))),
    }

    match fields.take("type") {
        None => problems.push(Problem::error(format!(
            "{place}: missing required field \"type\" (the IP block emulator type, the \
             folder name under emulators/)"
        ))),
        Some(Json::String(s)) if s.is_empty() => problems.push(Problem::error(format!(
            "{place}: field \"type\" must not be empty"
        ))),
        Some(Json::String(s)) if s == "." || s == ".." || s.contains(['/', '\\', '\0']) => problems
            .push(Problem::error(format!(
                "{place}: field \"type\" is {}, which is not a folder name under emulators/",
                q(&s)
            ))),
        Some(Json::String(s)) => block.block_type = Some(s),
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"type\" must be a string, found {}",
            other.kind()
        ))),
    }

    match fields.take("display_name") {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) => block.display_name = Some(s),
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"display_name\" must be a string, found {}",
            other.kind()
        ))),
    }

    match fields.take("downstream_block_ids") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => match string_list(items) {
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
                other.kind()
            )));
        }
    }

    match fields.take("constants") {
        None | Some(Json::Null) => {}
        Some(Json::Object(entries)) => {
            let mut seen = HashSet::new();
            for (key, _) in &entries {
                if !seen.insert(key.as_str()) {
                    problems.push(Problem::warning(format!(
                        "{place}: constant {} is given more than once; the last value is used",
                        q(key)
                    )));
                }
            }
            block.constants = object_to_map(entries);
        }
        Some(other) => problems.push(Problem::error(format!(
            "{place}: field \"constants\" must be an object of constant values \
             (name: value), found {}",
            other.kind()
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

// ---------------------------------------------------------------------------
// block_ids, emulators
// ---------------------------------------------------------------------------

fn check_block_ids(p: &str, raw: &Raw) -> Vec<Problem> {
    let mut order: Vec<&str> = Vec::new();
    let mut indexes: HashMap<&str, Vec<usize>> = HashMap::new();
    for block in &raw.blocks {
        if let Some(id) = &block.id {
            let list = indexes.entry(id).or_default();
            if list.is_empty() {
                order.push(id);
            }
            list.push(block.index);
        }
    }
    order
        .into_iter()
        .filter_map(|id| {
            let list = indexes.get(id)?;
            (list.len() > 1).then(|| {
                let names: Vec<String> = list.iter().map(|i| format!("ip_blocks[{i}]")).collect();
                Problem::error(format!(
                    "{p}: block id {} is used by {}; block ids must be unique",
                    q(id),
                    join_and(&names)
                ))
            })
        })
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn check_emulators(p: &str, raw: &Raw, available: &[String]) -> Vec<Problem> {
    let mut names: Vec<&str> = available.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let listed = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    let mut problems = Vec::new();
    for block in &raw.blocks {
        let Some(ty) = block.block_type.as_deref() else {
            continue;
        };
        if ty == LEGACY_DISH_TYPE || names.contains(&ty) {
            continue;
        }
        let mut message = format!(
            "{p}: {} has type {}, but there is no emulators/{ty}/emulator folder (available: {listed})",
            block.name(),
            q(ty)
        );
        if let Some(s) = suggest_name(ty, names.iter().copied()) {
            message.push_str(&format!("; did you mean {}?", q(s)));
        }
        problems.push(Problem::error(message));
    }
    problems
}

// ---------------------------------------------------------------------------
// references
// ---------------------------------------------------------------------------

/// The effective start of the signal chain.
struct Resolved {
    first: Vec<String>,
    legacy_dish: Option<String>,
}

fn check_references(p: &str, raw: &Raw) -> (Vec<Problem>, Option<Resolved>) {
    let mut problems = Vec::new();
    let mut by_id: HashMap<&str, &RawBlock> = HashMap::new();
    for block in &raw.blocks {
        if let Some(id) = &block.id {
            by_id.entry(id).or_insert(block);
        }
    }
    let all_ids = || raw.blocks.iter().filter_map(|b| b.id.as_deref());
    let unknown = |what: String, id: &str| {
        let mut message = format!("{p}: {what} {}, which does not exist", q(id));
        if let Some(s) = suggest_name(id, all_ids()) {
            message.push_str(&format!("; did you mean {}?", q(s)));
        }
        Problem::error(message)
    };

    // The start of the chain, and the legacy dish.
    let mut legacy_dish: Option<&str> = None;
    let first: Option<Vec<String>> = match &raw.first {
        None => None,
        Some(First::Legacy(id)) => match by_id.get(id.as_str()) {
            None => {
                problems.push(unknown("field \"first\" names block".into(), id));
                None
            }
            Some(dish) if dish.is_dish() => {
                legacy_dish = Some(id);
                let downstream = dish.downstream.clone();
                if downstream.as_ref().is_some_and(Vec::is_empty) {
                    problems.push(Problem::error(format!(
                        "{p}: the dish pseudo-block {} (the legacy \"first\") has no \
                         downstream_block_ids, so no block receives the generated signal",
                        q(id)
                    )));
                }
                downstream
            }
            Some(_) => {
                problems.push(Problem::warning(format!(
                    "{p}: field \"first\" is a single block id, the format of configs up to \
                     0.0.14; write it as a list: [{}]",
                    q(id)
                )));
                Some(vec![id.clone()])
            }
        },
        Some(First::List(ids)) => {
            if ids.is_empty() {
                problems.push(Problem::error(format!(
                    "{p}: field \"first\" is empty, so no block receives the generated signal; \
                     list the blocks that do"
                )));
            }
            let mut seen = HashSet::new();
            for id in ids {
                if !seen.insert(id.as_str()) {
                    problems.push(Problem::warning(format!(
                        "{p}: field \"first\" lists {} more than once; the duplicate is ignored",
                        q(id)
                    )));
                    continue;
                }
                match by_id.get(id.as_str()) {
                    None => problems.push(unknown("field \"first\" names block".into(), id)),
                    Some(b) if b.is_dish() => problems.push(Problem::error(format!(
                        "{p}: field \"first\" names {}, a legacy \"dish\" pseudo-block; list the \
                         blocks it feeds instead",
                        q(id)
                    ))),
                    Some(_) => {}
                }
            }
            Some(dedup(ids))
        }
    };

    // Every downstream id.
    for block in &raw.blocks {
        let name = block.name();
        if block.is_dish() && block.id.as_deref() != legacy_dish {
            problems.push(Problem::error(format!(
                "{p}: {name} has type \"dish\", the signal-generator pseudo-block of configs up to \
                 0.0.14, which is only allowed when \"first\" is its id as a string; remove it and \
                 list the blocks it feeds in \"first\""
            )));
        }
        let Some(downstream) = &block.downstream else {
            continue;
        };
        let mut seen = HashSet::new();
        for d in downstream {
            if !seen.insert(d.as_str()) {
                problems.push(Problem::warning(format!(
                    "{p}: {name} lists downstream block {} more than once; the duplicate is \
                     ignored",
                    q(d)
                )));
                continue;
            }
            if block.id.as_deref() == Some(d.as_str()) {
                problems.push(Problem::error(format!(
                    "{p}: {name} lists itself in downstream_block_ids; a block cannot feed itself"
                )));
                continue;
            }
            match by_id.get(d.as_str()) {
                None => problems.push(unknown(format!("{name} lists downstream block"), d)),
                Some(target) if target.is_dish() => problems.push(Problem::error(format!(
                    "{p}: {name} lists {} downstream, but it is a legacy \"dish\" pseudo-block \
                     (the signal generator), which cannot receive signals",
                    q(d)
                ))),
                Some(_) => {}
            }
        }
    }

    // Reachability, when the chain is complete.
    let has_errors = problems.iter().any(|p| p.severity == Severity::Error);
    let complete = raw.blocks.iter().all(|b| b.downstream.is_some());
    if let (Some(first), false, true) = (&first, has_errors, complete) {
        let mut reached: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = first.iter().map(String::as_str).collect();
        while let Some(id) = queue.pop_front() {
            if !reached.insert(id) {
                continue;
            }
            if let Some(next) = by_id.get(id).and_then(|b| b.downstream.as_ref()) {
                queue.extend(next.iter().map(String::as_str));
            }
        }
        let start = first.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
        for block in &raw.blocks {
            match block.id.as_deref() {
                Some(id) if Some(id) != legacy_dish && !reached.contains(id) => {
                    problems.push(Problem::warning(format!(
                        "{p}: {} is not reachable from \"first\" ({start}): it will never receive \
                         a signal update",
                        block.name()
                    )));
                }
                _ => {}
            }
        }
    }

    let resolved = first.map(|first| Resolved {
        first,
        legacy_dish: legacy_dish.map(str::to_owned),
    });
    (problems, resolved)
}

/// The list without repeats, in order.
fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// cycles
// ---------------------------------------------------------------------------

fn check_cycles(p: &str, raw: &Raw, legacy_dish: Option<&str>) -> Vec<Problem> {
    let blocks: Vec<&RawBlock> = raw
        .blocks
        .iter()
        .filter(|b| b.id.is_some() && b.id.as_deref() != legacy_dish)
        .collect();
    // Node weights are positions in `blocks`.
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(blocks.len(), blocks.len());
    let mut nodes: HashMap<&str, NodeIndex> = HashMap::new();
    for (i, block) in blocks.iter().enumerate() {
        if let Some(id) = block.id.as_deref() {
            nodes.insert(id, graph.add_node(i));
        }
    }
    for block in &blocks {
        let (Some(id), Some(downstream)) = (block.id.as_deref(), &block.downstream) else {
            continue;
        };
        let Some(&from) = nodes.get(id) else { continue };
        for d in dedup(downstream) {
            if let Some(&to) = nodes.get(d.as_str()) {
                graph.add_edge(from, to, ());
            }
        }
    }

    let mut cycles: Vec<(usize, Vec<NodeIndex>)> = Vec::new();
    for scc in tarjan_scc(&graph) {
        let is_cycle = scc.len() > 1 || scc.iter().any(|&n| graph.contains_edge(n, n));
        if !is_cycle {
            continue;
        }
        if let Some(cycle) = find_cycle(&graph, &scc) {
            let position = scc.iter().map(|&n| graph[n]).min().unwrap_or(0);
            cycles.push((position, cycle));
        }
    }
    cycles.sort_by_key(|(position, _)| *position);
    cycles
        .into_iter()
        .map(|(_, cycle)| {
            let ids: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .filter_map(|&n| blocks.get(graph[n]).and_then(|b| b.id.as_deref()))
                .collect();
            Problem::error(format!(
                "{p}: cycle in the signal chain: {}; the signal chain must be acyclic",
                ids.join(" -> ")
            ))
        })
        .collect()
}

/// A shortest cycle through the first (in file order) node of a strongly
/// connected component, as its nodes in order (the start not repeated).
fn find_cycle(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Option<Vec<NodeIndex>> {
    let members: HashSet<NodeIndex> = scc.iter().copied().collect();
    let start = *scc.iter().min_by_key(|&&n| graph[n])?;
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        // Visit successors in file order, for stable messages.
        let mut next: Vec<NodeIndex> = graph
            .neighbors(node)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_by_key(|&n| graph[n]);
        for succ in next {
            if succ == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = *parent.get(&at)?;
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if succ != start && !parent.contains_key(&succ) {
                parent.insert(succ, node);
                queue.push_back(succ);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// the result
// ---------------------------------------------------------------------------

fn build_config(raw: Raw, resolved: Resolved) -> BitstreamConfig {
    let legacy_dish = resolved.legacy_dish;
    let ip_blocks = raw
        .blocks
        .into_iter()
        .filter(|b| b.id.is_none() || b.id != legacy_dish)
        .map(|b| BlockConfig {
            id: b.id.unwrap_or_default(),
            display_name: b.display_name,
            block_type: b.block_type.unwrap_or_default(),
            downstream_block_ids: dedup(&b.downstream.unwrap_or_default()),
            constants: b.constants,
        })
        .collect();
    BitstreamConfig {
        id: raw.id.unwrap_or_default(),
        version: raw.version.unwrap_or_default(),
        ip_blocks,
        first: resolved.first,
        legacy_dish,
        signal: raw.signal,
    }
}

// ---------------------------------------------------------------------------
// suggestions
// ---------------------------------------------------------------------------

/// The candidate closest to `word`, when it is close enough to be a likely
/// typo of a key (up to 3 edits, fewer for short words).
fn suggest_key<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    suggest(word, candidates, (word.chars().count() / 3).clamp(1, 3))
}

/// The candidate closest to `word`, when it is close enough to be a likely
/// typo of a block id or type: one edit. (Block ids come in families such as
/// `b45a_wideband_power_meter` / `b5b_wideband_power_meter`, where a looser
/// match would suggest a different, real block.)
fn suggest_name<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    suggest(word, candidates, 1)
}

fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Option<&'a str> {
    candidates
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (by chars); long inputs count as far apart.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 256 || b.len() > 256 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CheckStatus;
    use std::path::PathBuf;

    fn manifest() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The committed config of a real bitstream package under `fixtures/`
    /// (byte-identical copies of `../shared/reference/<package>.config.json`).
    fn real_config(package: &str) -> PathBuf {
        manifest()
            .join("../fixtures")
            .join(package)
            .join("emulators/config.json")
    }

    fn fixture(name: &str) -> PathBuf {
        manifest().join("../fixtures/configs").join(name)
    }

    fn names(report: &ConfigReport) -> Vec<&str> {
        report.checks.iter().map(|c| c.name.as_str()).collect()
    }

    fn status(report: &ConfigReport, name: &str) -> CheckStatus {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    fn failed(report: &ConfigReport) -> Vec<&str> {
        report
            .checks
            .iter()
            .filter(|c| c.failed())
            .map(|c| c.name.as_str())
            .collect()
    }

    fn errors(report: &ConfigReport) -> Vec<&str> {
        report
            .checks
            .iter()
            .flat_map(|c| &c.problems)
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.message.as_str())
            .collect()
    }

    fn warnings_of<'a>(report: &'a ConfigReport, check: &str) -> Vec<&'a str> {
        report
            .checks
            .iter()
            .filter(|c| c.name == check)
            .flat_map(|c| &c.problems)
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.message.as_str())
            .collect()
    }

    fn text(json: &str) -> (Option<BitstreamConfig>, ConfigReport) {
        check_config_text(Path::new("emulators/config.json"), json, None)
    }

    fn types(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const REAL_TYPES: [&str; 8] = [
        "ftile_ethernet",
        "packet_validation",
        "wideband_input_buffer",
        "wideband_power_meter",
        "frequency_shifter",
        "vcc_ch20",
        "vcc_fs_selection",
        "packetizer",
    ];

    #[test]
    fn real_config_parses() {
        let available = types(&REAL_TYPES);
        let (config, report) = check_config(&real_config("vcc_processing"), Some(&available));
        assert!(report.is_valid(), "{report:#?}");
        assert_eq!(names(&report), CHECK_NAMES);
        assert!(
            report
                .checks
                .iter()
                .all(|c| c.status == CheckStatus::Passed),
            "{report:#?}"
        );
        let config = config.expect("valid");
        assert_eq!(config.id, "vcc_processing");
        assert_eq!(config.version, "0.0.16");
        assert_eq!(config.ip_blocks.len(), 36);
        assert_eq!(config.first, ["ethernet_200g"]);
        assert_eq!(config.legacy_dish, None);
        assert_eq!(config.edges().count(), 60);
        assert_eq!(config.block_types(), REAL_TYPES);
        assert_eq!(config.blocks_of_type("wideband_power_meter").count(), 29);

        let eth = config.block("ethernet_200g").expect("ethernet");
        assert_eq!(eth.display_name.as_deref(), Some("200Gb Ethernet"));
        assert_eq!(eth.block_type, "ftile_ethernet");
        assert_eq!(
            eth.constants.keys().collect::<Vec<_>>(),
            ["num_fibres", "num_lanes"]
        );
        assert_eq!(eth.constants.get("num_fibres"), Some(&Value::Int(4)));
        assert!(config
            .block("wideband_input_buffer")
            .unwrap()
            .constants
            .is_empty());

        // 26-way fan-out then 26-way fan-in.
        let selection = config.block("fs_selection_26_2_1").unwrap();
        assert_eq!(selection.downstream_block_ids.len(), 26);
        assert_eq!(
            selection.downstream_block_ids[0],
            "fs1_wideband_power_meter"
        );
        let upstream = config.upstream_block_ids("packetizer");
        assert_eq!(upstream.len(), 26);
        assert!(upstream.contains(&"fs26_wideband_power_meter"));
        assert!(config
            .block("packetizer")
            .unwrap()
            .downstream_block_ids
            .is_empty());
        assert!(config.block("no_such_block").is_none());
    }

    #[test]
    fn real_fan_in_config_parses() {
        let available = types(&REAL_TYPES);
        let path = real_config("vcc_processing_fan_in");
        let config = load_config(&path, Some(&available)).expect("valid");
        assert_eq!(config.ip_blocks.len(), 37);
        assert_eq!(config.first, ["ethernet_200g"]);
        assert_eq!(
            config.block("ethernet_200g").unwrap().downstream_block_ids,
            ["packet_validation_a", "packet_validation_b"]
        );
        assert_eq!(
            config.upstream_block_ids("wideband_input_buffer"),
            ["packet_validation_a", "packet_validation_b"]
        );
        assert_eq!(config.blocks_of_type("packet_validation").count(), 2);
    }

    /// (file, failing check, message fragment)
    const BROKEN: [(&str, &str, &str); 8] = [
        ("syntax_error.json", "json", "invalid JSON at line 9, column 7: expected `,` or `}`"),
        ("missing_fields.json", "fields", "missing required field \"version\""),
        ("duplicate_ids.json", "block_ids", "block id \"b45a_wideband_power_meter\" is used by ip_blocks[4] and ip_blocks[5]"),
        ("unknown_downstream.json", "references", "block \"wideband_input_buffer\" lists downstream block \"b5b_wideband_power_meter\", which does not exist"),
        ("unknown_first.json", "references", "field \"first\" names block \"ethernet_100g\", which does not exist; did you mean \"ethernet_200g\"?"),
        ("cycle.json", "cycles", "cycle in the signal chain: wideband_input_buffer -> wideband_frequency_shifter -> b123vcc -> wideband_input_buffer"),
        ("wrong_types.json", "fields", "ip_blocks[3] (id \"b45a_wideband_power_meter\"): field \"downstream_block_ids\" must be a list of block ids, found a string"),
        ("unknown_type.json", "emulators", "block \"b123vcc\" has type \"vcc_ch20\", but there is no emulators/vcc_ch20/emulator folder (available: counter)"),
    ];

    #[test]
    fn every_broken_fixture_fails_exactly_its_check() {
        let available = types(&["counter"]);
        for (file, check, fragment) in BROKEN {
            let path = fixture(file);
            let (config, report) = check_config(&path, Some(&available));
            assert!(config.is_none(), "{file}: accepted");
            assert_eq!(names(&report), CHECK_NAMES, "{file}");
            assert_eq!(failed(&report), [check], "{file}: {report:#?}");
            let errors = errors(&report);
            assert!(
                errors.iter().any(|e| e.contains(fragment)),
                "{file}: no error contains {fragment:?}: {errors:#?}"
            );
            let shown = path.display().to_string();
            assert!(
                errors.iter().all(|e| e.starts_with(&shown)),
                "{file}: {errors:#?}"
            );
            // The engine's error lists the same errors.
            let err = load_config(&path, Some(&available)).unwrap_err();
            assert!(err.to_string().contains(fragment), "{file}: {err}");
            assert_eq!(err.errors().count(), errors.len());
        }
    }

    #[test]
    fn fixture_details() {
        let available = types(&["counter"]);
        let check = |file: &str| check_config(&fixture(file), Some(&available)).1;

        // Everything after a syntax error is skipped.
        let report = check("syntax_error.json");
        for c in &report.checks[1..] {
            assert_eq!(c.status, CheckStatus::Skipped, "{report:#?}");
        }
        assert!(
            errors(&report)[0].contains("is a comma missing"),
            "{report:#?}"
        );

        let report = check("missing_fields.json");
        let errs = errors(&report);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[1].contains(
            "ip_blocks[2] (id \"wideband_input_buffer\"): missing required field \"type\""
        ));

        let report = check("wrong_types.json");
        let errs = errors(&report);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].contains(
            "ip_blocks[1] (id \"packet_validation\"): field \"constants\" must be an object of constant values (name: value), found a list"
        ));
        // The later checks still run on what could be read.
        assert_eq!(status(&report, "references"), CheckStatus::Passed);
        assert_eq!(status(&report, "cycles"), CheckStatus::Passed);

        let report = check("cycle.json");
        assert_eq!(errors(&report).len(), 1);

        // unknown_type.json is fine when emulator folders are not checked.
        let (config, report) = check_config(&fixture("unknown_type.json"), None);
        assert!(config.is_some(), "{report:#?}");
        assert_eq!(status(&report, "emulators"), CheckStatus::Skipped);
        // ... or when its types are there.
        let all = types(&["counter", "vcc_ch20"]);
        assert!(check_config(&fixture("unknown_type.json"), Some(&all))
            .0
            .is_some());
    }

    #[test]
    fn legacy_dish_is_normalised() {
        let available = types(&["counter"]);
        let (config, report) = check_config(&fixture("legacy_dish.json"), Some(&available));
        assert!(
            report
                .checks
                .iter()
                .all(|c| c.status == CheckStatus::Passed),
            "{report:#?}"
        );
        let config = config.expect("valid");
        assert_eq!(config.version, "0.0.14");
        assert_eq!(config.legacy_dish.as_deref(), Some("dish"));
        assert_eq!(config.first, ["ethernet_200g"]);
        assert!(config.block("dish").is_none());
        assert_eq!(config.ip_blocks.len(), 4);
        assert_eq!(config.block_types(), ["counter"]);
        assert!(config.ip_blocks.iter().all(|b| b.id != "dish"));
        assert_eq!(
            config.upstream_block_ids("ethernet_200g"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn legacy_dish_rules() {
        // A dish with two downstream blocks gives two first blocks.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.12", "first": "sky",
                "ip_blocks": [
                  {"id": "sky", "type": "dish", "downstream_block_ids": ["a", "b"]},
                  {"id": "a", "type": "counter"},
                  {"id": "b", "type": "counter"}]}"#,
        );
        let config = config.unwrap_or_else(|| panic!("{report:#?}"));
        assert_eq!(config.first, ["a", "b"]);
        assert_eq!(config.legacy_dish.as_deref(), Some("sky"));

        // A dish in a current-format config is an error.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["a"],
                "ip_blocks": [
                  {"id": "dish", "type": "dish", "downstream_block_ids": ["a"]},
                  {"id": "a", "type": "counter"}]}"#,
        );
        assert!(config.is_none());
        assert_eq!(failed(&report), ["references"]);

        // A block may not feed the dish.
        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.14", "first": "dish",
                "ip_blocks": [
                  {"id": "dish", "type": "dish", "downstream_block_ids": ["a"]},
                  {"id": "a", "type": "counter", "downstream_block_ids": ["dish"]}]}"#,
        );
        assert_eq!(failed(&report), ["references"]);
        assert!(errors(&report)[0].contains("cannot receive signals"));

        // A string "first" naming a real block is accepted with a warning.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.14", "first": "a",
                "ip_blocks": [{"id": "a", "type": "counter"}]}"#,
        );
        assert_eq!(config.unwrap().first, ["a"]);
        assert_eq!(status(&report, "references"), CheckStatus::Warning);
    }

    #[test]
    fn warnings_do_not_fail_a_config() {
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["a", "a"], "comment": "hi",
                "ip_blocks": [
                  {"id": "a", "type": "counter", "downstream_block_ids": ["b", "b"],
                   "downstream_blocks": ["c"], "constants": {"label": "one", "label": "two"}},
                  {"id": "b", "type": "counter", "display_name": null},
                  {"id": "c", "type": "counter"}]}"#,
        );
        assert!(report.is_valid(), "{report:#?}");
        let config = config.expect("warnings only");
        assert_eq!(config.first, ["a"]);
        assert_eq!(config.block("a").unwrap().downstream_block_ids, ["b"]);
        assert_eq!(
            config.block("a").unwrap().constants.get("label"),
            Some(&Value::from("two"))
        );
        assert_eq!(status(&report, "fields"), CheckStatus::Warning);
        assert_eq!(status(&report, "references"), CheckStatus::Warning);
        let fields = warnings_of(&report, "fields");
        assert!(
            fields
                .iter()
                .any(|w| w.contains("top level: unknown key \"comment\"")),
            "{fields:#?}"
        );
        assert!(
            fields.iter().any(|w| w.contains(
                "unknown key \"downstream_blocks\" (did you mean \"downstream_block_ids\"?)"
            )),
            "{fields:#?}"
        );
        let references = warnings_of(&report, "references");
        assert!(
            references
                .iter()
                .any(|w| w.contains("block \"c\" is not reachable from \"first\"")),
            "{references:#?}"
        );
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
    fn self_reference_and_unknown_ids() {
        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["a"],
                "ip_blocks": [{"id": "a", "type": "counter", "downstream_block_ids": ["a"]}]}"#,
        );
        assert_eq!(failed(&report), ["references"]);
        assert!(errors(&report)[0].contains("block \"a\" lists itself"));
        assert_eq!(status(&report, "cycles"), CheckStatus::Skipped);

        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": [],
                "ip_blocks": [{"id": "a", "type": "counter"}]}"#,
        );
        assert_eq!(failed(&report), ["references"]);
        assert!(errors(&report)[0].contains("field \"first\" is empty"));
    }

    #[test]
    fn cycles_are_named() {
        // Two separate cycles, and a block feeding into one of them.
        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["s"],
                "ip_blocks": [
                  {"id": "s", "type": "counter", "downstream_block_ids": ["p", "x"]},
                  {"id": "x", "type": "counter", "downstream_block_ids": ["y"]},
                  {"id": "y", "type": "counter", "downstream_block_ids": ["x"]},
                  {"id": "p", "type": "counter", "downstream_block_ids": ["q"]},
                  {"id": "q", "type": "counter", "downstream_block_ids": ["r", "s"]},
                  {"id": "r", "type": "counter", "downstream_block_ids": ["p"]}]}"#,
        );
        let errs = errors(&report);
        assert_eq!(
            errs,
            [
                "emulators/config.json: cycle in the signal chain: s -> p -> q -> s; the signal chain must be acyclic",
                "emulators/config.json: cycle in the signal chain: x -> y -> x; the signal chain must be acyclic",
            ]
        );
    }

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
    fn bad_input_never_panics() {
        let inputs = [
            "null", "1", "\"s\"", "{}", "{\"ip_blocks\": {}}", "{\"ip_blocks\": [null, [], 1]}",
            "\u{feff}{}", "{\"first\": [null], \"ip_blocks\": [{\"id\": \"a\", \"type\": \"dish\"}]}",
            "{\"first\": \"a\", \"ip_blocks\": [{\"id\": \"a\", \"type\": \"dish\", \"downstream_block_ids\": [\"a\"]}]}",
            "{\"first\": \"a\", \"ip_blocks\": [{\"id\": \"a\", \"type\": \"dish\"}]}",
            "{\"first\": [\"a\"], \"ip_blocks\": [{\"id\": \"a\", \"type\": \"t\", \"constants\": {\"n\": 1e400}}]}",
            "{\"first\": [\"a\"], \"ip_blocks\": [{\"id\": \"a\", \"type\": \"t\", \"constants\": {\"n\": 18446744073709551615}}]}",
        ];
        for input in inputs {
            let (_, report) = text(input);
            assert_eq!(names(&report), CHECK_NAMES, "{input}");
        }
        let deep = "[".repeat(100_000);
        let (_, report) = text(&deep);
        assert_eq!(failed(&report), ["json"]);
        let (_, report) = check_config(Path::new(env!("CARGO_MANIFEST_DIR")), None);
        assert_eq!(failed(&report), ["json"]);
    }

    #[test]
    fn config_error_lists_every_error() {
        let dir =
            std::env::temp_dir().join(format!("bitstream-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(
            &path,
            r#"{"id": "x", "ip_blocks": [{"id": "a"}], "first": ["a"]}"#,
        )
        .unwrap();
        let err = load_config(&path, None).unwrap_err();
        let shown = err.to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            shown.starts_with(&format!(
                "invalid bitstream config {} (2 errors):",
                path.display()
            )),
            "{shown}"
        );
        assert!(
            shown.contains("missing required field \"version\""),
            "{shown}"
        );
        assert!(shown.contains("missing required field \"type\""), "{shown}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            suggest_name("ethernet_100g", ["ethernet_200g", "packetizer"].into_iter()),
            Some("ethernet_200g")
        );
        assert_eq!(suggest_name("zzz", ["ethernet_200g"].into_iter()), None);
        // Sibling blocks are not typos of each other.
        let siblings = ["b45a_wideband_power_meter", "b123_wideband_power_meter"];
        assert_eq!(
            suggest_name("b5b_wideband_power_meter", siblings.into_iter()),
            None
        );
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
