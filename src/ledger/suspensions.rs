//! The sweep ladder's org-level steps (`sweep_suspensions`, migration 0008): who reseat
//! suspended (once per account and plan), and whether a restore or the directory removal
//! ended it.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::store::{
    Db,
    time::{from_ms, to_ms},
};

/// Accounts whose every item in the plan is a removal: applied (`done`) in a live run, or
/// about to be in a dry run. With no managed product left on the site, they are the
/// candidates for the ladder's suspension step. Accounts with an open suspension (reseat
/// suspended them and neither restored nor deleted them since), and accounts this plan
/// already suspended (a restore since then is not undone by applying the plan again), are
/// left out.
pub async fn suspension_candidates(
    db: &Db,
    plan_id: &str,
    dry_run: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let removed = if dry_run {
        "decision = 'remove'"
    } else {
        "decision = 'remove' AND state = 'done'"
    };
    sqlx::query_scalar(&format!(
        "SELECT account_id FROM plan_items WHERE plan_id = $1 \
         AND account_id NOT IN (SELECT account_id FROM sweep_suspensions \
         WHERE plan_id = $1 OR (restored_at IS NULL AND deleted_at IS NULL)) \
         GROUP BY account_id \
         HAVING SUM(CASE WHEN {removed} THEN 1 ELSE 0 END) = COUNT(*) ORDER BY account_id"
    ))
    .bind(plan_id)
    .fetch_all(db.pool())
    .await
}

/// Records a suspension reseat made (once per account and plan).
pub async fn record_suspension_in(
    conn: &mut AnyConnection,
    account_id: &str,
    site: &str,
    plan_id: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sweep_suspensions (account_id, site, plan_id, reason, suspended_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(account_id)
    .bind(site)
    .bind(plan_id)
    .bind(reason)
    .bind(to_ms(at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Open suspensions (not restored, not deleted) made at or before `before`: (row id,
/// account, suspended at).
pub async fn suspensions_due(
    db: &Db,
    site: &str,
    before: DateTime<Utc>,
) -> Result<Vec<(i64, String, DateTime<Utc>)>, sqlx::Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, account_id, suspended_at FROM sweep_suspensions WHERE site = $1 \
         AND restored_at IS NULL AND deleted_at IS NULL AND suspended_at <= $2 ORDER BY id",
    )
    .bind(site)
    .bind(to_ms(before))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, account, at)| (id, account, from_ms(at)))
        .collect())
}

/// How an open suspension ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspensionEnd {
    Deleted,
    Restored,
}

/// Marks a suspension `deleted` (the account left the directory) or `restored`.
pub async fn close_suspension_in(
    conn: &mut AnyConnection,
    id: i64,
    end: SuspensionEnd,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let column = match end {
        SuspensionEnd::Deleted => "deleted_at",
        SuspensionEnd::Restored => "restored_at",
    };
    sqlx::query(&format!(
        "UPDATE sweep_suspensions SET {column} = $1 WHERE id = $2"
    ))
    .bind(to_ms(at))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The open suspension reseat made of an account (not restored, not deleted), if any.
pub async fn open_suspension(db: &Db, account_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM sweep_suspensions WHERE account_id = $1 AND restored_at IS NULL \
         AND deleted_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(account_id)
    .fetch_optional(db.pool())
    .await
}
