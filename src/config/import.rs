//! The `[import]` section: the listing rate, batch size and trait mapping of `import`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Kratos takes at most this many identities per `PATCH /admin/identities`.
pub const MAX_BATCH_SIZE: usize = 1000;
/// Cognito's `ListUsers` quota: 30 requests/s per account and region, shared with live apps.
pub const LIST_USERS_QUOTA: f64 = 30.0;

/// The `[import]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportSettings {
    /// `ListUsers` requests per second (`import.list_rate`). Above 30 (the quota) Cognito
    /// throttles and the import backs off.
    pub list_rate: f64,
    /// Identities per `PATCH /admin/identities` (`import.batch_size`, at most 1000).
    pub batch_size: usize,
    /// Kratos trait path → Cognito attribute (`import.traits`); a dotted path nests.
    pub traits: BTreeMap<String, String>,
    /// Trait path that receives the user's Cognito groups (`import.groups_trait`).
    pub groups_trait: Option<String>,
    /// The identity schema for `--dry-run`, instead of fetching it from Kratos
    /// (`import.schema_file`).
    pub schema_file: Option<PathBuf>,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            list_rate: 10.0,
            batch_size: 500,
            traits: BTreeMap::from([("email".to_owned(), "email".to_owned())]),
            groups_trait: None,
            schema_file: None,
        }
    }
}

impl ImportSettings {
    /// The trait path for groups, when one is set and not blank.
    pub fn groups_trait(&self) -> Option<&str> {
        self.groups_trait
            .as_deref()
            .map(str::trim)
            .filter(|path| !path.is_empty())
    }

    /// What every command needs: checked at load.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(self.list_rate.is_finite() && self.list_rate > 0.0) {
            return Err(invalid("import.list_rate", "must be a number above 0"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(invalid(
                "import.batch_size",
                format!("must be between 1 and {MAX_BATCH_SIZE} (Kratos's limit per request)"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use std::io::Write;

    fn load(contents: &str) -> Result<Settings, ConfigError> {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        Settings::load_from(Some(file.path()), Vec::new())
    }

    #[test]
    fn trait_paths_keep_dots_and_case() {
        let settings = load(
            "[import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\ntenantId = \"custom:tenant\"\n",
        )
        .unwrap();
        let traits: Vec<_> = settings
            .import
            .traits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            traits,
            [
                "email=email",
                "name.first=given_name",
                "tenantId=custom:tenant"
            ]
        );
    }
}
