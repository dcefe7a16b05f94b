//! Raw SQL beside the store, on either backend: to set a database up as a test needs it and
//! to read what the store wrote.

use chrono::{DateTime, Utc};

use super::{Backend, TestDatabase};

pub enum Raw {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A user row's counted columns: state, MFA dropped, migrated at, via.
pub type UserRow = (String, bool, Option<DateTime<Utc>>, Option<String>);

impl Raw {
    pub async fn connect(database: &TestDatabase) -> Self {
        match database.backend {
            Backend::Postgres => Raw::postgres(&database.url).await,
            Backend::Sqlite => Raw::Sqlite(sqlx::SqlitePool::connect(&database.url).await.unwrap()),
        }
    }

    pub async fn postgres(url: &str) -> Self {
        Raw::Postgres(sqlx::PgPool::connect(url).await.unwrap())
    }

    pub async fn exec(&self, sql: &str) {
        match self {
            Raw::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
            Raw::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    pub async fn users(&self) -> Vec<UserRow> {
        const SELECT: &str = "SELECT state, mfa_dropped, migrated_at, migrated_via FROM users";
        match self {
            Raw::Postgres(pool) => sqlx::query_as(SELECT).fetch_all(pool).await,
            Raw::Sqlite(pool) => sqlx::query_as(SELECT).fetch_all(pool).await,
        }
        .unwrap()
    }

    /// One number a query selects.
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }
}
