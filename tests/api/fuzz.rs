//! Property tests (proptest): the hook body parser against a model of its contract, identifier
//! normalisation, and a proptest-driven HTTP client that sends over 10,000 generated requests
//! (methods, paths, headers, bodies, lying framing) to a running app.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use cognito_bridge::domain::{Password, normalize_identifier};
use cognito_bridge::hook::{HookBodyError, HookRequest};
use cognito_bridge::http::HOOK_PATH;
use futures_util::{StreamExt, stream};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::helpers::{API_KEY, AppOptions, Backend, ROTATED_OUT_KEY, spawn_app};

/// The fields `HookRequest` reads; every other key is ignored.
const OPTIONAL_FIELDS: [&str; 4] = ["identity_id", "external_id", "client_ip", "user_agent"];
const KNOWN_KEYS: [&str; 7] = [
    "identifier",
    "password",
    "identity_id",
    "external_id",
    "client_ip",
    "user_agent",
    "identity",
];

// --- Debug / Display of whatever the parser hands out ---------------------------------------------

/// `Some(text)` when the value's type has `Debug` (resp. `Display`), `None` when it has not,
/// decided at compile time (autoref specialisation): so a `Debug` added later is checked too.
struct Probe<'a, T>(&'a T);

trait HasDebug {
    fn debug_text(&self) -> Option<String>;
}
impl<T: fmt::Debug> HasDebug for Probe<'_, T> {
    fn debug_text(&self) -> Option<String> {
        Some(format!("{:?} {:#?}", self.0, self.0))
    }
}
trait NoDebug {
    fn debug_text(&self) -> Option<String>;
}
impl<T> NoDebug for &Probe<'_, T> {
    fn debug_text(&self) -> Option<String> {
        None
    }
}
trait HasDisplay {
    fn display_text(&self) -> Option<String>;
}
impl<T: fmt::Display> HasDisplay for Probe<'_, T> {
    fn display_text(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}
trait NoDisplay {
    fn display_text(&self) -> Option<String>;
}
impl<T> NoDisplay for &Probe<'_, T> {
    fn display_text(&self) -> Option<String> {
        None
    }
}

/// Every `Debug` and `Display` text the value's type has.
macro_rules! printed {
    ($value:expr) => {{
        let probe = Probe($value);
        [(&probe).debug_text(), (&probe).display_text()]
            .into_iter()
            .flatten()
            .collect::<Vec<String>>()
    }};
}

#[test]
fn the_probe_sees_debug_and_display_where_they_exist() {
    assert_eq!(printed!(&7u8).len(), 2);
    assert_eq!(printed!(&vec![1]).len(), 1);
    struct Opaque;
    assert!(printed!(&Opaque).is_empty());
}

/// Every `Debug`/`Display` text of a parse result, of its parts and of its error.
fn printed_outputs(result: &Result<HookRequest, HookBodyError>) -> Vec<String> {
    match result {
        Ok(request) => {
            let mut out = printed!(request);
            out.extend(printed!(request.password()));
            out
        }
        Err(error) => printed!(error),
    }
}

// --- a model of the body contract -------------------------------------------------------------

/// What `from_json` must do with a JSON value.
#[derive(Debug, PartialEq)]
enum Expected {
    Accept {
        identifier: String,
        password: String,
        identity_id: Option<String>,
        external_id: Option<String>,
    },
    Refuse(HookBodyError),
    /// Arrays where an object belongs: serde accepts a struct as a sequence of its fields in
    /// order. Either refused, or accepted with exactly these positional values.
    RefuseOrPositional(Option<Box<Expected>>),
}

fn string_or_null(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(()),
    }
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The nested `identity`: `(id, external_id, given as an array)`, or `Err` for a wrong shape.
fn identity_fields(value: Option<&Value>) -> Result<(Option<String>, Option<String>, bool), ()> {
    match value {
        None | Some(Value::Null) => Ok((None, None, false)),
        Some(Value::Object(map)) => Ok((
            string_or_null(map.get("id"))?,
            string_or_null(map.get("external_id"))?,
            false,
        )),
        Some(Value::Array(items)) if items.len() == 2 => Ok((
            string_or_null(items.first())?,
            string_or_null(items.get(1))?,
            true,
        )),
        Some(_) => Err(()),
    }
}

fn expected_for(body: &Value) -> Expected {
    match body {
        Value::Object(map) => expected_for_object(map),
        Value::Array(items) => {
            let names = [
                "identifier",
                "password",
                "identity_id",
                "external_id",
                "client_ip",
                "user_agent",
                "identity",
            ];
            let positional = (items.len() == names.len()).then(|| {
                let map: Map<String, Value> = names
                    .iter()
                    .zip(items)
                    .map(|(name, item)| ((*name).to_owned(), item.clone()))
                    .collect();
                match expected_for_object(&map) {
                    Expected::RefuseOrPositional(inner) => inner,
                    accepted @ Expected::Accept { .. } => Some(Box::new(accepted)),
                    Expected::Refuse(_) => None,
                }
            });
            Expected::RefuseOrPositional(positional.flatten())
        }
        _ => Expected::Refuse(HookBodyError::WrongShape),
    }
}

