//! How the fields `clients` manages compare with the Hydra client as `GET /admin/clients/{id}`
//! returns it: Hydra's defaults applied to both sides, lists as sets, lifespans as durations
//! (Hydra echoes `30m` as `30m0s`), and whether the client is ours at all.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::mapping::{METADATA_KEY, parse_go_duration};

/// What Hydra puts in `scope` when it is empty (`oidc.dynamic_client_registration.default_scope`).
const HYDRA_DEFAULT_SCOPE: [&str; 3] = ["offline_access", "offline", "openid"];

/// Whether a Hydra client carries our marker (we created it).
pub fn is_ours(actual: &Value) -> bool {
    actual
        .get("metadata")
        .and_then(|metadata| metadata.get(METADATA_KEY))
        .is_some_and(Value::is_object)
}

/// The managed fields whose value in `actual` (Hydra's GET) differs from `desired`.
pub fn changed_fields(desired: &Map<String, Value>, actual: &Value) -> Vec<String> {
    desired
        .iter()
        .filter(|(name, wanted)| !same(name, wanted, actual.get(name.as_str())))
        .map(|(name, _)| name.clone())
        .collect()
}

fn strings(value: Option<&Value>) -> BTreeSet<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        _ => BTreeSet::new(),
    }
}

fn or_default(set: BTreeSet<String>, default: &[&str]) -> BTreeSet<String> {
    if set.is_empty() {
        default.iter().map(|item| (*item).to_owned()).collect()
    } else {
        set
    }
}

fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or_default()
}

fn same(name: &str, wanted: &Value, actual: Option<&Value>) -> bool {
    let wanted = Some(wanted);
    match name {
        "grant_types" => {
            or_default(strings(wanted), &["authorization_code"])
                == or_default(strings(actual), &["authorization_code"])
        }
        "response_types" => {
            or_default(strings(wanted), &["code"]) == or_default(strings(actual), &["code"])
        }
        "scope" => {
            or_default(strings(wanted), &HYDRA_DEFAULT_SCOPE)
                == or_default(strings(actual), &HYDRA_DEFAULT_SCOPE)
        }
        "redirect_uris" | "post_logout_redirect_uris" => strings(wanted) == strings(actual),
        "token_endpoint_auth_method" => {
            let method = |value| match text(value) {
                "" => "client_secret_basic",
                method => method,
            };
            method(wanted) == method(actual)
        }
        "metadata" => {
            let object = |value: Option<&Value>| match value {
                Some(Value::Object(map)) => map.clone(),
                _ => Map::new(),
            };
            object(wanted) == object(actual)
        }
        lifespan if lifespan.ends_with("_lifespan") => {
            let nanos =
                |value: Option<&Value>| value.and_then(Value::as_str).and_then(parse_go_duration);
            nanos(wanted) == nanos(actual)
        }
        _ => text(wanted) == text(actual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::mapping::{ACCESS_LIFESPANS, map};
    use crate::cognito::{AppClient, ValidityUnit};
    use secrecy::SecretString;
    use serde_json::json;

    fn app() -> AppClient {
        AppClient {
            client_id: "web-id".into(),
            name: "web".into(),
            secret: Some(SecretString::from("s".repeat(30))),
            callback_urls: vec!["https://app.example.com/callback".into()],
            logout_urls: vec!["https://app.example.com/bye".into()],
            default_redirect_uri: None,
            oauth_enabled: true,
            flows: vec!["code".into()],
            scopes: vec!["openid".into(), "email".into()],
            access_token_validity: Some((30, Some(ValidityUnit::Minutes))),
            id_token_validity: None,
            refresh_token_validity: None,
        }
    }

    #[test]
    fn comparison_applies_hydras_defaults_and_echo_formats() {
        let mapped = map(&app(), "us-east-1_x");
        let mut actual = Value::Object(mapped.fields.clone());
        for name in ACCESS_LIFESPANS {
            actual[name] = json!("30m0s");
        }
        actual["redirect_uris"] = json!(["https://app.example.com/callback"]);
        actual["scope"] = json!("email offline_access openid");
        actual["created_at"] = json!("2026-12-01T00:00:00Z");
        assert!(changed_fields(&mapped.fields, &actual).is_empty());
        actual["scope"] = json!("openid");
        actual["post_logout_redirect_uris"] = json!(null);
        assert_eq!(
            changed_fields(&mapped.fields, &actual),
            ["post_logout_redirect_uris", "scope"]
        );

        let mut empty_scope = mapped.fields.clone();
        empty_scope.insert("scope".into(), json!(""));
        empty_scope.insert("response_types".into(), json!([]));
        let mut hydra = Value::Object(empty_scope.clone());
        hydra["scope"] = json!("offline_access offline openid");
        hydra["response_types"] = json!(["code"]);
        assert!(changed_fields(&empty_scope, &hydra).is_empty());
        assert!(is_ours(&hydra));
        assert!(!is_ours(&json!({"metadata": {}})));
    }
}
