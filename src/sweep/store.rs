//! The sweep's SQL: plans and their items, runs and warnings sent. What reseat took and
//! gave back (journal, keeps, suspensions) is the ledger's: [`crate::ledger`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::item::ItemState;
use crate::store::{
    Db,
    time::{from_ms, to_ms},
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
    /// [`ItemState`]: pending | done | skipped | failed | still_billed
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
    now: i64,
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
    .bind(now)
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
/// The newest plan of `site`.
pub async fn latest_plan(db: &Db, site: &str) -> Result<Option<PlanRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at, source, site, status, summary FROM plans WHERE site = $1 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(site)
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

/// Items per (product, decision) of a plan.
pub async fn decision_counts(
    db: &Db,
    plan_id: &str,
) -> Result<std::collections::BTreeMap<(String, String), u64>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT product, decision, COUNT(*) FROM plan_items WHERE plan_id = $1 \
         GROUP BY product, decision",
    )
    .bind(plan_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, d, n)| ((p, d), u64::try_from(n).unwrap_or(0)))
        .collect())
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

/// Moves an item to `state` with its outcome, as a compare-and-set from the states allowed
/// to become it ([`ItemState`]). False when the item was not in one of them (nothing
/// changed).
pub async fn set_item_state_in(
    conn: &mut AnyConnection,
    now: i64,
    id: i64,
    state: ItemState,
    outcome: &str,
) -> Result<bool, sqlx::Error> {
    let from: Vec<String> = state
        .reachable_from()
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let done = sqlx::query(&format!(
        "UPDATE plan_items SET state = $1, outcome = $2, applied_at = $3 WHERE id = $4 \
         AND state IN ({})",
        from.join(", ")
    ))
    .bind(state.as_str())
    .bind(outcome)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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

/// Starts the run row `id` (the id its apply lease names) of a plan on a site.
pub async fn start_run(
    db: &Db,
    id: &str,
    kind: &str,
    plan_id: Option<&str>,
    mode: &str,
    site: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sweep_runs (id, kind, plan_id, status, mode, started_at, site) \
         VALUES ($1, $2, $3, 'running', $4, $5, $6)",
    )
    .bind(id)
    .bind(kind)
    .bind(plan_id)
    .bind(mode)
    .bind(db.now_ms())
    .bind(site)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records how far a running apply is: items handled (done, skipped or failed) of the total.
pub async fn set_run_progress(
    db: &Db,
    id: &str,
    total: u64,
    done: u64,
    failed: u64,
) -> Result<(), sqlx::Error> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE sweep_runs SET items_total = $1, items_done = $2, items_failed = $3 WHERE id = $4",
    )
    .bind(n(total))
    .bind(n(done))
    .bind(n(failed))
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A run row with its progress.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub kind: String,
    pub plan_id: Option<String>,
    pub status: String,
    pub mode: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub summary: String,
    pub error: Option<String>,
    pub items_total: i64,
    pub items_done: i64,
    pub items_failed: i64,
}

const RUN_COLUMNS: &str = "id, kind, plan_id, status, mode, started_at, finished_at, summary, \
    error, items_total, items_done, items_failed";

pub async fn get_run(db: &Db, id: &str) -> Result<Option<RunRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM sweep_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// The newest apply run of a plan.
pub async fn latest_run_of(db: &Db, plan_id: &str) -> Result<Option<RunRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM sweep_runs WHERE plan_id = $1 AND kind = 'apply' \
         ORDER BY started_at DESC, id DESC LIMIT 1"
    ))
    .bind(plan_id)
    .fetch_optional(db.pool())
    .await
}

/// Apply runs of a plan that ended (any status but `running`).
pub async fn finished_runs_of(db: &Db, plan_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM sweep_runs WHERE plan_id = $1 AND kind = 'apply' \
         AND status <> 'running'",
    )
    .bind(plan_id)
    .fetch_one(db.pool())
    .await
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
    .bind(db.now_ms())
    .bind(summary.to_string())
    .bind(error)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// What a run left `running` by a process that stopped (`kill -9`, a crash, a lost
/// machine) is told when the next apply takes the site's lease.
pub const STOPPED_RUN: &str = "the process running this apply stopped before it finished \
    (killed or crashed); what it did is recorded, and applying the plan again finishes it";

/// Ends the runs of a site still marked `running`: called by the holder of the site's apply
/// lease before it starts its own run, so none of them can still be running. Returns how
/// many there were.
pub async fn interrupt_stopped_runs(db: &Db, site: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sweep_runs SET status = 'interrupted', finished_at = $1, error = $2 \
         WHERE site = $3 AND status = 'running'",
    )
    .bind(db.now_ms())
    .bind(STOPPED_RUN)
    .bind(site)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
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
    site: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<PlanRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at, source, site, status, summary FROM plans \
         WHERE ($1 IS NULL OR (created_at, id) < (SELECT created_at, id FROM plans WHERE id = $1)) \
         AND ($3 IS NULL OR site = $3) \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .bind(site)
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
