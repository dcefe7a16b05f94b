//! One Cognito app client → the Hydra OAuth2 client fields `clients` manages (how they
//! compare with what Hydra holds is in `compare.rs`). No secret is part of the fields.
//!
//! Over 400 lines: the mapping is about 320 of them; the rest is its table of unit tests
//! (units, flows, auth methods, URIs left out).

use serde::Serialize;
use serde_json::{Map, Value, json};
use url::Url;

use crate::cognito::{AppClient, ValidityUnit};

/// The key of our marker in a Hydra client's `metadata`.
pub const METADATA_KEY: &str = "cognito_bridge";
/// A Cognito scope that means nothing to Hydra (Cognito's own user API).
const COGNITO_ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

/// Cognito's defaults when a validity is not set: 1 h for access and ID tokens, 30 days for
/// refresh tokens.
const DEFAULT_ACCESS_SECS: i64 = 3600;
const DEFAULT_ID_SECS: i64 = 3600;
const DEFAULT_REFRESH_SECS: i64 = 30 * 86_400;

/// Hydra's per-grant lifespans, by the Cognito token they come from.
pub const ACCESS_LIFESPANS: [&str; 4] = [
    "authorization_code_grant_access_token_lifespan",
    "implicit_grant_access_token_lifespan",
    "client_credentials_grant_access_token_lifespan",
    "refresh_token_grant_access_token_lifespan",
];
pub const ID_LIFESPANS: [&str; 3] = [
    "authorization_code_grant_id_token_lifespan",
    "implicit_grant_id_token_lifespan",
    "refresh_token_grant_id_token_lifespan",
];
pub const REFRESH_LIFESPANS: [&str; 2] = [
    "authorization_code_grant_refresh_token_lifespan",
    "refresh_token_grant_refresh_token_lifespan",
];

/// A URI left out of the Hydra client, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// `redirect_uris` or `post_logout_redirect_uris`.
    pub field: &'static str,
    pub uri: String,
    pub reason: &'static str,
}

/// The Hydra client an app client becomes (its secret is handled apart).
#[derive(Debug, Clone)]
pub struct Mapped {
    /// The managed fields, as sent to Hydra (no `client_id`, no secret).
    pub fields: Map<String, Value>,
    /// `token_endpoint_auth_method` is `client_secret_basic` (the app client has a secret).
    pub confidential: bool,
    pub dropped: Vec<Dropped>,
    pub notes: Vec<String>,
}

/// Seconds in one Cognito unit.
pub fn unit_seconds(unit: ValidityUnit) -> i64 {
    match unit {
        ValidityUnit::Seconds => 1,
        ValidityUnit::Minutes => 60,
        ValidityUnit::Hours => 3600,
        ValidityUnit::Days => 86_400,
    }
}

/// A Cognito validity in seconds: `value` in `unit`, else in the token's default unit, else
/// the token's default validity.
pub fn validity_seconds(
    validity: Option<(i64, Option<ValidityUnit>)>,
    default_unit: ValidityUnit,
    default_secs: i64,
) -> i64 {
    match validity {
        Some((value, unit)) if value > 0 => {
            value.saturating_mul(unit_seconds(unit.unwrap_or(default_unit)))
        }
        _ => default_secs,
    }
}

/// A Go duration string Hydra accepts (no `d` unit): whole hours, minutes or seconds.
pub fn go_duration(seconds: i64) -> String {
    if seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// A Go duration string (`1h0m0s`, `90m`, `1.5h`, `500ms`) in nanoseconds.
pub fn parse_go_duration(text: &str) -> Option<u128> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|end| *end > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * nanos_per;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u128)
}

/// Grant and response types for Cognito's `AllowedOAuthFlows`, and flows we do not know.
pub fn grants_for(flows: &[String], scopes: &[String]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut grants = Vec::new();
    let mut responses = Vec::new();
    let mut unknown = Vec::new();
    let push = |list: &mut Vec<String>, value: &str| {
        if !list.iter().any(|item| item == value) {
            list.push(value.to_owned());
        }
    };
    for flow in flows {
        match flow.as_str() {
            "code" => {
                push(&mut grants, "authorization_code");
                push(&mut grants, "refresh_token");
                push(&mut responses, "code");
            }
            "implicit" => {
                push(&mut grants, "implicit");
                push(&mut responses, "token");
                if scopes.iter().any(|scope| scope == "openid") {
                    push(&mut responses, "id_token");
                    push(&mut responses, "id_token token");
                }
            }
            "client_credentials" => push(&mut grants, "client_credentials"),
            other => unknown.push(other.to_owned()),
        }
    }
    (grants, responses, unknown)
}

