//! Paging through every identity with its password credential, for `reconcile`: the admin list
//! `GET /admin/identities?include_credential=password&page_size=N[&page_token=T]`, keyset pages
//! whose next token comes in the `Link` header (`rel="next"`), the same on v1.3.x and v25.4.0+.
//!
//! Both lines return each identity's password credential *config* on the list when
//! `include_credential=password` is asked (v1.3.1 `identity/handler.go` `list` and v26.2.0
//! `parseListIdentitiesParameters` switch to `ExpandEverything` and declassify the password
//! config), so one request per page is enough. The answer holds password hashes: it is parsed
//! into [`PasswordState`] (whether a hash is there, never the hash) and dropped, and a parse
//! error is reported by position only (serde's message may quote a value).
//!
//! Just over 400 lines: the tests of the Link header and the page parsing (below the code)
//! are about 110 of them.

use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use super::{KratosAdmin, KratosError, endpoint, unexpected};

/// Identities per list request; Kratos caps keyset pages at 500 (default 250).
pub const LIST_PAGE_SIZE: usize = 250;

/// What an identity's password credential says, without its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordState {
    /// No password credential at all (Kratos gives one, with an empty config, to every
    /// identity with a password identifier trait, so this is rare).
    None,
    /// Flagged for the migration hook, or a credential without a hash: no password in Kratos.
    NoHash { flagged: bool },
    /// A hash and the migration flag both (a hash written with JSON Patch on v25.4.0+ leaves
    /// the flag): Kratos would check the hash, but the flag is still there.
    HashFlagged,
    /// A hash and no flag: the password is in Kratos.
    Hash,
    /// A password credential listed without its config (`null`): a Kratos that does not
    /// declassify credentials on the list. Read the identity itself
    /// ([`KratosAdmin::password_state`]) to know.
    Unread,
}

/// One listed identity, as far as `reconcile` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedIdentityCredential {
    pub id: String,
    /// `external_id` (v25.4.0+; never read on v1.3.x, which has none).
    pub external_id: Option<String>,
    /// `metadata_admin.cognito.sub`, written by the import on every Kratos line.
    pub cognito_sub: Option<String>,
    pub password: PasswordState,
}

/// One page of the list and the token of the next, if any.
#[derive(Debug)]
pub struct IdentityPage {
    pub identities: Vec<ListedIdentityCredential>,
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    #[serde(default)]
    external_id: Option<Value>,
    #[serde(default)]
    metadata_admin: Option<Value>,
    #[serde(default)]
    credentials: Option<RawCredentials>,
}

#[derive(Deserialize)]
struct RawCredentials {
    #[serde(default)]
    password: Option<RawPassword>,
}

#[derive(Deserialize)]
struct RawPassword {
    #[serde(default)]
    config: Option<RawPasswordConfig>,
}

#[derive(Deserialize)]
struct RawPasswordConfig {
    /// Whether a non-empty hash is there; the hash itself is never kept.
    #[serde(default, deserialize_with = "present")]
    hashed_password: bool,
    #[serde(default)]
    use_password_migration_hook: Option<bool>,
}

/// `true` for a non-empty string that is not `finalize`'s locked hash (no password logs in
/// with that one), without keeping it.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct NonEmpty;
    impl serde::de::Visitor<'_> for NonEmpty {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_str<E>(self, value: &str) -> Result<bool, E> {
            Ok(!value.is_empty() && !super::password::is_locked_hash(value))
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_none<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    deserializer.deserialize_any(NonEmpty)
}

impl Raw {
    fn into_listed(self, read_external_id: bool) -> ListedIdentityCredential {
        let password = match self.credentials.and_then(|c| c.password) {
            None => PasswordState::None,
            Some(RawPassword { config: None }) => PasswordState::Unread,
            Some(credential) => {
                let config = credential.config;
                let flagged = config
                    .as_ref()
                    .and_then(|c| c.use_password_migration_hook)
                    .unwrap_or(false);
                match (config.is_some_and(|c| c.hashed_password), flagged) {
                    (true, false) => PasswordState::Hash,
                    (true, true) => PasswordState::HashFlagged,
                    (false, flagged) => PasswordState::NoHash { flagged },
                }
            }
        };
        let text = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        ListedIdentityCredential {
            external_id: if read_external_id {
                text(self.external_id.as_ref())
            } else {
                None
            },
            cognito_sub: text(
                self.metadata_admin
                    .as_ref()
                    .and_then(|m| m.pointer("/cognito/sub")),
            ),
            id: self.id,
            password,
        }
    }
}

