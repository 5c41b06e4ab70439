//! The sweep's SQL: plans and their items, runs, warnings sent, and keeps.
//!
//! Keeps (`keeps` table, migration 0004) are where the restore side records "keep my
//! access": one row per account, product and site with `until_at`; plan and apply keep the
//! product while `until_at` is in the future ([`add_keep`] writes one).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use crate::store::{
    Db,
    time::{from_ms, now_ms, to_ms},
};

/// A stored plan.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PlanRecord {
    pub id: String,
    pub created_at: i64,
    pub source: String,
    pub site: String,
    /// planned | applying | applied
    pub status: String,
    /// JSON: counts per product and decision, access groups, governance findings, API calls.
    pub summary: String,
}

/// One user × product row of a plan.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
pub struct PlanItem {
    pub id: i64,
    pub plan_id: String,
    pub account_id: String,
    pub product: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub decision: String,
    pub reason: String,
    pub last_active: Option<i64>,
    pub threshold_days: Option<i64>,
    /// pending | done | skipped | failed
    pub state: String,
    pub applied_at: Option<i64>,
    /// JSON `[{id, name}]`: the user's access groups of the product when planned.
    pub access_groups: String,
    pub added_to_org: Option<i64>,
    /// What apply did (or, in dry-run, would do).
    pub outcome: Option<String>,
    /// JSON [`super::roles::Billing`]: why the seat bills (groups and roles) when planned.
    pub billing: String,
}

/// A plan item before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub account_id: String,
    pub product: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub decision: String,
    pub reason: String,
    pub last_active: Option<i64>,
    pub threshold_days: Option<i64>,
    pub access_groups: String,
    pub added_to_org: Option<i64>,
    /// JSON [`super::roles::Billing`].
    pub billing: String,
}

const ITEM_COLUMNS: &str = "id, plan_id, account_id, product, email, display_name, decision, \
    reason, last_active, threshold_days, state, applied_at, access_groups, added_to_org, outcome, billing";

