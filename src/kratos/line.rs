//! The Kratos releases whose admin API differs for us, told by `GET /admin/version`.

use std::fmt;

/// The Kratos releases whose admin API differs for us: external ids, the lookup by external
/// id and true per-item batch results exist from v25.4.0 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KratosLine {
    /// v1.3.x (and anything below v25.4.0): no `external_id` (a create body with one is a
    /// 400), no lookup by external id, and a batch with a failed item is rolled back whole
    /// while Kratos still answers `action: create` for the others.
    Legacy,
    /// v25.4.0 and later: `external_id`, its lookup, and true per-item batch results.
    Current,
}

impl KratosLine {
    /// The line of a `GET /admin/version` answer (`v1.3.1`, `25.4.0`, `v26.2.0+build`); `None`
    /// when that is no version we can place (`master` from an unstamped build, or a
    /// pre-release of v25.4.0 itself).
    pub fn from_version(version: &str) -> Option<Self> {
        let version = version.trim();
        let version =
            semver::Version::parse(version.strip_prefix(['v', 'V']).unwrap_or(version)).ok()?;
        let numbers = (version.major, version.minor, version.patch);
        // A pre-release of v25.4.0 itself may or may not have the new API: probe it.
        if numbers == (25, 4, 0) && !version.pre.is_empty() {
            return None;
        }
        Some(if numbers < (25, 4, 0) {
            Self::Legacy
        } else {
            Self::Current
        })
    }

    /// Whether create bodies may carry `external_id`.
    pub fn accepts_external_id(self) -> bool {
        self == Self::Current
    }

    /// Whether a batch answer can be believed item by item; on v1.3.x a failed item rolls
    /// back the batch and the other items' `create` results must be checked.
    pub fn batch_results_are_true(self) -> bool {
        self == Self::Current
    }

    /// Kratos's `BatchPatchIdentitiesLimit`.
    pub fn max_batch_items(self) -> usize {
        match self {
            Self::Legacy => 2000,
            Self::Current => 1000,
        }
    }
}

impl fmt::Display for KratosLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Legacy => "v1.3.x",
            Self::Current => "v25.4.0+",
        })
    }
}

/// How the line was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSource {
    /// `GET /admin/version` named it.
    Version(String),
    /// The version was missing or not a release (`master`): the lookup route told.
    Probe { version: Option<String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_below_v25_4_0_are_the_legacy_line() {
        let cases = [
            ("v1.3.1", Some(KratosLine::Legacy)),
            ("1.3.0", Some(KratosLine::Legacy)),
            ("v1.0.0", Some(KratosLine::Legacy)),
            ("v0.13.0", Some(KratosLine::Legacy)),
            ("v1.3.1-pre.0", Some(KratosLine::Legacy)),
            ("v25.3.9", Some(KratosLine::Legacy)),
            (" v25.4.0 ", Some(KratosLine::Current)),
            ("V25.4.0", Some(KratosLine::Current)),
            ("v25.4.1", Some(KratosLine::Current)),
            ("v26.2.0", Some(KratosLine::Current)),
            ("v26.2.0+build.7", Some(KratosLine::Current)),
            ("v100.0.0", Some(KratosLine::Current)),
            ("v25.4.0-pre.1", None),
            ("master", None),
            ("", None),
            ("v1.3", None),
            ("v1.3.1.4", None),
            ("v1.x.1", None),
            ("v+1.3.1", None),
            ("v1.3.1-", None),
            ("v99999999999999999999999.0.0", None),
        ];
        for (version, line) in cases {
            assert_eq!(KratosLine::from_version(version), line, "{version:?}");
        }
        assert!(!KratosLine::Legacy.accepts_external_id());
        assert!(KratosLine::Current.accepts_external_id());
        assert_eq!(KratosLine::Legacy.max_batch_items(), 2000);
        assert_eq!(KratosLine::Current.max_batch_items(), 1000);
        assert!(
            crate::config::MAX_BATCH_SIZE
                <= KratosLine::Legacy
                    .max_batch_items()
                    .min(KratosLine::Current.max_batch_items()),
            "import.batch_size stays within both lines' limit"
        );
        assert_eq!(KratosLine::Legacy.to_string(), "v1.3.x");
    }
}