fn expected_for_object(map: &Map<String, Value>) -> Expected {
    let wrong_shape = Expected::Refuse(HookBodyError::WrongShape);
    let identity = map.get("identity");
    let (nested_id, nested_external_id, positional) = match identity_fields(identity) {
        Ok(fields) => fields,
        // A mis-sized or mistyped array: refused, with an error that depends on field order.
        Err(()) if is_array(identity) => return Expected::RefuseOrPositional(None),
        Err(()) => return wrong_shape,
    };
    let mut optional = BTreeMap::new();
    for name in OPTIONAL_FIELDS {
        match string_or_null(map.get(name)) {
            Ok(value) => optional.insert(name, value),
            Err(()) if positional => return Expected::RefuseOrPositional(None),
            Err(()) => return wrong_shape,
        };
    }
    let (Ok(identifier), Ok(password)) = (
        string_or_null(map.get("identifier")),
        string_or_null(map.get("password")),
    ) else {
        return if positional {
            Expected::RefuseOrPositional(None)
        } else {
            wrong_shape
        };
    };
    let outcome = match (identifier, password) {
        (None, _) => Expected::Refuse(HookBodyError::MissingField("identifier")),
        (_, None) => Expected::Refuse(HookBodyError::MissingField("password")),
        (Some(identifier), Some(password)) => Expected::Accept {
            identifier,
            password,
            identity_id: non_blank(optional["identity_id"].clone().or(nested_id)),
            external_id: non_blank(optional["external_id"].clone().or(nested_external_id)),
        },
    };
    if positional {
        Expected::RefuseOrPositional(match outcome {
            accepted @ Expected::Accept { .. } => Some(Box::new(accepted)),
            _ => None,
        })
    } else {
        outcome
    }
}

fn is_array(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Array(_)))
}

impl Expected {
    fn check(&self, result: &Result<HookRequest, HookBodyError>) -> Result<(), String> {
        match (self, result) {
            (
                Expected::Accept {
                    identifier,
                    password,
                    identity_id,
                    external_id,
                },
                Ok(request),
            ) => {
                let got = (
                    request.identifier(),
                    request.password().expose(),
                    request.identity_id(),
                    request.external_id(),
                );
                let want = (
                    identifier.as_str(),
                    password.as_str(),
                    identity_id.as_deref(),
                    external_id.as_deref(),
                );
                if got == want {
                    Ok(())
                } else {
                    Err("accepted with other values".to_owned())
                }
            }
            (Expected::Refuse(want), Err(got)) if want == got => Ok(()),
            (Expected::RefuseOrPositional(_), Err(_)) => Ok(()),
            (Expected::RefuseOrPositional(Some(inner)), Ok(_)) => inner.check(result),
            (_, Ok(_)) => Err(format!("accepted, expected {self:?}")),
            (_, Err(got)) => Err(format!("refused with {got:?}, expected {self:?}")),
        }
    }

    fn accepts(&self) -> bool {
        matches!(self, Expected::Accept { .. })
    }
}

/// Every error `from_json` may return, and the texts they print.
fn known_errors() -> [HookBodyError; 4] {
    [
        HookBodyError::NotJson,
        HookBodyError::WrongShape,
        HookBodyError::MissingField("identifier"),
        HookBodyError::MissingField("password"),
    ]
}

fn fixed_texts() -> Vec<String> {
    known_errors().iter().flat_map(|e| printed!(e)).collect()
}

/// Every key and string value of at least 4 characters in a JSON value.
fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_in(item, out)),
        Value::Object(map) => {
            for (key, item) in map {
                out.push(key.clone());
                strings_in(item, out);
            }
        }
        _ => {}
    }
    out.retain(|text| text.chars().count() >= 4);
}

/// No printed text of the result contains an input string that the fixed error texts do not
/// already contain.
fn assert_no_echo(
    result: &Result<HookRequest, HookBodyError>,
    inputs: &[String],
    fixed: &[String],
) -> Result<(), TestCaseError> {
    for text in printed_outputs(result) {
        for input in inputs {
            if fixed.iter().any(|f| f.contains(input.as_str())) {
                continue;
            }
            prop_assert!(
                !text.contains(input.as_str()),
                "printed output {text:?} echoes input {input:?}"
            );
        }
    }
    Ok(())
}

// --- strategies -----------------------------------------------------------------------------

/// Text of every kind: ASCII, other scripts, whitespace, controls, quotes and escapes.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9@._+-]{0,24}",
        2 => any::<String>(),
        1 => prop::collection::vec(
            prop::sample::select(vec![
                ' ', '\t', '\n', '\u{a0}', '\u{3000}', '"', '\\', '\0', 'é', 'İ', 'Σ', 'ß',
                '\u{1F600}', '\u{202E}', '\u{FEFF}', 'a', 'Z',
            ]),
            0..16,
        )
        .prop_map(String::from_iter),
    ]
    .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Object keys: mostly the known field names, so bodies come close to valid.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::sample::select(KNOWN_KEYS.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["id", "traits", "flow", "request_headers"])
            .prop_map(str::to_owned),
        2 => text(),
    ]
    .boxed()
}

/// A field: absent, null, a string, or any other JSON value.
fn field(string: BoxedStrategy<String>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        8 => string.prop_map(|s| Some(Value::String(s))),
        2 => arb_json().prop_map(Some),
    ]
    .boxed()
}

