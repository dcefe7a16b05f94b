//! Kratos's admin API as `import` uses it, per Kratos line (v1.3.x or v25.4.0+): the version
//! line, batch create, lookups (by external id, by credential identifier, by ids), and the
//! identity schema from the public API. One client, built once.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::KratosSettings;

#[cfg(test)]
pub(crate) mod fake;

/// Kratos refuses `PATCH /admin/identities` bodies above 5 MB.
pub const MAX_BATCH_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Ids per `GET /admin/identities?ids=…` (Kratos's default page holds 250).
pub const IDS_PER_LOOKUP: usize = 100;

/// The Kratos releases whose admin API differs for us: external ids, the lookup by external
/// id and true per-item batch results exist from v25.4.0 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KratosLine {
    /// v1.3.x (and anything below v25.4.0): no `external_id` (a create body with one is a
    /// 400), no lookup by external id, and a batch with a failed item is rolled back whole
    /// while Kratos still answers `action: create` for the others.
    Legacy,
    /// v25.4.0 and later: `external_id`, its lookup, and true per-item batch results.
    Current,
}

impl KratosLine {
    /// The line of a `GET /admin/version` answer (`v1.3.1`, `25.4.0`, `v26.2.0+build`); `None`
    /// when that is no version we can place (`master` from an unstamped build, or a
    /// pre-release of v25.4.0 itself).
    pub fn from_version(version: &str) -> Option<Self> {
        let version = version.trim();
        let version =
            semver::Version::parse(version.strip_prefix(['v', 'V']).unwrap_or(version)).ok()?;
        let numbers = (version.major, version.minor, version.patch);
        // A pre-release of v25.4.0 itself may or may not have the new API: probe it.
        if numbers == (25, 4, 0) && !version.pre.is_empty() {
            return None;
        }
        Some(if numbers < (25, 4, 0) {
            Self::Legacy
        } else {
            Self::Current
        })
    }

    /// Whether create bodies may carry `external_id`.
    pub fn accepts_external_id(self) -> bool {
        self == Self::Current
    }

    /// Whether a batch answer can be believed item by item; on v1.3.x a failed item rolls
    /// back the batch and the other items' `create` results must be checked.
    pub fn batch_results_are_true(self) -> bool {
        self == Self::Current
    }

    /// Kratos's `BatchPatchIdentitiesLimit`.
    pub fn max_batch_items(self) -> usize {
        match self {
            Self::Legacy => 2000,
            Self::Current => 1000,
        }
    }
}

impl fmt::Display for KratosLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Legacy => "v1.3.x",
            Self::Current => "v25.4.0+",
        })
    }
}

/// How the line was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSource {
    /// `GET /admin/version` named it.
    Version(String),
    /// The version was missing or not a release (`master`): the lookup route told.
    Probe { version: Option<String> },
}

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

/// What Kratos did with one identity of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    Created {
        identity_id: String,
    },
    /// An identity with this external id (or another unique value) exists already.
    Conflict,
    Failed {
        status: Option<u16>,
        message: String,
    },
}

pub struct KratosAdmin {
    client: reqwest::Client,
    admin_url: Url,
    public_url: Url,
    token: Option<SecretString>,
}

