//! A loopback Kratos admin API (Kratos v26.2.0, DESIGN.md "Contract 3") for the import tests and
//! the import benchmark: `GET /admin/version`, bulk create (`PATCH /admin/identities`), lookup by
//! external id, the list (`GET /admin/identities`: keyset pages by `page_size`/`page_token` with a
//! `Link` header, `ids`, `credentials_identifier`, `include_credential=password`), the full
//! replacement `PUT /admin/identities/{id}` (`kratos_admin/update.rs`), and the public
//! `GET /schemas/{id}`. It behaves like v25.4.0+ only; v1.3.x is
//! tested against the real Kratos v1.3.1 (`kratos_real_import.rs`). Optionally checks every bulk body against Kratos's OpenAPI spec
//! (`../shared/kratos/api.json`) and Kratos's strict decoding (unknown fields are a 400).
//!
//! Long: every route works on one shared state, and the double's own tests are half of the
//! file; the PUT, which has rules of its own, is in `kratos_admin/update.rs`.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonschema::{Draft, Validator};
use serde_json::{Map, Value, json};

use crate::under_ci;

mod update;

/// Kratos's `BatchPatchIdentitiesLimit`: items per `PATCH /admin/identities`.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Kratos's body cap for `PATCH /admin/identities`.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// What the server reads before it can answer (anything above `MAX_BODY_BYTES` is then a 413).
const READ_LIMIT: usize = 64 * 1024 * 1024;

const API_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/kratos/api.json");
const BATCH_PATH: &str = "/admin/identities";
const VERSION_PATH: &str = "/admin/version";
const LOOKUP_PREFIX: &str = "/admin/identities/by/external/";
const SCHEMAS_PREFIX: &str = "/schemas/";

// herodot's messages for the errors Kratos answers here.
const BAD_REQUEST: &str = "The request was malformed or contained invalid parameters";
const CONFLICT: &str = "A resource with that value exists already";
const CONFLICT_REASON: &str = "This identity conflicts with another identity that already exists.";
const NOT_FOUND: &str = "Unable to locate the resource";
const UNAUTHORIZED: &str = "The request could not be authorized";
const INTERNAL: &str = "An internal server error occurred, please contact the system administrator";

/// How one double behaves.
#[derive(Debug, Clone)]
pub struct AdminDoubleOptions {
    /// When set, every `/admin` request must carry `Authorization: Bearer <token>` (else 401).
    pub admin_token: Option<String>,
    /// Check bulk bodies against `../shared/kratos/api.json` (when present) and strict decoding.
    pub validate_contract: bool,
    /// Served at `GET /schemas/{schema_id}`; when set, the traits of each created identity are
    /// validated against it (per-item 400 when invalid) and `schema_id` must match.
    pub identity_schema: Option<Value>,
    pub schema_id: String,
    /// What `GET /admin/version` answers as `{"version": …}` (default `v26.2.0`); `None`: the
    /// route is missing (a JSON 404, as for any unknown path).
    pub version: Option<String>,
    /// The list shows password credentials with `"config": null` even with
    /// `include_credential=password` (as no supported Kratos does): a Kratos that declassifies
    /// credentials only on `GET /admin/identities/{id}`.
    pub list_without_credential_configs: bool,
    /// The list answers without a `Link` header (as a gateway that drops it would).
    pub list_without_link: bool,
}

impl Default for AdminDoubleOptions {
    fn default() -> Self {
        Self {
            admin_token: None,
            validate_contract: true,
            identity_schema: None,
            schema_id: "default".to_owned(),
            version: Some("v26.2.0".to_owned()),
            list_without_credential_configs: false,
            list_without_link: false,
        }
    }
}

/// The running double; stops its server when dropped.
pub struct KratosAdminDouble {
    /// `http://127.0.0.1:PORT`: admin and public paths alike.
    pub url: String,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl Drop for KratosAdminDouble {
    fn drop(&mut self) {
        // `stop` sends the command at once; nobody needs to wait for the completion.
        drop(self.server.stop(false));
    }
}

impl KratosAdminDouble {
    pub async fn start(options: AdminDoubleOptions) -> Self {
        if options.validate_contract {
            // Compile (or report the absence of) the spec before the first request arrives.
            contract();
        }
        let traits_validator = options.identity_schema.as_ref().map(|schema| {
            jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
                .unwrap_or_else(|error| panic!("the identity schema does not compile: {error}"))
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let schema_url = format!(
            "{url}{SCHEMAS_PREFIX}{}",
            base64url(options.schema_id.as_bytes())
        );
        let shared = Arc::new(Shared {
            admin_token: options.admin_token.map(|token| format!("Bearer {token}")),
            validate_contract: options.validate_contract,
            identity_schema: options.identity_schema,
            traits_validator,
            schema_id: options.schema_id,
            version: options.version,
            list_without_credential_configs: options.list_without_credential_configs,
            list_without_link: options.list_without_link,
            schema_url,
            state: Mutex::new(State::default()),
            hold: tokio::sync::watch::Sender::new(false),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(READ_LIMIT))
                .default_service(web::to(handle))
        })
        .listen(listener)
        .expect("listen")
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            shared,
            server: handle,
        }
    }

    /// The `nth` `PATCH /admin/identities` (1-based, counting every one received since start)
    /// and every later one answer `status` with an `errorGeneric` body, creating nothing, until
    /// [`heal`](Self::heal).
    pub fn fail_patches_from(&self, nth: usize, status: u16) {
        assert!(nth >= 1, "nth is 1-based");
        StatusCode::from_u16(status).expect("an HTTP status code");
        self.shared.state().fail_from = Some((nth, status));
    }

    pub fn heal(&self) {
        let mut state = self.shared.state();
        state.fail_from = None;
        state.fail_lookups = None;
    }

    /// Every `GET /admin/identities/by/external/{id}` answers `status` with an `errorGeneric`
    /// body until [`heal`](Self::heal).
    pub fn fail_lookups(&self, status: u16) {
        StatusCode::from_u16(status).expect("an HTTP status code");
        self.shared.state().fail_lookups = Some(status);
    }

    /// Items with one of these external ids get a per-item 400 (as for traits the identity
    /// schema rejects) and are not created, until [`accept_items`](Self::accept_items).
    pub fn refuse_items<I, S>(&self, external_ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut state = self.shared.state();
        state
            .refused
            .extend(external_ids.into_iter().map(Into::into));
    }

    /// Every `PATCH /admin/identities` from now on waits (unanswered) until
    /// [`release_patches`](Self::release_patches): an import held in the middle of a batch.
    pub fn hold_patches(&self) {
        self.shared.hold.send_replace(true);
    }

    pub fn release_patches(&self) {
        self.shared.hold.send_replace(false);
    }

    /// `PATCH /admin/identities` requests waiting for [`release_patches`](Self::release_patches).
    pub fn held_patches(&self) -> usize {
        self.shared.state().held
    }

    /// Undo [`refuse_items`](Self::refuse_items) for these external ids.
    pub fn accept_items<I, S>(&self, external_ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut state = self.shared.state();
        for external_id in external_ids {
            state.refused.remove(&external_id.into());
        }
    }

    /// Every stored identity (pre-seeded ones included): the create body as sent plus `"id"`,
    /// in creation order.
    pub fn identities(&self) -> Vec<Value> {
        let state = self.shared.state();
        state.identities.iter().map(|s| s.body.clone()).collect()
    }

    /// The stored identity (create body plus `"id"`) with this external id.
    pub fn identity_by_external_id(&self, external_id: &str) -> Option<Value> {
        let state = self.shared.state();
        let index = *state.by_external_id.get(external_id)?;
        Some(state.identities[index].body.clone())
    }

