//! Cognito as a user directory: `ListUsers` pages, groups and memberships and the pool's size,
//! all under one token bucket (`import.list_rate`) that slows down further when Cognito
//! throttles. The pool's app clients (`app_clients.rs`) use the same bucket and retries.
//!
//! Just over 400 lines: every listing shares the one retry loop (`call`) kept beside them.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::UserType;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;

use super::sdk_config::sdk_config;
use super::sdk_error::{SdkFailure, describe, is_throttling_code, is_unavailable};
use crate::config::CognitoPool;

/// Cognito's largest `ListUsers` page.
pub const PAGE_SIZE: i32 = 60;
/// Time budget of one listing request (a page of 60 users is far below it).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Every item of a listing paged by `NextToken`: `page(token)` fetches one page and gives its
/// items and the next token (none, or empty, on the last page).
pub(super) async fn every_page<T, F, Fut>(mut page: F) -> Result<Vec<T>, DirectoryError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), DirectoryError>>,
{
    let mut items = Vec::new();
    let mut next = None;
    loop {
        let (found, token) = page(next).await?;
        items.extend(found);
        next = token.filter(|token| !token.is_empty());
        if next.is_none() {
            return Ok(items);
        }
    }
}

/// How the directory waits when Cognito throttles or is briefly unavailable.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait; it doubles per consecutive failure, up to `max`.
    pub base: Duration,
    pub max: Duration,
    /// Consecutive throttled answers before the import gives up.
    pub max_throttled: u32,
    /// Consecutive unavailable answers (5xx, timeouts, broken connections) before giving up.
    pub max_unavailable: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_throttled: 15,
            max_unavailable: 6,
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures, with jitter (half to all of it).
    fn wait(&self, failures: u32) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        let full = doubled.min(self.max);
        full.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("Cognito refused {operation} ({code}): {message}")]
    Refused {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error(
        "Cognito kept throttling {operation} ({attempts} answers in a row); try a quieter hour (or, for `import`, a lower `import.list_rate`; for `plan`'s AdminGetUser, a lower `--mfa-rate`)"
    )]
    Throttled {
        operation: &'static str,
        attempts: u32,
    },
    #[error("Cognito was unavailable for {operation} ({attempts} attempts): {last}")]
    Unavailable {
        operation: &'static str,
        attempts: u32,
        last: String,
    },
}

/// A Cognito user as listed: no secret is ever part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoUser {
    pub username: String,
    pub enabled: bool,
    /// `UserStatus`: `CONFIRMED`, `FORCE_CHANGE_PASSWORD`, `EXTERNAL_PROVIDER`, …
    pub status: String,
    pub attributes: Vec<(String, String)>,
}

impl CognitoUser {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn from_sdk(user: &UserType) -> Option<Self> {
        Some(Self {
            username: user.username()?.to_owned(),
            enabled: user.enabled(),
            status: user
                .user_status()
                .map(|status| status.as_str().to_owned())
                .unwrap_or_default(),
            attributes: user
                .attributes()
                .iter()
                .filter_map(|attribute| {
                    Some((attribute.name().to_owned(), attribute.value()?.to_owned()))
                })
                .collect(),
        })
    }
}

/// One group of the pool, from `ListGroups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGroup {
    pub name: String,
    pub description: Option<String>,
    /// Which group's role wins in tokens when a user is in several (lowest first).
    pub precedence: Option<i32>,
    /// The IAM role an identity pool hands the group's members.
    pub role_arn: Option<String>,
}

/// One `ListUsers` answer.
#[derive(Debug, Clone)]
pub struct Page {
    pub users: Vec<CognitoUser>,
    /// Where the next page starts; `None` after the last page.
    pub next_token: Option<String>,
}

pub struct Directory {
    pub(super) client: Client,
    pub(super) user_pool_id: String,
    limiter: DefaultDirectRateLimiter,
    /// Extra spacing added after throttling: doubled per throttled answer, shrunk by a
    /// tenth per success, so the import settles below what Cognito lets through.
    slowdown: Mutex<Duration>,
    backoff: Backoff,
}

