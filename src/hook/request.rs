//! The hook's request body: Kratos's default `{identifier, password}` and our extended body.

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::domain::Password;

/// A parsed password-migration request. The password is only reachable through
/// [`HookRequest::password`], which hands out the zeroising [`Password`].
pub struct HookRequest {
    /// As the user typed it, not normalised.
    identifier: String,
    password: Password,
    identity_id: Option<String>,
    external_id: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

/// Why a body was refused. Messages name fields, never echo values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookBodyError {
    #[error("the request body is not valid JSON")]
    NotJson,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error(
        "the request body must be a JSON object whose `identifier` and `password` are strings \
         (optional `identity_id`, `external_id`, `client_ip`, `user_agent`: strings or null)"
    )]
    WrongShape,
}

#[derive(Deserialize)]
struct RawBody {
    identifier: Option<String>,
    password: Option<Zeroizing<String>>,
    identity_id: Option<String>,
    external_id: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    /// Kratos's own `identity` object, for bodies that pass `ctx.identity` through.
    identity: Option<RawIdentity>,
}

#[derive(Deserialize)]
struct RawIdentity {
    id: Option<String>,
    external_id: Option<String>,
}

impl HookRequest {
    /// Parse a body. Unknown fields are ignored; error messages never contain input values.
    pub fn from_json(body: &[u8]) -> Result<Self, HookBodyError> {
        let raw: RawBody =
            serde_json::from_slice(body).map_err(|error| match error.classify() {
                serde_json::error::Category::Data => HookBodyError::WrongShape,
                _ => HookBodyError::NotJson,
            })?;
        let identifier = raw
            .identifier
            .ok_or(HookBodyError::MissingField("identifier"))?;
        let password = raw
            .password
            .ok_or(HookBodyError::MissingField("password"))?;
        let (nested_id, nested_external_id) = raw
            .identity
            .map(|identity| (identity.id, identity.external_id))
            .unwrap_or_default();
        Ok(Self {
            identifier,
            password: Password::new(password),
            identity_id: non_empty(raw.identity_id.or(nested_id)),
            external_id: non_empty(raw.external_id.or(nested_external_id)),
            client_ip: non_empty(raw.client_ip),
            user_agent: non_empty(raw.user_agent),
        })
    }

    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    pub fn password(&self) -> &Password {
        &self.password
    }

    pub fn identity_id(&self) -> Option<&str> {
        self.identity_id.as_deref()
    }

    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    pub fn client_ip(&self) -> Option<&str> {
        self.client_ip.as_deref()
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kratos_default_body_parses() {
        let request =
            HookRequest::from_json(br#"{"identifier":"Alice@Example.com","password":"pw"}"#)
                .unwrap();
        assert_eq!(request.identifier(), "Alice@Example.com");
        assert_eq!(request.password().expose(), "pw");
        assert_eq!(request.identity_id(), None);
    }

    #[test]
    fn extended_body_and_unknown_fields_parse() {
        let request = HookRequest::from_json(
            br#"{"identifier":"a","password":"p","identity_id":"i-1","external_id":"sub-1",
                 "client_ip":"203.0.113.9","user_agent":"UA","flow":{"id":"f"},"extra":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(request.identity_id(), Some("i-1"));
        assert_eq!(request.external_id(), Some("sub-1"));
        assert_eq!(request.client_ip(), Some("203.0.113.9"));
        assert_eq!(request.user_agent(), Some("UA"));
    }

    #[test]
    fn nested_identity_is_accepted_and_nulls_are_absent() {
        let request = HookRequest::from_json(
            br#"{"identifier":"a","password":"p","identity":{"id":"i-2","external_id":null,"traits":{}},"client_ip":null,"user_agent":""}"#,
        )
        .unwrap();
        assert_eq!(request.identity_id(), Some("i-2"));
        assert_eq!(request.external_id(), None);
        assert_eq!(request.client_ip(), None);
        assert_eq!(request.user_agent(), None);
    }

    #[test]
    fn refusals_name_the_problem_without_echoing_values() {
        let cases: [(&[u8], HookBodyError); 7] = [
            (b"not json", HookBodyError::NotJson),
            (b"{\"identifier\":\"a\",", HookBodyError::NotJson),
            (b"", HookBodyError::NotJson),
            (
                br#"{"password":"p"}"#,
                HookBodyError::MissingField("identifier"),
            ),
            (
                br#"{"identifier":"a"}"#,
                HookBodyError::MissingField("password"),
            ),
            (
                br#"{"identifier":"a","password":12345678}"#,
                HookBodyError::WrongShape,
            ),
            (br#"["identifier","password"]"#, HookBodyError::WrongShape),
        ];
        for (body, expected) in cases {
            let error = HookRequest::from_json(body).err().expect("must be refused");
            assert_eq!(error, expected, "body {:?}", String::from_utf8_lossy(body));
        }
        let error = HookRequest::from_json(br#"{"identifier":"a","password":["secret-value"]}"#)
            .err()
            .unwrap();
        assert!(!error.to_string().contains("secret-value"));
    }
}