    /// What `GET /admin/identities/by/external/{external_id}` answers, without counting a call.
    pub fn kratos_identity(&self, external_id: &str) -> Option<Value> {
        let state = self.shared.state();
        let index = *state.by_external_id.get(external_id)?;
        Some(self.shared.identity_json(&state.identities[index]))
    }

    /// Identities created through `PATCH /admin/identities` (not the pre-seeded ones).
    pub fn creates(&self) -> usize {
        self.shared.state().creates
    }

    /// `PATCH /admin/identities` requests received, failed and refused ones included.
    pub fn patch_calls(&self) -> usize {
        self.shared.state().patch_calls
    }

    /// Every request received whose method is not GET.
    pub fn write_calls(&self) -> usize {
        self.shared.state().write_calls
    }

    /// `GET /admin/identities/by/external/{id}` requests received.
    pub fn lookup_calls(&self) -> usize {
        self.shared.state().lookup_calls
    }

    /// `GET /admin/identities` requests without `credentials_identifier` (pages of the list,
    /// `ids` lookups included).
    pub fn list_calls(&self) -> usize {
        self.shared.state().list_calls
    }

    /// `GET /admin/identities/{id}` requests received.
    pub fn get_calls(&self) -> usize {
        self.shared.state().get_calls
    }

    /// `PUT /admin/identities/{id}` requests received (see `update.rs`).
    pub fn put_calls(&self) -> usize {
        self.shared.state().put_calls
    }

    /// `GET /admin/version` requests answered.
    pub fn version_calls(&self) -> usize {
        self.shared.state().version_calls
    }

    /// `GET /admin/identities?credentials_identifier=…` requests received.
    pub fn identifier_lookups(&self) -> usize {
        self.shared.state().identifier_lookups
    }

    /// Request bodies Kratos would refuse as malformed (spec violations, unknown fields, bad
    /// JSON, too many items, too large), each with the reason.
    pub fn contract_violations(&self) -> Vec<String> {
        self.shared.state().violations.clone()
    }

    /// Bulk bodies that were checked against api.json: 0 when the contract is switched off
    /// (`validate_contract: false`), absent (a user's machine), or no body reached the double.
    pub fn contract_checks(&self) -> usize {
        self.shared.state().contract_checks
    }

    /// Assert that no request body broke Kratos's contract, and that this means something: at
    /// least one bulk body was checked against api.json. Without api.json (only possible off
    /// CI: `contract()` fails the test under CI) it prints a notice instead of that second check.
    pub fn assert_no_contract_violations(&self) {
        let violations = self.contract_violations();
        assert!(violations.is_empty(), "{violations:#?}");
        if !self.shared.validate_contract || !contract_available() {
            assert!(
                !under_ci(),
                "the Kratos contract was not checked (validate_contract is off or api.json is \
                 absent), so `no contract violations` proves nothing"
            );
            eprintln!(
                "notice: request bodies were not checked against ../shared/kratos/api.json; \
                 `no contract violations` is vacuous here"
            );
            return;
        }
        assert!(
            self.contract_checks() > 0,
            "no bulk body reached the double, so `no contract violations` proves nothing"
        );
    }

    /// Items per `PATCH /admin/identities` request, in arrival order, one entry per request
    /// (0 when the body had no readable `identities` array).
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.shared.state().batch_sizes.clone()
    }

    /// Pre-seed an identity (e.g. created by an earlier, crashed run); returns its id. Not
    /// counted in `creates()`.
    pub fn insert_existing(&self, create_body: Value) -> String {
        assert!(create_body.is_object(), "a createIdentityBody is an object");
        let mut state = self.shared.state();
        if let Some(external_id) = external_id_of(&create_body) {
            assert!(
                !state.by_external_id.contains_key(external_id),
                "external_id {external_id} is already stored"
            );
        }
        state.store(create_body, now_rfc3339())
    }
}

/// Whether `../shared/kratos/api.json` is there, so request bodies can be checked against it.
pub fn contract_available() -> bool {
    contract().is_some()
}

/// A validator for one schema of `api.json` (`components.schemas.<name>`), with OpenAPI's
/// `nullable` made JSON Schema; `None` when api.json is absent.
pub fn spec_validator(name: &str) -> Option<Validator> {
    let contract = contract()?;
    Some(compile_component(&contract.components, name))
}

/// A random UUID v4 string.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

// --- state ------------------------------------------------------------------------------------

struct Shared {
    /// The whole expected header value, `Bearer <token>`.
    admin_token: Option<String>,
    validate_contract: bool,
    identity_schema: Option<Value>,
    traits_validator: Option<Validator>,
    schema_id: String,
    version: Option<String>,
    list_without_credential_configs: bool,
    list_without_link: bool,
    schema_url: String,
    state: Mutex<State>,
    /// `true` while patches are held (see `hold_patches`).
    hold: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    identities: Vec<Stored>,
    by_external_id: HashMap<String, usize>,
    /// Values Kratos keeps unique: credential identifiers and addresses (see `unique_values_of`).
    taken: HashSet<String>,
    creates: usize,
    patch_calls: usize,
    write_calls: usize,
    lookup_calls: usize,
    identifier_lookups: usize,
    list_calls: usize,
    get_calls: usize,
    put_calls: usize,
    version_calls: usize,
    violations: Vec<String>,
    /// Bulk bodies checked against api.json (see `contract_checks`).
    contract_checks: usize,
    batch_sizes: Vec<usize>,
    fail_from: Option<(usize, u16)>,
    /// External ids whose items are refused (see `refuse_items`).
    refused: HashSet<String>,
    /// Patches waiting while held.
    held: usize,
    fail_lookups: Option<u16>,
}

struct Stored {
    /// The create body as sent, plus `"id"` (after a PUT: the identity it made, see `update`).
    body: Value,
    created_at: String,
    /// `created_at` until a PUT.
    updated_at: String,
}

impl State {
    fn store(&mut self, mut body: Value, created_at: String) -> String {
        let id = uuid_v4();
        body["id"] = Value::String(id.clone());
        if let Some(external_id) = external_id_of(&body) {
            self.by_external_id
                .insert(external_id.to_owned(), self.identities.len());
        }
        self.taken.extend(unique_values_of(&body));
        self.identities.push(Stored {
            body,
            updated_at: created_at.clone(),
            created_at,
        });
        id
    }

    /// Where the identity with id `id` is stored.
    fn position(&self, id: &str) -> Option<usize> {
        self.identities
            .iter()
            .position(|stored| stored.body["id"] == id)
    }

    /// Whether Kratos would refuse `body` as a duplicate (409): its external id, or a value
    /// another identity holds as login identifier or address. The real Kratos v1.3.1 refuses
    /// a second identity with the same e-mail (checked in `doubles_vs_real.rs`).
    fn conflicts(&self, body: &Value) -> bool {
        external_id_of(body).is_some_and(|id| self.by_external_id.contains_key(id))
            || unique_values_of(body)
                .iter()
                .any(|value| self.taken.contains(value))
    }
}

/// The values Kratos keeps unique across identities: the password identifier (the example
/// schema's `traits.email`, lower-cased as Kratos stores it) and the verifiable and recovery
/// addresses (per kind).
fn unique_values_of(body: &Value) -> Vec<String> {
    let mut values = Vec::new();
    if let Some(email) = body["traits"]["email"].as_str() {
        values.push(format!("identifier:{}", email.trim().to_lowercase()));
    }
    for kind in ["verifiable_addresses", "recovery_addresses"] {
        for address in body[kind].as_array().into_iter().flatten() {
            if let Some(value) = address["value"].as_str() {
                values.push(format!("{kind}:{}", value.trim().to_lowercase()));
            }
        }
    }
    values
}

