//! Checks the `kratos-hooks/` examples: the kratos.yml fragments against Kratos's own config
//! schema (`../shared/kratos/config.schema.json`, v26.2.0, and `v1.3.1/config.schema.json`),
//! the jsonnet bodies against our parsers (the migrate hook's and the confirmation hooks'),
//! and the example identity schema.

use std::error::Error;
use std::path::PathBuf;

use cognito_bridge::confirm::ConfirmRequest;
use cognito_bridge::hook::{ClientIpRule, HookRequest};
use jsonschema::{Draft, Retrieve, Uri, Validator};
use rsjsonnet_lang::arena::Arena;
use rsjsonnet_lang::interner::InternedStr;
use rsjsonnet_lang::program::{
    Callbacks, EvalStackTraceItem, ImportError, NativeError, Program, Thunk, Value as JsonnetValue,
};
use rsjsonnet_lang::span::SpanId;
use serde_json::{Value, json};
use testkit::under_ci;

const KRATOS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/kratos");

const DEFAULT_FRAGMENT: &str = include_str!("../kratos-hooks/kratos.yml");
const EXTENDED_FRAGMENT: &str = include_str!("../kratos-hooks/kratos.extended-body.yml");
const BODY_JSONNET: &str = include_str!("../kratos-hooks/password-migration.jsonnet");
const LOGIN_AFTER_JSONNET: &str = include_str!("../kratos-hooks/login-after.jsonnet");
const SETTINGS_AFTER_JSONNET: &str = include_str!("../kratos-hooks/settings-after.jsonnet");
const IDENTITY_SCHEMA: &str = include_str!("../kratos-hooks/identity.schema.json");

const HOOK_URL: &str = "http://cognito-bridge:8080/hooks/password-migration";

// --- kratos.yml fragments ---------------------------------------------------------------------

/// Kratos's config schema has one external `$ref` that Kratos resolves itself; stub it, refuse
/// anything else so a new external reference is noticed.
struct KratosOwnRefs;

impl Retrieve for KratosOwnRefs {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn Error + Send + Sync>> {
        if uri.as_str().trim_end_matches('/') == "ory://tracing-config" {
            Ok(json!({ "type": "object" }))
        } else {
            Err(format!("unexpected external $ref {uri}").into())
        }
    }
}

/// The validator for kratos.yml (Kratos v26.2.0), or `None` (after a notice) when
/// `../shared/kratos` is absent on a user's machine. Under CI its absence fails the test
/// instead of skipping it.
fn kratos_config_validator() -> Option<Validator> {
    config_validator_in(PathBuf::from(KRATOS_DIR))
}

/// The same for Kratos v1.3.1's config schema (`../shared/kratos/v1.3.1/`).
fn kratos_v1_3_config_validator() -> Option<Validator> {
    config_validator_in(PathBuf::from(KRATOS_DIR).join("v1.3.1"))
}

