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
    pub action: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    pub details: String,
}

/// Writes an entry inside the caller's transaction, dated `now` (UTC ms, from the app's
/// clock).
pub async fn record_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, account_id, product, details) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now)
    .bind(entry.actor)
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
    let columns = "id, at, actor, action, account_id, product, details";
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
        "SELECT id, at, actor, action, account_id, product, details FROM audit_log \
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
