//! `PUT /admin/identities/{id}` of the Kratos admin double, as Kratos's `updateIdentity`
//! (identity/handler.go, v1.3.1 and v26.2.0) does it: a full replacement of traits, both
//! metadata and (v25.4.0+) `external_id`, where a field left out is cleared; `schema_id` and
//! `state` kept when empty; the password credential replaced when `credentials.password` is
//! given (the migration flag alone, a plaintext Kratos hashes, or a `hashed_password` of a
//! known format, else 400) and kept when `credentials` is left out. 404 for an unknown id, 409
//! when the new traits take another identity's identifier, 400 for a body that is not an
//! identity or traits the identity schema refuses. Compared with the real v1.3.1 in
//! `tests/api/doubles_vs_real.rs`. Addresses stay as they were: the double does not derive
//! them from the traits.

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{
    BAD_REQUEST, CONFLICT, CONFLICT_REASON, NOT_FOUND, Shared, error_response, external_id_of,
    json_response, now_rfc3339, unique_values_of,
};

/// Kratos's answer to a `hashed_password` of no known format (identity/handler_import.go).
const UNKNOWN_HASH: &str = "The imported password does not match any known hash format. For more \
                            information see https://www.ory.sh/dr/2";

/// The prefixes of the hash formats Kratos imports (hash/hash_comparator.go).
const HASH_PREFIXES: &[&str] = &[
    "$2a$",
    "$2b$",
    "$2y$",
    "$2z$",
    "$2$",
    "$argon2id$",
    "$argon2i$",
    "$pbkdf2-sha",
    "$scrypt$",
    "$firescrypt$",
    "{SSHA}",
    "{SSHA256}",
    "{SSHA512}",
    "$sha1$",
    "$sha256$",
    "$sha512$",
    "$md5$",
    "$md5-crypt$",
    "$sha256-crypt$",
    "$sha512-crypt$",
    "$hmac-",
];

fn is_known_hash_format(hash: &str) -> bool {
    HASH_PREFIXES.iter().any(|prefix| hash.starts_with(prefix))
}

/// The password credential's config a PUT's `credentials.password.config` makes, as Kratos
/// stores it; `Err` with the 400's reason.
fn password_config(config: &Value) -> Result<Value, String> {
    if config["use_password_migration_hook"] == true {
        return Ok(json!({"hashed_password": "", "use_password_migration_hook": true}));
    }
    if config["password"].as_str().is_some_and(|p| !p.is_empty()) {
        // Kratos hashes it; the double keeps only that one was given.
        return Ok(json!({"hashed_password": "$2a$12$double.hashed.plaintext"}));
    }
    match config["hashed_password"].as_str() {
        Some(hash) if is_known_hash_format(hash) => Ok(json!({"hashed_password": hash})),
        _ => Err(UNKNOWN_HASH.to_owned()),
    }
}

pub(super) fn put_identity(shared: &Shared, id: &str, body: &[u8]) -> HttpResponse {
    let bad_request = |reason: String| error_response(400, Some(reason), BAD_REQUEST);
    let update: Value = match serde_json::from_slice(body) {
        Ok(update @ Value::Object(_)) => update,
        Ok(_) => return bad_request("the body is not a JSON object".to_owned()),
        Err(error) => {
            return bad_request(format!("The request body could not be decoded: {error}"));
        }
    };
    let mut state = shared.state();
    state.put_calls += 1;
    let Some(index) = state.position(id) else {
        return error_response(404, None, NOT_FOUND);
    };
    let old = state.identities[index].body.clone();

    let mut new = json!({"id": id});
    let text = |name: &str| update.get(name).and_then(Value::as_str).unwrap_or("");
    let schema_id = match text("schema_id") {
        "" => old["schema_id"].clone(),
        given => given.into(),
    };
    new["schema_id"] = schema_id;
    match text("state") {
        "" => new["state"] = old.get("state").cloned().unwrap_or_else(|| "active".into()),
        given @ ("active" | "inactive") => new["state"] = given.into(),
        given => return bad_request(format!("identity state is not valid: {given:?}")),
    }
    for field in ["traits", "metadata_public", "metadata_admin", "external_id"] {
        if let Some(value) = update.get(field).filter(|value| !value.is_null()) {
            new[field] = value.clone();
        }
    }
    for kept in [
        "verifiable_addresses",
        "recovery_addresses",
        "organization_id",
    ] {
        if let Some(value) = old.get(kept) {
            new[kept] = value.clone();
        }
    }
    match update.pointer("/credentials/password/config") {
        Some(config) => match password_config(config) {
            Ok(config) => new["credentials"] = json!({"password": {"config": config}}),
            Err(reason) => return bad_request(reason),
        },
        None => {
            if let Some(credentials) = old.get("credentials") {
                new["credentials"] = credentials.clone();
            }
        }
    }
    if let Some(validator) = &shared.traits_validator {
        let traits = json!({ "traits": new.get("traits").cloned().unwrap_or(Value::Null) });
        if let Err(error) = validator.validate(&traits) {
            return bad_request(format!("I[#{}] {error}", error.instance_path()));
        }
    }

    let old_values = unique_values_of(&old);
    let new_values = unique_values_of(&new);
    let new_external_id = external_id_of(&new).map(str::to_owned);
    let external_id_taken = new_external_id.as_deref().is_some_and(|external_id| {
        state
            .by_external_id
            .get(external_id)
            .is_some_and(|&other| other != index)
    });
    let value_taken = new_values
        .iter()
        .any(|value| !old_values.contains(value) && state.taken.contains(value));
    if external_id_taken || value_taken {
        return error_response(409, Some(CONFLICT_REASON.to_owned()), CONFLICT);
    }
    for value in &old_values {
        state.taken.remove(value);
    }
    state.taken.extend(new_values);
    if let Some(external_id) = external_id_of(&old) {
        let external_id = external_id.to_owned();
        state.by_external_id.remove(&external_id);
    }
    if let Some(external_id) = new_external_id {
        state.by_external_id.insert(external_id, index);
    }
    let stored = &mut state.identities[index];
    stored.body = new;
    stored.updated_at = now_rfc3339();
    let identity = shared.identity_json(stored);
    json_response(200, &identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_formats_kratos_knows() {
        for known in [
            "$2b$12$abc",
            "$2a$04$abc",
            "$argon2id$v=19$m=16,t=2,p=1$abc",
            "{SSHA256}abc",
            "$pbkdf2-sha256$i=1,l=32$abc",
        ] {
            assert!(is_known_hash_format(known), "{known}");
        }
        for unknown in ["", "not-a-hash", "2b$12$abc", "$bcrypt$abc", "plain"] {
            assert!(!is_known_hash_format(unknown), "{unknown}");
        }
    }

    #[test]
    fn the_config_is_the_flag_a_hash_or_a_400() {
        assert_eq!(
            password_config(
                &json!({"use_password_migration_hook": true, "hashed_password": "$2b$x"})
            )
            .unwrap(),
            json!({"hashed_password": "", "use_password_migration_hook": true}),
            "the flag wins, the hash is ignored"
        );
        assert_eq!(
            password_config(&json!({"hashed_password": "$2b$12$abc"})).unwrap(),
            json!({"hashed_password": "$2b$12$abc"})
        );
        assert!(password_config(&json!({"hashed_password": "nope"})).is_err());
        assert!(password_config(&json!({})).is_err());
    }
}
