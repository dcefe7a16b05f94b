//! Kratos's admin API as `import` and capture use it, per Kratos line (v1.3.x or v25.4.0+): the
//! client (batch create, lookups by external id, credential identifier and ids, the version,
//! the identity schema from the public API), built once; the line in `line.rs`, the batch body
//! and its per-item answers in `batch.rs`, writing a captured password (and `finalize`'s
//! removal of the flag) in `password.rs`, admin recovery codes and links in `recovery.rs`, the
//! paged list with password credentials (`reconcile`) in `list.rs`. Over 400 lines: half of it
//! is the client's tests, which start Kratos fakes on loopback.

mod batch;
mod line;
mod list;
mod password;
mod recovery;

#[cfg(test)]
pub(crate) mod fake;

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

pub use batch::{BatchBody, ItemResult};
pub use line::{KratosLine, LineSource};
pub use list::{IdentityPage, LIST_PAGE_SIZE, ListedIdentityCredential, PasswordState};
pub use password::{FlagRemoval, PasswordWrite};
pub use recovery::{RecoveryGrant, RecoveryKind};

use crate::config::KratosSettings;
pub use crate::outbound::display_url;
use crate::outbound::{AdminHttp, Unreachable, endpoint};
use batch::uuid_v4;
use reqwest::Method;

