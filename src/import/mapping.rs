//! From a Cognito user to a Kratos create-identity body (traits from `import.traits`, each
//! converted to its `import.trait_types` type, the Cognito sub as the link back, a password
//! left to the migration hook), and the state the user's row starts in.
//!
//! Over 400 lines: more than half of them the table of mapping tests below the code.

use serde_json::{Map, Value, json};

use crate::cognito::directory::CognitoUser;
use crate::config::{ConfigError, ImportSettings, TraitType};
use crate::domain::{UserState, normalize_identifier};
use crate::kratos::KratosLine;

/// Federated users: Cognito holds no password for them.
const EXTERNAL_PROVIDER: &str = "EXTERNAL_PROVIDER";
/// Cognito would refuse these users' passwords today (reset required, never confirmed,
/// or flagged as compromised): they count as needing recovery until a login proves
/// otherwise.
const RECOVERY_STATUSES: [&str; 3] = ["RESET_REQUIRED", "UNCONFIRMED", "COMPROMISED"];

/// A dotted trait path, split: `name.first` → `["name", "first"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TraitPath(Vec<String>);

impl TraitPath {
    fn parse(key: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let segments: Vec<String> = raw.trim().split('.').map(str::to_owned).collect();
        if segments.iter().any(|segment| segment.trim().is_empty()) {
            return Err(ConfigError::Invalid {
                key,
                reason: format!("`{raw}` is not a trait path (`email`, `name.first`, …)"),
            });
        }
        Ok(Self(segments))
    }

    /// Whether one path would overwrite the other (`name` and `name.first`).
    fn overlaps(&self, other: &TraitPath) -> bool {
        let shorter = self.0.len().min(other.0.len());
        self.0[..shorter] == other.0[..shorter]
    }

    fn set(&self, traits: &mut Map<String, Value>, value: Value) {
        let (last, parents) = self.0.split_last().expect("a path has a segment");
        let mut object = traits;
        for segment in parents {
            let entry = object
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            object = match entry {
                Value::Object(map) => map,
                _ => unreachable!("paths were checked not to overlap"),
            };
        }
        object.insert(last.clone(), value);
    }
}

/// The mapping from `import.traits`, `import.groups_trait` and `kratos.schema_id`.
#[derive(Debug, Clone)]
pub struct Mapping {
    schema_id: String,
    /// Trait path, Cognito attribute, and the JSON type the value is converted to.
    traits: Vec<(TraitPath, String, TraitType)>,
    groups: Option<TraitPath>,
}

/// A user ready for Kratos, and what the row will say.
#[derive(Debug, Clone)]
pub struct MappedUser {
    pub username: String,
    /// Cognito's `sub`: the identity's `external_id` (Kratos v25.4.0+), and always its
    /// `metadata_admin.cognito.sub`.
    pub external_id: String,
    /// The string trait values, any of which may be a login identifier: how a conflict is
    /// looked up where Kratos has no external id (v1.3.x). Empty on other lines.
    pub identifiers: Vec<String>,
    pub email_normalized: Option<String>,
    pub state: UserState,
    /// The create-identity body.
    pub identity: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("Cognito lists no `sub` attribute for this user")]
    NoSub,
    /// The value is left out: it may be personal data.
    #[error(
        "Cognito attribute `{attribute}` is not {} (trait `{path}` is typed `{}` in \
         import.trait_types)",
        expected_value(*.expected),
        .expected.as_str()
    )]
    Unconvertible {
        attribute: String,
        path: String,
        expected: TraitType,
    },
}

impl MappingError {
    /// The trait path a value could not be converted for (`/traits/age`), as a dry run
    /// reports schema problems.
    pub fn trait_pointer(&self) -> Option<String> {
        match self {
            Self::Unconvertible { path, .. } => Some(format!("/traits/{}", path.replace('.', "/"))),
            Self::NoSub => None,
        }
    }
}

fn expected_value(kind: TraitType) -> &'static str {
    match kind {
        TraitType::String => "a string",
        TraitType::Integer => "an integer",
        TraitType::Number => "a number",
        TraitType::Boolean => "`true` or `false`",
    }
}