/// `GET /admin/identities/{id}?include_credential=password`'s answer, as far as needed.
#[derive(Deserialize)]
struct RawOne {
    #[serde(default)]
    credentials: Option<RawCredentials>,
}

impl KratosAdmin {
    /// The password state of one identity, read with
    /// `GET /admin/identities/{id}?include_credential=password` (the fallback for an identity
    /// the list showed without its credential's config); `None` when Kratos no longer has it.
    pub async fn password_state(&self, id: &str) -> Result<Option<PasswordState>, KratosError> {
        let Some((url, body)) = self.identity_with_password(id).await? else {
            return Ok(None);
        };
        let raw: RawOne = serde_json::from_slice(&body).map_err(|error| malformed(&url, &error))?;
        drop(body);
        let listed = Raw {
            id: id.to_owned(),
            external_id: None,
            metadata_admin: None,
            credentials: raw.credentials,
        }
        .into_listed(false);
        Ok(Some(match listed.password {
            // Read by id and still no config: nothing says a hash is there.
            PasswordState::Unread => PasswordState::NoHash { flagged: false },
            state => state,
        }))
    }

    /// One page of `GET /admin/identities?include_credential=password`, from `page_token`
    /// (`None`: the first page). `read_external_id` only on v25.4.0+.
    pub async fn identities_page(
        &self,
        page_token: Option<&str>,
        page_size: usize,
        read_external_id: bool,
    ) -> Result<IdentityPage, KratosError> {
        let mut url = endpoint(&self.admin_url, &["admin", "identities"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("include_credential", "password")
                .append_pair("page_size", &page_size.to_string());
            if let Some(token) = page_token {
                query.append_pair("page_token", token);
            }
        }
        let request = self.http.admin(Method::GET, &url);
        let (status, headers, body) = self.http.send_keeping_headers(request, &url).await?;
        let links: Vec<(String, String)> = headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(page_links)
            .collect();
        if status != 200 {
            // An error body (herodot) holds no hash.
            return Err(unexpected("GET", &url, status, &body));
        }
        let raw: Vec<Raw> =
            serde_json::from_slice(&body).map_err(|error| malformed(&url, &error))?;
        drop(body);
        let identities: Vec<ListedIdentityCredential> = raw
            .into_iter()
            .map(|raw| raw.into_listed(read_external_id))
            .collect();
        let next_token = match links.iter().find(|(rel, _)| rel == "next") {
            Some((_, token)) => Some(token.clone()),
            // No readable link at all (a gateway dropped the header, or an ory/x release that
            // escapes it differently) and a full page: go on from its last id, which is what
            // both lines' keyset token is. Never stop early in silence.
            None if links.is_empty() && identities.len() >= page_size => {
                identities.last().map(|identity| identity.id.clone())
            }
            None => None,
        };
        // A next token equal to the one asked would page forever.
        let next_token = next_token.filter(|next| Some(next.as_str()) != page_token);
        Ok(IdentityPage {
            identities,
            next_token,
        })
    }
}

/// A parse error by kind and position only: serde's message can quote a value, and this body
/// holds hashes.
fn malformed(url: &Url, error: &serde_json::Error) -> KratosError {
    KratosError::Malformed {
        path: url.path().to_owned(),
        reason: format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ),
    }
}

