//! The SDK version and the policy that decides which plugins a host loads.
//!
//! A plugin records the SDK version it was built with in its abi_stable
//! library header. A host loads it when:
//! - the majors are equal (a new major may change any type that crosses the
//!   boundary), and
//! - the plugin's minor is at most the host's minor (a minor release only
//!   appends optional fields to the prefix tables, so an older plugin is
//!   read correctly by a newer host, never the other way round).
//!
//! The patch level is not compared.
//!
//! ```
//! use bitstream_sdk::version::{SdkVersion, check_compatible};
//!
//! let host = SdkVersion::new(1, 3, 0);
//! assert!(check_compatible(SdkVersion::new(1, 2, 9), host).is_ok());
//! assert!(check_compatible(SdkVersion::new(1, 4, 0), host).is_err());
//! assert!(check_compatible(SdkVersion::new(2, 0, 0), host).is_err());
//! ```

use std::fmt;

/// The version of this SDK crate, as plugins built with it record it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A `major.minor.patch` SDK version.
#[derive(Debug, Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SdkVersion {
    /// Incompatible changes.
    pub major: u32,
    /// Additive changes.
    pub minor: u32,
    /// Fixes.
    pub patch: u32,
}

impl SdkVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        SdkVersion {
            major,
            minor,
            patch,
        }
    }

    /// The version of this SDK.
    pub fn current() -> Self {
        Self::parse(SDK_VERSION).expect("the crate version is major.minor.patch")
    }

    /// Parses `major.minor.patch` (a pre-release or build suffix after the
    /// patch number is ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch_text = parts.next()?;
        let digits = patch_text
            .find(|c: char| !c.is_ascii_digit())
            .map_or(patch_text, |end| &patch_text[..end]);
        let patch = digits.parse().ok()?;
        Some(SdkVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for SdkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a plugin's SDK version is refused: it names the plugin's SDK, the
/// host's and the versions the host supports. It reads as its message (it
/// dereferences to `str` and converts into `String`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "built with SDK {plugin}, but this host (SDK {host}) supports plugins built with SDK \
     {}.0 to {}.{}: {}; rebuild the plugin against SDK {}.{}",
    host.major, host.major, host.minor, self.why(), host.major, host.minor
)]
pub struct IncompatibleSdk {
    /// The SDK version that built the plugin.
    pub plugin: SdkVersion,
    /// The host's SDK version.
    pub host: SdkVersion,
    message: String,
}

impl IncompatibleSdk {
    fn why(&self) -> &'static str {
        if self.plugin.major != self.host.major {
            "the major versions differ"
        } else {
            "the plugin needs a newer host"
        }
    }
}

impl std::ops::Deref for IncompatibleSdk {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl From<IncompatibleSdk> for String {
    fn from(err: IncompatibleSdk) -> String {
        err.message
    }
}

/// Checks a plugin's SDK version against the host's: the same major, and a
/// minor no newer than the host's.
///
/// ```
/// use bitstream_sdk::version::{check_compatible, SdkVersion};
///
/// let host = SdkVersion::new(1, 1, 0);
/// assert!(check_compatible(SdkVersion::new(1, 0, 3), host).is_ok());
/// let err = check_compatible(SdkVersion::new(1, 2, 0), host).unwrap_err();
/// assert!(err.contains("supports plugins built with SDK 1.0 to 1.1"), "{err}");
/// ```
pub fn check_compatible(plugin: SdkVersion, host: SdkVersion) -> Result<(), IncompatibleSdk> {
    if plugin.major == host.major && plugin.minor <= host.minor {
        return Ok(());
    }
    let mut err = IncompatibleSdk {
        plugin,
        host,
        message: String::new(),
    };
    err.message = err.to_string();
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_with_suffixes() {
        assert_eq!(SdkVersion::parse("1.2.3"), Some(SdkVersion::new(1, 2, 3)));
        assert_eq!(
            SdkVersion::parse("1.2.3-rc.1"),
            Some(SdkVersion::new(1, 2, 3))
        );
        assert_eq!(SdkVersion::parse("1.2"), None);
        assert_eq!(SdkVersion::parse("x.2.3"), None);
    }

    #[test]
    fn policy_same_major_plugin_minor_not_above_host() {
        let host = SdkVersion::new(1, 3, 7);
        assert!(check_compatible(SdkVersion::new(1, 0, 0), host).is_ok());
        assert!(check_compatible(SdkVersion::new(1, 3, 9), host).is_ok());
        let newer = check_compatible(SdkVersion::new(1, 99, 0), host).unwrap_err();
        assert!(newer.contains("built with SDK 1.99.0"), "{newer}");
        assert!(
            newer.contains("supports plugins built with SDK 1.0 to 1.3"),
            "{newer}"
        );
        assert!(check_compatible(SdkVersion::new(0, 3, 0), host).is_err());
        assert!(check_compatible(SdkVersion::new(2, 0, 0), host).is_err());
    }
}
