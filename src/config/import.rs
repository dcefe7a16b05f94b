//! The `[import]` section: the listing rate, batch size and trait mapping of `import`, with
//! the JSON type each trait is converted to (`import.trait_types`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Kratos takes at most this many identities per `PATCH /admin/identities`.
pub const MAX_BATCH_SIZE: usize = 1000;
/// Cognito's `ListUsers` quota: 30 requests/s per account and region, shared with live apps.
pub const LIST_USERS_QUOTA: f64 = 30.0;

/// The JSON type a trait holds: Cognito lists every attribute as a string, and the import
/// converts it to this type (`import.trait_types`; `string`, the default, copies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum TraitType {
    #[default]
    String,
    /// A whole number (Cognito's Number attributes, `updated_at`).
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false` (Cognito's Boolean attributes).
    Boolean,
}

impl TryFrom<String> for TraitType {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        [Self::String, Self::Integer, Self::Number, Self::Boolean]
            .into_iter()
            .find(|kind| kind.as_str() == name.trim())
            .ok_or_else(|| {
                format!("`{name}` is not a trait type (string, integer, number or boolean)")
            })
    }
}

impl TraitType {
    /// The JSON Schema `type` (and the spelling in `import.trait_types`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }
}

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
    /// Kratos trait path → the JSON type the import converts that trait's value to
    /// (`import.trait_types`); a trait not listed is a string.
    pub trait_types: BTreeMap<String, TraitType>,
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
            trait_types: BTreeMap::new(),
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

    /// The declared type of the trait at `path` (a key of `import.traits`).
    pub fn trait_type(&self, path: &str) -> TraitType {
        self.trait_types.get(path).copied().unwrap_or_default()
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
        if let Some(path) = self
            .trait_types
            .keys()
            .find(|path| !self.traits.contains_key(*path))
        {
            return Err(invalid(
                "import.trait_types",
                format!("`{path}` has a type but is no trait path of import.traits"),
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
    fn trait_types_are_read_and_default_to_string() {
        let settings = load(
            "[import.traits]\nemail = \"email\"\nage = \"custom:age\"\nvip = \"custom:vip\"\n\"score.total\" = \"custom:score\"\n\
             [import.trait_types]\nage = \"integer\"\nvip = \"boolean\"\n\"score.total\" = \"number\"\n",
        )
        .unwrap();
        let import = &settings.import;
        assert_eq!(import.trait_type("age"), TraitType::Integer);
        assert_eq!(import.trait_type("vip"), TraitType::Boolean);
        assert_eq!(import.trait_type("score.total"), TraitType::Number);
        assert_eq!(import.trait_type("email"), TraitType::String);
        // The plain form alone still loads, every trait a string.
        let plain = load("[import.traits]\nage = \"custom:age\"\n").unwrap();
        assert!(plain.import.trait_types.is_empty());
        assert_eq!(plain.import.trait_type("age"), TraitType::String);
        // From the environment too.
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(b"[import.traits]\nage = \"custom:age\"\n")
            .unwrap();
        let settings = Settings::load_from(
            Some(file.path()),
            vec![(
                "COGNITO_BRIDGE__IMPORT__TRAIT_TYPES__AGE".to_owned(),
                "integer".to_owned(),
            )],
        )
        .unwrap();
        assert_eq!(settings.import.trait_type("age"), TraitType::Integer);
    }

    #[test]
    fn bad_trait_types_are_refused_naming_the_key() {
        let cases = [
            // Not a type.
            (
                "[import.traits]\nage = \"custom:age\"\n[import.trait_types]\nage = \"int\"\n",
                "trait_types",
            ),
            // Not a string.
            (
                "[import.traits]\nage = \"custom:age\"\n[import.trait_types]\nage = 3\n",
                "trait_types",
            ),
            // A type for a trait that is not mapped.
            (
                "[import.traits]\nage = \"custom:age\"\n[import.trait_types]\nagee = \"integer\"\n",
                "import.trait_types",
            ),
        ];
        for (contents, key) in cases {
            let error = load(contents).unwrap_err().to_string();
            assert!(error.contains(key), "{contents}: {error}");
        }
        let error = load(cases[0].0).unwrap_err().to_string();
        assert!(
            error.contains("string, integer, number or boolean"),
            "{error}"
        );
        let error = load(cases[2].0).unwrap_err().to_string();
        assert!(error.contains("`agee`"), "{error}");
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