/// Objects near the contract: each known field absent, null, a string or the wrong type,
/// plus unknown fields.
fn near_valid_body() -> BoxedStrategy<Value> {
    let identity = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Value::Null)),
        3 => (field(text()), field(text()), prop::collection::btree_map(text(), arb_json(), 0..3))
            .prop_map(|(id, external_id, extra)| {
                let mut map: Map<String, Value> = extra.into_iter().collect();
                map.extend(id.map(|v| ("id".to_owned(), v)));
                map.extend(external_id.map(|v| ("external_id".to_owned(), v)));
                Some(Value::Object(map))
            }),
        1 => arb_json().prop_map(Some),
    ];
    (
        prop::collection::vec(field(text()), 6),
        identity,
        prop::collection::btree_map(text(), arb_json(), 0..4),
    )
        .prop_map(|(fields, identity, extra)| {
            let mut map: Map<String, Value> = extra
                .into_iter()
                .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
                .collect();
            for (name, value) in KNOWN_KEYS.iter().zip(fields) {
                if let Some(value) = value {
                    map.insert((*name).to_owned(), value);
                }
            }
            if let Some(identity) = identity {
                map.insert("identity".to_owned(), identity);
            }
            Value::Object(map)
        })
        .boxed()
}

/// Bytes of a body, then mutated: truncated, bytes flipped, bytes inserted.
fn mutated_bytes() -> BoxedStrategy<Vec<u8>> {
    (
        near_valid_body(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..4),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(body, edits, cut, truncate)| {
            let mut bytes = serde_json::to_vec(&body).unwrap();
            for (at, byte, kind) in edits {
                let at = at.index(bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
        .boxed()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// --- HookRequest::from_json -------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn from_json_never_panics_on_arbitrary_bytes(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated_bytes()]
    ) {
        let result = HookRequest::from_json(&bytes);
        if let Err(error) = &result {
            prop_assert!(known_errors().contains(error), "{error:?}");
        }
        // Any 4-character run of the input that the fixed texts do not contain is never echoed.
        let lossy = String::from_utf8_lossy(&bytes);
        let chars: Vec<char> = lossy.chars().collect();
        let windows: Vec<String> = chars
            .windows(4)
            .map(String::from_iter)
            .filter(|w| !w.contains('\u{FFFD}'))
            .collect();
        assert_no_echo(&result, &windows, &fixed_texts())?;
    }

    #[test]
    fn from_json_follows_the_contract_on_arbitrary_json(
        body in prop_oneof![1 => arb_json(), 3 => near_valid_body()]
    ) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let result = HookRequest::from_json(&bytes);
        if let Err(message) = expected_for(&body).check(&result) {
            prop_assert!(false, "{message}; body {body}");
        }
        let mut inputs = Vec::new();
        strings_in(&body, &mut inputs);
        assert_no_echo(&result, &inputs, &fixed_texts())?;
    }

    #[test]
    fn valid_bodies_round_trip_and_never_print_the_password(
        identifier in text(),
        secret in "[a-zA-Z0-9]{6,12}",
        identity_id in proptest::option::of(text()),
        external_id in proptest::option::of(text()),
        nested in any::<bool>(),
        extra in prop::collection::btree_map("[a-z]{1,8}", arb_json(), 0..3),
    ) {
        let password = format!("pw-{secret}");
        let mut body: Map<String, Value> = extra
            .into_iter()
            .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
            .collect();
        body.insert("identifier".into(), json!(identifier));
        body.insert("password".into(), json!(password));
        if nested {
            body.insert("identity".into(), json!({"id": identity_id, "external_id": external_id}));
        } else {
            body.insert("identity_id".into(), json!(identity_id));
            body.insert("external_id".into(), json!(external_id));
        }
        let body = Value::Object(body);
        let expected = expected_for(&body);
        prop_assert!(expected.accepts(), "{expected:?}");
        let result = HookRequest::from_json(&serde_json::to_vec(&body).unwrap());
        if let Err(message) = expected.check(&result) {
            prop_assert!(false, "{message}; body {body}");
        }
        for text in printed_outputs(&result) {
            prop_assert!(!text.contains(&password), "{text}");
        }
        // The same body with a password of the wrong type is refused without printing it.
        let mut broken = body.clone();
        broken["password"] = json!([password]);
        let refused = HookRequest::from_json(&serde_json::to_vec(&broken).unwrap());
        prop_assert!(refused.is_err());
        for text in printed_outputs(&refused) {
            prop_assert!(!text.contains(&password), "{text}");
        }
    }
}

// --- normalize_identifier -----------------------------------------------------------------------

/// Identifiers with whitespace (ASCII and Unicode) at the edges and inside, mixed scripts and
/// case-sensitive letters whose lowercase is special (İ, Σ, ẞ).
fn identifier() -> BoxedStrategy<String> {
    let character = prop_oneof![
        3 => prop::char::range('a', 'z'),
        3 => prop::char::range('A', 'Z'),
        1 => prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{2003}', '\u{2028}',
            '\u{3000}', '\u{feff}', '\u{200b}',
        ]),
        1 => prop::sample::select(vec![
            'İ', 'I', 'ı', 'Σ', 'ς', 'ẞ', 'ß', 'Ǆ', 'ǅ', 'Ω', 'Ω', 'K', 'Å', 'ﬃ', '@', '.', '_',
        ]),
        1 => any::<char>(),
    ];
    prop::collection::vec(character, 0..24)
        .prop_map(String::from_iter)
        .boxed()
}

