//! What our HTTP clients of Ory's admin APIs (`kratos/`, `hydra/`) share: one configured
//! `reqwest` client with the optional bearer token ([`AdminHttp`]), building a URL from path
//! segments, showing a URL in messages, and describing a failed request.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A request that got no complete answer: where to (for messages) and why.
#[derive(Debug)]
pub(crate) struct Unreachable {
    pub url: String,
    pub reason: String,
}

/// The HTTP side of an admin API client: connect within 5 s (or the timeout, if shorter),
/// the whole request within `timeout`, no redirects followed, and the admin token, when
/// one is configured, sent as a bearer token.
pub(crate) struct AdminHttp {
    client: reqwest::Client,
    token: Option<SecretString>,
}

impl AdminHttp {
    pub fn new(
        admin_url: &Url,
        token: Option<SecretString>,
        timeout: Duration,
    ) -> Result<Self, Unreachable> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| Unreachable {
                url: display_url(admin_url),
                reason: format!("cannot build an HTTP client: {error}"),
            })?;
        Ok(Self { client, token })
    }

    /// A request to the admin API, with the token.
    pub fn admin(&self, method: Method, url: &Url) -> RequestBuilder {
        let request = self.client.request(method, url.clone());
        match &self.token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        }
    }

    /// A request to a public API: no token.
    pub fn public(&self, method: Method, url: &Url) -> RequestBuilder {
        self.client.request(method, url.clone())
    }

    /// Sends `request` (to `url`) and reads the whole answer: status and body.
    pub async fn send(
        &self,
        request: RequestBuilder,
        url: &Url,
    ) -> Result<(u16, Bytes), Unreachable> {
        let (status, _, body) = self.send_keeping_headers(request, url).await?;
        Ok((status, body))
    }

    /// [`send`](Self::send), with the answer's headers.
    pub async fn send_keeping_headers(
        &self,
        request: RequestBuilder,
        url: &Url,
    ) -> Result<(u16, HeaderMap, Bytes), Unreachable> {
        let unreachable = |error: reqwest::Error| Unreachable {
            url: display_url(url),
            reason: describe(&error),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let body = response.bytes().await.map_err(unreachable)?;
        Ok((status, headers, body))
    }
}

/// `base` with path segments appended, each percent-encoded.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
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
pub(crate) fn describe(error: &reqwest::Error) -> String {
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