impl KratosAdmin {
    pub fn new(settings: &KratosSettings) -> Result<Self, KratosError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout().min(Duration::from_secs(5)))
            .timeout(settings.timeout())
            .pool_idle_timeout(Duration::from_secs(50))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| KratosError::Unreachable {
                url: display_url(&settings.admin_url),
                reason: format!("cannot build an HTTP client: {error}"),
            })?;
        Ok(Self {
            client,
            admin_url: settings.admin_url.clone(),
            public_url: settings.public_url.clone(),
            token: settings.admin_token().cloned(),
        })
    }

    /// `PATCH /admin/identities` with a body built by [`BatchBody`]; one result per item,
    /// in the order they were added.
    pub async fn batch_create(&self, batch: &BatchBody) -> Result<Vec<ItemResult>, KratosError> {
        let url = endpoint(&self.admin_url, &["admin", "identities"]);
        let request = self
            .authorized(self.client.patch(url.clone()))
            .header("Content-Type", "application/json")
            .body(batch.body.clone());
        let (status, body) = self.send(request, &url).await?;
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
            .send(self.authorized(self.client.get(url.clone())), &url)
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
            .send(self.authorized(self.client.get(url.clone())), &url)
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
            .send(self.authorized(self.client.get(url.clone())), &url)
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
            let (status, body) = self
                .send(self.authorized(self.client.get(url.clone())), &url)
                .await?;
            if status != 200 {
                return Err(unexpected("GET", &url, status, &body));
            }
            let listed: Vec<IdentityId> = parse(&body, &url)?;
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
        let (status, body) = self
            .send(self.authorized(self.client.get(url.clone())), &url)
            .await?;
        if status != 200 {
            return Err(unexpected("GET", &url, status, &body));
        }
        let listed: Vec<IdentityWithMetadata> = parse(&body, &url)?;
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
        let (status, body) = self.send(self.client.get(url.clone()), &url).await?;
        if status != 200 {
            return Err(unexpected("GET", &url, status, &body));
        }
        parse(&body, &url)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<(u16, bytes::Bytes), KratosError> {
        let unreachable = |error: reqwest::Error| KratosError::Unreachable {
            url: display_url(url),
            reason: describe(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        Ok((status, body))
    }
}

/// A `PATCH /admin/identities` body, serialised once (its size decides the batch split).
#[derive(Debug, Clone)]
pub struct BatchBody {
    body: Vec<u8>,
    patch_ids: Vec<String>,
}

impl Default for BatchBody {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBody {
    const OPEN: &'static [u8] = br#"{"identities":["#;
    const CLOSE: &'static [u8] = b"]}";

    pub fn new() -> Self {
        Self {
            body: Self::OPEN.to_vec(),
            patch_ids: Vec::new(),
        }
    }

    /// The body's size if `create` (an already serialised create body) were added.
    pub fn size_with(&self, create: &[u8]) -> usize {
        // `,{"patch_id":"<36>","create":…}` plus the closing brackets.
        self.body.len() + create.len() + 64 + Self::CLOSE.len()
    }

    pub fn push(&mut self, create: &[u8]) {
        let patch_id = uuid_v4();
        if !self.patch_ids.is_empty() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(br#"{"patch_id":""#);
        self.body.extend_from_slice(patch_id.as_bytes());
        self.body.extend_from_slice(br#"","create":"#);
        self.body.extend_from_slice(create);
        self.body.push(b'}');
        self.patch_ids.push(patch_id);
    }

    pub fn len(&self) -> usize {
        self.patch_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patch_ids.is_empty()
    }

    /// The finished body (the closing brackets are added on the way out).
    pub fn finish(mut self) -> Self {
        self.body.extend_from_slice(Self::CLOSE);
        self
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// Kratos's per-item answers, matched by `patch_id` (falling back to position).
    fn results_from(
        &self,
        answer: BatchAnswer,
        path: &str,
    ) -> Result<Vec<ItemResult>, KratosError> {
        if answer.identities.len() != self.patch_ids.len() {
            return Err(KratosError::Malformed {
                path: path.to_owned(),
                reason: format!(
                    "{} results for {} identities",
                    answer.identities.len(),
                    self.patch_ids.len()
                ),
            });
        }
        let mut results = vec![None; self.patch_ids.len()];
        for (position, item) in answer.identities.into_iter().enumerate() {
            let index = item
                .patch_id
                .as_deref()
                .and_then(|id| self.patch_ids.iter().position(|sent| sent == id))
                .unwrap_or(position);
            let result = match (item.action.as_deref(), item.identity, item.error) {
                (Some("create"), Some(identity_id), _) => ItemResult::Created { identity_id },
                (_, _, Some(error)) if error.code == Some(409) => ItemResult::Conflict,
                (_, _, error) => ItemResult::Failed {
                    status: error.as_ref().and_then(|error| error.code),
                    message: error.map(ErrorBody::text).unwrap_or_else(|| {
                        "Kratos reported neither an identity nor an error".into()
                    }),
                },
            };
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|result| {
                result.ok_or_else(|| KratosError::Malformed {
                    path: path.to_owned(),
                    reason: "two results for one patch_id".to_owned(),
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    identities: Vec<ItemAnswer>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    action: Option<String>,
    identity: Option<String>,
    patch_id: Option<String>,
    error: Option<ErrorBody>,
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

/// `base` with path segments appended, each percent-encoded.
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The URL for messages and logs: no credentials in it, no query.
pub fn display_url(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// The error and its causes, without the URL again.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A random UUID v4 in its text form (Kratos's `patch_id` is `format: uuid`).
fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
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
    fn batch_bodies_are_json_with_a_patch_id_per_item() {
        let mut batch = BatchBody::new();
        batch.push(br#"{"schema_id":"default","traits":{}}"#);
        batch.push(br#"{"schema_id":"default","traits":{"a":1}}"#);
        let batch = batch.finish();
        let body: Value = serde_json::from_slice(batch.bytes()).unwrap();
        let items = body["identities"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["create"]["traits"]["a"], 1);
        let id = items[0]["patch_id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(batch.size_with(b"{}") > batch.bytes().len());
    }

    #[test]
    fn per_item_answers_are_matched_by_patch_id() {
        let mut batch = BatchBody::new();
        batch.push(b"{}");
        batch.push(b"{}");
        batch.push(b"{}");
        let ids = batch.patch_ids.clone();
        let answer: BatchAnswer = serde_json::from_value(serde_json::json!({"identities": [
            {"action": "error", "patch_id": ids[2], "error": {"code": 400, "message": "bad traits", "reason": "email missing"}},
            {"action": "create", "patch_id": ids[0], "identity": "id-0"},
            {"action": "error", "patch_id": ids[1], "error": {"code": 409, "message": "exists"}},
        ]}))
        .unwrap();
        let results = batch.results_from(answer, "/admin/identities").unwrap();
        assert_eq!(
            results,
            [
                ItemResult::Created {
                    identity_id: "id-0".into()
                },
                ItemResult::Conflict,
                ItemResult::Failed {
                    status: Some(400),
                    message: "bad traits: email missing".into()
                },
            ]
        );
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

    #[test]
    fn versions_below_v25_4_0_are_the_legacy_line() {
        let cases = [
            ("v1.3.1", Some(KratosLine::Legacy)),
            ("1.3.0", Some(KratosLine::Legacy)),
            ("v1.0.0", Some(KratosLine::Legacy)),
            ("v0.13.0", Some(KratosLine::Legacy)),
            ("v1.3.1-pre.0", Some(KratosLine::Legacy)),
            ("v25.3.9", Some(KratosLine::Legacy)),
            (" v25.4.0 ", Some(KratosLine::Current)),
            ("V25.4.0", Some(KratosLine::Current)),
            ("v25.4.1", Some(KratosLine::Current)),
            ("v26.2.0", Some(KratosLine::Current)),
            ("v26.2.0+build.7", Some(KratosLine::Current)),
            ("v100.0.0", Some(KratosLine::Current)),
            ("v25.4.0-pre.1", None),
            ("master", None),
            ("", None),
            ("v1.3", None),
            ("v1.3.1.4", None),
            ("v1.x.1", None),
            ("v+1.3.1", None),
            ("v1.3.1-", None),
            ("v99999999999999999999999.0.0", None),
        ];
        for (version, line) in cases {
            assert_eq!(KratosLine::from_version(version), line, "{version:?}");
        }
        assert!(!KratosLine::Legacy.accepts_external_id());
        assert!(KratosLine::Current.accepts_external_id());
        assert_eq!(KratosLine::Legacy.max_batch_items(), 2000);
        assert_eq!(KratosLine::Current.max_batch_items(), 1000);
        assert!(
            crate::config::MAX_BATCH_SIZE
                <= KratosLine::Legacy
                    .max_batch_items()
                    .min(KratosLine::Current.max_batch_items()),
            "import.batch_size stays within both lines' limit"
        );
        assert_eq!(KratosLine::Legacy.to_string(), "v1.3.x");
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