/// Kratos refuses `PATCH /admin/identities` bodies above 5 MB.
pub const MAX_BATCH_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Ids per `GET /admin/identities?ids=…` (Kratos's default page holds 250).
pub const IDS_PER_LOOKUP: usize = 100;

/// An identity from `GET /admin/identities`, as far as the import needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedIdentity {
    pub id: String,
    /// `metadata_admin.cognito.sub`, written by the import on every Kratos line.
    pub cognito_sub: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KratosError {
    #[error("Kratos at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Kratos answered {method} {path} with {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("Kratos's answer to {path} could not be read: {reason}")]
    Malformed { path: String, reason: String },
}

impl From<Unreachable> for KratosError {
    fn from(Unreachable { url, reason }: Unreachable) -> Self {
        KratosError::Unreachable { url, reason }
    }
}

impl KratosError {
    /// Worth another try: Kratos restarting, overloaded or briefly unreachable.
    pub fn is_transient(&self) -> bool {
        match self {
            KratosError::Unreachable { .. } => true,
            KratosError::Status { status, .. } => *status == 429 || *status >= 500,
            KratosError::Malformed { .. } => false,
        }
    }
}

pub struct KratosAdmin {
    http: AdminHttp,
    admin_url: Url,
    public_url: Url,
}

impl KratosAdmin {
    pub fn new(settings: &KratosSettings) -> Result<Self, KratosError> {
        let http = AdminHttp::new(
            &settings.admin_url,
            settings.admin_token().cloned(),
            settings.timeout(),
        )?;
        Ok(Self {
            http,
            admin_url: settings.admin_url.clone(),
            public_url: settings.public_url.clone(),
        })
    }

    /// `PATCH /admin/identities` with a body built by [`BatchBody`]; one result per item,
    /// in the order they were added.
    pub async fn batch_create(&self, batch: &BatchBody) -> Result<Vec<ItemResult>, KratosError> {
        let url = endpoint(&self.admin_url, &["admin", "identities"]);
        let request = self
            .http
            .admin(Method::PATCH, &url)
            .header("Content-Type", "application/json")
            .body(batch.bytes().to_vec());
        let (status, body) = self.http.send(request, &url).await?;
        let path = url.path().to_owned();
        match status {
            200 => batch.results_from(parse(&body, &url)?, &path),
            // Every item failed: Kratos answers with the first failure for the whole batch.
            409 => Ok(vec![ItemResult::Conflict; batch.len()]),
            400 | 422 => {
                let message = error_message(&body);
                Ok(vec![
                    ItemResult::Failed {
                        status: Some(status),
                        message,
                    };
                    batch.len()
                ])
            }
            _ => Err(unexpected("PATCH", &url, status, &body)),
        }
    }

    /// `GET /admin/identities/by/external/{external_id}`: the identity's id, if any.
    pub async fn identity_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<String>, KratosError> {
        let url = endpoint(
            &self.admin_url,
            &["admin", "identities", "by", "external", external_id],
        );
        let (status, body) = self
            .http
            .send(self.http.admin(Method::GET, &url), &url)
            .await?;
        match status {
            200 => Ok(Some(parse::<IdentityId>(&body, &url)?.id)),
            404 => Ok(None),
            _ => Err(unexpected("GET", &url, status, &body)),
        }
    }

    /// `GET /admin/version`: the build's version, `None` when the route is missing (404) or
    /// the answer names no version.
    pub async fn version(&self) -> Result<Option<String>, KratosError> {
        let url = endpoint(&self.admin_url, &["admin", "version"]);
        let (status, body) = self
            .http
            .send(self.http.admin(Method::GET, &url), &url)
            .await?;
        match status {
            200 => Ok(serde_json::from_slice::<VersionAnswer>(&body)
                .ok()
                .and_then(|answer| answer.version)
                // An arbitrary string from the network: short enough for a log line.
                .map(|version| version.chars().take(64).collect())),
            404 => Ok(None),
            _ => Err(unexpected("GET", &url, status, &body)),
        }
    }

    /// The line by a capability probe: `GET /admin/identities/by/external/<random uuid>` is
    /// a JSON 404 from v25.4.0 on, and v1.3.x's router answers `404 page not found` as text.
    pub async fn probe_line(&self) -> Result<KratosLine, KratosError> {
        let url = endpoint(
            &self.admin_url,
            &["admin", "identities", "by", "external", &uuid_v4()],
        );
        let (status, body) = self
            .http
            .send(self.http.admin(Method::GET, &url), &url)
            .await?;
        match status {
            200 => Ok(KratosLine::Current),
            404 if serde_json::from_slice::<ErrorEnvelope>(&body).is_ok() => {
                Ok(KratosLine::Current)
            }
            404 => Ok(KratosLine::Legacy),
            _ => Err(unexpected("GET", &url, status, &body)),
        }
    }

    /// The Kratos line: from `GET /admin/version`, else from [`probe_line`](Self::probe_line).
    pub async fn detect_line(&self) -> Result<(KratosLine, LineSource), KratosError> {
        let version = self.version().await?;
        if let Some(line) = version.as_deref().and_then(KratosLine::from_version) {
            let version = version.unwrap_or_default();
            return Ok((line, LineSource::Version(version)));
        }
        let line = self.probe_line().await?;
        Ok((line, LineSource::Probe { version }))
    }

    /// `GET /admin/identities?ids=…`: which of `ids` Kratos holds (any number of ids, asked
    /// [`IDS_PER_LOOKUP`] at a time).
    pub async fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, KratosError> {
        let mut found = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let mut url = endpoint(&self.admin_url, &["admin", "identities"]);
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("page_size", &chunk.len().to_string());
                for id in chunk {
                    query.append_pair("ids", id);
                }
            }
            let listed: Vec<IdentityId> = self
                .get_ok(self.http.admin(Method::GET, &url), &url)
                .await?;
            found.extend(listed.into_iter().map(|identity| identity.id));
        }
        Ok(found)
    }

    /// `GET /admin/identities?credentials_identifier=…`: the identities that sign in with
    /// `identifier` (Kratos lower-cases and trims it for passwords).
    pub async fn identities_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Vec<ListedIdentity>, KratosError> {
        let mut url = endpoint(&self.admin_url, &["admin", "identities"]);
        url.query_pairs_mut()
            .append_pair("credentials_identifier", identifier);
        let listed: Vec<IdentityWithMetadata> = self
            .get_ok(self.http.admin(Method::GET, &url), &url)
            .await?;
        Ok(listed
            .into_iter()
            .map(|identity| ListedIdentity {
                cognito_sub: identity
                    .metadata_admin
                    .as_ref()
                    .and_then(|metadata| metadata.pointer("/cognito/sub"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                id: identity.id,
            })
            .collect())
    }

    /// The identity schema `id` from the public API (`GET /schemas/{id}`).
    pub async fn identity_schema(&self, id: &str) -> Result<Value, KratosError> {
        let url = endpoint(&self.public_url, &["schemas", id]);
        self.get_ok(self.http.public(Method::GET, &url), &url).await
    }

    /// A `GET` that must answer 200 with JSON.
    async fn get_ok<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<T, KratosError> {
        let (status, body) = self.http.send(request, url).await?;
        if status != 200 {
            return Err(unexpected("GET", url, status, &body));
        }
        parse(&body, url)
    }

    /// `GET /admin/identities/{id}?include_credential=password`: the URL (for messages) and
    /// the answer's body, which holds the password hash when there is one (parse it, drop it,
    /// never log it); `None` when Kratos has no such identity.
    async fn identity_with_password(
        &self,
        id: &str,
    ) -> Result<Option<(Url, bytes::Bytes)>, KratosError> {
        let mut url = endpoint(&self.admin_url, &["admin", "identities", id]);
        url.query_pairs_mut()
            .append_pair("include_credential", "password");
        let (status, body) = self
            .http
            .send(self.http.admin(Method::GET, &url), &url)
            .await?;
        match status {
            200 => Ok(Some((url, body))),
            404 => Ok(None),
            _ => Err(unexpected("GET", &url, status, &body)),
        }
    }

    /// `DELETE /admin/identities/{id}`: whether Kratos had the identity (`false`: gone
    /// already).
    pub async fn delete_identity(&self, id: &str) -> Result<bool, KratosError> {
        let url = endpoint(&self.admin_url, &["admin", "identities", id]);
        let (status, body) = self
            .http
            .send(self.http.admin(Method::DELETE, &url), &url)
            .await?;
        match status {
            200 | 204 => Ok(true),
            404 => Ok(false),
            _ => Err(unexpected("DELETE", &url, status, &body)),
        }
    }
}

/// Kratos's error object (herodot's `DefaultError`), alone or under `"error"`.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u16>,
    reason: Option<String>,
    message: Option<String>,
}