pub async fn create_plan_in(
    conn: &mut AnyConnection,
    id: &str,
    source: &str,
    site: &str,
    summary: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO plans (id, created_at, source, site, status, summary) \
         VALUES ($1, $2, $3, $4, 'planned', $5)",
    )
    .bind(id)
    .bind(now_ms())
    .bind(source)
    .bind(site)
    .bind(summary.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts items in batches of 500 rows.
pub async fn insert_items_in(
    conn: &mut AnyConnection,
    plan_id: &str,
    items: &[NewItem],
) -> Result<(), sqlx::Error> {
    for chunk in items.chunks(50) {
        let mut sql = String::from(
            "INSERT INTO plan_items (plan_id, account_id, product, email, display_name, decision, \
             reason, last_active, threshold_days, access_groups, added_to_org, billing) VALUES ",
        );
        for (row, _) in chunk.iter().enumerate() {
            if row > 0 {
                sql.push_str(", ");
            }
            let base = row * 12;
            let params: Vec<String> = (1..=12).map(|n| format!("${}", base + n)).collect();
            sql.push('(');
            sql.push_str(&params.join(", "));
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for item in chunk {
            query = query
                .bind(plan_id)
                .bind(&item.account_id)
                .bind(&item.product)
                .bind(&item.email)
                .bind(&item.display_name)
                .bind(&item.decision)
                .bind(&item.reason)
                .bind(item.last_active)
                .bind(item.threshold_days)
                .bind(&item.access_groups)
                .bind(item.added_to_org)
                .bind(&item.billing);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn get_plan(db: &Db, id: &str) -> Result<Option<PlanRecord>, sqlx::Error> {
    sqlx::query_as("SELECT id, created_at, source, site, status, summary FROM plans WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// The newest plan.
pub async fn latest_plan(db: &Db) -> Result<Option<PlanRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at, source, site, status, summary FROM plans \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await
}

pub async fn set_plan_status(db: &Db, id: &str, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE plans SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Every item of a plan, in plan order.
pub async fn items(db: &Db, plan_id: &str) -> Result<Vec<PlanItem>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ITEM_COLUMNS} FROM plan_items WHERE plan_id = $1 ORDER BY id"
    ))
    .bind(plan_id)
    .fetch_all(db.pool())
    .await
}

/// Items still to apply (pending, or failed on an earlier attempt) with a decision that
/// acts and not excluded by an admin, in plan order, after `after_id`, at most `limit`.
pub async fn actionable_items(
    db: &Db,
    plan_id: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<PlanItem>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ITEM_COLUMNS} FROM plan_items WHERE plan_id = $1 AND id > $2 \
         AND state IN ('pending', 'failed') AND decision IN ('warn', 'remove') \
         AND excluded = 0 ORDER BY id LIMIT $3"
    ))
    .bind(plan_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// (account, product) of the items still to apply (as [`actionable_items`] selects them).
pub async fn actionable_pairs(
    db: &Db,
    plan_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, product FROM plan_items WHERE plan_id = $1 \
         AND state IN ('pending', 'failed') AND decision IN ('warn', 'remove') AND excluded = 0",
    )
    .bind(plan_id)
    .fetch_all(db.pool())
    .await
}

pub async fn set_item_state_in(
    conn: &mut AnyConnection,
    id: i64,
    state: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE plan_items SET state = $1, outcome = $2, applied_at = $3 WHERE id = $4")
        .bind(state)
        .bind(outcome)
        .bind(now_ms())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Excludes items of a plan from apply (or includes them again); items already applied
/// stay as they are. Returns how many items changed.
pub async fn set_items_excluded_in(
    conn: &mut AnyConnection,
    plan_id: &str,
    item_ids: &[i64],
    excluded: bool,
) -> Result<u64, sqlx::Error> {
    let mut changed = 0;
    for id in item_ids {
        changed += sqlx::query(
            "UPDATE plan_items SET excluded = $1 WHERE plan_id = $2 AND id = $3 \
             AND state IN ('pending', 'failed') AND excluded <> $1",
        )
        .bind(i64::from(excluded))
        .bind(plan_id)
        .bind(*id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(changed)
}

/// The newest warning per (account, product) on a site.
pub async fn latest_warnings(
    db: &Db,
    site: &str,
) -> Result<HashMap<(String, String), DateTime<Utc>>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT account_id, product, MAX(warned_at) FROM sweep_warnings WHERE site = $1 \
         GROUP BY account_id, product",
    )
    .bind(site)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(a, p, at)| ((a, p), from_ms(at)))
        .collect())
}

/// A warning to record.
#[derive(Debug, Clone)]
pub struct Warning<'a> {
    pub account_id: &'a str,
    pub product: &'a str,
    pub site: &'a str,
    pub plan_id: &'a str,
    pub email: Option<&'a str>,
    pub warned_at: DateTime<Utc>,
    pub remove_after: DateTime<Utc>,
}

/// Records a warning once per plan; false when this plan already warned this user.
pub async fn record_warning_in(
    conn: &mut AnyConnection,
    warning: &Warning<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sweep_warnings (account_id, product, site, plan_id, email, warned_at, \
         remove_after) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(warning.account_id)
    .bind(warning.product)
    .bind(warning.site)
    .bind(warning.plan_id)
    .bind(warning.email)
    .bind(to_ms(warning.warned_at))
    .bind(to_ms(warning.remove_after))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records "keep my access" for a product until `until` (the restore side calls this).
pub async fn add_keep(
    db: &Db,
    account_id: &str,
    product: &str,
    site: &str,
    until: DateTime<Utc>,
    source: &str,
) -> Result<(), sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    add_keep_in(&mut conn, account_id, product, site, until, source).await
}