/// A string and the same string with the case of some ASCII letters flipped.
fn ascii_case_pair() -> BoxedStrategy<(String, String)> {
    ("[ \t]{0,3}[ -~]{0,20}[ \t]{0,3}", any::<u64>())
        .prop_map(|(text, flips)| {
            let flipped = text
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if flips >> (i % 64) & 1 == 1 {
                        if c.is_ascii_lowercase() {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    } else {
                        c
                    }
                })
                .collect();
            (text, flipped)
        })
        .boxed()
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn normalize_is_idempotent_trimmed_and_lowercase(raw in identifier()) {
        let normalized = normalize_identifier(&raw);
        prop_assert_eq!(normalize_identifier(&normalized), normalized.clone(), "not idempotent");
        prop_assert_eq!(normalized.trim(), normalized.as_str(), "edge whitespace");
        prop_assert_eq!(normalized.to_lowercase(), normalized.clone(), "not lowercase");
    }

    #[test]
    fn normalize_is_ascii_case_insensitive((raw, flipped) in ascii_case_pair()) {
        prop_assert_eq!(normalize_identifier(&raw), normalize_identifier(&flipped));
    }

    #[test]
    fn normalize_separates_what_differs_beyond_ascii_case(
        a in "[ ]{0,2}[ -~]{0,12}[ ]{0,2}",
        b in "[ ]{0,2}[ -~]{0,12}[ ]{0,2}",
    ) {
        prop_assert_eq!(
            normalize_identifier(&a) == normalize_identifier(&b),
            a.trim().eq_ignore_ascii_case(b.trim())
        );
    }
}

#[test]
fn printed_outputs_of_parsed_requests_hold_no_password() {
    let request =
        HookRequest::from_json(br#"{"identifier":"alice","password":"pw-hunter22"}"#).unwrap();
    for text in printed!(&request)
        .into_iter()
        .chain(printed!(request.password()))
    {
        assert!(!text.contains("pw-hunter22"), "{text}");
    }
    let password = Password::new("pw-hunter22".to_owned().into());
    for text in printed!(&password) {
        assert!(!text.contains("pw-hunter22"), "{text}");
    }
}

// --- the HTTP surface under generated requests --------------------------------------------------

const REQUESTS: usize = 10_000;
const RAW_EVERY: usize = 40;
const IN_FLIGHT: usize = 16;
const FUZZ_USERS: [&str; 3] = ["fuzz-amy", "fuzz-bob", "fuzz-cid"];
const FUZZ_PASSWORD: &str = "Fuzzy-Horse-5";
const MAX_BODY_BYTES: usize = 64 * 1024;
const SEED_ENV: &str = "COGNITO_BRIDGE_FUZZ_SEED";

/// What the generator decided to send through reqwest.
#[derive(Clone)]
struct HttpCase {
    method: &'static str,
    path: String,
    /// `None`: no header; `Some((value, valid))`.
    authorization: Option<(Vec<u8>, bool)>,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Body,
}

#[derive(Clone)]
enum Body {
    None,
    /// A JSON body, and for valid logins what Cognito would say.
    Json(Value, Login),
    /// Bytes that are not valid JSON (truncated, non-UTF-8, garbage), or too deep to parse.
    Bytes(Vec<u8>, Parse),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Login {
    /// A known user as Cognito names them, with the right password.
    Right,
    /// A wrong password, an unknown user, or an identifier/password Cognito cannot take.
    Refused,
    /// A known user typed differently (case, spaces): 403 until a row links the typed form.
    RightButTypedDifferently,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Parse {
    Refused,
    /// Parses into a login.
    Decided(Login),
    /// Refused, or (rarely, for random bytes that happen to be JSON) decided.
    Either(Login),
}

impl HttpCase {
    fn body_bytes(&self) -> Option<Vec<u8>> {
        match &self.body {
            Body::None => None,
            Body::Json(value, _) => Some(serde_json::to_vec(value).unwrap()),
            Body::Bytes(bytes, _) => Some(bytes.clone()),
        }
    }

    /// The statuses the contract allows; empty when anything but 5xx is fine.
    fn allowed(&self) -> Vec<StatusCode> {
        let path = self.path.split('?').next().unwrap_or_default();
        if path == HOOK_PATH {
            if self.method != "POST" {
                return vec![StatusCode::METHOD_NOT_ALLOWED];
            }
            if !self.authorization.as_ref().is_some_and(|(_, valid)| *valid) {
                return vec![StatusCode::UNAUTHORIZED];
            }
            let length = self.body_bytes().map_or(0, |b| b.len());
            if length > MAX_BODY_BYTES {
                return vec![StatusCode::PAYLOAD_TOO_LARGE];
            }
            return match &self.body {
                Body::None => vec![StatusCode::BAD_REQUEST],
                Body::Json(value, login) => match expected_for(value) {
                    Expected::Accept { .. } => login_statuses(*login),
                    Expected::Refuse(_) => vec![StatusCode::BAD_REQUEST],
                    Expected::RefuseOrPositional(_) => {
                        vec![
                            StatusCode::BAD_REQUEST,
                            StatusCode::FORBIDDEN,
                            StatusCode::OK,
                        ]
                    }
                },
                Body::Bytes(_, Parse::Refused) => vec![StatusCode::BAD_REQUEST],
                Body::Bytes(_, Parse::Decided(login)) => login_statuses(*login),
                Body::Bytes(_, Parse::Either(login)) => {
                    let mut allowed = login_statuses(*login);
                    allowed.push(StatusCode::BAD_REQUEST);
                    allowed
                }
            };
        }
        match (self.method, path) {
            ("GET", "/health/alive" | "/health/ready") => vec![StatusCode::OK],
            ("HEAD", _) => Vec::new(),
            // /metrics lives on the admin listener only.
            (_, "/metrics") => vec![StatusCode::NOT_FOUND],
            (_, "/health/alive" | "/health/ready") => {
                vec![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED]
            }
            _ if path.starts_with("/junk") || path == "/" => vec![StatusCode::NOT_FOUND],
            _ => Vec::new(),
        }
    }
}

fn login_statuses(login: Login) -> Vec<StatusCode> {
    match login {
        Login::Right => vec![StatusCode::OK],
        Login::Refused => vec![StatusCode::FORBIDDEN],
        Login::RightButTypedDifferently => vec![StatusCode::OK, StatusCode::FORBIDDEN],
    }
}

/// Short enough for a failure message: long bodies and headers are cut.
impl fmt::Debug for HttpCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, cut(self.path.as_bytes()))?;
        if let Some((value, valid)) = &self.authorization {
            write!(f, " auth={} valid={valid}", cut(value))?;
        }
        for (name, value) in &self.headers {
            write!(f, " {name}={}", cut(value))?;
        }
        write!(f, " {:?}", self.body)
    }
}