/// Kratos stores an empty external id as NULL: no uniqueness, no lookup.
fn external_id_of(body: &Value) -> Option<&str> {
    body.get("external_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn violation(&self, violation: String) {
        self.state().violations.push(violation);
    }

    fn authorized(&self, request: &HttpRequest) -> bool {
        let Some(expected) = &self.admin_token else {
            return true;
        };
        request
            .headers()
            .get("authorization")
            .is_some_and(|value| value.as_bytes() == expected.as_bytes())
    }

    /// The identity as Kratos's admin API returns it (without credentials).
    fn identity_json(&self, stored: &Stored) -> Value {
        let body = &stored.body;
        let id = body["id"].as_str().unwrap_or_default();
        let field = |name: &str| body.get(name).cloned().unwrap_or(Value::Null);
        let schema_id = body.get("schema_id").and_then(Value::as_str).unwrap_or("");
        let schema_url = if schema_id == self.schema_id {
            self.schema_url.clone()
        } else {
            let base = self
                .schema_url
                .rsplit_once('/')
                .map_or("", |(base, _)| base);
            format!("{base}/{}", base64url(schema_id.as_bytes()))
        };
        let addresses = |kind: &str| -> Value {
            let list = body.get(kind).and_then(Value::as_array);
            let filled = list
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(index, address)| {
                    let mut address = address.clone();
                    if let Value::Object(map) = &mut address {
                        map.entry("id")
                            .or_insert_with(|| derived_uuid(id, kind, index).into());
                        for stamp in ["created_at", "updated_at"] {
                            map.entry(stamp)
                                .or_insert_with(|| stored.created_at.clone().into());
                        }
                    }
                    address
                });
            Value::Array(filled.collect())
        };
        let mut identity = json!({
            "id": id,
            "schema_id": schema_id,
            "schema_url": schema_url,
            "state": body.get("state").cloned().unwrap_or_else(|| "active".into()),
            "state_changed_at": stored.created_at,
            "traits": body.get("traits").cloned().unwrap_or_else(|| json!({})),
            "verifiable_addresses": addresses("verifiable_addresses"),
            "recovery_addresses": addresses("recovery_addresses"),
            "metadata_public": field("metadata_public"),
            "metadata_admin": field("metadata_admin"),
            "organization_id": field("organization_id"),
            "created_at": stored.created_at,
            "updated_at": stored.updated_at,
        });
        if let Some(external_id) = external_id_of(body) {
            identity["external_id"] = external_id.into();
        }
        identity
    }
}

// --- HTTP -------------------------------------------------------------------------------------

async fn handle(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let method = request.method();
    let path = request.uri().path();
    let is_batch = method == Method::PATCH && path == BATCH_PATH;
    let is_lookup = method == Method::GET && path.starts_with(LOOKUP_PREFIX);

    // Parse before counting, so the batch size is recorded in arrival order with the count.
    let parsed = is_batch.then(|| serde_json::from_slice::<Value>(&body));
    let items = match &parsed {
        Some(Ok(document)) => document
            .get("identities")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        _ => 0,
    };
    let (nth, fail_from) = {
        let mut state = shared.state();
        if method != Method::GET {
            state.write_calls += 1;
        }
        if is_lookup {
            state.lookup_calls += 1;
        }
        if is_batch {
            state.patch_calls += 1;
            state.batch_sizes.push(items);
        }
        (state.patch_calls, state.fail_from)
    };

    if let Some(id) = path.strip_prefix(SCHEMAS_PREFIX)
        && method == Method::GET
    {
        return identity_schema(&shared, &percent_decode(id));
    }
    if (path == "/admin" || path.starts_with("/admin/")) && !shared.authorized(&request) {
        return error_response(401, None, UNAUTHORIZED);
    }
    if method == Method::GET
        && path == VERSION_PATH
        && let Some(version) = &shared.version
    {
        shared.state().version_calls += 1;
        return json_response(200, &json!({ "version": version }));
    }
    if let Some(parsed) = parsed {
        let mut hold = shared.hold.subscribe();
        if *hold.borrow_and_update() {
            shared.state().held += 1;
            let _ = hold.wait_for(|held| !*held).await;
            shared.state().held -= 1;
        }
        return batch_patch(&shared, body.len(), parsed, nth, fail_from);
    }
    if is_lookup {
        return lookup(&shared, &percent_decode(&path[LOOKUP_PREFIX.len()..]));
    }
    if method == Method::GET
        && path == BATCH_PATH
        && let Some(identifier) = url::form_urlencoded::parse(request.query_string().as_bytes())
            .find(|(key, _)| key == "credentials_identifier")
            .map(|(_, value)| value.into_owned())
    {
        return list_by_identifier(&shared, &identifier);
    }
    if method == Method::GET && path == BATCH_PATH {
        return list(&shared, request.query_string());
    }
    if method == Method::GET
        && let Some(id) = path
            .strip_prefix(BATCH_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.contains('/'))
    {
        return get_identity(&shared, &percent_decode(id), request.query_string());
    }
    if method == Method::PUT
        && let Some(id) = path
            .strip_prefix(BATCH_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.contains('/'))
    {
        return update::put_identity(&shared, &percent_decode(id), &body);
    }
    error_response(
        404,
        Some(format!(
            "no route for {method} {path} in the Kratos admin double"
        )),
        "The requested resource could not be found",
    )
}

fn identity_schema(shared: &Shared, id: &str) -> HttpResponse {
    match &shared.identity_schema {
        Some(schema) if id == shared.schema_id || id == base64url(shared.schema_id.as_bytes()) => {
            json_response(200, schema)
        }
        _ => error_response(404, None, NOT_FOUND),
    }
}

/// `GET /admin/identities?credentials_identifier=…`: the identities that sign in with it (the
/// import's lookup for identities created while Kratos was v1.3.x, without external id).
fn list_by_identifier(shared: &Shared, identifier: &str) -> HttpResponse {
    let mut state = shared.state();
    state.identifier_lookups += 1;
    let wanted = format!("identifier:{}", identifier.trim().to_lowercase());
    let found: Vec<Value> = state
        .identities
        .iter()
        .filter(|stored| unique_values_of(&stored.body).contains(&wanted))
        .map(|stored| shared.identity_json(stored))
        .collect();
    json_response(200, &Value::Array(found))
}

/// The nil UUID: Kratos's first page token for identities.
const FIRST_PAGE_TOKEN: &str = "00000000-0000-0000-0000-000000000000";