/// `client_secret_basic` for a client with a secret, `none` (a public client) without.
pub fn auth_method(has_secret: bool) -> &'static str {
    if has_secret {
        "client_secret_basic"
    } else {
        "none"
    }
}

/// Why an app client gets no Hydra client: `None` when it gets one.
pub fn skip_reason(app: &AppClient) -> Option<&'static str> {
    if !app.oauth_enabled || app.flows.is_empty() {
        Some(
            "SDK sign-in only (no OAuth flows allowed): no Hydra client; the app moves to \
             Kratos's API flows",
        )
    } else {
        None
    }
}

/// Whether Hydra takes `uri` as a redirect URI: absolute (`url.ParseRequestURI`), no fragment.
fn redirect_problem(uri: &str) -> Option<&'static str> {
    if uri.contains('#') {
        return Some("contains '#'; Hydra refuses fragments in redirect URIs");
    }
    match Url::parse(uri) {
        Ok(_) => None,
        Err(_) => Some("not an absolute URI; Hydra refuses it"),
    }
}

/// What Hydra compares a logout URI on: scheme, host and explicit port.
fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_owned(),
        url.host_str().map(str::to_owned),
        url.port(),
    )
}

/// The Hydra client for `app` of pool `user_pool_id` (see the README's table).
pub fn map(app: &AppClient, user_pool_id: &str) -> Mapped {
    let mut dropped = Vec::new();
    let mut notes = Vec::new();

    let mut redirects = Vec::new();
    for uri in &app.callback_urls {
        match redirect_problem(uri) {
            Some(reason) => dropped.push(Dropped {
                field: "redirect_uris",
                uri: uri.clone(),
                reason,
            }),
            None if !redirects.contains(uri) => redirects.push(uri.clone()),
            None => {}
        }
    }
    let redirect_origins: Vec<_> = redirects
        .iter()
        .filter_map(|uri| Url::parse(uri).ok())
        .map(|url| origin(&url))
        .collect();
    let mut logouts = Vec::new();
    for uri in &app.logout_urls {
        let reason = match Url::parse(uri) {
            Err(_) => Some("not an absolute URI; Hydra refuses it"),
            Ok(url) if !redirect_origins.contains(&origin(&url)) => Some(
                "its scheme, host and port match no callback URL; Hydra refuses such a \
                 post-logout redirect",
            ),
            Ok(_) => None,
        };
        match reason {
            Some(reason) => dropped.push(Dropped {
                field: "post_logout_redirect_uris",
                uri: uri.clone(),
                reason,
            }),
            None if !logouts.contains(uri) => logouts.push(uri.clone()),
            None => {}
        }
    }

    let (grants, responses, unknown) = grants_for(&app.flows, &app.scopes);
    for flow in unknown {
        notes.push(format!(
            "OAuth flow {flow:?} has no Hydra grant type; left out"
        ));
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in &app.scopes {
        if scope == COGNITO_ADMIN_SCOPE {
            notes.push(format!(
                "scope {COGNITO_ADMIN_SCOPE} left out (Cognito's own user API)"
            ));
        } else if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    if grants.iter().any(|grant| grant == "refresh_token")
        && !scopes.iter().any(|scope| scope == "offline_access")
    {
        scopes.push("offline_access".to_owned());
        notes
            .push("scope offline_access added: Hydra issues refresh tokens only for it".to_owned());
    }

    let access = go_duration(validity_seconds(
        app.access_token_validity,
        ValidityUnit::Hours,
        DEFAULT_ACCESS_SECS,
    ));
    let id = go_duration(validity_seconds(
        app.id_token_validity,
        ValidityUnit::Hours,
        DEFAULT_ID_SECS,
    ));
    let refresh = go_duration(validity_seconds(
        app.refresh_token_validity,
        ValidityUnit::Days,
        DEFAULT_REFRESH_SECS,
    ));

    let confidential = app.secret.is_some();
    let mut metadata = json!({"user_pool_id": user_pool_id});
    if let Some(uri) = &app.default_redirect_uri {
        metadata["default_redirect_uri"] = json!(uri);
    }
    let mut fields = Map::new();
    fields.insert("client_name".into(), json!(app.name));
    fields.insert("redirect_uris".into(), json!(redirects));
    fields.insert("post_logout_redirect_uris".into(), json!(logouts));
    fields.insert("grant_types".into(), json!(grants));
    fields.insert("response_types".into(), json!(responses));
    fields.insert("scope".into(), json!(scopes.join(" ")));
    fields.insert(
        "token_endpoint_auth_method".into(),
        json!(auth_method(confidential)),
    );
    // Cognito's access tokens are JWTs that apps verify locally; Hydra's default is opaque.
    fields.insert("access_token_strategy".into(), json!("jwt"));
    for (names, value) in [
        (&ACCESS_LIFESPANS[..], &access),
        (&ID_LIFESPANS[..], &id),
        (&REFRESH_LIFESPANS[..], &refresh),
    ] {
        for name in names {
            fields.insert((*name).into(), json!(value));
        }
    }
    fields.insert("metadata".into(), json!({ METADATA_KEY: metadata }));
    Mapped {
        fields,
        confidential,
        dropped,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn app() -> AppClient {
        AppClient {
            client_id: "web-id".into(),
            name: "web".into(),
            secret: Some(SecretString::from("s".repeat(30))),
            callback_urls: vec![
                "https://app.example.com/callback".into(),
                "https://app.example.com/cb#fragment".into(),
            ],
            logout_urls: vec![
                "https://app.example.com/bye".into(),
                "https://elsewhere.example.com/bye".into(),
                "https://app.example.com:8443/bye".into(),
            ],
            default_redirect_uri: Some("https://app.example.com/callback".into()),
            oauth_enabled: true,
            flows: vec!["code".into()],
            scopes: vec![
                "openid".into(),
                "email".into(),
                "aws.cognito.signin.user.admin".into(),
            ],
            access_token_validity: Some((30, Some(ValidityUnit::Minutes))),
            id_token_validity: Some((2, None)),
            refresh_token_validity: Some((10, None)),
        }
    }

    #[test]
    fn cognito_validities_convert_to_hydra_durations_by_unit_and_default() {
        // (value, unit, the token's default unit, default) → Hydra duration
        let cases = [
            (
                Some((45, Some(ValidityUnit::Seconds))),
                ValidityUnit::Hours,
                3600,
                "45s",
            ),
            (
                Some((90, Some(ValidityUnit::Seconds))),
                ValidityUnit::Hours,
                3600,
                "90s",
            ),
            (
                Some((120, Some(ValidityUnit::Seconds))),
                ValidityUnit::Hours,
                3600,
                "2m",
            ),
            (
                Some((30, Some(ValidityUnit::Minutes))),
                ValidityUnit::Hours,
                3600,
                "30m",
            ),
            (
                Some((90, Some(ValidityUnit::Minutes))),
                ValidityUnit::Hours,
                3600,
                "90m",
            ),
            (
                Some((2, Some(ValidityUnit::Hours))),
                ValidityUnit::Hours,
                3600,
                "2h",
            ),
            (
                Some((1, Some(ValidityUnit::Days))),
                ValidityUnit::Hours,
                3600,
                "24h",
            ),
            (
                Some((3650, Some(ValidityUnit::Days))),
                ValidityUnit::Days,
                86_400,
                "87600h",
            ),
            // No unit: the token's default unit (hours for access and ID, days for refresh).
            (Some((5, None)), ValidityUnit::Hours, 3600, "5h"),
            (Some((30, None)), ValidityUnit::Days, 30 * 86_400, "720h"),
            // Not set (moto), or 0: Cognito's default validity.
            (None, ValidityUnit::Hours, 3600, "1h"),
            (None, ValidityUnit::Days, 30 * 86_400, "720h"),
            (Some((0, None)), ValidityUnit::Days, 30 * 86_400, "720h"),
        ];
        for (validity, unit, default, expected) in cases {
            let duration = go_duration(validity_seconds(validity, unit, default));
            assert_eq!(duration, expected, "{validity:?}");
            // What Hydra echoes ("1h0m0s") compares equal to what we send.
            assert_eq!(
                parse_go_duration(&duration),
                Some(validity_seconds(validity, unit, default) as u128 * 1_000_000_000)
            );
        }
        assert_eq!(parse_go_duration("1h0m0s"), parse_go_duration("3600s"));
        assert_eq!(parse_go_duration("720h0m0s"), parse_go_duration("720h"));
        assert_eq!(parse_go_duration("1m30s"), parse_go_duration("90s"));
        assert_eq!(parse_go_duration("1.5h"), parse_go_duration("90m"));
        assert_eq!(parse_go_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_go_duration("0s"), Some(0));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn flows_become_grant_and_response_types() {
        let s = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        // (flows, scopes) → (grant types, response types)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: [Case; 6] = [
            (
                &["code"],
                &["email"],
                &["authorization_code", "refresh_token"],
                &["code"],
            ),
            (&["implicit"], &["email"], &["implicit"], &["token"]),
            (
                &["implicit"],
                &["openid"],
                &["implicit"],
                &["token", "id_token", "id_token token"],
            ),
            (&["client_credentials"], &[], &["client_credentials"], &[]),
            (
                &["code", "implicit"],
                &[],
                &["authorization_code", "refresh_token", "implicit"],
                &["code", "token"],
            ),
            (&[], &["openid"], &[], &[]),
        ];
        for (flows, scopes, grants, responses) in cases {
            let (g, r, unknown) = grants_for(&s(flows), &s(scopes));
            assert_eq!(g, s(grants), "{flows:?}");
            assert_eq!(r, s(responses), "{flows:?}");
            assert!(unknown.is_empty());
        }
        let (_, _, unknown) = grants_for(&s(&["password"]), &[]);
        assert_eq!(unknown, s(&["password"]));
    }

    #[test]
    fn the_auth_method_follows_the_secret() {
        assert_eq!(auth_method(true), "client_secret_basic");
        assert_eq!(auth_method(false), "none");
        let public = AppClient {
            secret: None,
            ..app()
        };
        let mapped = map(&public, "us-east-1_x");
        assert!(!mapped.confidential);
        assert_eq!(mapped.fields["token_endpoint_auth_method"], "none");
        assert_eq!(
            map(&app(), "us-east-1_x").fields["token_endpoint_auth_method"],
            "client_secret_basic"
        );
    }

    #[test]
    fn a_mapped_client_drops_what_hydra_refuses_and_says_why() {
        let mapped = map(&app(), "us-east-1_x");
        let fields = &mapped.fields;
        assert_eq!(fields["client_name"], "web");
        assert_eq!(
            fields["redirect_uris"],
            json!(["https://app.example.com/callback"])
        );
        assert_eq!(
            fields["post_logout_redirect_uris"],
            json!(["https://app.example.com/bye"])
        );
        assert_eq!(fields["scope"], "openid email offline_access");
        assert_eq!(
            fields["authorization_code_grant_access_token_lifespan"],
            "30m"
        );
        assert_eq!(fields["authorization_code_grant_id_token_lifespan"], "2h");
        assert_eq!(fields["refresh_token_grant_refresh_token_lifespan"], "240h");
        assert_eq!(fields["access_token_strategy"], "jwt");
        assert_eq!(
            fields["metadata"][METADATA_KEY]["default_redirect_uri"],
            "https://app.example.com/callback"
        );
        let dropped: Vec<_> = mapped
            .dropped
            .iter()
            .map(|d| (d.field, d.uri.as_str()))
            .collect();
        assert_eq!(
            dropped,
            [
                ("redirect_uris", "https://app.example.com/cb#fragment"),
                (
                    "post_logout_redirect_uris",
                    "https://elsewhere.example.com/bye"
                ),
                (
                    "post_logout_redirect_uris",
                    "https://app.example.com:8443/bye"
                ),
            ]
        );
        assert!(
            mapped
                .notes
                .iter()
                .any(|n| n.contains("aws.cognito.signin.user.admin")),
            "{:?}",
            mapped.notes
        );
    }

    #[test]
    fn an_sdk_only_client_is_skipped() {
        assert!(skip_reason(&app()).is_none());
        let sdk_only = AppClient {
            oauth_enabled: false,
            ..app()
        };
        assert!(skip_reason(&sdk_only).is_some());
    }
}