fn config_validator_in(dir: PathBuf) -> Option<Validator> {
    if !dir.is_dir() {
        assert!(
            !under_ci(),
            "{} not found beside the checkout, and CI is set: these tests must run on CI",
            dir.display()
        );
        eprintln!(
            "skipping: {} not found (set CI=true to make this a failure)",
            dir.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(dir.join("config.schema.json"))
        .unwrap_or_else(|e| panic!("read {}/config.schema.json: {e}", dir.display()));
    let schema: Value = serde_json::from_str(&text).expect("config.schema.json is JSON");
    let validator = jsonschema::options()
        .with_draft(Draft::Draft7)
        .should_validate_formats(true)
        .with_retriever(KratosOwnRefs)
        .build(&schema)
        .expect("Kratos's config schema compiles");
    Some(validator)
}

/// The smallest kratos.yml that Kratos's schema accepts, to merge the fragments into.
fn minimal_kratos_config() -> Value {
    json!({
        "dsn": "memory",
        "identity": {
            "default_schema_id": "default",
            "schemas": [
                { "id": "default", "url": "file:///etc/config/kratos/identity.schema.json" }
            ]
        },
        "selfservice": {
            "default_browser_return_url": "https://app.example.com/"
        }
    })
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("fragment is valid YAML")
}

/// Deep-merges `overlay` into `base` (objects key by key, anything else replaced), as stacking
/// `kratos.yml` files does.
fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

fn with_fragment(fragment: &Value) -> Value {
    let mut config = minimal_kratos_config();
    merge(&mut config, fragment);
    config
}

fn schema_errors(validator: &Validator, config: &Value) -> Vec<String> {
    validator
        .iter_errors(config)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

fn migrate_hook(fragment: &Value) -> &Value {
    &fragment["selfservice"]["methods"]["password"]["config"]["migrate_hook"]
}

#[test]
fn minimal_base_config_is_valid() {
    let Some(validator) = kratos_config_validator() else {
        return;
    };
    let errors = schema_errors(&validator, &minimal_kratos_config());
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn default_fragment_is_a_valid_kratos_config() {
    let fragment = yaml(DEFAULT_FRAGMENT);
    assert_hook_settings(&fragment);
    assert!(
        migrate_hook(&fragment)["config"].get("body").is_none(),
        "the default fragment must keep Kratos's default body (works on every version)"
    );

    let Some(validator) = kratos_config_validator() else {
        return;
    };
    let errors = schema_errors(&validator, &with_fragment(&fragment));
    assert!(errors.is_empty(), "{errors:#?}");
    // The line the tests run for real, and the one many deployments still run.
    let v1_3 = kratos_v1_3_config_validator().expect("v1.3.1 schema beside v26.2.0's");
    let errors = schema_errors(&v1_3, &with_fragment(&fragment));
    assert!(errors.is_empty(), "v1.3.1: {errors:#?}");
}

#[test]
fn extended_body_fragment_is_a_valid_kratos_config() {
    let fragment = yaml(EXTENDED_FRAGMENT);
    assert_hook_settings(&fragment);
    let body = migrate_hook(&fragment)["config"]["body"]
        .as_str()
        .expect("extended fragment sets `body`");
    assert!(body.starts_with("file:///"), "body is a file URI: {body}");
    assert!(
        body.ends_with("/password-migration.jsonnet"),
        "body names our jsonnet: {body}"
    );

    let Some(validator) = kratos_config_validator() else {
        return;
    };
    let errors = schema_errors(&validator, &with_fragment(&fragment));
    assert!(errors.is_empty(), "{errors:#?}");
    // v1.3.1 refuses it for the migrate hook's `body` alone (its confirmation hooks are fine).
    let v1_3 = kratos_v1_3_config_validator().expect("v1.3.1 schema beside v26.2.0's");
    let paths: Vec<String> = v1_3
        .iter_errors(&with_fragment(&fragment))
        .map(|error| error.instance_path().to_string())
        .collect();
    assert!(!paths.is_empty(), "v1.3.1 takes no migrate hook body");
    assert!(
        paths.iter().all(|path| path.starts_with(HOOK_CONFIG_PATH)),
        "{paths:?}"
    );
}

fn assert_hook_settings(fragment: &Value) {
    let password = &fragment["selfservice"]["methods"]["password"];
    assert_eq!(password["enabled"], json!(true));
    let hook = migrate_hook(fragment);
    assert_eq!(hook["enabled"], json!(true));
    let config = &hook["config"];
    assert_eq!(config["url"], json!(HOOK_URL));
    assert_eq!(config["method"], json!("POST"));
    let auth = &config["auth"];
    assert_eq!(auth["type"], json!("api_key"));
    assert_eq!(auth["config"]["name"], json!("Authorization"));
    assert_eq!(auth["config"]["in"], json!("header"));
    let value = auth["config"]["value"].as_str().expect("api key value");
    assert!(
        value.starts_with("Bearer "),
        "Authorization value is a bearer key: {value}"
    );
    assert_confirmation_hooks(fragment, auth);
}

/// The login-after and settings-after `web_hook`s: POST to the bridge's paths with the
/// migrate hook's key, our jsonnet as body, and `response.ignore` (Kratos never waits).
fn assert_confirmation_hooks(fragment: &Value, migrate_hook_auth: &Value) {
    for (flow, path, jsonnet) in [
        ("login", "/hooks/login-after", "login-after.jsonnet"),
        (
            "settings",
            "/hooks/settings-after",
            "settings-after.jsonnet",
        ),
    ] {
        let hooks = fragment["selfservice"]["flows"][flow]["after"]["password"]["hooks"]
            .as_array()
            .unwrap_or_else(|| panic!("{flow}.after.password.hooks is a list"));
        let web_hooks: Vec<&Value> = hooks.iter().filter(|h| h["hook"] == "web_hook").collect();
        assert_eq!(web_hooks.len(), 1, "{flow}: one web_hook");
        let config = &web_hooks[0]["config"];
        assert_eq!(
            config["url"],
            json!(HOOK_URL.replace("/hooks/password-migration", path))
        );
        assert_eq!(config["method"], json!("POST"));
        assert_eq!(config["response"], json!({"ignore": true}));
        assert!(config.get("can_interrupt").is_none());
        assert_eq!(&config["auth"], migrate_hook_auth, "{flow}: the same key");
        assert_eq!(
            config["body"],
            json!(format!("file:///etc/config/kratos/{jsonnet}"))
        );
    }
}

#[test]
fn broken_fragments_fail_validation() {
    let Some(validator) = kratos_config_validator() else {
        return;
    };
    let breakages: [(&str, &str, Value); 7] = [
        ("unknown auth type", "/auth/type", json!("nonsense")),
        (
            "api key sent in the query",
            "/auth/config/in",
            json!("query"),
        ),
        ("api key without a value", "/auth/config/value", Value::Null),
        ("method other than POST", "/method", json!("GET")),
        (
            "body with an unsupported scheme",
            "/body",
            json!("ftp://example.com/body.jsonnet"),
        ),
        ("url that is not a URI", "/url", json!("not a url")),
        (
            "web-hook option the migration hook lacks",
            "/can_interrupt",
            json!(true),
        ),
    ];
    for (what, pointer, value) in breakages {
        let mut fragment = yaml(EXTENDED_FRAGMENT);
        let config =
            fragment["selfservice"]["methods"]["password"]["config"]["migrate_hook"]["config"]
                .as_object_mut()
                .expect("migrate_hook.config is an object");
        set_or_remove(config, pointer, value);
        let config = with_fragment(&fragment);
        let paths: Vec<String> = validator
            .iter_errors(&config)
            .map(|error| error.instance_path().to_string())
            .collect();
        assert!(
            !paths.is_empty(),
            "{what}: Kratos's schema should refuse it"
        );
        assert!(
            paths.iter().all(|path| path.starts_with(HOOK_CONFIG_PATH)),
            "{what}: refused for another reason: {paths:?}"
        );
    }
}

const HOOK_CONFIG_PATH: &str = "/selfservice/methods/password/config/migrate_hook/config";

/// The schemas check the confirmation hooks too: a broken `web_hook` is refused where it is.
#[test]
fn broken_confirmation_hooks_fail_validation() {
    let (Some(v26), Some(v1_3)) = (kratos_config_validator(), kratos_v1_3_config_validator())
    else {
        return;
    };
    let login_hook = |fragment: &mut Value| -> serde_json::Map<String, Value> {
        fragment["selfservice"]["flows"]["login"]["after"]["password"]["hooks"][0]["config"]
            .as_object()
            .expect("the login-after web_hook config")
            .clone()
    };
    let refused_at = |validator: &Validator, config: &Value| -> Vec<String> {
        validator
            .iter_errors(config)
            .map(|error| error.instance_path().to_string())
            .collect()
    };
    const AT: &str = "/selfservice/flows/login/after/password/hooks/0";
    let breakages: [(&str, &str, Value, bool); 3] = [
        ("no method", "/method", Value::Null, true),
        ("a url that is not a URI", "/url", json!("not a url"), true),
        // `config.id` came with v25.4.0: v1.3.1 refuses it, v26.2.0 takes it.
        ("an id", "/id", json!("cognito-bridge-login"), false),
    ];
    for (what, pointer, value, refused_by_v26) in breakages {
        let mut fragment = yaml(DEFAULT_FRAGMENT);
        let mut hook = login_hook(&mut fragment);
        set_or_remove(&mut hook, pointer, value);
        fragment["selfservice"]["flows"]["login"]["after"]["password"]["hooks"][0]["config"] =
            Value::Object(hook);
        let config = with_fragment(&fragment);
        let v1_3_paths = refused_at(&v1_3, &config);
        assert!(!v1_3_paths.is_empty(), "{what}: v1.3.1 should refuse it");
        assert!(
            v1_3_paths.iter().all(|path| path.starts_with(AT)),
            "{what}: {v1_3_paths:?}"
        );
        assert_eq!(
            !refused_at(&v26, &config).is_empty(),
            refused_by_v26,
            "{what}: v26.2.0"
        );
    }
}

/// Sets the value at a `/a/b` pointer inside `object`; `Null` removes the key instead.
fn set_or_remove(object: &mut serde_json::Map<String, Value>, pointer: &str, value: Value) {
    let mut keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = keys.pop().expect("pointer has a key");
    let mut target = object;
    for key in keys {
        target = target
            .get_mut(key)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("no object at {key} in {pointer}"));
    }
    if value.is_null() {
        target.remove(last);
    } else {
        target.insert(last.to_owned(), value);
    }
}

// --- the jsonnet body -------------------------------------------------------------------------

const IDENTITY_ID: &str = "9f425a8d-7efc-4768-8f23-7647a74fdf13";
const EXTERNAL_ID: &str = "6c2ad6c2-9c0e-4d4b-8f57-3b0b4a3f1e11";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";
const PASSWORD: &str = "correct horse battery staple";

/// Evaluates the body the way Kratos does: the file is a function of one top-level argument
/// `ctx`, the JSON context given as jsonnet code.
fn render_body(ctx: &Value) -> Value {
    let arena = Arena::new();
    let mut program = Program::new(&arena);
    let ctx_source = ctx.to_string();
    let ctx = load(&mut program, ctx_source.as_bytes(), "ctx.json");
    let body = load(
        &mut program,
        BODY_JSONNET.as_bytes(),
        "password-migration.jsonnet",
    );
    let ctx_name = program.intern_str("ctx");
    let rendered = program
        .eval_call(&body, &[], &[(ctx_name, ctx)], &mut NoImports)
        .and_then(|value| program.manifest_json(&value, false))
        .unwrap_or_else(|error| panic!("the jsonnet failed: {error:?}"));
    serde_json::from_str(&rendered).expect("the body is JSON")
}

fn load<'p>(program: &mut Program<'p>, source: &[u8], name: &str) -> Thunk<'p> {
    let (span_ctx, _) = program
        .span_manager_mut()
        .insert_source_context(source.len());
    program
        .load_source(span_ctx, source, true, name)
        .unwrap_or_else(|error| panic!("{name} does not parse: {error:?}"))
}

/// Kratos's jsonnet VM offers no imports or native functions to a body; neither do we.
struct NoImports;

impl<'p> Callbacks<'p> for NoImports {
    fn import(
        &mut self,
        _: &mut Program<'p>,
        _: SpanId,
        _: &str,
    ) -> Result<Thunk<'p>, ImportError> {
        Err(ImportError)
    }

    fn import_str(
        &mut self,
        _: &mut Program<'p>,
        _: SpanId,
        _: &str,
    ) -> Result<String, ImportError> {
        Err(ImportError)
    }

    fn import_bin(
        &mut self,
        _: &mut Program<'p>,
        _: SpanId,
        _: &str,
    ) -> Result<Vec<u8>, ImportError> {
        Err(ImportError)
    }

    fn trace(&mut self, _: &mut Program<'p>, _: &str, _: &[EvalStackTraceItem]) {}

    fn native_call(
        &mut self,
        _: &mut Program<'p>,
        _: InternedStr<'p>,
        _: &[JsonnetValue<'p>],
    ) -> Result<JsonnetValue<'p>, NativeError> {
        Err(NativeError)
    }
}

/// A context shaped like the one Kratos v25.4.0+ builds for the migration hook: its web-hook
/// template context (flow, request_*, identity when known) plus identifier and password.
fn kratos_ctx(request_headers: Value, identity: Option<Value>) -> Value {
    let mut ctx = json!({
        "identifier": "Alice@Example.com ",
        "password": PASSWORD,
        "flow": {
            "id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
            "type": "browser",
            "state": "choose_method",
            "requested_aal": "aal1",
            "request_url": "https://auth.example.com/self-service/login/browser",
            "ui": { "action": "https://auth.example.com/self-service/login?flow=0f1e", "method": "POST", "nodes": [] }
        },
        "request_headers": request_headers,
        "request_method": "POST",
        "request_url": "https://auth.example.com/self-service/login?flow=0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "request_cookies": { "csrf_token_806060ca5bf70dff3caa0e5c860002aade9d470a5a4dce73bcfa7ba10778f481": "token" }
    });
    if let Some(identity) = identity {
        ctx["identity"] = identity;
    }
    ctx
}

fn kratos_identity(external_id: Option<&str>) -> Value {
    let mut identity = json!({
        "id": IDENTITY_ID,
        "schema_id": "default",
        "schema_url": "https://auth.example.com/schemas/ZGVmYXVsdA",
        "state": "active",
        "traits": { "email": "alice@example.com", "groups": ["admins"] },
        "metadata_public": null,
        "verifiable_addresses": [],
        "recovery_addresses": [],
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:05Z"
    });
    if let Some(external_id) = external_id {
        identity["external_id"] = json!(external_id);
    }
    identity
}

fn browser_headers() -> Value {
    json!({
        "Accept": ["text/html"],
        "Cookie": ["csrf_token=token"],
        "User-Agent": [USER_AGENT],
        "X-Forwarded-For": ["203.0.113.7, 10.0.0.2"],
        "X-Real-Ip": ["10.0.0.2"]
    })
}

fn parse(body: &Value) -> HookRequest {
    HookRequest::from_json(body.to_string().as_bytes())
        .unwrap_or_else(|error| panic!("our hook refuses the rendered body: {error}"))
}

#[test]
fn jsonnet_body_with_all_headers_and_identity() {
    let mut headers = browser_headers();
    headers["True-Client-Ip"] = json!(["198.51.100.23"]);
    let body = render_body(&kratos_ctx(
        headers,
        Some(kratos_identity(Some(EXTERNAL_ID))),
    ));

    assert_eq!(body["password"], json!(PASSWORD));
    assert_eq!(
        body["client_headers"],
        json!({
            "x-forwarded-for": ["203.0.113.7, 10.0.0.2"],
            "x-real-ip": ["10.0.0.2"],
            "true-client-ip": ["198.51.100.23"],
        }),
        "the address headers pass as they came, and nothing else (no cookie)"
    );
    let request = parse(&body);
    assert_eq!(
        request.identifier(),
        "Alice@Example.com ",
        "identifier passes as typed"
    );
    assert_eq!(request.identity_id(), Some(IDENTITY_ID));
    assert_eq!(request.external_id(), Some(EXTERNAL_ID));
    assert_eq!(
        request.client_ip(&ClientIpRule::new(Vec::new(), Some("True-Client-Ip"))),
        Some("198.51.100.23".parse().unwrap()),
        "True-Client-IP when configured"
    );
    assert_eq!(request.user_agent(), Some(USER_AGENT));
}

#[test]
fn jsonnet_body_gives_the_address_the_proxies_appended() {
    let body = render_body(&kratos_ctx(
        browser_headers(),
        Some(kratos_identity(Some(EXTERNAL_ID))),
    ));
    let request = parse(&body);
    // "203.0.113.7, 10.0.0.2": the client wrote the left entry itself for all we know.
    assert_eq!(
        request.client_ip(&ClientIpRule::default()),
        Some("10.0.0.2".parse().unwrap())
    );
    let behind_proxies = ClientIpRule::new(vec!["10.0.0.0/8".parse().unwrap()], None);
    assert_eq!(
        request.client_ip(&behind_proxies),
        Some("203.0.113.7".parse().unwrap())
    );

    let headers = json!({ "X-Real-Ip": ["192.0.2.44"], "User-Agent": [USER_AGENT] });
    let request = parse(&render_body(&kratos_ctx(headers, None)));
    assert_eq!(request.client_ip(&ClientIpRule::default()), None);
    assert_eq!(
        request.client_ip(&ClientIpRule::new(Vec::new(), Some("X-Real-Ip"))),
        Some("192.0.2.44".parse().unwrap()),
        "X-Real-IP only when configured"
    );
}

#[test]
fn jsonnet_body_matches_header_names_in_any_case() {
    let headers = json!({
        "user-agent": [USER_AGENT],
        "x-forwarded-for": [" 203.0.113.8 "],
        "TRUE-CLIENT-IP": [""]
    });
    let request = parse(&render_body(&kratos_ctx(headers, None)));
    assert_eq!(request.user_agent(), Some(USER_AGENT));
    assert_eq!(
        request.client_ip(&ClientIpRule::new(Vec::new(), Some("True-Client-IP"))),
        Some("203.0.113.8".parse().unwrap()),
        "an empty header is no address, spaces are trimmed"
    );
}

#[test]
fn jsonnet_body_without_headers_or_identity_has_nulls() {
    for headers in [json!({}), Value::Null] {
        let body = render_body(&kratos_ctx(headers, None));
        assert_eq!(
            body,
            json!({
                "identifier": "Alice@Example.com ",
                "password": PASSWORD,
                "identity_id": null,
                "external_id": null,
                "client_headers": {},
                "user_agent": null
            })
        );
        let request = parse(&body);
        assert_eq!(request.identifier(), "Alice@Example.com ");
        assert_eq!(request.identity_id(), None);
        assert_eq!(request.external_id(), None);
        assert_eq!(request.client_ip(&ClientIpRule::default()), None);
        assert_eq!(request.user_agent(), None);
    }
}

#[test]
fn jsonnet_body_for_identity_without_external_id() {
    for identity in [
        kratos_identity(None),
        {
            let mut identity = kratos_identity(None);
            identity["external_id"] = Value::Null;
            identity
        },
        kratos_identity(Some("")),
    ] {
        let body = render_body(&kratos_ctx(browser_headers(), Some(identity)));
        assert_eq!(body["external_id"], Value::Null);
        let request = parse(&body);
        assert_eq!(request.identity_id(), Some(IDENTITY_ID));
        assert_eq!(request.external_id(), None);
        assert_eq!(request.user_agent(), Some(USER_AGENT));
    }

    let body = render_body(&kratos_ctx(browser_headers(), Some(Value::Null)));
    assert_eq!(
        parse(&body).identity_id(),
        None,
        "a null identity is no identity"
    );
}

// --- the confirmation hooks' jsonnet ----------------------------------------------------------

/// Renders a confirmation body like [`render_body`]; `Err` with the evaluation error.
fn render_confirmation(source: &str, ctx: &Value) -> Result<Value, String> {
    let arena = Arena::new();
    let mut program = Program::new(&arena);
    let ctx_source = ctx.to_string();
    let ctx = load(&mut program, ctx_source.as_bytes(), "ctx.json");
    let body = load(&mut program, source.as_bytes(), "confirmation.jsonnet");
    let ctx_name = program.intern_str("ctx");
    program
        .eval_call(&body, &[], &[(ctx_name, ctx)], &mut NoImports)
        .and_then(|value| program.manifest_json(&value, false))
        .map(|rendered| serde_json::from_str(&rendered).expect("the body is JSON"))
        .map_err(|error| format!("{error:?}"))
}

/// A context shaped like the one Kratos v1.3.1 builds for a login-after or settings-after
/// `web_hook` (`templateContext`: flow, allow-listed headers, identity without credentials;
/// a session after login only).
fn confirmation_ctx(identity: Option<Value>, with_session: bool) -> Value {
    let mut ctx = json!({
        "flow": { "id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "type": "api", "state": "passed_challenge" },
        "request_headers": { "Accept": ["application/json"], "User-Agent": [USER_AGENT] },
        "request_method": "POST",
        "request_url": "https://auth.example.com/self-service/login?flow=0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "request_cookies": {}
    });
    if let Some(identity) = identity {
        if with_session {
            ctx["session"] = json!({ "id": "5e55", "active": true, "identity": identity.clone() });
        }
        ctx["identity"] = identity;
    }
    ctx
}

#[test]
fn confirmation_jsonnet_sends_the_ids_and_traits_only() {
    for (source, with_session) in [(LOGIN_AFTER_JSONNET, true), (SETTINGS_AFTER_JSONNET, false)] {
        // v1.3.x: no external_id on identities.
        let ctx = confirmation_ctx(Some(kratos_identity(None)), with_session);
        let body = render_confirmation(source, &ctx).unwrap();
        assert_eq!(
            body,
            json!({
                "identity_id": IDENTITY_ID,
                "external_id": null,
                "traits": { "email": "alice@example.com", "groups": ["admins"] }
            })
        );
        let request = ConfirmRequest::from_json(body.to_string().as_bytes())
            .unwrap_or_else(|error| panic!("the bridge refuses the rendered body: {error}"));
        assert_eq!(request.identity_id(), IDENTITY_ID);
        assert_eq!(request.external_id(), None);

        // v25.4.0+: the Cognito sub as external_id.
        let ctx = confirmation_ctx(Some(kratos_identity(Some(EXTERNAL_ID))), with_session);
        let body = render_confirmation(source, &ctx).unwrap();
        assert_eq!(body["external_id"], json!(EXTERNAL_ID));
        let request = ConfirmRequest::from_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(request.external_id(), Some(EXTERNAL_ID));

        // Nothing of the request or the session leaves Kratos.
        let text = body.to_string();
        for private in [USER_AGENT, "5e55", "flow", "request"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
}

#[test]
fn confirmation_jsonnet_cancels_the_call_without_an_identity() {
    for source in [LOGIN_AFTER_JSONNET, SETTINGS_AFTER_JSONNET] {
        for identity in [None, Some(Value::Null), Some(json!({ "traits": {} }))] {
            let error = render_confirmation(source, &confirmation_ctx(identity.clone(), false))
                .expect_err("no body without an identity id");
            // Kratos skips a web_hook whose jsonnet fails with "cancel" (request.ErrCancel).
            assert!(error.contains("cancel"), "{identity:?}: {error}");
        }
    }
}

// --- the example identity schema --------------------------------------------------------------

fn identity_schema() -> Value {
    serde_json::from_str(IDENTITY_SCHEMA).expect("identity.schema.json is JSON")
}

fn identity_validator() -> Validator {
    let schema = identity_schema();
    if let Err(error) = jsonschema::meta::options().validate(&schema) {
        panic!("identity.schema.json is not a valid JSON Schema: {error}");
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("identity.schema.json compiles")
}

#[test]
fn identity_schema_marks_email_for_password_verification_and_recovery() {
    let schema = identity_schema();
    let email = &schema["properties"]["traits"]["properties"]["email"];
    let kratos = &email["ory.sh/kratos"];
    assert_eq!(kratos["credentials"]["password"]["identifier"], json!(true));
    assert_eq!(kratos["verification"]["via"], json!("email"));
    assert_eq!(kratos["recovery"]["via"], json!("email"));
    assert_eq!(schema["properties"]["traits"]["required"], json!(["email"]));
}

#[test]
fn identity_schema_accepts_imported_traits() {
    let validator = identity_validator();
    let samples = [
        json!({ "traits": { "email": "alice@example.com" } }),
        json!({ "traits": {
            "email": "alice@example.com",
            "name": { "first": "Alice", "last": "Liddell" },
            "groups": ["admins", "beta-testers"]
        } }),
        json!({ "traits": { "email": "bob@example.com", "name": { "first": "Bob" }, "groups": [] } }),
    ];
    for sample in samples {
        let errors: Vec<String> = validator
            .iter_errors(&sample)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{sample}: {errors:#?}");
    }
}

#[test]
fn identity_schema_refuses_bad_traits() {
    let validator = identity_validator();
    let samples = [
        (
            "no email",
            json!({ "traits": { "name": { "first": "Alice" } } }),
        ),
        ("not an email", json!({ "traits": { "email": "alice" } })),
        (
            "group that is not a string",
            json!({ "traits": { "email": "a@example.com", "groups": [7] } }),
        ),
        (
            "repeated group",
            json!({ "traits": { "email": "a@example.com", "groups": ["x", "x"] } }),
        ),
        (
            "unknown trait",
            json!({ "traits": { "email": "a@example.com", "phone": "+15550100" } }),
        ),
    ];
    for (what, sample) in samples {
        assert!(
            !validator.is_valid(&sample),
            "{what} should be refused: {sample}"
        );
    }
}
