//! The admin listener's JSON API (`admin.listen`, every route behind `admin.tokens`):
//! `GET /admin/progress`, `/admin/timeline`, `/admin/users`, `/admin/users.csv` (streamed),
//! `/admin/imports`. The figures come from `report` and the store; nothing here writes.

use std::collections::HashMap;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::hooks::authorize;
use crate::domain::UserState;
use crate::report::{PROJECTION_WINDOW_DAYS, Projection, Timeline};
use crate::store::{Bucket, ImportRun, Progress, UserListing};

/// Users per page when the caller does not say, and at most.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;
/// Import runs `/admin/imports` lists.
const IMPORT_RUNS: i64 = 100;
/// Users per store read while the CSV streams.
const CSV_PAGE: i64 = 1000;

/// Every admin route: `Authorization: Bearer <one of admin.tokens>`, compared as the hook's
/// keys are (constant time over digests). The hook's keys open nothing here.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let allowed = request
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| authorize(request.headers(), &state.admin_tokens).is_ok());
    if !allowed {
        return Err(ApiError::Unauthorized.into());
    }
    next.call(request).await
}

#[derive(Serialize)]
struct ProgressAnswer<'a> {
    #[serde(flatten)]
    progress: &'a Progress,
    imports: &'a [ImportRun],
    /// When `pending` reaches zero at the recent rate; `null` when there is no trend.
    projected_completion: Option<NaiveDate>,
    projection: &'a Projection,
}

/// `GET /admin/progress`: what `report --format json` prints, the outbox, the projection.
pub async fn progress(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let progress = state.store.progress().await.map_err(ApiError::store)?;
    let imports = state
        .store
        .import_runs(crate::report::IMPORT_RUNS_SHOWN)
        .await
        .map_err(ApiError::store)?;
    let window_start = now - chrono::Duration::days(i64::from(PROJECTION_WINDOW_DAYS));
    let recent = state
        .store
        .migrated_between(Some(window_start), now)
        .await
        .map_err(ApiError::store)?;
    let pending = progress.states.get("pending").copied().unwrap_or(0);
    let projection = Projection::new(pending, recent, now);
    Ok(HttpResponse::Ok().json(ProgressAnswer {
        progress: &progress,
        imports: &imports,
        projected_completion: projection.date,
        projection: &projection,
    }))
}

/// `GET /admin/timeline?bucket=day|hour&from=&to=`: migrations per bucket by `via`.
/// `from`/`to` are RFC 3339 times or dates (UTC); default: the last 30 days (48 hours).
pub async fn timeline(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let bucket = match query.get("bucket").map(String::as_str) {
        None => Bucket::Day,
        Some(raw) => Bucket::parse(raw).ok_or(ApiError::BadQuery("`bucket` is `day` or `hour`"))?,
    };
    let now = Utc::now();
    let to = time_parameter(&query, "to")?.unwrap_or(now);
    let from = time_parameter(&query, "from")?.unwrap_or_else(|| match bucket {
        Bucket::Day => to - chrono::Duration::days(30),
        Bucket::Hour => to - chrono::Duration::hours(48),
    });
    let (from, to) = Timeline::range(bucket, from, to).map_err(ApiError::timeline)?;
    let before = state
        .store
        .migrated_between(None, from)
        .await
        .map_err(ApiError::store)?;
    let counts = state
        .store
        .migrations_by_bucket(bucket, from, to)
        .await
        .map_err(ApiError::store)?;
    Ok(HttpResponse::Ok().json(Timeline::build(bucket, from, to, before, &counts)))
}

fn time_parameter(
    query: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = query.get(name) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|at| Some(at.and_utc()))
        .ok_or(ApiError::BadQuery(
            "`from` and `to` are RFC 3339 times (2026-12-01T00:00:00Z) or dates (2026-12-01)",
        ))
}