impl ErrorBody {
    fn text(self) -> String {
        match (self.message, self.reason) {
            (Some(message), Some(reason)) if !reason.is_empty() => format!("{message}: {reason}"),
            (Some(message), _) => message,
            (None, Some(reason)) => reason,
            (None, None) => "no message".to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct IdentityId {
    id: String,
}

#[derive(Deserialize)]
struct IdentityWithMetadata {
    id: String,
    metadata_admin: Option<Value>,
}

#[derive(Deserialize)]
struct VersionAnswer {
    version: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], url: &Url) -> Result<T, KratosError> {
    serde_json::from_slice(body).map_err(|error| KratosError::Malformed {
        path: url.path().to_owned(),
        reason: error.to_string(),
    })
}

fn unexpected(method: &'static str, url: &Url, status: u16, body: &[u8]) -> KratosError {
    KratosError::Status {
        method,
        path: url.path().to_owned(),
        status,
        message: error_message(body),
    }
}

/// The message of an `errorGeneric` body, or the start of whatever came back.
fn error_message(body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return envelope.error.text();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    if text.trim().is_empty() {
        "no body".to_owned()
    } else {
        text.trim().to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn endpoints_encode_external_ids() {
        let base = Url::parse("http://kratos:4434/").unwrap();
        let url = endpoint(&base, &["admin", "identities", "by", "external", "a/b c"]);
        assert_eq!(
            url.as_str(),
            "http://kratos:4434/admin/identities/by/external/a%2Fb%20c"
        );
        let prefixed = Url::parse("http://gateway/kratos").unwrap();
        assert_eq!(
            endpoint(&prefixed, &["schemas", "default"]).as_str(),
            "http://gateway/kratos/schemas/default"
        );
    }

    #[test]
    fn urls_in_messages_carry_no_credentials() {
        let url = Url::parse("http://admin:s3cret@kratos:4434/admin?token=x").unwrap();
        assert_eq!(display_url(&url), "http://kratos:4434/admin");
    }

    #[test]
    fn error_messages_come_from_error_generic_or_the_raw_body() {
        assert_eq!(
            error_message(
                br#"{"error":{"code":401,"status":"Unauthorized","message":"no token"}}"#
            ),
            "no token"
        );
        assert_eq!(error_message(b"upstream down"), "upstream down");
        assert_eq!(error_message(b""), "no body");
    }

    pub(crate) fn client(url: &Url) -> KratosAdmin {
        KratosAdmin::new(&KratosSettings {
            admin_url: url.clone(),
            public_url: url.clone(),
            timeout_ms: 5_000,
            ..KratosSettings::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn the_line_comes_from_the_version_or_else_from_a_probe() {
        use fake::{FakeKratos, FakeOptions};
        let cases = [
            (FakeOptions::legacy(), KratosLine::Legacy, false),
            (FakeOptions::current(), KratosLine::Current, false),
            // An unstamped build says `master`: the lookup route decides.
            (
                FakeOptions {
                    version: Some("master".into()),
                    ..FakeOptions::legacy()
                },
                KratosLine::Legacy,
                true,
            ),
            (
                FakeOptions {
                    version: Some("master".into()),
                    ..FakeOptions::current()
                },
                KratosLine::Current,
                true,
            ),
            // No version route at all (a gateway in front of Kratos).
            (
                FakeOptions {
                    version: None,
                    ..FakeOptions::current()
                },
                KratosLine::Current,
                true,
            ),
        ];
        for (options, expected, probed) in cases {
            let described = format!("{options:?}");
            let fake = FakeKratos::start(options).await;
            let (line, source) = client(&fake.url).detect_line().await.unwrap();
            assert_eq!(line, expected, "{described}");
            assert_eq!(
                matches!(source, LineSource::Probe { .. }),
                probed,
                "{described}"
            );
            assert_eq!(
                fake.counts(|c| (c.versions, c.probes)),
                (1, usize::from(probed))
            );
        }

        let failing = FakeKratos::start(FakeOptions {
            version_status: Some(503),
            ..FakeOptions::legacy()
        })
        .await;
        let error = client(&failing.url).detect_line().await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("/admin/version"), "{error}");

        let unauthorized = FakeKratos::start(FakeOptions {
            version_status: Some(401),
            ..FakeOptions::legacy()
        })
        .await;
        let error = client(&unauthorized.url).detect_line().await.unwrap_err();
        assert!(!error.is_transient(), "{error}");

        // Nobody listens: unreachable, worth a retry.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap()
        };
        let error = client(&closed).detect_line().await.unwrap_err();
        assert!(matches!(error, KratosError::Unreachable { .. }), "{error}");
        assert!(error.is_transient());
    }

    #[tokio::test]
    async fn ids_are_looked_up_a_hundred_at_a_time() {
        use fake::{FakeKratos, FakeOptions};
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        let stored: Vec<String> = (0..150)
            .map(|i| {
                fake.insert(serde_json::json!({"traits": {"email": format!("u{i}@example.com")}}))
            })
            .collect();
        let mut asked: Vec<String> = stored.iter().step_by(2).cloned().collect();
        asked.extend((0..180).map(|_| uuid_v4()));
        let found = client(&fake.url).existing_ids(&asked).await.unwrap();
        assert_eq!(found.len(), 75);
        assert!(found.iter().all(|id| stored.contains(id)));
        assert_eq!(fake.counts(|c| c.id_lookups), 3, "255 ids in chunks of 100");
    }

    #[tokio::test]
    async fn identities_are_found_by_identifier_with_their_cognito_sub() {
        use fake::{FakeKratos, FakeOptions};
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        let id = fake.insert(serde_json::json!({
            "traits": {"email": "alice@example.com"},
            "metadata_admin": {"cognito": {"sub": "sub-a"}},
        }));
        let other = fake.insert(serde_json::json!({"traits": {"email": "bob@example.com"}}));
        let kratos = client(&fake.url);
        let found = kratos
            .identities_by_identifier(" Alice@Example.com")
            .await
            .unwrap();
        assert_eq!(
            found,
            [ListedIdentity {
                id,
                cognito_sub: Some("sub-a".into())
            }]
        );
        let found = kratos
            .identities_by_identifier("bob@example.com")
            .await
            .unwrap();
        assert_eq!(
            found,
            [ListedIdentity {
                id: other,
                cognito_sub: None
            }]
        );
        assert!(
            kratos
                .identities_by_identifier("nobody@example.com")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn transient_errors_are_5xx_429_and_unreachable() {
        let status = |status| KratosError::Status {
            method: "PATCH",
            path: "/admin/identities".into(),
            status,
            message: String::new(),
        };
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(401).is_transient());
        assert!(!status(413).is_transient());
    }
}
