//! The confirmation hooks' request body, as `kratos-hooks/login-after.jsonnet` and
//! `settings-after.jsonnet` render it: `{"identity_id", "external_id", "traits"}`.

use serde::Deserialize;
use serde_json::Value;

use crate::store::KratosIdentityRef;

/// A parsed confirmation body. Holds no secret (Kratos never puts credentials in a hook's
/// `identity`), but the traits are personal data: never logged, only a redacted e-mail.
#[derive(Debug)]
pub struct ConfirmRequest {
    /// Lower-case hyphenated, as Kratos writes identity ids.
    identity_id: String,
    external_id: Option<String>,
    email: Option<String>,
}

/// Why a body was refused. Messages name fields, never echo values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfirmBodyError {
    #[error("the request body is not valid JSON")]
    NotJson,
    #[error(
        "the request body must be a JSON object with `identity_id` (a UUID string) and \
         optionally `external_id` (a string or null) and `traits` (an object or null)"
    )]
    WrongShape,
    #[error("`identity_id` is missing or not a UUID")]
    BadIdentityId,
}

#[derive(Deserialize)]
struct RawBody {
    identity_id: Option<String>,
    external_id: Option<String>,
    traits: Option<serde_json::Map<String, Value>>,
}

/// Longest external id kept (Kratos allows long ones; a Cognito `sub` is 36 characters).
const MAX_EXTERNAL_ID: usize = 256;

impl ConfirmRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ConfirmBodyError> {
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(match serde_json::from_slice::<Value>(body) {
                Ok(_) => ConfirmBodyError::WrongShape,
                Err(_) => ConfirmBodyError::NotJson,
            });
        }
        let raw: RawBody =
            serde_json::from_slice(body).map_err(|error| match error.classify() {
                serde_json::error::Category::Data => ConfirmBodyError::WrongShape,
                _ => ConfirmBodyError::NotJson,
            })?;
        let identity_id = raw
            .identity_id
            .as_deref()
            .and_then(|id| uuid::Uuid::parse_str(id.trim()).ok())
            .ok_or(ConfirmBodyError::BadIdentityId)?
            .hyphenated()
            .to_string();
        let external_id = raw
            .external_id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        if external_id
            .as_ref()
            .is_some_and(|id| id.len() > MAX_EXTERNAL_ID || id.chars().any(char::is_control))
        {
            return Err(ConfirmBodyError::WrongShape);
        }
        let email = raw
            .traits
            .as_ref()
            .and_then(|traits| traits.get("email"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Self {
            identity_id,
            external_id,
            email,
        })
    }

    pub fn identity_id(&self) -> &str {
        &self.identity_id
    }

    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// The `email` trait, when the identity schema has one (for a redacted log line only).
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    pub fn identity(&self) -> KratosIdentityRef<'_> {
        KratosIdentityRef {
            identity_id: &self.identity_id,
            external_id: self.external_id.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9f425a8d-7efc-4768-8f23-7647a74fdf13";

    #[test]
    fn bodies_our_jsonnet_renders_are_read() {
        let body = format!(
            r#"{{"identity_id":"{ID}","external_id":null,"traits":{{"email":"a@example.com"}}}}"#
        );
        let request = ConfirmRequest::from_json(body.as_bytes()).unwrap();
        assert_eq!(request.identity_id(), ID);
        assert_eq!(request.external_id(), None);
        assert_eq!(request.email(), Some("a@example.com"));

        let upper = format!(
            r#"{{"identity_id":" {} ","external_id":" sub-1 "}}"#,
            ID.to_uppercase()
        );
        let request = ConfirmRequest::from_json(upper.as_bytes()).unwrap();
        assert_eq!(
            request.identity_id(),
            ID,
            "ids compare as Kratos writes them"
        );
        assert_eq!(request.external_id(), Some("sub-1"));
        assert_eq!(request.email(), None);
    }

    #[test]
    fn bad_bodies_are_refused_by_kind() {
        let cases: [(&[u8], ConfirmBodyError); 9] = [
            (b"", ConfirmBodyError::NotJson),
            (b"{", ConfirmBodyError::NotJson),
            (b"not json", ConfirmBodyError::NotJson),
            (b"[1]", ConfirmBodyError::WrongShape),
            (b"\"x\"", ConfirmBodyError::WrongShape),
            (b"{}", ConfirmBodyError::BadIdentityId),
            (
                br#"{"identity_id":"alice"}"#,
                ConfirmBodyError::BadIdentityId,
            ),
            (br#"{"identity_id":7}"#, ConfirmBodyError::WrongShape),
            (
                br#"{"identity_id":"9f425a8d-7efc-4768-8f23-7647a74fdf13","traits":[]}"#,
                ConfirmBodyError::WrongShape,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                ConfirmRequest::from_json(body).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
