//! Writing a captured password's hash into a user's Kratos identity, the same way on every
//! Kratos line: `GET /admin/identities/{id}?include_credential=password`, then
//! `PUT /admin/identities/{id}` echoing every field (a PUT is a full replacement: traits,
//! metadata and, from v25.4.0, `external_id` are wiped when left out) with
//! `credentials.password.config.hashed_password`, which also clears the migration flag.
//! (v1.3.x cannot reach credentials with JSON Patch, so the PUT is the one path for both.)
//!
//! `finalize` (the cutover) uses the same GET and PUT to remove the flag of a straggler: Kratos
//! refuses a password credential without a valid hash, so the PUT writes a *locked* hash, a
//! bcrypt-shaped string that is the hash of no password (random digest, fixed salt that marks
//! it as ours). No password logs in with it; the user's way in is recovery. The fixed salt
//! lets a rerun (and `reconcile`) tell it from a real password.

use reqwest::Method;
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

/// What became of a straggler's identity in `finalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagRemoval {
    /// The flag was there and is gone (a locked hash written); in a dry run, would be.
    Removed,
    /// A locked hash is there already: an earlier run removed the flag.
    AlreadyLocked,
    /// Neither flag nor hash: nothing to remove (no password logs in either).
    NoFlag,
    /// The identity has a real password (set in Kratos some way we did not see): left alone.
    HasPassword,
    /// No such identity.
    NoIdentity,
}

/// `$2b$`, cost 12 (what a real hash costs Kratos to compare: a locked account answers as fast
/// as any other), then the marking salt (22 characters of bcrypt's alphabet).
const LOCKED_PREFIX: &str = "$2b$12$CognitoBridge.Finalize";
/// bcrypt's base64 alphabet.
const BCRYPT_ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh locked hash: the marking prefix and 31 random digest characters (60 in all, as
/// Go's bcrypt wants). The digest is random, not computed from anything, so no password
/// matches it.
fn locked_hash() -> PasswordHash {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut hash = String::with_capacity(60);
    hash.push_str(LOCKED_PREFIX);
    for _ in 0..31 {
        hash.push(char::from(
            BCRYPT_ALPHABET[rng.random_range(0..BCRYPT_ALPHABET.len())],
        ));
    }
    PasswordHash::new(hash)
}

/// Whether `hash` is one `finalize` wrote (see [`locked_hash`]).
pub(crate) fn is_locked_hash(hash: &str) -> bool {
    hash.starts_with(LOCKED_PREFIX)
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
        match self.put_with_hash(line, id, &identity, hash, &url).await? {
            true => Ok(PasswordWrite::Written),
            false => Ok(PasswordWrite::NoIdentity),
        }
    }

    /// Remove the migration flag of identity `id` (`finalize`): a locked hash in place of the
    /// flag, every other field echoed. With `dry_run`, only read and say what would happen.
    pub async fn remove_migration_flag(
        &self,
        line: KratosLine,
        id: &str,
        dry_run: bool,
    ) -> Result<FlagRemoval, KratosError> {
        let Some((url, body)) = self.identity_with_password(id).await? else {
            return Ok(FlagRemoval::NoIdentity);
        };
        // As above: a real hash in the answer is looked at and dropped, never logged.
        let identity: Value = parse(&body, &url)?;
        drop(body);
        let config = identity.pointer("/credentials/password/config");
        let hash = config
            .and_then(|config| config.get("hashed_password"))
            .and_then(Value::as_str)
            .filter(|hash| !hash.is_empty());
        let flagged = config
            .and_then(|config| config.get("use_password_migration_hook"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match (hash, flagged) {
            (Some(hash), _) if is_locked_hash(hash) => return Ok(FlagRemoval::AlreadyLocked),
            (Some(_), _) => return Ok(FlagRemoval::HasPassword),
            (None, false) => return Ok(FlagRemoval::NoFlag),
            (None, true) if dry_run => return Ok(FlagRemoval::Removed),
            (None, true) => {}
        }
        match self
            .put_with_hash(line, id, &identity, &locked_hash(), &url)
            .await?
        {
            true => Ok(FlagRemoval::Removed),
            false => Ok(FlagRemoval::NoIdentity),
        }
    }

    /// `PUT /admin/identities/{id}`: `identity` (the GET's answer from `read`) echoed with
    /// `hash`; `false` when Kratos has no such identity (any more).
    async fn put_with_hash(
        &self,
        line: KratosLine,
        id: &str,
        identity: &Value,
        hash: &PasswordHash,
        read: &url::Url,
    ) -> Result<bool, KratosError> {
        let payload = put_body(line, identity, hash).map_err(|error| KratosError::Malformed {
            path: read.path().to_owned(),
            reason: error.to_string(),
        })?;
        let url = endpoint(&self.admin_url, &["admin", "identities", id]);
        let request = self
            .http
            .admin(Method::PUT, &url)
            .header("Content-Type", "application/json")
            .body(payload);
        let (status, body) = self.http.send(request, &url).await?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
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
    fn locked_hashes_look_like_bcrypt_to_kratos_and_are_known_as_ours() {
        let first = locked_hash();
        let second = locked_hash();
        for hash in [&first, &second] {
            let text = hash.expose();
            assert_eq!(text.len(), 60, "Go's bcrypt wants 60 bytes");
            assert!(text.starts_with("$2b$12$"));
            assert!(text[7..].bytes().all(|b| BCRYPT_ALPHABET.contains(&b)));
            assert!(is_locked_hash(text));
        }
        assert_ne!(first.expose(), second.expose(), "the digest is random");
        assert!(!is_locked_hash(&bcrypt::hash("x", 4).unwrap()));
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
