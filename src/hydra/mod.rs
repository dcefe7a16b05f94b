//! Hydra's admin API as `clients` uses it: read, create and replace one OAuth2 client
//! (`/admin/clients`, Hydra v2.x), with a client built once. Request bodies may hold a client
//! secret: they are never logged, and no error carries a body we sent.

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::HydraSettings;
pub use crate::outbound::display_url;
use crate::outbound::{AdminHttp, Unreachable, endpoint};
use reqwest::Method;

impl From<Unreachable> for HydraError {
    fn from(Unreachable { url, reason }: Unreachable) -> Self {
        HydraError::Unreachable { url, reason }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HydraError {
    #[error("Hydra at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Hydra answered {method} {path} with {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("Hydra's answer to {path} could not be read: {reason}")]
    Malformed { path: String, reason: String },
}

/// What Hydra said to a create or a replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    /// A 400 (`invalid_client_metadata`, `invalid_redirect_uri`, …): Hydra's reason.
    Refused {
        error: String,
        description: String,
    },
}

pub struct HydraAdmin {
    http: AdminHttp,
    admin_url: Url,
}

impl HydraAdmin {
    pub fn new(settings: &HydraSettings) -> Result<Self, HydraError> {
        let http = AdminHttp::new(
            &settings.admin_url,
            settings.admin_token().cloned(),
            settings.timeout(),
        )?;
        Ok(Self {
            http,
            admin_url: settings.admin_url.clone(),
        })
    }

    /// `GET /admin/clients/{id}`: the client as Hydra holds it (never with its secret).
    pub async fn client(&self, id: &str) -> Result<Option<Value>, HydraError> {
        let url = self.client_url(id);
        let (status, body) = self
            .http
            .send(self.http.admin(Method::GET, &url), &url)
            .await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|error| HydraError::Malformed {
                    path: url.path().to_owned(),
                    reason: error.to_string(),
                }),
            404 => Ok(None),
            _ => Err(unexpected("GET", &url, status, &body)),
        }
    }

    /// `POST /admin/clients` with `body` (which may hold `client_secret`).
    pub async fn create(&self, body: &Value) -> Result<Written, HydraError> {
        let url = endpoint(&self.admin_url, &["admin", "clients"]);
        let request = self.http.admin(Method::POST, &url).json(body);
        let (status, answer) = self.http.send(request, &url).await?;
        written("POST", &url, status, &answer, 201)
    }

    /// `PUT /admin/clients/{id}`: a full replacement; without `client_secret` in `body` the
    /// secret Hydra holds is kept.
    pub async fn replace(&self, id: &str, body: &Value) -> Result<Written, HydraError> {
        let url = self.client_url(id);
        let request = self.http.admin(Method::PUT, &url).json(body);
        let (status, answer) = self.http.send(request, &url).await?;
        written("PUT", &url, status, &answer, 200)
    }

    fn client_url(&self, id: &str) -> Url {
        endpoint(&self.admin_url, &["admin", "clients", id])
    }
}

/// The answer to a write. The success body (which echoes the secret) is dropped unread.
fn written(
    method: &'static str,
    url: &Url,
    status: u16,
    body: &[u8],
    success: u16,
) -> Result<Written, HydraError> {
    if status == success {
        return Ok(Written::Done);
    }
    if status == 400 {
        let error = serde_json::from_slice::<ErrorBody>(body).unwrap_or_default();
        return Ok(Written::Refused {
            error: error.error.unwrap_or_else(|| "invalid_request".to_owned()),
            description: error.error_description.unwrap_or_default(),
        });
    }
    Err(unexpected(method, url, status, body))
}

/// Hydra's OAuth2-style error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

fn unexpected(method: &'static str, url: &Url, status: u16, body: &[u8]) -> HydraError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: Some(error),
            error_description,
        }) => match error_description {
            Some(description) if !description.is_empty() => format!("{error}: {description}"),
            _ => error,
        },
        _ => format!("{} bytes of body", body.len()),
    };
    HydraError::Status {
        method,
        path: url.path().to_owned(),
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_carry_the_admin_prefix_and_encode_the_id() {
        let base = Url::parse("http://hydra:4445/").unwrap();
        assert_eq!(
            endpoint(&base, &["admin", "clients", "a/b c"]).as_str(),
            "http://hydra:4445/admin/clients/a%2Fb%20c"
        );
    }

    #[test]
    fn a_refusal_keeps_hydras_reason_and_other_statuses_are_errors() {
        let url = Url::parse("http://hydra:4445/admin/clients").unwrap();
        let refused = written(
            "POST",
            &url,
            400,
            br#"{"error":"invalid_client_metadata","error_description":"bad logout"}"#,
            201,
        )
        .unwrap();
        assert_eq!(
            refused,
            Written::Refused {
                error: "invalid_client_metadata".into(),
                description: "bad logout".into()
            }
        );
        assert_eq!(
            written("POST", &url, 201, b"{}", 201).unwrap(),
            Written::Done
        );
        let error = written("POST", &url, 409, br#"{"error":"conflict"}"#, 201).unwrap_err();
        assert!(error.to_string().contains("409"), "{error}");
    }
}