/// The `(rel, page_token)` of each link of a `Link` header that names a page
/// (`</admin/identities?page_size=250&page_token=…>; rel="next"`). A target escaped whole
/// (`<%2Fadmin%2Fidentities%3Fpage_size%3D…>`, as one ory/x revision wrote it) is read too.
fn page_links(header: &str) -> Vec<(String, String)> {
    header
        .split(',')
        .filter_map(|part| {
            let (target, params) = part.split_once(';')?;
            let rel = params.split(';').find_map(|param| {
                let value = param.trim().strip_prefix("rel=")?;
                Some(value.trim_matches('"').to_owned())
            })?;
            let mut target = target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
            if !target.contains('?') {
                target = url::form_urlencoded::parse(format!("t={target}").as_bytes())
                    .next()
                    .map(|(_, value)| value.into_owned())?;
            }
            let url = Url::parse("http://kratos/").ok()?.join(&target).ok()?;
            let token = url
                .query_pairs()
                .find(|(key, _)| key == "page_token")
                .map(|(_, value)| value.into_owned())
                .filter(|token| !token.is_empty())?;
            Some((rel, token))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn page_links_name_their_rel_and_token() {
        let header = "</admin/identities?include_credential=password&page_size=250&page_token=00000000-0000-0000-0000-000000000000>; rel=\"first\",</admin/identities?include_credential=password&page_size=250&page_token=7b1c0000-0000-4000-8000-000000000001>; rel=\"next\"";
        let first = (
            "first".to_owned(),
            "00000000-0000-0000-0000-000000000000".to_owned(),
        );
        let next = (
            "next".to_owned(),
            "7b1c0000-0000-4000-8000-000000000001".to_owned(),
        );
        assert_eq!(page_links(header), [first.clone(), next.clone()]);
        let last = "</admin/identities?page_size=250&page_token=00000000-0000-0000-0000-000000000000>; rel=\"first\"";
        assert_eq!(page_links(last), [first]);
        assert_eq!(
            page_links("</admin/identities?page_token=a%2Bb>; rel=\"next\""),
            [("next".to_owned(), "a+b".to_owned())]
        );
        let escaped = "<%2Fadmin%2Fidentities%3Fpage_size%3D2%26page_token%3D7b1c0000-0000-4000-8000-000000000001>; rel=\"next\"";
        assert_eq!(page_links(escaped), [next]);
        assert!(page_links("nonsense").is_empty());
    }

    fn listed(identity: Value, read_external_id: bool) -> ListedIdentityCredential {
        serde_json::from_value::<Raw>(identity)
            .unwrap()
            .into_listed(read_external_id)
    }

    #[test]
    fn the_password_state_says_whether_a_hash_is_there_and_the_flag() {
        let with = |config: Value| {
            listed(
                json!({"id": "i", "credentials": {"password": {"type": "password", "config": config}}}),
                true,
            )
            .password
        };
        assert_eq!(
            with(json!({"hashed_password": "$2a$10$abc"})),
            PasswordState::Hash
        );
        assert_eq!(
            with(json!({"hashed_password": "$2a$10$abc", "use_password_migration_hook": false})),
            PasswordState::Hash
        );
        assert_eq!(
            with(json!({"hashed_password": "$2a$10$abc", "use_password_migration_hook": true})),
            PasswordState::HashFlagged
        );
        assert_eq!(
            with(json!({"use_password_migration_hook": true})),
            PasswordState::NoHash { flagged: true }
        );
        assert_eq!(
            with(json!({"hashed_password": ""})),
            PasswordState::NoHash { flagged: false }
        );
        assert_eq!(
            listed(json!({"id": "i", "credentials": {}}), true).password,
            PasswordState::None
        );
        assert_eq!(
            listed(
                json!({"id": "i", "credentials": {"password": {"type": "password", "config": null}}}),
                true
            )
            .password,
            PasswordState::Unread
        );
        assert_eq!(
            listed(json!({"id": "i"}), true).password,
            PasswordState::None
        );
    }

    #[test]
    fn ids_come_from_external_id_on_the_current_line_and_metadata_everywhere() {
        let identity = json!({
            "id": "i", "external_id": "sub-1",
            "metadata_admin": {"cognito": {"sub": "sub-1", "username": "u"}},
        });
        let current = listed(identity.clone(), true);
        assert_eq!(current.external_id.as_deref(), Some("sub-1"));
        assert_eq!(current.cognito_sub.as_deref(), Some("sub-1"));
        assert_eq!(listed(identity, false).external_id, None);
        let bare = listed(
            json!({"id": "i", "external_id": null, "metadata_admin": null}),
            true,
        );
        assert_eq!((bare.external_id, bare.cognito_sub), (None, None));
    }

    #[test]
    fn a_malformed_page_names_the_position_and_never_a_value() {
        let url = Url::parse("http://kratos/admin/identities").unwrap();
        let body = br#"[{"id": 7, "credentials": {"password": {"config": {"hashed_password": "$2a$10$secrethash"}}}}]"#;
        let error = serde_json::from_slice::<Vec<Raw>>(body).err().unwrap();
        let text = malformed(&url, &error).to_string();
        assert!(text.contains("line 1"), "{text}");
        let body = br#"[{"id": "x", "credentials": {"password": {"config": {"hashed_password": 12345678}}}}]"#;
        let error = serde_json::from_slice::<Vec<Raw>>(body).err().unwrap();
        let text = malformed(&url, &error).to_string();
        assert!(!text.contains("12345678"), "{text}");
    }
}
