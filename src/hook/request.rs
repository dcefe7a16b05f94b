//! The hook's request body: Kratos's default `{identifier, password}` and our extended body.

use std::net::{IpAddr, SocketAddr};

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
    client_ip: Option<IpAddr>,
    user_agent: Option<String>,
}

/// Why a body was refused. Messages name fields, never echo values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
        // serde would read a struct from an array too; the contract is an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => HookBodyError::WrongShape,
                    Err(_) => HookBodyError::NotJson,
                },
            );
        }
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
            client_ip: raw.client_ip.as_deref().and_then(parse_client_ip),
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

    /// The caller's address, when the body carried a usable one.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

/// An address as Kratos may pass it: `203.0.113.9`, `[2001:db8::1]:443`, or an
/// `X-Forwarded-For` list (the first entry is the client). Anything else is ignored.
fn parse_client_ip(raw: &str) -> Option<IpAddr> {
    let first = raw.split(',').next()?.trim();
    first
        .parse::<IpAddr>()
        .ok()
        .or_else(|| first.parse::<SocketAddr>().ok().map(|address| address.ip()))
        .map(|ip| ip.to_canonical())
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
        assert_eq!(request.client_ip(), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(request.user_agent(), Some("UA"));
    }

    #[test]
    fn client_addresses_are_parsed_or_ignored() {
        let ip = |raw: &str| {
            let body = serde_json::json!({"identifier": "a", "password": "p", "client_ip": raw});
            HookRequest::from_json(body.to_string().as_bytes())
                .unwrap()
                .client_ip()
                .map(|ip| ip.to_string())
        };
        assert_eq!(ip("203.0.113.9").as_deref(), Some("203.0.113.9"));
        assert_eq!(
            ip(" 203.0.113.9 , 10.0.0.1").as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(ip("[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("198.51.100.7:5555").as_deref(), Some("198.51.100.7"));
        assert_eq!(ip("::ffff:192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(ip("localhost"), None);
        assert_eq!(ip(""), None);
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
        let cases: [(&[u8], HookBodyError); 9] = [
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
            (
                br#"["alice","pw",null,null,null,null,null]"#,
                HookBodyError::WrongShape,
            ),
            (b"  [1, 2", HookBodyError::NotJson),
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
