//! Writing a captured password's hash into a user's Kratos identity, the same way on every
//! Kratos line: `GET /admin/identities/{id}?include_credential=password`, then
//! `PUT /admin/identities/{id}` echoing every field (a PUT is a full replacement: traits,
//! metadata and, from v25.4.0, `external_id` are wiped when left out) with
//! `credentials.password.config.hashed_password`, which also clears the migration flag.
//! (v1.3.x cannot reach credentials with JSON Patch, so the PUT is the one path for both.)

use serde::Serialize;
use serde_json::Value;

use super::{KratosAdmin, KratosError, KratosLine, endpoint, parse, unexpected};
use crate::domain::PasswordHash;

/// What became of a hash sent to an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordWrite {
    Written,
    /// The identity has a password already (migrated another way): Kratos is the truth, and
    /// it was left alone.
    AlreadySet,
    /// No such identity.
    NoIdentity,
}

#[derive(Serialize)]
struct PutBody<'a> {
    schema_id: &'a Value,
    state: &'a Value,
    traits: &'a Value,
    metadata_public: &'a Value,
    metadata_admin: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a Value>,
    credentials: Credentials<'a>,
}

#[derive(Serialize)]
struct Credentials<'a> {
    password: PasswordCredential<'a>,
}

#[derive(Serialize)]
struct PasswordCredential<'a> {
    config: PasswordConfig<'a>,
}

#[derive(Serialize)]
struct PasswordConfig<'a> {
    hashed_password: &'a str,
}

impl KratosAdmin {
    /// The identity of the Cognito user `sub`: by external id (v25.4.0+), else among the
    /// identities that sign in with one of `identifiers`, the one whose
    /// `metadata_admin.cognito.sub` is `sub` (the import writes it on every line).
    pub async fn find_user_identity(
        &self,
        line: KratosLine,
        sub: &str,
        identifiers: &[&str],
    ) -> Result<Option<String>, KratosError> {
        if line.accepts_external_id()
            && let Some(id) = self.identity_by_external_id(sub).await?
        {
            return Ok(Some(id));
        }
        for identifier in identifiers {
            let found = self.identities_by_identifier(identifier).await?;
            if let Some(identity) = found
                .into_iter()
                .find(|identity| identity.cognito_sub.as_deref() == Some(sub))
            {
                return Ok(Some(identity.id));
            }
        }
        Ok(None)
    }

    /// Give identity `id` the password `hash`, unless it has a password already.
    pub async fn write_password_hash(
        &self,
        line: KratosLine,
        id: &str,
        hash: &PasswordHash,
    ) -> Result<PasswordWrite, KratosError> {
        let Some((url, body)) = self.identity_with_password(id).await? else {
            return Ok(PasswordWrite::NoIdentity);
        };
        // The answer may hold a hash (when the identity has a password): parsed, looked at,
        // and dropped without ever being logged.
        let identity: Value = parse(&body, &url)?;
        drop(body);
        let has_password = identity
            .pointer("/credentials/password/config/hashed_password")
            .and_then(Value::as_str)
            .is_some_and(|hash| !hash.is_empty());
        if has_password {
            return Ok(PasswordWrite::AlreadySet);
        }
        let payload = put_body(line, &identity, hash).map_err(|error| KratosError::Malformed {
            path: url.path().to_owned(),
            reason: error.to_string(),
        })?;
        let url = endpoint(&self.admin_url, &["admin", "identities", id]);
        let request = self
            .authorized(self.client.put(url.clone()))
            .header("Content-Type", "application/json")
            .body(payload);
        let (status, body) = self.send(request, &url).await?;
        match status {
            200 => Ok(PasswordWrite::Written),
            404 => Ok(PasswordWrite::NoIdentity),
            _ => Err(unexpected("PUT", &url, status, &body)),
        }
    }
}

/// The PUT body: every field of `identity` (the admin GET's answer) echoed, with the hash.
fn put_body(
    line: KratosLine,
    identity: &Value,
    hash: &PasswordHash,
) -> Result<Vec<u8>, serde_json::Error> {
    let field = |name: &str| identity.get(name).unwrap_or(&Value::Null);
    serde_json::to_vec(&PutBody {
        schema_id: field("schema_id"),
        state: field("state"),
        traits: field("traits"),
        metadata_public: field("metadata_public"),
        metadata_admin: field("metadata_admin"),
        // v25.4.0+ clears an `external_id` a PUT leaves out; v1.3.x has none.
        external_id: line
            .accepts_external_id()
            .then(|| identity.get("external_id"))
            .flatten()
            .filter(|value| !value.is_null()),
        credentials: Credentials {
            password: PasswordCredential {
                config: PasswordConfig {
                    hashed_password: hash.expose(),
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity() -> Value {
        json!({
            "id": "7b1c0000-0000-4000-8000-000000000001",
            "schema_id": "default",
            "state": "active",
            "traits": {"email": "alice@example.com", "name": {"first": "Alice"}},
            "metadata_public": {"plan": "gold"},
            "metadata_admin": {"cognito": {"sub": "sub-1", "username": "alice"}},
            "external_id": "sub-1",
            "verifiable_addresses": [{"value": "alice@example.com", "verified": true}],
            "credentials": {"password": {"config": {"use_password_migration_hook": true}}},
        })
    }

    #[test]
    fn the_put_echoes_every_field_and_external_id_only_where_kratos_has_it() {
        let hash = PasswordHash::new(format!("$2b$12${}", "a".repeat(53)));
        for line in [KratosLine::Current, KratosLine::Legacy] {
            let body: Value =
                serde_json::from_slice(&put_body(line, &identity(), &hash).unwrap()).unwrap();
            for field in [
                "schema_id",
                "state",
                "traits",
                "metadata_public",
                "metadata_admin",
            ] {
                assert_eq!(body[field], identity()[field], "{line}: {field}");
            }
            assert_eq!(
                body["credentials"],
                json!({"password": {"config": {"hashed_password": hash.expose()}}}),
                "the flag goes: the config holds the hash alone"
            );
            assert!(body.get("id").is_none() && body.get("verifiable_addresses").is_none());
            match line {
                KratosLine::Current => assert_eq!(body["external_id"], "sub-1"),
                KratosLine::Legacy => assert!(body.get("external_id").is_none()),
            }
        }
    }

    #[test]
    fn absent_fields_are_sent_as_null_not_invented() {
        let hash = PasswordHash::new("$2b$12$x".to_owned());
        let bare = json!({"id": "x", "schema_id": "default", "state": "active", "traits": {}});
        let body: Value =
            serde_json::from_slice(&put_body(KratosLine::Current, &bare, &hash).unwrap()).unwrap();
        assert_eq!(body["metadata_admin"], Value::Null);
        assert!(body.get("external_id").is_none());
    }
}
