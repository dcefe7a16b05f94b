//! The identity schema a dry run checks mapped identities against: loaded from
//! `import.schema_file` or from Kratos, and what it finds wrong, without the values.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::Settings;
use crate::kratos::{KratosAdmin, KratosError};

/// Why the dry run has no identity schema to check against.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is not JSON: {error}", path.display())]
    NotJson {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{0} (set `import.schema_file` to check against a local copy)")]
    Kratos(KratosError),
    #[error("not a valid JSON Schema: {0}")]
    NotASchema(Box<jsonschema::ValidationError<'static>>),
}

/// The identity schema from `import.schema_file`, or from Kratos's public API.
pub(super) async fn load(
    settings: &Settings,
    kratos: &KratosAdmin,
) -> Result<jsonschema::Validator, SchemaError> {
    let schema: Value = match &settings.import.schema_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| SchemaError::Unreadable {
                path: path.clone(),
                error,
            })?;
            serde_json::from_str(&text).map_err(|error| SchemaError::NotJson {
                path: path.clone(),
                error,
            })?
        }
        None => kratos
            .identity_schema(&settings.kratos.schema_id)
            .await
            .map_err(SchemaError::Kratos)?,
    };
    jsonschema::validator_for(&schema).map_err(|error| SchemaError::NotASchema(Box::new(error)))
}

/// Why the identity schema rejects an identity's traits: the path and the rule, never the
/// value (it may be personal data).
pub(super) fn problems(schema: &jsonschema::Validator, identity: &Value) -> Vec<String> {
    let document = json!({"traits": identity.get("traits").cloned().unwrap_or(Value::Null)});
    schema
        .iter_errors(&document)
        .take(3)
        .map(|error| {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{path}: {}", error.masked())
        })
        .collect()
}