/// `GET /admin/identities` (v26.2.0 `list`): identities in id order after `page_token`,
/// `page_size` of them (default 250, at most 500), optionally only `ids` (at most 500), with
/// the password credential's config when `include_credential=password`; the `Link` header
/// names the first page and, unless this is the last, the next.
fn list(shared: &Shared, query: &str) -> HttpResponse {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let values = |name: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    };
    let mut include_password = false;
    for credential in values("include_credential") {
        match credential {
            "password" => include_password = true,
            "oidc" | "totp" | "webauthn" | "lookup_secret" | "code" | "passkey" | "saml" => {}
            other => {
                let reason = format!("Invalid value `{other}` for parameter `include_credential`.");
                return error_response(400, Some(reason), BAD_REQUEST);
            }
        }
    }
    let ids = values("ids");
    if let Some(bad) = ids.iter().find(|id| uuid::Uuid::try_parse(id).is_err()) {
        let reason = format!("Invalid UUID value `{bad}` for parameter `ids`.");
        return error_response(400, Some(reason), BAD_REQUEST);
    }
    if ids.len() > 500 {
        let reason = "The number of ids to filter must not exceed 500.".to_owned();
        return error_response(400, Some(reason), BAD_REQUEST);
    }
    let size = match values("page_size").first() {
        None => 250,
        Some(size) => match size.parse::<usize>() {
            Ok(size) if size > 0 => size.min(500),
            Ok(_) => 250,
            Err(error) => return error_response(400, Some(error.to_string()), BAD_REQUEST),
        },
    };
    let token = values("page_token")
        .first()
        .map_or(FIRST_PAGE_TOKEN.to_owned(), |token| (*token).to_owned());
    if uuid::Uuid::try_parse(&token).is_err() {
        let reason = "The page token is invalid, do not craft your own page tokens".to_owned();
        return error_response(400, Some(reason), BAD_REQUEST);
    }
    let mut state = shared.state();
    state.list_calls += 1;
    let mut listed: Vec<&Stored> = state
        .identities
        .iter()
        .filter(|stored| {
            let id = stored.body["id"].as_str().unwrap_or_default();
            id > token.as_str() && (ids.is_empty() || ids.contains(&id))
        })
        .collect();
    listed.sort_by(|a, b| a.body["id"].as_str().cmp(&b.body["id"].as_str()));
    let is_last = listed.len() <= size;
    listed.truncate(size);
    let link = |rel: &str, token: &str| {
        let mut query: Vec<(String, String)> = pairs
            .iter()
            .filter(|(key, _)| key != "page_token" && key != "page_size")
            .cloned()
            .collect();
        query.push(("page_size".into(), size.to_string()));
        query.push(("page_token".into(), token.to_owned()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!("<{BATCH_PATH}?{query}>; rel=\"{rel}\"")
    };
    let mut links = vec![link("first", FIRST_PAGE_TOKEN)];
    if !is_last && let Some(last) = listed.last() {
        links.push(link("next", last.body["id"].as_str().unwrap_or_default()));
    }
    let body: Vec<Value> = listed
        .iter()
        .map(|stored| {
            let mut identity = shared.identity_json(stored);
            if include_password {
                identity["credentials"] = credentials_json(stored);
                if shared.list_without_credential_configs
                    && let Some(password) = identity.pointer_mut("/credentials/password")
                {
                    password["config"] = Value::Null;
                }
            }
            identity
        })
        .collect();
    let mut response = HttpResponse::build(StatusCode::OK);
    if !shared.list_without_link {
        response.insert_header(("Link", links.join(",")));
    }
    response
        .content_type("application/json")
        .body(Value::Array(body).to_string())
}

/// `GET /admin/identities/{id}`: the identity, with its password credential's config when
/// `include_credential=password`.
fn get_identity(shared: &Shared, id: &str, query: &str) -> HttpResponse {
    let include_password = url::form_urlencoded::parse(query.as_bytes())
        .any(|(key, value)| key == "include_credential" && value == "password");
    let mut state = shared.state();
    state.get_calls += 1;
    let Some(index) = state.position(id) else {
        return error_response(404, None, NOT_FOUND);
    };
    let stored = &state.identities[index];
    let mut identity = shared.identity_json(stored);
    if include_password {
        identity["credentials"] = credentials_json(stored);
    }
    json_response(200, &identity)
}

/// The identity's credentials as an admin read with `include_credential=password` shows them:
/// the password credential with its config (`hashed_password` and/or the migration flag) and
/// its identifier. Like Kratos, an identity with a login identifier trait (`traits.email`) has
/// a password credential even without a password: config `{}`.
fn credentials_json(stored: &Stored) -> Value {
    let email = stored.body["traits"]["email"].as_str();
    let config = match stored.body.pointer("/credentials/password/config") {
        Some(config) => config,
        None if email.is_some() => &json!({}),
        None => return json!({}),
    };
    let mut config = config.clone();
    if let Value::Object(map) = &mut config {
        // Kratos hashes a plaintext password; the double keeps only that one was given.
        if map.remove("password").is_some() {
            map.insert(
                "hashed_password".into(),
                "$2a$12$double.hashed.plaintext".into(),
            );
        }
    }
    let identifiers: Vec<Value> = stored.body["traits"]["email"]
        .as_str()
        .map(|email| email.trim().to_lowercase().into())
        .into_iter()
        .collect();
    json!({"password": {
        "type": "password",
        "identifiers": identifiers,
        "config": config,
        "version": 0,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }})
}

fn lookup(shared: &Shared, external_id: &str) -> HttpResponse {
    let state = shared.state();
    if let Some(status) = state.fail_lookups {
        let reason = format!("injected by KratosAdminDouble::fail_lookups({status})");
        return error_response(status, Some(reason), INTERNAL);
    }
    match state.by_external_id.get(external_id) {
        Some(&index) => json_response(200, &shared.identity_json(&state.identities[index])),
        None => error_response(404, None, NOT_FOUND),
    }
}

/// One item of a bulk request after the checks that need no lock.
enum Prepared {
    Create {
        patch_id: Option<Value>,
        create: Value,
    },
    Failed {
        patch_id: Option<Value>,
        error: Value,
    },
}

fn batch_patch(
    shared: &Shared,
    body_len: usize,
    parsed: serde_json::Result<Value>,
    nth: usize,
    fail_from: Option<(usize, u16)>,
) -> HttpResponse {
    let refuse = |status: u16, reason: String| {
        shared.violation(format!("PATCH {BATCH_PATH}: {reason}"));
        error_response(status, Some(reason), BAD_REQUEST)
    };
    if body_len > MAX_BODY_BYTES {
        return refuse(
            413,
            format!("the body has {body_len} bytes, Kratos accepts at most {MAX_BODY_BYTES}"),
        );
    }
    let mut document = match parsed {
        Ok(document) => document,
        Err(error) => {
            return refuse(
                400,
                format!("The request body could not be decoded: {error}"),
            );
        }
    };
    if shared.validate_contract
        && let Some(contract) = contract()
    {
        let problems = contract.check_batch(&document);
        shared.state().contract_checks += 1;
        if !problems.is_empty() {
            let mut state = shared.state();
            for problem in &problems {
                state
                    .violations
                    .push(format!("PATCH {BATCH_PATH} {problem}"));
            }
            drop(state);
            return error_response(400, Some(problems.join("; ")), BAD_REQUEST);
        }
    }
    let items = match document.get_mut("identities").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return refuse(400, "`identities` is not an array".to_owned()),
    };
    if items.len() > MAX_BATCH_ITEMS {
        return refuse(
            400,
            format!(
                "The maximum number of identities that can be patched at once is {MAX_BATCH_ITEMS}. (got {})",
                items.len()
            ),
        );
    }
    if let Some(index) = items.iter().position(|item| !item.is_object()) {
        return refuse(
            400,
            format!("The request body could not be decoded: identities[{index}] is not an object"),
        );
    }
    if let Some((from, status)) = fail_from
        && nth >= from
    {
        let message = if status >= 500 {
            INTERNAL
        } else {
            status_text(status)
        };
        let reason = format!("injected by KratosAdminDouble::fail_patches_from({from}, {status})");
        return error_response(status, Some(reason), message);
    }

    let prepared: Vec<Prepared> = items.into_iter().map(|item| shared.prepare(item)).collect();
    let created_at = now_rfc3339();
    let mut results = Vec::with_capacity(prepared.len());
    let mut first_error: Option<Value> = None;
    let mut created = 0;
    {
        let mut state = shared.state();
        for item in prepared {
            let (patch_id, outcome) = match item {
                Prepared::Create { patch_id, create }
                    if external_id_of(&create).is_some_and(|id| state.refused.contains(id)) =>
                {
                    let reason = "refused by KratosAdminDouble::refuse_items".to_owned();
                    (patch_id, Err(herodot(400, Some(reason), BAD_REQUEST)))
                }
                Prepared::Create { patch_id, create } => {
                    if state.conflicts(&create) {
                        (
                            patch_id,
                            Err(herodot(409, Some(CONFLICT_REASON.into()), CONFLICT)),
                        )
                    } else {
                        state.creates += 1;
                        created += 1;
                        (patch_id, Ok(state.store(create, created_at.clone())))
                    }
                }
                Prepared::Failed { patch_id, error } => (patch_id, Err(error)),
            };
            let mut result = Map::new();
            match outcome {
                Ok(id) => {
                    result.insert("action".into(), "create".into());
                    result.insert("identity".into(), id.into());
                }
                Err(error) => {
                    result.insert("action".into(), "error".into());
                    if first_error.is_none() {
                        first_error = Some(error.clone());
                    }
                    result.insert("error".into(), error);
                }
            }
            if let Some(patch_id) = patch_id {
                result.insert("patch_id".into(), patch_id);
            }
            results.push(Value::Object(result));
        }
    }
    if created == 0
        && results.len() == 1
        && let Some(error) = first_error.filter(|error| error["code"] == 409)
    {
        // Kratos inserts a batch of one like a single identity: its conflict is the answer.
        // Anything else is answered 200 with per-item errors, even when every item failed,
        // and items that fail validation never reach the insert (v1.3.1 and v26.2.0 alike;
        // checked against the real v1.3.1 in `doubles_vs_real.rs`).
        let status = error["code"]
            .as_u64()
            .and_then(|code| u16::try_from(code).ok());
        return json_response(status.unwrap_or(400), &json!({ "error": error }));
    }
    json_response(200, &json!({ "identities": results }))
}

