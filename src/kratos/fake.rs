//! A small loopback Kratos admin API for unit tests of the version detection and of the
//! batch checks: `GET /admin/version`, `GET /admin/identities/by/external/{id}`,
//! `GET /admin/identities?ids=…&credentials_identifier=…` and `PATCH /admin/identities`, which
//! on the legacy line rolls the whole batch back after a conflict yet answers `create` for the
//! other items, as Kratos v1.3.1 does. Uniqueness is by `traits.email` (lower-cased, trimmed)
//! and, on the current line, by `external_id`. `POST /admin/recovery/code` issues a fixed code
//! for a stored identity (a JSON 404 otherwise, and a malformed answer for the identity id
//! `garbled`); `/admin/recovery/link` is not a route here (a text 404).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub(crate) struct FakeOptions {
    /// `GET /admin/version` answers `{"version": …}`; `None`: a text 404 (no such route).
    pub version: Option<String>,
    /// v1.3.1's behaviour: rollback on conflict, no `external_id`, a text 404 for
    /// `/admin/identities/by/external/…`.
    pub legacy: bool,
    /// Answer `create` for every item but store nothing (a Kratos that keeps rolling back).
    pub store_nothing: bool,
    /// `GET /admin/version` answers this status with a JSON error.
    pub version_status: Option<u16>,
}

impl FakeOptions {
    pub fn legacy() -> Self {
        Self {
            version: Some("v1.3.1".to_owned()),
            legacy: true,
            store_nothing: false,
            version_status: None,
        }
    }

    pub fn current() -> Self {
        Self {
            version: Some("v26.2.0".to_owned()),
            legacy: false,
            ..Self::legacy()
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub id: String,
    pub body: Value,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub patches: usize,
    pub id_lookups: usize,
    pub identifier_lookups: usize,
    pub probes: usize,
    pub versions: usize,
}

struct Shared {
    options: FakeOptions,
    identities: Mutex<Vec<Stored>>,
    counts: Mutex<Counts>,
}

pub(crate) struct FakeKratos {
    pub url: url::Url,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl Drop for FakeKratos {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeKratos {
    pub async fn start(options: FakeOptions) -> Self {
        let shared = Arc::new(Shared {
            options,
            identities: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::default()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .listen(listener)
        .expect("listen")
        .workers(1)
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

    /// An identity created beforehand (by another tool, or by an earlier run); its id.
    pub fn insert(&self, body: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        lock(&self.shared.identities).push(Stored {
            id: id.clone(),
            body,
        });
        id
    }

    pub fn identities(&self) -> Vec<Stored> {
        lock(&self.shared.identities).clone()
    }

    pub fn counts<T>(&self, read: impl FnOnce(&Counts) -> T) -> T {
        read(&lock(&self.shared.counts))
    }
}

fn email_of(body: &Value) -> Option<String> {
    body.pointer("/traits/email")
        .and_then(Value::as_str)
        .map(|email| email.trim().to_lowercase())
}

fn json_error(code: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
        .content_type("application/json")
        .body(json!({"error": {"code": code, "status": "error", "message": message}}).to_string())
}

fn text_not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("404 page not found\n")
}

fn listed(stored: &Stored) -> Value {
    let mut identity = stored.body.clone();
    identity["id"] = stored.id.clone().into();
    identity
}

async fn handle(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = request.path();
    let method = request.method().clone();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    match (method, path) {
        (Method::GET, "/admin/version") => {
            lock(&shared.counts).versions += 1;
            if let Some(status) = shared.options.version_status {
                return json_error(status, "injected");
            }
            match &shared.options.version {
                Some(version) => HttpResponse::Ok().json(json!({ "version": version })),
                None => text_not_found(),
            }
        }
        (Method::GET, path) if path.starts_with("/admin/identities/by/external/") => {
            lock(&shared.counts).probes += 1;
            if shared.options.legacy {
                return text_not_found();
            }
            let external_id = &path["/admin/identities/by/external/".len()..];
            let identities = lock(&shared.identities);
            match identities
                .iter()
                .find(|stored| stored.body["external_id"] == external_id)
            {
                Some(stored) => HttpResponse::Ok().json(listed(stored)),
                None => json_error(404, "Unable to locate the resource"),
            }
        }
        (Method::GET, "/admin/identities") => {
            let ids: Vec<&str> = query
                .iter()
                .filter(|(key, _)| key == "ids")
                .map(|(_, value)| value.as_str())
                .collect();
            let identifier = query
                .iter()
                .find(|(key, _)| key == "credentials_identifier")
                .map(|(_, value)| value.trim().to_lowercase());
            {
                let mut counts = lock(&shared.counts);
                if !ids.is_empty() {
                    counts.id_lookups += 1;
                }
                if identifier.is_some() {
                    counts.identifier_lookups += 1;
                }
            }
            let identities = lock(&shared.identities);
            let found: Vec<Value> = identities
                .iter()
                .filter(|stored| ids.is_empty() || ids.contains(&stored.id.as_str()))
                .filter(|stored| {
                    identifier.is_none() || email_of(&stored.body).as_ref() == identifier.as_ref()
                })
                .map(listed)
                .collect();
            HttpResponse::Ok().json(found)
        }
        (Method::POST, "/admin/recovery/code") => {
            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = asked["identity_id"].as_str().unwrap_or_default();
            if id == "garbled" {
                return HttpResponse::Created()
                    .content_type("application/json")
                    .body(r#"{"recovery_code": "secret-123456", "recovery_link": 7"#);
            }
            if !lock(&shared.identities)
                .iter()
                .any(|stored| stored.id == id)
            {
                return json_error(404, "Unable to locate the resource");
            }
            HttpResponse::Created().json(json!({
                "recovery_code": "123456",
                "recovery_link": format!("http://kratos/self-service/recovery?flow=f-{id}"),
                "expires_at": "2026-12-04T00:00:00Z",
            }))
        }
        (Method::PATCH, "/admin/identities") => {
            lock(&shared.counts).patches += 1;
            batch(&shared, &body)
        }
        _ => text_not_found(),
    }
}

fn batch(shared: &Shared, body: &[u8]) -> HttpResponse {
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return json_error(400, "not JSON");
    };
    let items = document["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let legacy = shared.options.legacy;
    if legacy
        && items
            .iter()
            .any(|item| item.pointer("/create/external_id").is_some())
    {
        return json_error(400, "json: unknown field \"external_id\"");
    }
    let mut identities = lock(&shared.identities);
    let mut tentative: Vec<Stored> = Vec::new();
    let mut results = Vec::new();
    let mut failed = false;
    for item in items {
        let create = item["create"].clone();
        let taken = |other: &Value| {
            let same_email = email_of(other).is_some() && email_of(other) == email_of(&create);
            let same_external = !legacy
                && create.get("external_id").is_some()
                && other.get("external_id") == create.get("external_id");
            same_email || same_external
        };
        let conflict = identities.iter().any(|stored| taken(&stored.body))
            || tentative.iter().any(|stored| taken(&stored.body));
        let mut result = json!({ "patch_id": item["patch_id"] });
        if conflict {
            failed = true;
            result["action"] = "error".into();
            result["error"] = json!({"code": 409, "status": "Conflict", "message": "exists"});
        } else {
            let id = uuid::Uuid::new_v4().to_string();
            result["action"] = "create".into();
            result["identity"] = id.clone().into();
            tentative.push(Stored { id, body: create });
        }
        results.push(result);
    }
    let rolled_back = legacy && failed;
    if !rolled_back && !shared.options.store_nothing {
        identities.extend(tentative);
    }
    HttpResponse::Ok().json(json!({ "identities": results }))
}