/// At most 300 bytes of a value, and its length.
fn cut(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    format!("{text:?} ({} bytes)", bytes.len())
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::None => write!(f, "no body"),
            Body::Json(value, login) => {
                write!(
                    f,
                    "json {login:?} {}",
                    cut(&serde_json::to_vec(value).unwrap())
                )
            }
            Body::Bytes(bytes, parse) => write!(f, "bytes {parse:?} {}", cut(bytes)),
        }
    }
}

fn method() -> BoxedStrategy<&'static str> {
    prop_oneof![
        8 => Just("POST"),
        3 => Just("GET"),
        1 => prop::sample::select(vec!["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"]),
    ]
    .boxed()
}

fn path() -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just(HOOK_PATH.to_owned()),
        1 => Just(format!("{HOOK_PATH}?debug=1&password=x")),
        2 => Just("/health/alive".to_owned()),
        1 => Just("/health/ready".to_owned()),
        1 => Just("/metrics".to_owned()),
        1 => prop::sample::select(vec![
            "/", "/hooks/password-migration/", "/HOOKS/password-migration", "/hooks//password-migration",
            "/hooks/password-migration%2F", "/%2e%2e/hooks/password-migration", "/hooks",
            "/health", "/health/", "/admin", "/%00", "/%ff%fe", "/hooks/password-migration/..",
        ])
        .prop_map(str::to_owned),
        2 => "[a-zA-Z0-9_~%/-]{0,60}".prop_map(|tail| format!("/junk/{tail}")),
        1 => "[a-z]{1,10}".prop_map(|segment| format!("/junk/{}", segment.repeat(500))),
    ]
    .boxed()
}

/// Header values: printable ASCII, bytes above 0x7f (obs-text), tabs, or long runs.
fn header_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..60).prop_map(|bytes| {
            // Controls other than tab cannot travel in a header value.
            bytes
                .into_iter()
                .map(|b| if b < 0x20 || b == 0x7f { b'\t' } else { b })
                .collect()
        }),
        (1usize..6000).prop_map(|n| vec![b'x'; n]),
    ]
    .boxed()
}

fn authorization() -> BoxedStrategy<Option<(Vec<u8>, bool)>> {
    let valid = |key: &str| Some((format!("Bearer {key}").into_bytes(), true));
    prop_oneof![
        10 => Just(valid(API_KEY)),
        1 => Just(valid(ROTATED_OUT_KEY)),
        2 => Just(None),
        1 => prop::sample::select(vec![
            format!("bearer {API_KEY}"),
            format!("Bearer  {API_KEY}"),
            format!("Basic {API_KEY}"),
            API_KEY.to_owned(),
            "Bearer ".to_owned(),
            format!("Bearer {}", &API_KEY[..API_KEY.len() - 1]),
            format!("Bearer {API_KEY}x"),
        ])
        .prop_map(|value| Some((value.into_bytes(), false))),
        1 => header_bytes().prop_map(|value| {
            let valid = value == format!("Bearer {API_KEY}").as_bytes();
            Some((value, valid))
        }),
    ]
    .boxed()
}