impl Shared {
    fn prepare(&self, mut item: Value) -> Prepared {
        let patch_id = item
            .get_mut("patch_id")
            .map(Value::take)
            .filter(|id| !id.is_null());
        let create = match item.get_mut("create").map(Value::take) {
            Some(create @ Value::Object(_)) => create,
            _ => {
                let reason = "the patch has no `create` body; the double implements create \
                              patches only"
                    .to_owned();
                let error = herodot(400, Some(reason), BAD_REQUEST);
                return Prepared::Failed { patch_id, error };
            }
        };
        if let Some(validator) = &self.traits_validator {
            let schema_id = create
                .get("schema_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            if schema_id != self.schema_id {
                let reason = format!("unable to find JSON Schema ID: {schema_id}");
                let error = herodot(400, Some(reason), BAD_REQUEST);
                return Prepared::Failed { patch_id, error };
            }
            let traits = json!({ "traits": create.get("traits").cloned().unwrap_or(Value::Null) });
            let problems: Vec<String> = validator
                .iter_errors(&traits)
                .map(|error| {
                    format!(
                        "I[#{}] S[#{}] {}",
                        error.instance_path(),
                        error.schema_path(),
                        shorten(&error.to_string())
                    )
                })
                .collect();
            if !problems.is_empty() {
                let error = herodot(400, Some(problems.join("; ")), BAD_REQUEST);
                return Prepared::Failed { patch_id, error };
            }
        }
        Prepared::Create { patch_id, create }
    }
}

/// herodot's `DefaultError`.
fn herodot(code: u16, reason: Option<String>, message: &str) -> Value {
    let mut error = json!({ "code": code, "status": status_text(code), "message": message });
    if let Some(reason) = reason {
        error["reason"] = reason.into();
    }
    error
}

fn error_response(code: u16, reason: Option<String>, message: &str) -> HttpResponse {
    json_response(code, &json!({ "error": herodot(code, reason, message) }))
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

fn status_text(code: u16) -> &'static str {
    StatusCode::from_u16(code)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Unknown")
}

// --- the contract: api.json -------------------------------------------------------------------

struct Contract {
    /// `components.schemas` of api.json, OpenAPI `nullable` rewritten as JSON Schema.
    components: Value,
    patch_body: Validator,
}

/// Compiled once per process; `None` (after one notice) when api.json is absent on a user's
/// machine. Under CI (`CI=true`) its absence fails the test.
fn contract() -> Option<&'static Contract> {
    static CONTRACT: OnceLock<Option<Contract>> = OnceLock::new();
    CONTRACT
        .get_or_init(|| {
            let Ok(text) = std::fs::read_to_string(API_JSON) else {
                assert!(
                    !under_ci(),
                    "../shared/kratos/api.json not found beside the checkout, and CI is set: \
                     the Kratos contract checks must run on CI"
                );
                eprintln!(
                    "kratos admin double: ../shared/kratos/api.json not found, request bodies \
                     are not checked against Kratos's schemas"
                );
                return None;
            };
            let spec: Value = serde_json::from_str(&text).expect("api.json is JSON");
            let mut schemas = spec["components"]["schemas"].clone();
            assert!(schemas.is_object(), "api.json has components.schemas");
            openapi_to_json_schema(&mut schemas);
            // The Go type behind identityPatch also decodes `delete` and `patch` (not in the
            // spec); they are not unknown fields, the double answers them with a per-item 400.
            let patch = &mut schemas["identityPatch"]["properties"];
            patch["delete"] = json!({});
            patch["patch"] = json!({});
            let components = json!({ "schemas": schemas });
            let patch_body = compile_component(&components, "patchIdentitiesBody");
            Some(Contract {
                components,
                patch_body,
            })
        })
        .as_ref()
}

fn compile_component(components: &Value, name: &str) -> Validator {
    assert!(
        components["schemas"].get(name).is_some(),
        "api.json has no schema {name}"
    );
    let document = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": components,
    });
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&document)
        .unwrap_or_else(|error| panic!("api.json's {name} does not compile: {error}"))
}

/// OpenAPI 3.0's `nullable: true` is no JSON Schema keyword: widen `type` to admit null.
fn openapi_to_json_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(kind)) = map.get("type")
            {
                let kind = kind.clone();
                map.insert("type".into(), json!([kind, "null"]));
            }
            map.values_mut().for_each(openapi_to_json_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_to_json_schema),
        _ => {}
    }
}

impl Contract {
    /// Everything Kratos would refuse to decode in a bulk body: spec violations and, as Kratos
    /// decodes strictly, fields its types do not have.
    fn check_batch(&self, document: &Value) -> Vec<String> {
        let mut problems: Vec<String> = self
            .patch_body
            .iter_errors(document)
            .map(|error| {
                format!(
                    "#{}: {} (api.json {})",
                    error.instance_path(),
                    shorten(&error.to_string()),
                    error.schema_path()
                )
            })
            .collect();
        let root = json!({ "$ref": "#/components/schemas/patchIdentitiesBody" });
        self.unknown_fields(document, &root, &mut String::new(), &mut problems);
        problems
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        {
            schema = &self.components["schemas"][name];
        }
        schema
    }

    /// Object keys outside a schema's `properties` (where the schema lists properties and says
    /// nothing about `additionalProperties`, i.e. where Kratos decodes into a Go struct).
    fn unknown_fields(
        &self,
        instance: &Value,
        schema: &Value,
        path: &mut String,
        problems: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        match instance {
            Value::Object(map) => {
                let Some(Value::Object(properties)) = schema.get("properties") else {
                    return;
                };
                let strict = schema.get("additionalProperties").is_none();
                for (key, value) in map {
                    let length = path.len();
                    path.push('/');
                    path.push_str(key);
                    match properties.get(key) {
                        Some(property) => self.unknown_fields(value, property, path, problems),
                        None if strict => problems.push(format!(
                            "#{path}: unknown field `{key}` (Kratos decodes strictly: 400)"
                        )),
                        None => {}
                    }
                    path.truncate(length);
                }
            }
            Value::Array(items) => {
                let Some(item_schema) = schema.get("items") else {
                    return;
                };
                for (index, item) in items.iter().enumerate() {
                    let length = path.len();
                    path.push('/');
                    path.push_str(&index.to_string());
                    self.unknown_fields(item, item_schema, path, problems);
                    path.truncate(length);
                }
            }
            _ => {}
        }
    }
}

// --- small helpers ----------------------------------------------------------------------------

