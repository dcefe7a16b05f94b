//! Lines 2 and 3: a password login through Kratos's public API (API flow, no browser), and
//! Hydra's public discovery, JWKS and a client-credentials token verified against that JWKS.
//! Secrets go into request bodies and headers only.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use super::{CheckLine, Credentials};

pub(super) fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

async fn get_json(http: &reqwest::Client, url: &Url) -> Result<Value, String> {
    let shown = crate::kratos::display_url(url);
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|error| format!("{shown} unreachable: {error}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("{shown} answered {status}"));
    }
    response
        .json()
        .await
        .map_err(|error| format!("{shown}: not JSON ({error})"))
}

/// Line 2: `GET /self-service/login/api`, then the password method on that flow
/// (notes A6): 200 with a session token passes.
pub(super) async fn login(http: &reqwest::Client, public: &Url, user: &Credentials) -> CheckLine {
    let name = "login";
    let flow = match get_json(http, &endpoint(public, &["self-service", "login", "api"])).await {
        Ok(flow) => flow,
        Err(error) => return CheckLine::fail(name, format!("creating a login flow: {error}")),
    };
    let Some(flow_id) = flow.get("id").and_then(Value::as_str) else {
        return CheckLine::fail(name, "Kratos's login flow has no id".to_owned());
    };
    let mut url = endpoint(public, &["self-service", "login"]);
    url.query_pairs_mut().append_pair("flow", flow_id);
    let body = json!({
        "method": "password",
        "identifier": user.id,
        "password": user.secret.expose_secret(),
    });
    let sent = http.post(url).json(&body).send().await;
    drop(body);
    let response = match sent {
        Ok(response) => response,
        Err(error) => return CheckLine::fail(name, format!("Kratos unreachable: {error}")),
    };
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status == 200
        && answer
            .get("session_token")
            .and_then(Value::as_str)
            .is_some()
    {
        return CheckLine::pass(
            name,
            "the sample user logged in through Kratos's public API (a session was issued)"
                .to_owned(),
        );
    }
    let ids: Vec<String> = answer
        .pointer("/ui/messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|message| message.get("id").and_then(Value::as_i64))
        .map(|id| id.to_string())
        .collect();
    let reason = if ids.iter().any(|id| id == "4000006") {
        "invalid credentials (4000006)".to_owned()
    } else if let Some(error) = answer.pointer("/error/reason").and_then(Value::as_str) {
        error.to_owned()
    } else if ids.is_empty() {
        "no session".to_owned()
    } else {
        format!("messages {}", ids.join(", "))
    };
    CheckLine::fail(name, format!("Kratos answered {status}: {reason}"))
}

/// Hydra's discovery document and its key set.
pub(super) struct Discovery {
    line: CheckLine,
    keys: Option<(String, JwkSet)>,
}

impl Discovery {
    pub(super) fn line(&self) -> CheckLine {
        self.line.clone()
    }

    pub(super) fn keys(&self) -> Option<(&str, &JwkSet)> {
        self.keys
            .as_ref()
            .map(|(issuer, jwks)| (issuer.as_str(), jwks))
    }
}

/// Line 3a: `/.well-known/openid-configuration` names an issuer and `/.well-known/jwks.json`
/// holds at least one key.
pub(super) async fn hydra_discovery(http: &reqwest::Client, public: &Url) -> Discovery {
    let name = "hydra discovery";
    let failed = |detail: String| Discovery {
        line: CheckLine::fail(name, detail),
        keys: None,
    };
    let configuration = match get_json(
        http,
        &endpoint(public, &[".well-known", "openid-configuration"]),
    )
    .await
    {
        Ok(configuration) => configuration,
        Err(error) => return failed(error),
    };
    let Some(issuer) = configuration.get("issuer").and_then(Value::as_str) else {
        return failed("the openid-configuration has no issuer".to_owned());
    };
    let jwks = match get_json(http, &endpoint(public, &[".well-known", "jwks.json"])).await {
        Ok(jwks) => jwks,
        Err(error) => return failed(error),
    };
    let jwks: JwkSet = match serde_json::from_value(jwks) {
        Ok(jwks) => jwks,
        Err(error) => return failed(format!("jwks.json is not a key set: {error}")),
    };
    if jwks.keys.is_empty() {
        return failed("jwks.json holds no key".to_owned());
    }
    Discovery {
        line: CheckLine::pass(
            name,
            format!(
                "openid-configuration (issuer {issuer}) and jwks.json ({} keys) answer",
                jwks.keys.len()
            ),
        )
        .number("jwks_keys", jwks.keys.len() as i64),
        keys: Some((issuer.to_owned(), jwks)),
    }
}

/// Line 3b: a client-credentials token from `/oauth2/token` that verifies against the JWKS
/// (signature, `iss`, `exp`), as an app's resource server would check it.
pub(super) async fn hydra_token(
    http: &reqwest::Client,
    public: &Url,
    client: &Credentials,
    issuer: &str,
    jwks: &JwkSet,
) -> CheckLine {
    let name = "hydra token";
    let url = endpoint(public, &["oauth2", "token"]);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .finish();
    let sent = http
        .post(url)
        .basic_auth(&client.id, Some(client.secret.expose_secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return CheckLine::fail(name, format!("Hydra unreachable: {error}")),
    };
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let Some(token) = answer.get("access_token").and_then(Value::as_str) else {
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no access_token");
        return CheckLine::fail(
            name,
            format!("Hydra answered {status} to client {}: {error}", client.id),
        );
    };
    match verify(token, issuer, jwks) {
        Ok(()) => CheckLine::pass(
            name,
            format!(
                "a client_credentials token of {} verifies against jwks.json",
                client.id
            ),
        ),
        Err(reason) => CheckLine::fail(
            name,
            format!("the token of {} does not verify: {reason}", client.id),
        ),
    }
}

fn verify(token: &str, issuer: &str, jwks: &JwkSet) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        "not a JWT (is the client's access_token_strategy opaque? `clients` sets jwt)".to_owned()
    })?;
    let kid = header.kid.as_deref().ok_or("the token names no kid")?;
    let jwk = jwks
        .find(kid)
        .ok_or_else(|| format!("kid {kid} is not in jwks.json"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|error| format!("key {kid}: {error}"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|_| ())
        .map_err(|error| error.to_string())
}
