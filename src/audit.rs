//! The append-only audit trail: who did what to whom, when. Rows are never updated or
//! deleted (the database refuses it).

use serde::Serialize;
use sqlx::{Any, AnyConnection, FromRow};

use crate::store::Db;

/// One audit entry to write.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// `reseat`, `admin:<name>`, `jsm:<issue>`, `webhook`, …
    pub actor: &'a str,
    /// The role the actor acted with (`viewer`, `approver`, `operator`, `owner`): set for
    /// admins, API tokens and the CLI; None for reseat itself and the restore channels.
    pub role: Option<&'a str>,
    /// A dotted verb: `restore.received`, `restore.rejected`, `restore.groups_added`, …
    pub action: &'a str,
    pub account_id: Option<&'a str>,
    pub product: Option<&'a str>,
    pub details: serde_json::Value,
}

/// A stored audit entry.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Record {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    /// The role the actor acted with; None for reseat, the channels and older entries.
    pub role: Option<String>,
    pub action: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    pub details: String,
}

impl Record {
    /// Whether `grant`'s scope covers the entry: an entry about a product is covered when
    /// the product is (on `site`, the install's site: entries do not record one); an entry
    /// about no product (a sign-in, a sweep) is shown to every reader.
    pub fn in_scope(&self, grant: &crate::web::config::Grant, site: &str) -> bool {
        self.product
            .as_deref()
            .is_none_or(|product| grant.covers(site, Some(product)))
    }
}

/// Writes an entry inside the caller's transaction, dated `now` (UTC ms, from the app's
/// clock).
pub async fn record_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, role, action, account_id, product, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now)
    .bind(entry.actor)
    .bind(entry.role)
    .bind(entry.action)
    .bind(entry.account_id)
    .bind(entry.product)
    .bind(entry.details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an entry on its own.
pub async fn record(db: &Db, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    record_in(&mut conn, db.now_ms(), entry).await
}

/// Entries for one account, oldest first, or every entry with `account` None (newest last).
pub async fn list(db: &Db, account: Option<&str>, limit: i64) -> Result<Vec<Record>, sqlx::Error> {
    let columns = "id, at, actor, role, action, account_id, product, details";
    match account {
        Some(account) => {
            sqlx::query_as::<Any, Record>(&format!(
                "SELECT {columns} FROM audit_log WHERE account_id = $1 ORDER BY id LIMIT $2"
            ))
            .bind(account)
            .bind(limit)
            .fetch_all(db.pool())
            .await
        }
        None => {
            sqlx::query_as::<Any, Record>(&format!(
                "SELECT {columns} FROM audit_log ORDER BY id LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(db.pool())
            .await
        }
    }
}

/// What to look for in the audit log; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub account: Option<&'a str>,
    /// From this time (UTC ms), inclusive.
    pub from: Option<i64>,
    /// Before this time (UTC ms), exclusive.
    pub to: Option<i64>,
}

/// One page of entries matching `filter`, newest first, with ids below `before`.
pub async fn search(
    db: &Db,
    filter: &Filter<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Record>, sqlx::Error> {
    sqlx::query_as::<Any, Record>(
        "SELECT id, at, actor, role, action, account_id, product, details FROM audit_log \
         WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
         AND ($3 IS NULL OR account_id = $3) AND ($4 IS NULL OR at >= $4) \
         AND ($5 IS NULL OR at < $5) AND ($6 IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7",
    )
    .bind(filter.actor)
    .bind(filter.action)
    .bind(filter.account)
    .bind(filter.from)
    .bind(filter.to)
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// A refused request, counted in aggregate ([`refused`]).
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    /// `restore.rejected`, `link.rejected`, `admin.login_failed`, …
    pub action: &'a str,
    /// The channel (`webhook`, `jsm`, `link:restore`) or the client address.
    pub source: &'a str,
    /// Why; a closed set of wordings, never a secret or a token.
    pub reason: &'a str,
}

/// Counts a refusal in the minute it happened (`audit_refusals`): one row per minute,
/// action, source and reason, however many requests are refused, so refusals cannot flood
/// the audit trail and every one is still counted.
pub async fn refused(db: &Db, refusal: Refusal<'_>) -> Result<(), sqlx::Error> {
    let now = db.now_ms();
    let minute = now - now.rem_euclid(60_000);
    let clip = |text: &str, max: usize| -> String { text.chars().take(max).collect() };
    sqlx::query(
        "INSERT INTO audit_refusals (minute_at, action, source, reason, count, first_at, last_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $5) \
         ON CONFLICT (minute_at, action, source, reason) \
         DO UPDATE SET count = audit_refusals.count + 1, last_at = excluded.last_at",
    )
    .bind(minute)
    .bind(refusal.action)
    .bind(clip(refusal.source, 100))
    .bind(clip(refusal.reason, 200))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One row of counted refusals.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RefusalCount {
    pub minute_at: i64,
    pub action: String,
    pub source: String,
    pub reason: String,
    pub count: i64,
    pub last_at: i64,
}

/// Counted refusals since `since` (UTC ms), newest first, at most `limit` rows.
pub async fn refusals_since(
    db: &Db,
    since: i64,
    limit: i64,
) -> Result<Vec<RefusalCount>, sqlx::Error> {
    sqlx::query_as::<Any, RefusalCount>(
        "SELECT minute_at, action, source, reason, count, last_at FROM audit_refusals \
         WHERE last_at >= $1 ORDER BY minute_at DESC, count DESC LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// How many requests were refused since `since` (UTC ms).
pub async fn refused_since(db: &Db, since: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM audit_refusals WHERE last_at >= $1",
    )
    .bind(since)
    .fetch_one(db.pool())
    .await
}