/// The same inside the caller's transaction.
pub async fn add_keep_in(
    conn: &mut sqlx::AnyConnection,
    account_id: &str,
    product: &str,
    site: &str,
    until: DateTime<Utc>,
    source: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keeps (account_id, product, site, until_at, source, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(account_id)
    .bind(product)
    .bind(site)
    .bind(to_ms(until))
    .bind(source)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps still running at `now`, latest end per (account, product).
pub async fn active_keeps(
    db: &Db,
    site: &str,
    now: DateTime<Utc>,
) -> Result<HashMap<(String, String), DateTime<Utc>>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT account_id, product, MAX(until_at) FROM keeps WHERE site = $1 AND until_at > $2 \
         GROUP BY account_id, product",
    )
    .bind(site)
    .bind(to_ms(now))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(a, p, at)| ((a, p), from_ms(at)))
        .collect())
}

/// The end of a running keep for one account and product.
pub async fn kept_until(
    db: &Db,
    account_id: &str,
    product: &str,
    site: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let until: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT MAX(until_at) FROM keeps WHERE account_id = $1 AND product = $2 AND site = $3 \
         AND until_at > $4",
    )
    .bind(account_id)
    .bind(product)
    .bind(site)
    .bind(to_ms(now))
    .fetch_optional(db.pool())
    .await?;
    Ok(until.flatten().map(from_ms))
}

/// Starts a run row; returns its id.
pub async fn start_run(
    db: &Db,
    kind: &str,
    plan_id: Option<&str>,
    mode: &str,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO sweep_runs (id, kind, plan_id, status, mode, started_at) \
         VALUES ($1, $2, $3, 'running', $4, $5)",
    )
    .bind(&id)
    .bind(kind)
    .bind(plan_id)
    .bind(mode)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(id)
}

/// Ends a run: completed | aborted | failed | interrupted.
pub async fn finish_run(
    db: &Db,
    id: &str,
    status: &str,
    summary: &serde_json::Value,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sweep_runs SET status = $1, finished_at = $2, summary = $3, error = $4 \
         WHERE id = $5",
    )
    .bind(status)
    .bind(now_ms())
    .bind(summary.to_string())
    .bind(error)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The newest warning of one account and product on a site.
pub async fn latest_warnings_of(
    db: &Db,
    account_id: &str,
    product: &str,
    site: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let at: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT MAX(warned_at) FROM sweep_warnings WHERE account_id = $1 AND product = $2 \
         AND site = $3",
    )
    .bind(account_id)
    .bind(product)
    .bind(site)
    .fetch_optional(db.pool())
    .await?;
    Ok(at.flatten().map(from_ms))
}

/// One page of plans, newest first; `before` is the id of the last plan of the previous
/// page (an unknown id gives an empty page).
pub async fn list_plans(
    db: &Db,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<PlanRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at, source, site, status, summary FROM plans \
         WHERE ($1 IS NULL OR (created_at, id) < (SELECT created_at, id FROM plans WHERE id = $1)) \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// One page of a plan's items in plan order, optionally of one product and decision, after
/// the item `after_id`.
pub async fn items_page(
    db: &Db,
    plan_id: &str,
    product: Option<&str>,
    decision: Option<&str>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<PlanItem>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ITEM_COLUMNS} FROM plan_items WHERE plan_id = $1 AND id > $2 \
         AND ($3 IS NULL OR product = $3) AND ($4 IS NULL OR decision = $4) \
         ORDER BY id LIMIT $5"
    ))
    .bind(plan_id)
    .bind(after_id)
    .bind(product)
    .bind(decision)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

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

/// Whether a restore gave anything back to the account after `since` (then it is not
/// removed from the directory).
pub async fn restored_since(
    db: &Db,
    account_id: &str,
    since: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM journal WHERE account_id = $1 AND action = 'restored' \
         AND created_at >= $2",
    )
    .bind(account_id)
    .bind(to_ms(since))
    .fetch_one(db.pool())
    .await?;
    Ok(count > 0)
}

/// Marks a suspension `deleted` (the account left the directory) or `restored`.
pub async fn close_suspension_in(
    conn: &mut AnyConnection,
    id: i64,
    column: SuspensionEnd,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let column = match column {
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

/// How an open suspension ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspensionEnd {
    Deleted,
    Restored,
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
