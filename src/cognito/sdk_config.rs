//! The AWS SDK's configuration every Cognito client (auth, directory) is built from: our HTTP
//! client, explicit timeouts, no SDK retries.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::{Builder as HttpClientBuilder, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use url::Url;

/// The SDK's configuration for one region and endpoint: our HTTP client, `attempt_timeout`
/// per request, and no SDK retries (callers retry by their own rules). `credentials`
/// overrides the standard AWS chain.
pub async fn sdk_config(
    region: &str,
    endpoint_url: Option<&Url>,
    attempt_timeout: Duration,
    credentials: Option<SharedCredentialsProvider>,
) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(attempt_timeout.min(Duration::from_secs(3)))
        .operation_attempt_timeout(attempt_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(sdk_http_client())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::disabled());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url.as_str().trim_end_matches('/'));
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// The SDK's HTTP client: hyper with rustls on ring (the trimmed SDK has no default one).
pub fn sdk_http_client() -> SharedHttpClient {
    HttpClientBuilder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .pool_idle_timeout(Duration::from_secs(50))
        .build_https()
}