#[derive(Serialize)]
struct UsersAnswer {
    users: Vec<UserListing>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `GET /admin/users?state=&cursor=&limit=`: users in username order, a page at a time.
pub async fn users(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let filter = state_parameter(&query)?;
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or(ApiError::BadQuery("`limit` is a number from 1 to 1000"))?,
    };
    let after = match query.get("cursor") {
        None => String::new(),
        Some(cursor) => decode_cursor(cursor)?,
    };
    let mut users = state
        .store
        .users_page(filter, &after, limit + 1)
        .await
        .map_err(ApiError::store)?;
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            users
                .last()
                .map(|user| encode_cursor(&user.cognito_username))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(UsersAnswer { users, next_cursor }))
}

/// `GET /admin/users.csv?state=`: the same rows as CSV, streamed page by page.
pub async fn users_csv(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let filter = state_parameter(&query)?;
    let header = csv_rows(&[]).map_err(ApiError::csv)?;
    let store = state.store.clone();
    let pages = futures_util::stream::unfold(Some(String::new()), move |after| {
        let store = store.clone();
        async move {
            let after = after?;
            let page = match store.users_page(filter, &after, CSV_PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    // The status is sent already: cut the stream, and say why in the log.
                    tracing::error!(%error, "users.csv: the store failed mid-stream");
                    return Some((Err(ApiError::store(error)), None));
                }
            };
            if page.is_empty() {
                return None;
            }
            let next = (page.len() as i64 == CSV_PAGE)
                .then(|| page.last().map(|user| user.cognito_username.clone()))
                .flatten();
            let chunk = csv_body_rows(&page).map_err(ApiError::csv);
            Some((chunk.map(web::Bytes::from), next))
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, ApiError>(web::Bytes::from(header)) }),
        pages,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"cognito-bridge-users.csv\"",
        ))
        .streaming(body))
}

/// The CSV header line, then `users` (none: the header alone).
fn csv_rows(users: &[UserListing]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "username",
        "email",
        "state",
        "migrated_via",
        "last_attempt_at",
        "last_outcome",
        "attempts",
    ])?;
    write_users(&mut writer, users)?;
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

/// `users` as CSV lines, without the header.
fn csv_body_rows(users: &[UserListing]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    write_users(&mut writer, users)?;
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

fn write_users(writer: &mut csv::Writer<Vec<u8>>, users: &[UserListing]) -> csv::Result<()> {
    for user in users {
        writer.write_record([
            user.cognito_username.as_str(),
            user.email.as_deref().unwrap_or_default(),
            user.state.as_str(),
            user.migrated_via.as_deref().unwrap_or_default(),
            &user
                .last_attempt_at
                .map(|at| at.to_rfc3339())
                .unwrap_or_default(),
            user.last_outcome.as_deref().unwrap_or_default(),
            &user.attempts.to_string(),
        ])?;
    }
    Ok(())
}

/// `GET /admin/imports`: the import runs, newest first.
pub async fn imports(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let runs = state
        .store
        .import_runs(IMPORT_RUNS)
        .await
        .map_err(ApiError::store)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "imports": runs })))
}

fn state_parameter(query: &HashMap<String, String>) -> Result<Option<UserState>, ApiError> {
    query
        .get("state")
        .map(|raw| {
            UserState::parse(raw).ok_or(ApiError::BadQuery(
                "`state` is one of pending, migrated, needs_recovery, inactive, skipped",
            ))
        })
        .transpose()
}

/// A cursor is the last username of a page, opaque to callers.
fn encode_cursor(username: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(username)
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(ApiError::BadQuery("`cursor` is not one this API gave out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for username in ["alice", "bob@example.com", "ü-ser/+="] {
            assert_eq!(decode_cursor(&encode_cursor(username)).unwrap(), username);
        }
        assert!(decode_cursor("not base64!").is_err());
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let user = UserListing {
            cognito_username: "o\"neil, jr".to_owned(),
            email: None,
            state: "pending".to_owned(),
            migrated_via: None,
            last_attempt_at: None,
            last_outcome: Some("not_authorized".to_owned()),
            attempts: 2,
        };
        let text = String::from_utf8(csv_rows(&[user]).unwrap()).unwrap();
        assert_eq!(
            text,
            "username,email,state,migrated_via,last_attempt_at,last_outcome,attempts\n\
             \"o\"\"neil, jr\",,pending,,,not_authorized,2\n"
        );
    }
}