impl Directory {
    /// `list_rate` requests per second, no burst: the quota is shared with the live apps.
    pub async fn new(
        pool: &CognitoPool,
        list_rate: f64,
        backoff: Backoff,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        let config = sdk_config(
            &pool.region,
            pool.endpoint_url.as_ref(),
            ATTEMPT_TIMEOUT,
            credentials,
        )
        .await;
        let period = Duration::from_secs_f64(1.0 / list_rate).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::MIN);
        Self {
            client: Client::new(&config),
            user_pool_id: pool.user_pool_id.clone(),
            limiter: RateLimiter::direct(quota),
            slowdown: Mutex::new(Duration::ZERO),
            backoff,
        }
    }

    /// One page of at most `limit` users (1..=60).
    pub async fn list_users(
        &self,
        token: Option<&str>,
        limit: i32,
    ) -> Result<Page, DirectoryError> {
        let output = self
            .call("ListUsers", || {
                self.client
                    .list_users()
                    .user_pool_id(&self.user_pool_id)
                    .limit(limit.clamp(1, PAGE_SIZE))
                    .set_pagination_token(token.map(str::to_owned))
                    .send()
            })
            .await?;
        Ok(Page {
            users: output
                .users()
                .iter()
                .filter_map(CognitoUser::from_sdk)
                .collect(),
            next_token: output
                .pagination_token()
                .filter(|token| !token.is_empty())
                .map(str::to_owned),
        })
    }

    /// The pool's groups (`ListGroups`, paged), as Cognito lists them.
    pub async fn groups(&self) -> Result<Vec<PoolGroup>, DirectoryError> {
        every_page(|next| async move {
            let output = self
                .call("ListGroups", || {
                    self.client
                        .list_groups()
                        .user_pool_id(&self.user_pool_id)
                        .limit(PAGE_SIZE)
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            let groups = output
                .groups()
                .iter()
                .filter_map(|group| {
                    Some(PoolGroup {
                        name: group.group_name()?.to_owned(),
                        description: group
                            .description()
                            .filter(|text| !text.is_empty())
                            .map(str::to_owned),
                        precedence: group.precedence(),
                        role_arn: group
                            .role_arn()
                            .filter(|arn| !arn.is_empty())
                            .map(str::to_owned),
                    })
                })
                .collect();
            Ok((groups, output.next_token().map(str::to_owned)))
        })
        .await
    }

    /// Every user's groups, sorted: `ListGroups`, then `ListUsersInGroup` per group (never
    /// one call per user).
    pub async fn group_memberships(&self) -> Result<HashMap<String, Vec<String>>, DirectoryError> {
        let groups: Vec<String> = self.groups().await?.into_iter().map(|g| g.name).collect();
        let mut memberships: HashMap<String, Vec<String>> = HashMap::new();
        for group in &groups {
            let members = every_page(|next| async move {
                let output = self
                    .call("ListUsersInGroup", || {
                        self.client
                            .list_users_in_group()
                            .user_pool_id(&self.user_pool_id)
                            .group_name(group)
                            .limit(PAGE_SIZE)
                            .set_next_token(next.clone())
                            .send()
                    })
                    .await?;
                let names = output.users().iter().filter_map(|user| user.username());
                Ok((
                    names.map(str::to_owned).collect(),
                    output.next_token().map(str::to_owned),
                ))
            })
            .await?;
            for username in members {
                memberships.entry(username).or_default().push(group.clone());
            }
        }
        for groups in memberships.values_mut() {
            groups.sort();
            groups.dedup();
        }
        Ok(memberships)
    }

    /// `DescribeUserPool`'s `EstimatedNumberOfUsers` (for the progress bar's ETA).
    pub async fn estimated_users(&self) -> Result<i64, DirectoryError> {
        let output = self
            .call("DescribeUserPool", || {
                self.client
                    .describe_user_pool()
                    .user_pool_id(&self.user_pool_id)
                    .send()
            })
            .await?;
        Ok(output
            .user_pool()
            .map_or(0, |pool| i64::from(pool.estimated_number_of_users())))
    }

    /// Send under the rate limit; wait and retry when throttled or unavailable.
    pub(super) async fn call<T, E, R, F, Fut>(
        &self,
        operation: &'static str,
        send: F,
    ) -> Result<T, DirectoryError>
    where
        E: ProvideErrorMetadata,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response<R>>>>,
    {
        let mut throttled = 0;
        let mut unavailable = 0;
        loop {
            let slowdown = *self.slowdown.lock().expect("slowdown lock");
            if !slowdown.is_zero() {
                tokio::time::sleep(slowdown).await;
            }
            self.limiter.until_ready().await;
            let error = match send().await {
                Ok(output) => {
                    let mut slowdown = self.slowdown.lock().expect("slowdown lock");
                    *slowdown = slowdown.mul_f64(0.9);
                    if *slowdown < Duration::from_millis(1) {
                        *slowdown = Duration::ZERO;
                    }
                    return Ok(output);
                }
                Err(error) => error,
            };
            let failure = SdkFailure::read(&error);
            match failure.error_code() {
                Some(code) if is_throttling_code(code) => {
                    throttled += 1;
                    if throttled >= self.backoff.max_throttled {
                        return Err(DirectoryError::Throttled {
                            operation,
                            attempts: throttled,
                        });
                    }
                    {
                        let mut slowdown = self.slowdown.lock().expect("slowdown lock");
                        *slowdown = (*slowdown * 2)
                            .max(Duration::from_millis(50))
                            .min(Duration::from_secs(5));
                    }
                    tracing::warn!(
                        operation,
                        code,
                        throttled,
                        "Cognito throttled a listing; slowing down"
                    );
                    tokio::time::sleep(self.backoff.wait(throttled)).await;
                }
                _ if is_unavailable(&failure.answer) => {
                    unavailable += 1;
                    let last = describe(&failure.answer, failure.message.as_deref());
                    if unavailable >= self.backoff.max_unavailable {
                        return Err(DirectoryError::Unavailable {
                            operation,
                            attempts: unavailable,
                            last,
                        });
                    }
                    tracing::warn!(operation, error = %last, "Cognito unavailable; retrying");
                    tokio::time::sleep(self.backoff.wait(unavailable)).await;
                }
                code => {
                    return Err(DirectoryError::Refused {
                        operation,
                        code: code.map_or_else(|| describe(&failure.answer, None), str::to_owned),
                        message: failure
                            .message
                            .clone()
                            .unwrap_or_else(|| describe(&failure.answer, None)),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let backoff = Backoff::default();
        for failures in 1..=20 {
            let full = (backoff.base * 2u32.pow((failures - 1).min(16))).min(backoff.max);
            let wait = backoff.wait(failures);
            assert!(wait <= full && wait >= full / 2, "{failures}: {wait:?}");
        }
    }
}
