//! The role journal (`role_journal`): the direct roles a sweep revoked, written before each
//! revoke is sent, and the re-grants a restore made, so that a restore gives back exactly the
//! roles taken; and the plan items whose seat stayed billed.

use sqlx::AnyConnection;

use crate::store::Db;

/// One role-journal row.
#[derive(Debug, Clone)]
pub struct RoleEntry<'a> {
    pub account_id: &'a str,
    pub product: &'a str,
    pub site: &'a str,
    /// The product instance ARI the role is on.
    pub resource: &'a str,
    pub role: &'a str,
    pub run_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub reason: &'a str,
}

/// A role a sweep revoked and no restore has given back yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenRole {
    pub resource: String,
    pub role: String,
}

/// Journals a revoke before it is sent; `false` when this run journaled it already (a
/// resumed item).
pub async fn journal_revoked_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: &RoleEntry<'_>,
) -> Result<bool, sqlx::Error> {
    insert(conn, now, "revoked", entry).await
}

/// Journals a re-grant made by a restore (once per role and request).
pub async fn journal_restored_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: &RoleEntry<'_>,
) -> Result<bool, sqlx::Error> {
    insert(conn, now, "restored", entry).await
}

async fn insert(
    conn: &mut AnyConnection,
    now: i64,
    action: &str,
    entry: &RoleEntry<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO role_journal (account_id, product, site, resource, role, action, run_id, \
         request_id, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(entry.account_id)
    .bind(entry.product)
    .bind(entry.site)
    .bind(entry.resource)
    .bind(entry.role)
    .bind(action)
    .bind(entry.run_id)
    .bind(entry.request_id)
    .bind(entry.reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Roles reseat revoked from this account for this product on this site and has not given
/// back since (the latest row per resource and role decides).
pub async fn taken_roles(
    db: &Db,
    account: &str,
    product: &str,
    site: &str,
) -> Result<Vec<TakenRole>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT resource, role, action FROM role_journal \
         WHERE account_id = $1 AND product = $2 AND site = $3 ORDER BY id",
    )
    .bind(account)
    .bind(product)
    .bind(site)
    .fetch_all(db.pool())
    .await?;
    let mut current: Vec<TakenRole> = Vec::new();
    for (resource, role, action) in rows {
        current.retain(|t| !(t.resource == resource && t.role == role));
        if action == "revoked" {
            current.push(TakenRole { resource, role });
        }
    }
    Ok(current)
}

/// Every role-journal row of an account, oldest first: `(product, resource, role, action)`.
pub async fn history(
    db: &Db,
    account: &str,
) -> Result<Vec<(String, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT product, resource, role, action FROM role_journal WHERE account_id = $1 ORDER BY id",
    )
    .bind(account)
    .fetch_all(db.pool())
    .await
}

/// How many items of a plan ended `still_billed`.
pub async fn still_billed_count(db: &Db, plan_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM plan_items WHERE plan_id = $1 AND state = 'still_billed'",
    )
    .bind(plan_id)
    .fetch_one(db.pool())
    .await?;
    Ok(n)
}

/// A seat that stayed billed after a removal, for the identity-provider admin.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StillBilled {
    pub account_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub product: String,
    /// JSON: why the seat bills.
    pub billing: String,
    /// What keeps it and who must act.
    pub outcome: Option<String>,
}

/// Every `still_billed` item of a plan, in plan order.
pub async fn still_billed_items(db: &Db, plan_id: &str) -> Result<Vec<StillBilled>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, email, display_name, product, billing, outcome FROM plan_items \
         WHERE plan_id = $1 AND state = 'still_billed' ORDER BY id",
    )
    .bind(plan_id)
    .fetch_all(db.pool())
    .await
}

/// The newest plan with seats still billed after its removals, and how many.
pub async fn latest_still_billed(db: &Db) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.plan_id, COUNT(*) FROM plan_items i JOIN plans p ON p.id = i.plan_id \
         WHERE i.state = 'still_billed' GROUP BY i.plan_id, p.created_at \
         ORDER BY p.created_at DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await
}