/// Cognito's string as a value of type `kind`, or `None` when it is not one. Cognito spells
/// numbers in decimal and booleans `true`/`false`; surrounding blanks are ignored.
fn typed_value(kind: TraitType, raw: &str) -> Option<Value> {
    let trimmed = raw.trim();
    let integer = || {
        trimmed
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| trimmed.parse::<u64>().map(Value::from))
            .ok()
    };
    match kind {
        TraitType::String => Some(Value::String(raw.to_owned())),
        TraitType::Integer => integer(),
        TraitType::Number => integer().or_else(|| {
            trimmed
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        }),
        TraitType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Some(Value::Bool(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Some(Value::Bool(false))
            } else {
                None
            }
        }
    }
}

impl Mapping {
    pub fn new(settings: &ImportSettings, schema_id: &str) -> Result<Self, ConfigError> {
        if settings.traits.is_empty() {
            return Err(ConfigError::Invalid {
                key: "import.traits",
                reason: "map at least one trait, e.g. `email = \"email\"`".to_owned(),
            });
        }
        let mut traits = Vec::new();
        for (path, attribute) in &settings.traits {
            if attribute.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "import.traits",
                    reason: format!("trait `{path}` maps to an empty Cognito attribute name"),
                });
            }
            traits.push((
                TraitPath::parse("import.traits", path)?,
                attribute.trim().to_owned(),
                settings.trait_type(path),
            ));
        }
        let groups = settings
            .groups_trait()
            .map(|path| TraitPath::parse("import.groups_trait", path))
            .transpose()?;
        let mut paths: Vec<(&TraitPath, &str)> = traits
            .iter()
            .map(|(path, _, _)| (path, "import.traits"))
            .collect();
        if let Some(path) = &groups {
            paths.push((path, "import.groups_trait"));
        }
        for (i, (a, _)) in paths.iter().enumerate() {
            for (b, key) in &paths[i + 1..] {
                if a.overlaps(b) {
                    return Err(ConfigError::Invalid {
                        key,
                        reason: format!(
                            "trait paths `{}` and `{}` overlap: one would overwrite the other",
                            a.0.join("."),
                            b.0.join(".")
                        ),
                    });
                }
            }
        }
        if schema_id.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "kratos.schema_id",
                reason: "must not be empty".to_owned(),
            });
        }
        Ok(Self {
            schema_id: schema_id.trim().to_owned(),
            traits,
            groups,
        })
    }

    pub fn wants_groups(&self) -> bool {
        self.groups.is_some()
    }

    /// The create body for Kratos `line` and the row's starting state. Attributes the user
    /// lacks are left out of the traits (the identity schema decides whether that is
    /// acceptable); a value that is not of its trait's declared type fails the user.
    pub fn map(
        &self,
        user: &CognitoUser,
        groups: Option<&[String]>,
        line: KratosLine,
    ) -> Result<MappedUser, MappingError> {
        let external_id = user
            .attribute("sub")
            .filter(|sub| !sub.is_empty())
            .ok_or(MappingError::NoSub)?
            .to_owned();

        let mut traits = Map::new();
        let mut identifiers: Vec<String> = Vec::new();
        for (path, attribute, kind) in &self.traits {
            let Some(value) = user.attribute(attribute) else {
                continue;
            };
            let typed = typed_value(*kind, value).ok_or_else(|| MappingError::Unconvertible {
                attribute: attribute.clone(),
                path: path.0.join("."),
                expected: *kind,
            })?;
            path.set(&mut traits, typed);
            // Only strings can be login identifiers.
            if *kind == TraitType::String
                && !value.trim().is_empty()
                && !identifiers.iter().any(|known| known == value)
            {
                identifiers.push(value.to_owned());
            }
        }
        if let Some(path) = &self.groups {
            let groups = groups.unwrap_or_default();
            path.set(&mut traits, json!(groups));
        }

        let federated = user.status == EXTERNAL_PROVIDER;
        let state = if !user.enabled {
            UserState::Inactive
        } else if federated {
            UserState::Skipped
        } else if RECOVERY_STATUSES.contains(&user.status.as_str()) {
            UserState::NeedsRecovery
        } else {
            UserState::Pending
        };

        let mut identity = Map::new();
        identity.insert("schema_id".into(), json!(self.schema_id));
        identity.insert("traits".into(), Value::Object(traits));
        if line.accepts_external_id() {
            // Kratos v1.3.x decodes strictly: a create body with `external_id` is a 400.
            identity.insert("external_id".into(), json!(external_id));
        }
        identity.insert(
            "state".into(),
            json!(if user.enabled { "active" } else { "inactive" }),
        );
        let email = user
            .attribute("email")
            .map(normalize_identifier)
            .filter(|email| !email.is_empty());
        if let Some(email) = &email {
            let verified = user.attribute("email_verified") == Some("true");
            identity.insert(
                "verifiable_addresses".into(),
                json!([{
                    "value": email,
                    "verified": verified,
                    "via": "email",
                    "status": if verified { "completed" } else { "pending" },
                }]),
            );
            identity.insert(
                "recovery_addresses".into(),
                json!([{"value": email, "via": "email"}]),
            );
        }
        identity.insert(
            "metadata_admin".into(),
            json!({"cognito": {
                "sub": external_id,
                "username": user.username,
                "user_status": user.status,
                "enabled": user.enabled,
            }}),
        );
        if !federated {
            identity.insert(
                "credentials".into(),
                json!({"password": {"config": {"use_password_migration_hook": true}}}),
            );
        }
        // Only a verified e-mail may find this user at login (a password checked against
        // Cognito must belong to the user behind the identity logging in): anyone can put
        // someone else's address, unverified, on their own account.
        let email_verified = user.attribute("email_verified") == Some("true");
        Ok(MappedUser {
            username: user.username.clone(),
            external_id,
            identifiers,
            email_normalized: email.filter(|_| email_verified),
            state,
            identity: Value::Object(identity),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(traits: &[(&str, &str)], groups: Option<&str>) -> ImportSettings {
        ImportSettings {
            traits: traits
                .iter()
                .map(|(path, attribute)| (path.to_string(), attribute.to_string()))
                .collect::<BTreeMap<_, _>>(),
            groups_trait: groups.map(str::to_owned),
            ..ImportSettings::default()
        }
    }

    fn user(status: &str, enabled: bool) -> CognitoUser {
        CognitoUser {
            username: "8f1c-uuid".into(),
            enabled,
            status: status.into(),
            attributes: vec![
                ("sub".into(), "sub-1".into()),
                ("email".into(), " Alice@Example.COM ".into()),
                ("email_verified".into(), "true".into()),
                ("given_name".into(), "Alice".into()),
                ("custom:tenant".into(), "acme".into()),
            ],
        }
    }

    #[test]
    fn a_confirmed_user_becomes_a_flagged_identity_with_nested_traits() {
        let mapping = Mapping::new(
            &settings(
                &[
                    ("email", "email"),
                    ("name.first", "given_name"),
                    ("tenant", "custom:tenant"),
                    ("name.last", "family_name"),
                ],
                Some("groups"),
            ),
            "customer",
        )
        .unwrap();
        let groups = vec!["admins".to_owned(), "beta".to_owned()];
        let mapped = mapping
            .map(&user("CONFIRMED", true), Some(&groups), KratosLine::Current)
            .unwrap();
        assert_eq!(mapped.state, UserState::Pending);
        assert_eq!(mapped.external_id, "sub-1");
        assert_eq!(
            mapped.email_normalized.as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            mapped.identity,
            json!({
                "schema_id": "customer",
                "traits": {
                    "email": " Alice@Example.COM ",
                    "name": {"first": "Alice"},
                    "tenant": "acme",
                    "groups": ["admins", "beta"],
                },
                "external_id": "sub-1",
                "state": "active",
                "verifiable_addresses": [{"value": "alice@example.com", "verified": true, "via": "email", "status": "completed"}],
                "recovery_addresses": [{"value": "alice@example.com", "via": "email"}],
                "metadata_admin": {"cognito": {"sub": "sub-1", "username": "8f1c-uuid", "user_status": "CONFIRMED", "enabled": true}},
                "credentials": {"password": {"config": {"use_password_migration_hook": true}}},
            })
        );
    }

    #[test]
    fn kratos_v1_3_gets_no_external_id_and_the_sub_stays_in_metadata_admin() {
        let mapping = Mapping::new(
            &settings(
                &[
                    ("email", "email"),
                    ("name.first", "given_name"),
                    ("contact", "email"),
                ],
                Some("groups"),
            ),
            "default",
        )
        .unwrap();
        let groups = vec!["admins".to_owned()];
        let current = mapping
            .map(&user("CONFIRMED", true), Some(&groups), KratosLine::Current)
            .unwrap();
        let legacy = mapping
            .map(&user("CONFIRMED", true), Some(&groups), KratosLine::Legacy)
            .unwrap();
        assert_eq!(current.identity["external_id"], "sub-1");
        assert!(
            legacy.identity.get("external_id").is_none(),
            "{}",
            legacy.identity
        );
        assert_eq!(legacy.external_id, "sub-1");
        for mapped in [&current, &legacy] {
            assert_eq!(mapped.identity["metadata_admin"]["cognito"]["sub"], "sub-1");
        }
        // Every string trait once (the e-mail is mapped twice), groups are no identifier.
        assert_eq!(legacy.identifiers, [" Alice@Example.COM ", "Alice"]);
        // The same on the current line: identities imported under v1.3.x have no external id.
        assert_eq!(current.identifiers, legacy.identifiers);
        let mut legacy_plus_external_id = legacy.identity.clone();
        legacy_plus_external_id
            .as_object_mut()
            .unwrap()
            .insert("external_id".into(), json!("sub-1"));
        assert_eq!(legacy_plus_external_id, current.identity);
    }

    #[test]
    fn states_follow_cognito_status_and_enabled() {
        let mapping = Mapping::new(&ImportSettings::default(), "default").unwrap();
        let cases = [
            ("CONFIRMED", true, UserState::Pending, true, "active"),
            (
                "FORCE_CHANGE_PASSWORD",
                true,
                UserState::Pending,
                true,
                "active",
            ),
            ("CONFIRMED", false, UserState::Inactive, true, "inactive"),
            (
                "EXTERNAL_PROVIDER",
                true,
                UserState::Skipped,
                false,
                "active",
            ),
            (
                "EXTERNAL_PROVIDER",
                false,
                UserState::Inactive,
                false,
                "inactive",
            ),
            (
                "RESET_REQUIRED",
                true,
                UserState::NeedsRecovery,
                true,
                "active",
            ),
            (
                "UNCONFIRMED",
                true,
                UserState::NeedsRecovery,
                true,
                "active",
            ),
        ];
        for (status, enabled, state, flagged, kratos_state) in cases {
            let mapped = mapping
                .map(&user(status, enabled), None, KratosLine::Current)
                .unwrap();
            assert_eq!(mapped.state, state, "{status} {enabled}");
            assert_eq!(
                mapped
                    .identity
                    .pointer("/credentials/password/config/use_password_migration_hook")
                    == Some(&json!(true)),
                flagged,
                "{status} {enabled}"
            );
            assert_eq!(mapped.identity["state"], kratos_state, "{status} {enabled}");
        }
    }

    #[test]
    fn unverified_and_missing_emails() {
        let mapping = Mapping::new(&ImportSettings::default(), "default").unwrap();
        let mut unverified = user("UNCONFIRMED", true);
        unverified.attributes[2].1 = "false".into();
        let mapped = mapping.map(&unverified, None, KratosLine::Current).unwrap();
        assert_eq!(
            mapped.identity["verifiable_addresses"][0]["verified"],
            false
        );
        assert_eq!(
            mapped.identity["verifiable_addresses"][0]["status"],
            "pending"
        );
        assert_eq!(
            mapped.email_normalized, None,
            "an unverified e-mail must not find the user at login"
        );

        let mut phone_only = user("CONFIRMED", true);
        phone_only.attributes.retain(|(name, _)| name == "sub");
        let mapped = mapping.map(&phone_only, None, KratosLine::Current).unwrap();
        assert!(mapped.identity.get("verifiable_addresses").is_none());
        assert!(mapped.email_normalized.is_none());
        assert_eq!(mapped.identity["traits"], json!({}));

        let mut no_sub = user("CONFIRMED", true);
        no_sub.attributes.retain(|(name, _)| name != "sub");
        assert_eq!(
            mapping.map(&no_sub, None, KratosLine::Current).unwrap_err(),
            MappingError::NoSub
        );
    }

    #[test]
    fn values_convert_to_their_declared_type() {
        let cases: [(TraitType, &str, Option<Value>); 16] = [
            (TraitType::String, " 42 ", Some(json!(" 42 "))),
            (TraitType::Integer, "42", Some(json!(42))),
            (TraitType::Integer, " -7 ", Some(json!(-7))),
            (
                TraitType::Integer,
                "18446744073709551615",
                Some(json!(u64::MAX)),
            ),
            (TraitType::Integer, "4.5", None),
            (TraitType::Integer, "abc", None),
            (TraitType::Integer, "", None),
            (TraitType::Number, "4.5", Some(json!(4.5))),
            (TraitType::Number, "12", Some(json!(12))),
            (TraitType::Number, "NaN", None),
            (TraitType::Number, "inf", None),
            (TraitType::Number, "twelve", None),
            (TraitType::Boolean, "true", Some(json!(true))),
            (TraitType::Boolean, "FALSE", Some(json!(false))),
            (TraitType::Boolean, "1", None),
            (TraitType::Boolean, "yes", None),
        ];
        for (kind, raw, expected) in cases {
            assert_eq!(typed_value(kind, raw), expected, "{kind:?} {raw:?}");
        }
        // An integer stays exact: no detour through a float.
        assert_eq!(
            typed_value(TraitType::Integer, "9007199254740993").unwrap(),
            json!(9_007_199_254_740_993_i64)
        );
    }

    fn typed_settings() -> ImportSettings {
        let mut settings = settings(
            &[
                ("email", "email"),
                ("age", "custom:age"),
                ("flags.vip", "custom:vip"),
                ("tenant", "custom:tenant"),
            ],
            None,
        );
        settings.trait_types = BTreeMap::from([
            ("age".to_owned(), TraitType::Integer),
            ("flags.vip".to_owned(), TraitType::Boolean),
        ]);
        settings
    }

    fn typed_user(age: &str, vip: &str) -> CognitoUser {
        let mut user = user("CONFIRMED", true);
        user.attributes.push(("custom:age".into(), age.into()));
        user.attributes.push(("custom:vip".into(), vip.into()));
        user
    }

    #[test]
    fn typed_traits_become_json_numbers_and_booleans_and_are_no_identifiers() {
        let mapping = Mapping::new(&typed_settings(), "default").unwrap();
        let mapped = mapping
            .map(&typed_user("42", "false"), None, KratosLine::Legacy)
            .unwrap();
        assert_eq!(
            mapped.identity["traits"],
            json!({"email": " Alice@Example.COM ", "age": 42, "flags": {"vip": false}, "tenant": "acme"})
        );
        assert_eq!(mapped.identifiers, [" Alice@Example.COM ", "acme"]);
    }

    #[test]
    fn a_value_that_is_not_of_its_type_fails_the_user_naming_attribute_and_type_not_value() {
        let mapping = Mapping::new(&typed_settings(), "default").unwrap();
        let error = mapping
            .map(&typed_user("abc-secret", "true"), None, KratosLine::Current)
            .unwrap_err();
        assert_eq!(
            error,
            MappingError::Unconvertible {
                attribute: "custom:age".into(),
                path: "age".into(),
                expected: TraitType::Integer,
            }
        );
        let message = error.to_string();
        assert!(message.contains("`custom:age`"), "{message}");
        assert!(message.contains("an integer"), "{message}");
        assert!(message.contains("import.trait_types"), "{message}");
        assert!(!message.contains("abc-secret"), "{message}");
        assert_eq!(error.trait_pointer().as_deref(), Some("/traits/age"));

        let error = mapping
            .map(&typed_user("42", "maybe-secret"), None, KratosLine::Current)
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`custom:vip`"), "{message}");
        assert!(message.contains("`true` or `false`"), "{message}");
        assert!(!message.contains("maybe-secret"), "{message}");
        assert_eq!(error.trait_pointer().as_deref(), Some("/traits/flags/vip"));
        assert_eq!(MappingError::NoSub.trait_pointer(), None);

        // Without the declared types the same user maps, every value a string.
        let plain = Mapping::new(
            &ImportSettings {
                trait_types: BTreeMap::new(),
                ..typed_settings()
            },
            "default",
        )
        .unwrap();
        let mapped = plain
            .map(&typed_user("abc", "maybe"), None, KratosLine::Current)
            .unwrap();
        assert_eq!(mapped.identity["traits"]["age"], "abc");
    }

    #[test]
    fn bad_trait_paths_are_refused_with_their_key() {
        let cases = [
            (
                settings(&[("name", "name"), ("name.first", "given_name")], None),
                "import.traits",
            ),
            (
                settings(&[("email", "email")], Some("email")),
                "import.groups_trait",
            ),
            (
                settings(&[("name..first", "given_name")], None),
                "import.traits",
            ),
            (settings(&[("email", " ")], None), "import.traits"),
            (settings(&[], None), "import.traits"),
        ];
        for (settings, key) in cases {
            let error = Mapping::new(&settings, "default").unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
        assert!(Mapping::new(&ImportSettings::default(), " ").is_err());
    }
}