/// At most 300 characters of a message (validation errors can quote a whole instance).
fn shorten(message: &str) -> String {
    match message.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// A stable UUID v4-shaped id for an address of an identity.
fn derived_uuid(identity_id: &str, kind: &str, index: usize) -> String {
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        (identity_id, kind, index, salt).hash(&mut hasher);
        hasher.finish().to_be_bytes()
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&half(0));
    bytes[8..].copy_from_slice(&half(1));
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Unpadded base64url, as Kratos encodes schema ids in `schema_url`.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| {
        bytes
            .get(i)
            .and_then(|&b| char::from(b).to_digit(16))
            .map(|d| d as u8)
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Now, as Kratos writes timestamps (RFC 3339, UTC, microseconds).
fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

// --- tests of the double itself ---------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "admin-secret";

    /// A createIdentityBody as the importer sends it.
    fn create(external_id: &str) -> Value {
        let email = format!("{external_id}@example.com");
        json!({
            "schema_id": "default",
            "external_id": external_id,
            "state": "active",
            "traits": { "email": email, "groups": ["staff"] },
            "credentials": { "password": { "config": { "use_password_migration_hook": true } } },
            "verifiable_addresses": [
                { "value": email, "verified": true, "via": "email", "status": "completed" }
            ],
            "recovery_addresses": [{ "value": email, "via": "email" }],
            "metadata_admin": { "cognito_username": external_id },
        })
    }

    fn item(create: Value) -> Value {
        json!({ "patch_id": uuid_v4(), "create": create })
    }

    fn batch(items: Vec<Value>) -> Value {
        json!({ "identities": items })
    }

    async fn send(
        double: &KratosAdminDouble,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", double.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the double answers");
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/json", "{path}");
        (status, response.json().await.expect("a JSON body"))
    }

    async fn patch(double: &KratosAdminDouble, body: &Value) -> (u16, Value) {
        send(double, reqwest::Method::PATCH, BATCH_PATH, None, Some(body)).await
    }

    async fn get(double: &KratosAdminDouble, path: &str) -> (u16, Value) {
        send(double, reqwest::Method::GET, path, None, None).await
    }

    /// Assert `instance` is valid for api.json's schema `name` (when api.json is present).
    fn assert_spec(name: &str, instance: &Value) {
        if let Some(validator) = spec_validator(name) {
            let errors: Vec<String> = validator
                .iter_errors(instance)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?} in {instance}");
        }
    }

    fn is_uuid_v4(text: &str) -> bool {
        let bytes = text.as_bytes();
        text.len() == 36
            && [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-')
            && bytes[14] == b'4'
            && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
            && text
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
    }

    /// One list page: the identities and the `Link` header.
    async fn list_page(double: &KratosAdminDouble, query: &str) -> (Vec<Value>, String) {
        let response = reqwest::get(format!("{}{BATCH_PATH}?{query}", double.url))
            .await
            .expect("the double answers");
        assert_eq!(response.status().as_u16(), 200, "{query}");
        let link = response.headers()["link"].to_str().unwrap().to_owned();
        (response.json().await.unwrap(), link)
    }

    #[tokio::test]
    async fn the_list_pages_in_id_order_by_link_with_password_configs_when_asked() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        let mut ids: Vec<String> = (0..5)
            .map(|i| double.insert_existing(create(&format!("sub-{i}"))))
            .collect();
        let mut hashed = create("sub-hashed");
        hashed["credentials"]["password"]["config"] = json!({"hashed_password": "$2a$04$x"});
        ids.push(double.insert_existing(hashed));
        ids.sort();

        let mut seen = Vec::new();
        let mut query = "include_credential=password&page_size=2".to_owned();
        let mut pages = 0;
        loop {
            let (items, link) = list_page(&double, &query).await;
            pages += 1;
            assert!(link.contains("rel=\"first\""), "{link}");
            for item in &items {
                assert_spec("identity", item);
                assert_eq!(item["credentials"]["password"]["type"], "password");
                let config = &item["credentials"]["password"]["config"];
                if item["external_id"] == "sub-hashed" {
                    assert_eq!(config, &json!({"hashed_password": "$2a$04$x"}));
                } else {
                    assert_eq!(config, &json!({"use_password_migration_hook": true}));
                }
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            let Some(next) = link.split(',').find(|part| part.contains("rel=\"next\"")) else {
                break;
            };
            let target = next.split(';').next().unwrap().trim();
            let target = target.trim_start_matches('<').trim_end_matches('>');
            assert!(target.contains("include_credential=password"), "{target}");
            query = target.split_once('?').unwrap().1.to_owned();
            assert!(pages < 10, "the list pages forever");
        }
        assert_eq!(seen, ids, "every identity once, in id order");
        assert_eq!(pages, 3);

        let (plain, _) = list_page(&double, "page_size=500").await;
        assert_eq!(plain.len(), 6);
        assert!(plain.iter().all(|item| item.get("credentials").is_none()));
        let (some, link) = list_page(&double, &format!("ids={}&ids={}", ids[0], ids[3])).await;
        assert_eq!(some.len(), 2);
        assert!(!link.contains("rel=\"next\""), "{link}");
        assert_eq!(double.list_calls(), 5);
        for query in ["include_credential=nope", "ids=not-a-uuid"] {
            let (status, body) = get(&double, &format!("/admin/identities?{query}")).await;
            assert_eq!(status, 400, "{query}");
            assert_spec("errorGeneric", &body);
        }
    }

    #[tokio::test]
    async fn a_batch_with_a_known_external_id_gives_one_conflict_and_two_creates() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        let seeded = double.insert_existing(create("sub-0"));
        let items = vec![
            item(create("sub-1")),
            item(create("sub-0")),
            item(create("sub-2")),
        ];
        let patch_ids: Vec<Value> = items.iter().map(|i| i["patch_id"].clone()).collect();

        let (status, body) = patch(&double, &batch(items)).await;

        assert_eq!(status, 200, "{body}");
        assert_spec("batchPatchIdentitiesResponse", &body);
        let results = body["identities"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for (result, patch_id) in results.iter().zip(&patch_ids) {
            assert_eq!(
                &result["patch_id"], patch_id,
                "results are in request order"
            );
        }
        assert_eq!(results[0]["action"], "create");
        assert_eq!(results[2]["action"], "create");
        assert_eq!(results[1]["action"], "error");
        assert_eq!(results[1]["error"]["code"], 409);
        assert_eq!(results[1]["error"]["status"], "Conflict");
        assert_eq!(results[1]["error"]["message"], CONFLICT);
        assert!(results[1]["error"]["reason"].is_string());
        assert!(results[1].get("identity").is_none());
        assert_eq!(double.creates(), 2);
        assert_eq!(double.patch_calls(), 1);
        assert_eq!(double.write_calls(), 1);
        assert_eq!(double.batch_sizes(), vec![3]);
        assert!(
            double.contract_violations().is_empty(),
            "{:?}",
            double.contract_violations()
        );

        let stored = double.identities();
        let external_ids: Vec<&str> = stored
            .iter()
            .map(|i| i["external_id"].as_str().unwrap())
            .collect();
        assert_eq!(external_ids, ["sub-0", "sub-1", "sub-2"]);
        assert_eq!(stored[0]["id"], seeded);
        for (identity, result) in stored[1..].iter().zip([&results[0], &results[2]]) {
            let id = identity["id"].as_str().unwrap();
            assert!(is_uuid_v4(id), "{id}");
            assert_eq!(result["identity"], id);
            let mut sent = identity.clone();
            sent.as_object_mut().unwrap().remove("id");
            assert_eq!(sent, create(identity["external_id"].as_str().unwrap()));
        }
        assert_ne!(stored[1]["id"], stored[2]["id"]);
    }

    #[tokio::test]
    async fn a_duplicate_within_one_batch_is_a_conflict() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;

        let body = batch(vec![
            item(create("a")),
            item(create("b")),
            item(create("a")),
        ]);
        let (status, body) = patch(&double, &body).await;

        assert_eq!(status, 200, "{body}");
        let actions: Vec<&str> = body["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["create", "create", "error"]);
        assert_eq!(body["identities"][2]["error"]["code"], 409);
        assert_eq!(double.creates(), 2);
    }

    #[tokio::test]
    async fn a_batch_of_one_conflict_is_a_409_and_a_longer_one_answers_per_item() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        double.insert_existing(create("x"));
        double.insert_existing(create("y"));

        let (status, body) = patch(&double, &batch(vec![item(create("x"))])).await;
        assert_eq!(status, 409, "{body}");
        assert_spec("errorGeneric", &body);
        assert_eq!(body["error"]["code"], 409);
        assert_eq!(body["error"]["status"], "Conflict");
        assert_eq!(body["error"]["message"], CONFLICT);
        assert!(body.get("identities").is_none());

        let (status, body) =
            patch(&double, &batch(vec![item(create("x")), item(create("y"))])).await;
        assert_eq!(status, 200, "{body}");
        let codes: Vec<&Value> = body["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| &result["error"]["code"])
            .collect();
        assert_eq!(codes, [409, 409]);
        assert_eq!(double.creates(), 0);
        assert_eq!(double.identities().len(), 2);
    }

    #[tokio::test]
    async fn the_version_route_answers_v26_2_0_or_what_it_is_told() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        let (status, body) = get(&double, VERSION_PATH).await;
        assert_eq!(status, 200, "{body}");
        assert_spec("version", &body);
        assert_eq!(body, json!({"version": "v26.2.0"}));
        assert_eq!(double.version_calls(), 1);

        let master = KratosAdminDouble::start(AdminDoubleOptions {
            version: Some("master".to_owned()),
            ..AdminDoubleOptions::default()
        })
        .await;
        assert_eq!(
            get(&master, VERSION_PATH).await.1,
            json!({"version": "master"})
        );

        let missing = KratosAdminDouble::start(AdminDoubleOptions {
            version: None,
            ..AdminDoubleOptions::default()
        })
        .await;
        let (status, body) = get(&missing, VERSION_PATH).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(missing.version_calls(), 0);
    }

    #[tokio::test]
    async fn lookup_by_external_id() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        let external_id = "user+1@example.com";
        let mut body = create(external_id);
        body.as_object_mut().unwrap().remove("state");
        let (status, _) = patch(&double, &batch(vec![item(body)])).await;
        assert_eq!(status, 200);
        let id = double.identity_by_external_id(external_id).unwrap()["id"].clone();

        let (status, identity) =
            get(&double, &format!("{LOOKUP_PREFIX}user%2B1%40example.com")).await;

        assert_eq!(status, 200, "{identity}");
        assert_spec("identity", &identity);
        assert_eq!(identity["id"], id);
        assert_eq!(identity["external_id"], external_id);
        assert_eq!(identity["schema_id"], "default");
        assert_eq!(
            identity["schema_url"],
            format!("{}/schemas/ZGVmYXVsdA", double.url)
        );
        assert_eq!(identity["state"], "active", "state defaults to active");
        assert_eq!(
            identity["traits"]["email"],
            external_id.to_owned() + "@example.com"
        );
        assert_eq!(identity["verifiable_addresses"][0]["verified"], true);
        assert_eq!(identity["verifiable_addresses"][0]["status"], "completed");
        assert_eq!(identity["recovery_addresses"][0]["via"], "email");
        assert_eq!(identity["metadata_admin"]["cognito_username"], external_id);
        assert_eq!(identity["metadata_public"], Value::Null);
        assert!(identity.get("credentials").is_none());
        assert_eq!(identity, double.kratos_identity(external_id).unwrap());

        let (status, missing) = get(&double, &format!("{LOOKUP_PREFIX}nobody")).await;

        assert_eq!(status, 404, "{missing}");
        assert_spec("errorGeneric", &missing);
        assert_eq!(
            missing,
            json!({"error": {"code": 404, "status": "Not Found", "message": NOT_FOUND}})
        );
        assert_eq!(double.lookup_calls(), 2);
        assert_eq!(double.write_calls(), 1, "lookups are not writes");
    }

    #[tokio::test]
    async fn an_unknown_field_in_create_is_a_contract_violation() {
        if !contract_available() {
            eprintln!("skipping: ../shared/kratos/api.json not found");
            return;
        }
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        let mut with_unknown = create("u1");
        with_unknown["password"] = json!("top-level, where Kratos has no such field");

        let (status, body) = patch(
            &double,
            &batch(vec![item(with_unknown), item(create("u2"))]),
        )
        .await;

        assert_eq!(status, 400, "{body}");
        assert_spec("errorGeneric", &body);
        let violations = double.contract_violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("#/identities/0/create/password"),
            "{violations:?}"
        );
        assert!(violations[0].contains("unknown field"), "{violations:?}");
        assert_eq!(double.creates(), 0, "a refused body creates nothing");
        assert_eq!(double.patch_calls(), 1);

        // Spec violations: a missing required field, a bad enum, a bad nested field, a bad
        // item key, a patch_id that is not a UUID.
        let mut no_traits = create("u3");
        no_traits.as_object_mut().unwrap().remove("traits");
        let mut bad_state = create("u4");
        bad_state["state"] = json!("blocked");
        let mut bad_address = create("u5");
        bad_address["verifiable_addresses"][0]
            .as_object_mut()
            .unwrap()
            .remove("status");
        let mut bad_flag = create("u6");
        bad_flag["credentials"]["password"]["config"]["use_password_migration_hooks"] = json!(true);
        let mut extra_key = item(create("u7"));
        extra_key["upsert"] = json!(true);
        let mut bad_patch_id = item(create("u8"));
        bad_patch_id["patch_id"] = json!("not-a-uuid");
        let cases = [
            (item(no_traits), "traits"),
            (item(bad_state), "/create/state"),
            (item(bad_address), "status"),
            (item(bad_flag), "use_password_migration_hooks"),
            (extra_key, "upsert"),
            (bad_patch_id, "/patch_id"),
        ];
        for (bad, expected) in cases {
            let before = double.contract_violations().len();
            let (status, body) = patch(&double, &batch(vec![bad])).await;
            assert_eq!(status, 400, "{expected}: {body}");
            let violations = double.contract_violations();
            assert!(violations.len() > before, "{expected}: not recorded");
            assert!(
                violations[before..].iter().any(|v| v.contains(expected)),
                "{expected}: {violations:?}"
            );
        }
        assert_eq!(double.creates(), 0);

        // And the importer's body passes.
        let before = double.contract_violations().len();
        let (status, body) = patch(&double, &batch(vec![item(create("ok"))])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(double.contract_violations().len(), before);
    }

    #[tokio::test]
    async fn admin_paths_need_the_bearer_token_when_one_is_configured() {
        let double = KratosAdminDouble::start(AdminDoubleOptions {
            admin_token: Some(TOKEN.into()),
            identity_schema: Some(json!({"type": "object"})),
            ..AdminDoubleOptions::default()
        })
        .await;
        let body = batch(vec![item(create("t1"))]);
        let patch_method = || reqwest::Method::PATCH;

        for token in [None, Some("wrong")] {
            let (status, answer) =
                send(&double, patch_method(), BATCH_PATH, token, Some(&body)).await;
            assert_eq!(status, 401, "{token:?}: {answer}");
            assert_spec("errorGeneric", &answer);
            assert_eq!(answer["error"]["code"], 401);
            let (status, _) = send(
                &double,
                reqwest::Method::GET,
                &format!("{LOOKUP_PREFIX}t1"),
                token,
                None,
            )
            .await;
            assert_eq!(status, 401, "{token:?}");
        }
        assert_eq!(double.creates(), 0);

        let (status, answer) = send(
            &double,
            patch_method(),
            BATCH_PATH,
            Some(TOKEN),
            Some(&body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let (status, _) = send(
            &double,
            reqwest::Method::GET,
            &format!("{LOOKUP_PREFIX}t1"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(double.creates(), 1);
        assert_eq!(double.patch_calls(), 3, "refused requests are counted too");

        // The public schema endpoint needs no token.
        let (status, schema) = get(&double, "/schemas/default").await;
        assert_eq!(status, 200);
        assert_eq!(schema, json!({"type": "object"}));
    }

    #[tokio::test]
    async fn injected_patch_failures_until_healed() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
        double.fail_patches_from(2, 500);

        let (first, _) = patch(&double, &batch(vec![item(create("f1"))])).await;
        let (second, body) = patch(
            &double,
            &batch(vec![item(create("f2")), item(create("f3"))]),
        )
        .await;
        let (third, _) = patch(&double, &batch(vec![item(create("f2"))])).await;

        assert_eq!(first, 200);
        assert_eq!(second, 500, "{body}");
        assert_spec("errorGeneric", &body);
        assert_eq!(body["error"]["code"], 500);
        assert_eq!(body["error"]["status"], "Internal Server Error");
        assert_eq!(third, 500, "every later PATCH fails too");
        assert_eq!(double.creates(), 1, "a failed PATCH creates nothing");
        assert!(double.identity_by_external_id("f2").is_none());

        double.heal();
        let (fourth, body) = patch(
            &double,
            &batch(vec![item(create("f2")), item(create("f3"))]),
        )
        .await;

        assert_eq!(fourth, 200, "{body}");
        assert_eq!(double.creates(), 3);
        assert_eq!(double.patch_calls(), 4);
        assert_eq!(double.batch_sizes(), vec![1, 2, 1, 2]);
        assert!(double.contract_violations().is_empty());
    }

    #[tokio::test]
    async fn traits_are_validated_against_the_identity_schema() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "traits": {
                    "type": "object",
                    "properties": {
                        "email": { "type": "string", "format": "email" },
                        "groups": { "type": "array", "items": { "type": "string" } }
                    },
                    "required": ["email"]
                }
            }
        });
        let double = KratosAdminDouble::start(AdminDoubleOptions {
            identity_schema: Some(schema.clone()),
            ..AdminDoubleOptions::default()
        })
        .await;
        let mut bad_email = create("s1");
        bad_email["traits"]["email"] = json!("not an email");
        let mut other_schema = create("s3");
        other_schema["schema_id"] = json!("customer");

        let body = batch(vec![
            item(bad_email),
            item(create("s2")),
            item(other_schema),
        ]);
        let (status, body) = patch(&double, &body).await;

        assert_eq!(status, 200, "{body}");
        assert_spec("batchPatchIdentitiesResponse", &body);
        let results = &body["identities"];
        assert_eq!(results[0]["action"], "error");
        assert_eq!(results[0]["error"]["code"], 400);
        let reason = results[0]["error"]["reason"].as_str().unwrap();
        assert!(reason.contains("/traits/email"), "{reason}");
        assert_eq!(results[1]["action"], "create");
        assert_eq!(results[2]["error"]["code"], 400);
        assert!(
            results[2]["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("customer")
        );
        assert_eq!(double.creates(), 1);
        assert!(
            double.contract_violations().is_empty(),
            "a trait error is Kratos's, not the contract's"
        );

        // All items invalid: still 200, with the item's 400 (as the real Kratos answers).
        let mut no_email = create("s4");
        no_email["traits"].as_object_mut().unwrap().remove("email");
        let (status, body) = patch(&double, &batch(vec![item(no_email)])).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["identities"][0]["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("email"),
            "{body}"
        );

        // The schema is served (by id and by base64url id), other ids are 404.
        for path in ["/schemas/default", "/schemas/ZGVmYXVsdA"] {
            let (status, served) = get(&double, path).await;
            assert_eq!((status, &served), (200, &schema), "{path}");
        }
        let (status, body) = get(&double, "/schemas/customer").await;
        assert_eq!(status, 404);
        assert_spec("errorGeneric", &body);
    }

    #[tokio::test]
    async fn oversized_batches_and_bodies_are_refused() {
        let double = KratosAdminDouble::start(AdminDoubleOptions {
            validate_contract: false,
            ..AdminDoubleOptions::default()
        })
        .await;

        let too_many: Vec<Value> = (0..=MAX_BATCH_ITEMS)
            .map(|i| item(create(&format!("m{i}"))))
            .collect();
        let (status, body) = patch(&double, &batch(too_many)).await;
        assert_eq!(status, 400, "{body}");
        assert_spec("errorGeneric", &body);

        let mut huge = create("huge");
        huge["traits"]["padding"] = json!("x".repeat(MAX_BODY_BYTES));
        let (status, body) = patch(&double, &batch(vec![item(huge)])).await;
        assert_eq!(status, 413, "{body}");
        assert_spec("errorGeneric", &body);

        let (status, _) = send(
            &double,
            reqwest::Method::POST,
            "/admin/identities/x",
            None,
            None,
        )
        .await;
        assert_eq!(status, 404);

        assert_eq!(double.creates(), 0);
        assert_eq!(
            double.contract_violations().len(),
            2,
            "{:?}",
            double.contract_violations()
        );
        assert_eq!(double.batch_sizes(), vec![MAX_BATCH_ITEMS + 1, 1]);
        assert_eq!(double.write_calls(), 3);
    }

    #[tokio::test]
    async fn items_without_create_are_per_item_errors() {
        let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;

        let body = batch(vec![
            json!({ "patch_id": uuid_v4(), "delete": true }),
            item(create("c1")),
        ]);
        let (status, body) = patch(&double, &body).await;

        assert_eq!(status, 200, "{body}");
        assert_eq!(body["identities"][0]["action"], "error");
        assert_eq!(body["identities"][0]["error"]["code"], 400);
        assert_eq!(body["identities"][1]["action"], "create");
        assert!(double.contract_violations().is_empty());
    }

    #[tokio::test]
    async fn many_large_batches_over_one_keep_alive_client() {
        let double = KratosAdminDouble::start(AdminDoubleOptions {
            validate_contract: false,
            ..AdminDoubleOptions::default()
        })
        .await;
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();

        for round in 0..10 {
            let items = (0..MAX_BATCH_ITEMS)
                .map(|i| item(create(&format!("k{round}-{i}"))))
                .collect();
            let response = client
                .patch(format!("{}{BATCH_PATH}", double.url))
                .json(&batch(items))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["identities"].as_array().unwrap().len(),
                MAX_BATCH_ITEMS
            );
        }

        eprintln!(
            "10 × {MAX_BATCH_ITEMS} identities in {:?}",
            started.elapsed()
        );
        assert_eq!(double.creates(), 10 * MAX_BATCH_ITEMS);
        assert_eq!(double.identities().len(), 10 * MAX_BATCH_ITEMS);
        assert!(double.identity_by_external_id("k9-999").is_some());
    }

    #[test]
    fn helpers() {
        assert_eq!(base64url(b"default"), "ZGVmYXVsdA");
        assert_eq!(base64url(b"ab"), "YWI");
        assert_eq!(base64url(b"abc"), "YWJj");
        assert_eq!(percent_decode("a%2Bb%40c%2"), "a+b@c%2");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert!(is_uuid_v4(&uuid_v4()));
        assert!(is_uuid_v4(&derived_uuid("x", "y", 1)));
        assert_eq!(now_rfc3339().len(), "2026-01-01T00:00:00.000000Z".len());
    }
}
