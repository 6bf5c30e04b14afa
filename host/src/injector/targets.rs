//! The emulators an injector knows: emulator id → where its groups go
//! (an in-process [`Emulator`] or the base URL of an emulator's HTTP API).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use reqwest::Url;

use crate::engine::Emulator;

/// Where one emulator's groups go.
#[derive(Clone)]
pub enum Target {
    /// An emulator in this process (a fleet member): its groups are
    /// scheduled through the engine's injection API, no HTTP involved.
    InProcess(Arc<Emulator>),
    /// An emulator elsewhere: its groups are POSTed to its `/inject`.
    Remote(RemoteEmulator),
}

impl Target {
    /// How the target is shown in `GET /` and in answers: `in-process`,
    /// or the base URL.
    pub fn describe(&self) -> String {
        match self {
            Target::InProcess(_) => "in-process".to_owned(),
            Target::Remote(remote) => remote.base().to_owned(),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::InProcess(emulator) => {
                f.debug_tuple("InProcess").field(&emulator.id()).finish()
            }
            Target::Remote(remote) => f.debug_tuple("Remote").field(&remote.base).finish(),
        }
    }
}

/// The base URL of an emulator's HTTP API (`http://host:port`, optionally
/// with a path prefix), checked when it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEmulator {
    /// As given, without a trailing slash.
    base: String,
    /// `<base>/inject`.
    inject: Url,
}

impl RemoteEmulator {
    /// Checks `url`: an `http://` URL with a host, no query or fragment.
    /// (This build speaks plain HTTP only, as the emulators serve it.)
    pub fn parse(url: &str) -> Result<RemoteEmulator, TargetError> {
        let bad = |reason: &str| TargetError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = Url::parse(url).map_err(|e| {
            bad(&format!(
                "{e}; write the emulator's base URL, e.g. http://127.0.0.1:5001"
            ))
        })?;
        if parsed.scheme() != "http" {
            return Err(bad(&format!(
                "the scheme is \"{}\"; emulators serve plain HTTP: use http://",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "it has a query or fragment; give the base URL only (\"/inject\" is appended)",
            ));
        }
        let base = parsed.as_str().trim_end_matches('/').to_owned();
        let inject = Url::parse(&format!("{base}/inject")).map_err(|e| bad(&e.to_string()))?;
        Ok(RemoteEmulator { base, inject })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL its groups are POSTed to.
    pub fn inject_url(&self) -> &Url {
        &self.inject
    }
}

/// Why a target could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The id is already registered.
    #[error("emulator id \"{id}\" is given twice (as {first} and as {second}); each emulator id names one emulator")]
    Duplicate {
        /// The id.
        id: String,
        /// The target registered first.
        first: String,
        /// The one refused.
        second: String,
    },
    /// An empty id, or one with characters an id never has.
    #[error("emulator id \"{id}\" is not valid: {reason}")]
    BadId {
        /// The id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A URL that is not an emulator's base URL.
    #[error("emulator URL \"{url}\" is not valid: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// An `--emulator` value without `=`.
    #[error("\"{spec}\" is not <id>=<url>, e.g. fhs-vcc-emulator-1=http://127.0.0.1:5001")]
    NotIdEqualsUrl {
        /// The value.
        spec: String,
    },
}

/// The emulators an injector routes to, by id.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    by_id: BTreeMap<String, Target>,
}

impl Targets {
    /// No emulators yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `id`; refused when `id` is empty, has whitespace or
    /// control characters, or is registered already.
    pub fn add(&mut self, id: impl Into<String>, target: Target) -> Result<(), TargetError> {
        let id = id.into();
        check_id(&id)?;
        if let Some(first) = self.by_id.get(&id) {
            return Err(TargetError::Duplicate {
                first: first.describe(),
                second: target.describe(),
                id,
            });
        }
        self.by_id.insert(id, target);
        Ok(())
    }

    /// Registers an in-process emulator under its own id.
    pub fn add_in_process(&mut self, emulator: Arc<Emulator>) -> Result<(), TargetError> {
        let id = emulator.id().to_owned();
        self.add(id, Target::InProcess(emulator))
    }

    /// Registers a remote emulator from `<id>=<url>` (as `--emulator`
    /// takes it).
    pub fn add_spec(&mut self, spec: &str) -> Result<(), TargetError> {
        let (id, remote) = parse_spec(spec)?;
        self.add(id, Target::Remote(remote))
    }

    /// The target of `id`.
    pub fn get(&self, id: &str) -> Option<&Target> {
        self.by_id.get(id)
    }

    /// Every id, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Every id with its target, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Target)> {
        self.by_id.iter().map(|(id, t)| (id.as_str(), t))
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// `<id>=<url>` (split at the first `=`), both checked.
pub fn parse_spec(spec: &str) -> Result<(String, RemoteEmulator), TargetError> {
    let (id, url) = spec
        .split_once('=')
        .ok_or_else(|| TargetError::NotIdEqualsUrl {
            spec: spec.to_owned(),
        })?;
    check_id(id)?;
    Ok((id.to_owned(), RemoteEmulator::parse(url)?))
}

fn check_id(id: &str) -> Result<(), TargetError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it holds whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(TargetError::BadId {
        id: id.to_owned(),
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_an_id_and_a_base_url() {
        let (id, remote) = parse_spec("fhs-vcc-emulator-1=http://127.0.0.1:5001/").unwrap();
        assert_eq!(id, "fhs-vcc-emulator-1");
        assert_eq!(remote.base(), "http://127.0.0.1:5001");
        assert_eq!(remote.inject_url().as_str(), "http://127.0.0.1:5001/inject");
        let (_, prefixed) = parse_spec("a=http://emulators.local/vcc-1").unwrap();
        assert_eq!(
            prefixed.inject_url().as_str(),
            "http://emulators.local/vcc-1/inject"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let message = |spec: &str| parse_spec(spec).unwrap_err().to_string();
        assert!(message("fhs-1").contains("<id>=<url>"));
        assert!(message("=http://127.0.0.1:5001").contains("empty"));
        assert!(message("a b=http://127.0.0.1:5001").contains("whitespace"));
        assert!(message("a=127.0.0.1:5001").contains("http://"));
        assert!(message("a=https://127.0.0.1:5001").contains("\"https\""));
        assert!(message("a=http://127.0.0.1:5001/?x=1").contains("query"));
        assert!(message("a=").contains("\"\""));
    }

    #[test]
    fn duplicate_ids_are_refused_naming_both_targets() {
        let mut targets = Targets::new();
        targets.add_spec("a=http://127.0.0.1:5001").unwrap();
        targets.add_spec("b=http://127.0.0.1:5002").unwrap();
        let err = targets
            .add_spec("a=http://127.0.0.1:5003")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"a\"") && err.contains(":5001") && err.contains(":5003"),
            "{err}"
        );
        assert_eq!(targets.ids().collect::<Vec<_>>(), ["a", "b"]);
    }
}