fn headers() -> BoxedStrategy<Vec<(&'static str, Vec<u8>)>> {
    let content_type = prop_oneof![
        6 => Just(b"application/json".to_vec()),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=zzz", "application/xml", "*/*", "application/json, text/html",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
        1 => header_bytes(),
    ];
    (
        proptest::option::weighted(0.9, content_type),
        proptest::option::of(header_bytes()),
        proptest::option::of(header_bytes()),
        proptest::option::of(header_bytes()),
        proptest::option::weighted(0.05, header_bytes()),
    )
        .prop_map(|(content_type, request_id, trigger_id, junk, forwarded)| {
            let mut headers = Vec::new();
            headers.extend(content_type.map(|v| ("content-type", v)));
            headers.extend(request_id.map(|v| ("ory-webhook-request-id", v)));
            headers.extend(trigger_id.map(|v| ("ory-webhook-trigger-id", v)));
            headers.extend(junk.map(|v| ("x-junk", v)));
            headers.extend(forwarded.map(|v| ("x-forwarded-for", v)));
            headers
        })
        .boxed()
}

/// A login body for one of the fake's users (or a stranger), with Cognito's expected word.
fn login_body() -> BoxedStrategy<(Value, Login)> {
    let user = prop_oneof![
        6 => prop::sample::select(FUZZ_USERS.to_vec()).prop_map(|u| (u.to_owned(), true, true)),
        1 => prop::sample::select(FUZZ_USERS.to_vec())
            .prop_map(|u| (format!(" {} ", u.to_uppercase()), true, false)),
        1 => "[a-z]{3,10}".prop_map(|u| (format!("stranger-{u}"), false, true)),
    ];
    let password = prop_oneof![
        3 => Just((FUZZ_PASSWORD.to_owned(), true)),
        2 => text().prop_map(|p| {
            let right = p == FUZZ_PASSWORD;
            (p, right)
        }),
        1 => (257usize..400).prop_map(|n| ("p".repeat(n), false)),
    ];
    // Ids are the user's own or random: never another user's, so resolution stays per user.
    let extended = proptest::option::weighted(
        0.3,
        (
            proptest::option::of("[a-f0-9]{32}"),
            proptest::option::of("[a-f0-9]{32}"),
            proptest::option::of("[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"),
            proptest::option::of(text()),
            any::<bool>(),
        ),
    );
    (user, password, extended)
        .prop_map(
            |((identifier, known, exact), (password, right), extended)| {
                let mut body = json!({"identifier": identifier, "password": password});
                if let Some((identity_id, external_id, ip, agent, nested)) = extended {
                    if nested {
                        body["identity"] =
                            json!({"id": identity_id, "external_id": external_id, "traits": {}});
                    } else {
                        body["identity_id"] = json!(identity_id);
                        body["external_id"] = json!(external_id);
                    }
                    body["client_ip"] = json!(ip);
                    body["user_agent"] = json!(agent);
                    body["flow"] = json!({"id": "f", "ui": {"nodes": [1, 2, 3]}});
                }
                let login = match (known, right, exact) {
                    (true, true, true) => Login::Right,
                    (true, true, false) => Login::RightButTypedDifferently,
                    _ => Login::Refused,
                };
                (body, login)
            },
        )
        .boxed()
}

fn body() -> BoxedStrategy<Body> {
    prop_oneof![
        10 => login_body().prop_map(|(value, login)| Body::Json(value, login)),
        3 => near_valid_body().prop_map(|value| Body::Json(value, Login::Refused)),
        2 => (login_body(), any::<prop::sample::Index>()).prop_map(|((value, _), at)| {
            // Any proper prefix of a JSON object is not JSON.
            let bytes = serde_json::to_vec(&value).unwrap();
            Body::Bytes(bytes[..at.index(bytes.len())].to_vec(), Parse::Refused)
        }),
        1 => (login_body(), 1usize..150_000, 0..3u8).prop_map(|((mut value, login), n, at)| {
            let huge = "h".repeat(n);
            let login = match at {
                0 => { value["identifier"] = json!(huge); Login::Refused }
                1 => { value["password"] = json!(huge); Login::Refused }
                _ => { value["padding"] = json!(huge); login }
            };
            Body::Json(value, login)
        }),
        1 => (login_body(), 1usize..6000, any::<bool>(), any::<bool>()).prop_map(
            |((value, login), depth, arrays, in_known_field)| {
                let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
                let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                let mut text = serde_json::to_string(&value).unwrap();
                text.pop();
                if in_known_field {
                    // Never a string: refused, whether the depth or the type stops the parser.
                    text.push_str(&format!(",\"client_ip\":{nested}}}"));
                    Body::Bytes(text.into_bytes(), Parse::Refused)
                } else {
                    // Unknown fields are skipped without recursion, at any depth.
                    text.push_str(&format!(",\"deep\":{nested}}}"));
                    Body::Bytes(text.into_bytes(), Parse::Decided(login))
                }
            },
        ),
        1 => (
            login_body(),
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    prop::sample::select(vec![0x80u8, 0xbf, 0xc0, 0xc1, 0xf5, 0xf8, 0xfe, 0xff]),
                ),
                1..4,
            ),
        )
            .prop_map(|((value, _), edits)| {
                // Bytes that are never valid UTF-8, inside the identifier: never JSON text.
                let mut bytes = serde_json::to_vec(&value).unwrap();
                let start = bytes.windows(14).position(|w| w == b"\"identifier\":\"").unwrap() + 14;
                for (at, byte) in edits {
                    bytes.insert(start + at.index(2), byte);
                }
                Body::Bytes(bytes, Parse::Refused)
            }),
        1 => prop::collection::vec(any::<u8>(), 0..2000).prop_map(|bytes| {
            // Random bytes are practically never JSON; when they are, no user can match.
            let parse = match serde_json::from_slice::<Value>(&bytes) {
                Err(_) => Parse::Refused,
                Ok(_) => Parse::Either(Login::Refused),
            };
            Body::Bytes(bytes, parse)
        }),
        1 => Just(Body::None),
    ]
    .boxed()
}

fn http_case() -> BoxedStrategy<HttpCase> {
    (method(), path(), authorization(), headers(), body())
        .prop_map(|(method, path, authorization, headers, body)| {
            let body = if method == "HEAD" { Body::None } else { body };
            HttpCase {
                method,
                path,
                authorization,
                headers,
                body,
            }
        })
        .boxed()
}

enum Case {
    Http(HttpCase),
    Raw(RawCase),
}

/// Requests reqwest cannot send (lying framing), written on a raw socket.
#[derive(Clone)]
struct RawCase {
    bytes: Vec<u8>,
    /// The exact status when the request is well-formed HTTP the app must judge; `None` for
    /// framing errors, which the HTTP layer may answer with any 4xx or by closing.
    expected: Option<StatusCode>,
}

impl fmt::Debug for RawCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(400)];
        write!(
            f,
            "raw {:?} ({} bytes) expecting {:?}",
            String::from_utf8_lossy(shown),
            self.bytes.len(),
            self.expected
        )
    }
}

fn raw_case() -> BoxedStrategy<RawCase> {
    let head = |extra: &str| {
        format!(
            "POST {HOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n\
             Content-Type: application/json\r\n{extra}"
        )
    };
    let login = format!(
        r#"{{"identifier":"{}","password":"{FUZZ_PASSWORD}"}}"#,
        FUZZ_USERS[0]
    );
    let framing = prop_oneof![
        // Declared length far above the limit: refused before any body is read.
        (MAX_BODY_BYTES as u64 + 1..u64::MAX).prop_map(move |n| (
            format!("Content-Length: {n}\r\n"),
            String::new(),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        )),
        // Lengths HTTP cannot parse or that contradict each other.
        prop::sample::select(vec![
            "Content-Length: 99999999999999999999999999\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: abc\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip, chunked, identity\r\n",
            "Content-Length:  0x10\r\n",
        ])
        .prop_map(|extra| (extra.to_owned(), "zz\r\n{}\r\n0\r\n\r\n".to_owned(), None)),
        // A declared length longer than what is sent, then the client stops writing.
        (1usize..2000).prop_map(|n| (
            format!("Content-Length: {}\r\n", n + 10),
            "{\"identif".to_owned(),
            None
        )),
        // Correct chunked framing of a valid login: the app decides it.
        Just((
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("{:x}\r\n{login}\r\n0\r\n\r\n", login.len()),
            Some(StatusCode::OK),
        )),
        // A correct length: the app decides it.
        Just((
            format!("Content-Length: {}\r\n", login.len()),
            login.clone(),
            Some(StatusCode::OK),
        )),
    ];
    let garbage = prop_oneof![
        Just(b"GARBAGE\r\n\r\n".to_vec()),
        Just(format!("POST {HOOK_PATH} HTTP/9.9\r\n\r\n").into_bytes()),
        Just(b"GET /health/alive HTTP/1.1\r\nNoColonHere\r\n\r\n".to_vec()),
        Just(b"GET /health/alive HTTP/1.1\r\nHost: a\r\nX: \x00\x01\r\n\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 1..300),
    ];
    prop_oneof![
        4 => framing.prop_map(move |(extra, body, expected)| {
            let mut bytes = head(&extra).into_bytes();
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(body.as_bytes());
            RawCase { bytes, expected }
        }),
        1 => garbage.prop_map(|bytes| RawCase { bytes, expected: None }),
    ]
    .boxed()
}

/// Status and body of a raw exchange, or `None` when the server closed without answering.
async fn send_raw(address: &str, case: &RawCase) -> Option<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before reading everything; that is its right.
    let _ = stream.write_all(&case.bytes).await;
    let _ = stream.shutdown().await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response));
    match read.await {
        Ok(_) => {}
        Err(_) => panic!("no answer and no close within 10 s: {case:?}"),
    }
    if response.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response {text:?} to {case:?}"));
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |at| at + 4);
    Some((status, response[head_end..].to_vec()))
}

/// One request that went wrong: a short kind, for grouping, and the whole story.
#[derive(Debug)]
struct Problem {
    kind: String,
    detail: String,
}

fn problem<T>(kind: impl Into<String>, detail: String) -> Result<T, Problem> {
    Err(Problem {
        kind: kind.into(),
        detail,
    })
}

async fn send_http(
    client: &reqwest::Client,
    address: &str,
    case: &HttpCase,
) -> Result<String, Problem> {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("{address}{}", case.path));
    if let Some((value, _)) = &case.authorization {
        request = request.header(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    for (name, value) in &case.headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(bytes) = case.body_bytes() {
        request = request.body(bytes);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return problem("no answer", format!("{e:?} for {case:?}")),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return problem("body unreadable", format!("{e:?} for {case:?}")),
    };
    let fail = |why: &str| {
        problem(
            format!("{why}: {status}"),
            format!(
                "{why}: {status} {:?} for {case:?}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ),
        )
    };
    if status.is_server_error() {
        return fail("5xx");
    }
    let allowed = case.allowed();
    if !allowed.is_empty() && !allowed.contains(&status) {
        return fail(&format!("expected one of {allowed:?}"));
    }
    if !status.is_success() && case.method != "HEAD" {
        if body.len() >= 1024 {
            return fail("error body of 1 KB or more");
        }
        if !serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object()) {
            return fail("error body is not a JSON object");
        }
    }
    if status == StatusCode::OK && case.path.starts_with(HOOK_PATH) {
        let text = String::from_utf8_lossy(&body);
        if text != r#"{"status":"password_match"}"# {
            return fail("200 without password_match");
        }
    }
    Ok(status.as_u16().to_string())
}

/// The outcome's name for the tally (`raw 400`, `raw closed`) when the answer is allowed.
fn check_raw(case: &RawCase, answer: Option<(u16, Vec<u8>)>) -> Result<String, Problem> {
    let fail = |why: String| problem(format!("raw: {why}"), format!("{why} for {case:?}"));
    let tally = format!(
        "raw {}",
        answer
            .as_ref()
            .map_or("closed".to_owned(), |(status, _)| status.to_string())
    );
    match (answer, case.expected) {
        (None, None) => Ok(tally),
        (None, Some(expected)) => fail(format!("closed without answering, expected {expected}")),
        (Some((status, body)), expected) => {
            if status >= 500 {
                return fail(format!("5xx {status}"));
            }
            if body.len() >= 1024 {
                return fail(format!("{status} with a body of {} bytes", body.len()));
            }
            match expected {
                Some(expected) if expected.as_u16() != status => {
                    fail(format!("{status}, expected {expected}"))
                }
                Some(_) if status >= 300 && serde_json::from_slice::<Value>(&body).is_err() => {
                    fail(format!("{status} without a JSON body"))
                }
                None if status < 400 => fail(format!("{status} for broken framing")),
                _ => Ok(tally),
            }
        }
    }
}

/// Over 10,000 generated requests, 16 in flight, against the real app with an instant
/// Cognito: no 5xx, every answer the contract allows, every error a small JSON object, and
/// the server alive at the end. The seed is printed; set `COGNITO_BRIDGE_FUZZ_SEED` to replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_generated_requests_get_no_5xx_and_small_json_errors() {
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{SEED_ENV}={seed}");

    let fake = CognitoFake::start(FakeConfig::default()).await;
    for user in FUZZ_USERS {
        fake.user(user, FUZZ_PASSWORD, Script::Authenticate);
    }
    let options = AppOptions::new(
        Backend::Sqlite,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    )
    .with("COGNITO_BRIDGE__COGNITO__MAX_RPS", 100_000)
    .with("COGNITO_BRIDGE__COGNITO__BURST", 100_000)
    .with("COGNITO_BRIDGE__COGNITO__MAX_CONCURRENCY", 256)
    .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 1_000_000)
    .with("COGNITO_BRIDGE__GUARD__IP_FAILURES", 1_000_000)
    .with("COGNITO_BRIDGE__SERVER__REQUEST_TIMEOUT_MS", 2000);
    let app = spawn_app(options).await;
    let address = app.address.clone();
    let socket_address = address.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();

    // One generator thread, so the sequence depends on the seed alone, and its work
    // overlaps with the requests in flight.
    let total = REQUESTS + REQUESTS / RAW_EVERY;
    let (cases, receiver) = tokio::sync::mpsc::channel::<Case>(4 * IN_FLIGHT);
    let generator = std::thread::spawn(move || {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let (http_strategy, raw_strategy) = (http_case(), raw_case());
        for i in 0..total {
            let case = if i % (RAW_EVERY + 1) == RAW_EVERY {
                Case::Raw(raw_strategy.new_tree(&mut runner).unwrap().current())
            } else {
                Case::Http(http_strategy.new_tree(&mut runner).unwrap().current())
            };
            if cases.blocking_send(case).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let results: Vec<Result<String, Problem>> =
        stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|case| (case, receiver))
        })
        .map(|case| {
            let (client, address, socket_address) = (&client, &address, &socket_address);
            async move {
                match case {
                    Case::Raw(case) => {
                        let answer = send_raw(socket_address, &case).await;
                        check_raw(&case, answer)
                    }
                    Case::Http(case) => send_http(client, address, &case).await,
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    generator.join().expect("the generator never panics");
    assert_eq!(results.len(), total);
    let elapsed = started.elapsed();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(answer) => *tally.entry(answer).or_default() += 1,
            Err(problem) => problems.push(problem),
        }
    }
    eprintln!("{total} requests in {elapsed:?}; allowed answers: {tally:?}");

    let mut kinds: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for problem in &problems {
        kinds
            .entry(&problem.kind)
            .or_default()
            .push(&problem.detail);
    }
    assert!(
        problems.is_empty(),
        "{} of {total} requests went wrong ({SEED_ENV}={seed}):\n{}",
        problems.len(),
        kinds
            .iter()
            .map(|(kind, details)| format!(
                "== {} x {kind}, e.g.\n{}",
                details.len(),
                details
                    .iter()
                    .take(2)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The generator reached every branch of the contract, not just the easy ones.
    for expected in [
        "200", "400", "401", "403", "404", "405", "413", "raw 200", "raw 400", "raw 413",
    ] {
        assert!(
            tally.get(expected).is_some_and(|n| *n > 0),
            "no `{expected}` among {tally:?} ({SEED_ENV}={seed})"
        );
    }
    let (status, body) = app.get("/health/alive").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        fake.total_calls() > REQUESTS / 10,
        "few requests reached Cognito: {}",
        fake.total_calls()
    );
}
