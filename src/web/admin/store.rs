//! The admin pages' SQL: sessions, login links, and the read models behind the pages
//! (overview figures, plan rows with their exclusion, user search and timeline, audit
//! filters). Writes that change what reseat does go through the owning areas.

use sqlx::{Any, FromRow};

use crate::audit::Record;
use crate::store::Db;

/// A signed-in admin, as the session row holds it.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub admin: String,
    pub csrf: String,
    /// The digest of the admin entry the session was made for.
    pub entry_sha256: Option<String>,
}

pub async fn create_session(
    db: &Db,
    token_sha256: &str,
    admin: &str,
    entry_sha256: &str,
    csrf: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    // Expired sessions go whenever someone signs in: the table stays small.
    sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO admin_sessions (token_sha256, admin, csrf, created_at, expires_at, \
         entry_sha256) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_sha256)
    .bind(admin)
    .bind(csrf)
    .bind(now)
    .bind(expires_at)
    .bind(entry_sha256)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn session(
    db: &Db,
    token_sha256: &str,
    now: i64,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as::<Any, SessionRow>(
        "SELECT admin, csrf, entry_sha256 FROM admin_sessions WHERE token_sha256 = $1 \
         AND expires_at > $2",
    )
    .bind(token_sha256)
    .bind(now)
    .fetch_optional(db.pool())
    .await
}

pub async fn delete_session(db: &Db, token_sha256: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE token_sha256 = $1")
        .bind(token_sha256)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn create_login_link(
    db: &Db,
    token_sha256: &str,
    admin: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_login_links (token_sha256, admin, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_sha256)
    .bind(admin)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The admin a login link is for, while it is unused and unexpired.
pub async fn login_link_admin(
    db: &Db,
    token_sha256: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT admin FROM admin_login_links WHERE token_sha256 = $1 AND used_at IS NULL \
         AND expires_at > $2",
    )
    .bind(token_sha256)
    .bind(now)
    .fetch_optional(db.pool())
    .await
}

/// Uses a login link; `None` when it is unknown, used or expired. Only one caller wins.
pub async fn consume_login_link(
    db: &Db,
    token_sha256: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE admin_login_links SET used_at = $1 WHERE token_sha256 = $2 AND used_at IS NULL \
         AND expires_at > $1",
    )
    .bind(now)
    .bind(token_sha256)
    .execute(db.pool())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT admin FROM admin_login_links WHERE token_sha256 = $1")
        .bind(token_sha256)
        .fetch_optional(db.pool())
        .await
}

/// A count per day (days since the epoch, UTC).
#[derive(Debug, Clone, FromRow)]
pub struct DayCount {
    pub day: i64,
    pub count: i64,
}

/// Restore requests received per day since `since`.
pub async fn requests_per_day(db: &Db, since: i64) -> Result<Vec<DayCount>, sqlx::Error> {
    sqlx::query_as::<Any, DayCount>(
        "SELECT created_at / 86400000 AS day, COUNT(*) AS count FROM restore_requests \
         WHERE created_at >= $1 GROUP BY created_at / 86400000 ORDER BY day",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await
}

/// Seats reclaimed per day since `since` ([`crate::ledger::reclaimed_seats`], by the day
/// of each seat's first removal in the period).
pub async fn removals_per_day(db: &Db, since: i64) -> Result<Vec<DayCount>, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    let mut days: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for seat in crate::ledger::reclaimed_seats(&mut conn, since).await? {
        *days.entry(seat.removed_at / 86_400_000).or_insert(0) += 1;
    }
    Ok(days
        .into_iter()
        .map(|(day, count)| DayCount { day, count })
        .collect())
}

/// A warned user whose removal is still ahead.
#[derive(Debug, Clone, FromRow)]
pub struct Upcoming {
    pub site: String,
    pub account_id: String,
    pub product: String,
    pub email: Option<String>,
    pub remove_after: i64,
}

/// Removals announced by a warning and not yet due, soonest first.
pub async fn upcoming_removals(
    db: &Db,
    site: Option<&str>,
    now: i64,
    limit: i64,
) -> Result<(i64, Vec<Upcoming>), sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sweep_warnings WHERE ($1 IS NULL OR site = $1) AND remove_after > $2",
    )
    .bind(site)
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    let rows = sqlx::query_as::<Any, Upcoming>(
        "SELECT site, account_id, product, email, remove_after FROM sweep_warnings \
         WHERE ($1 IS NULL OR site = $1) AND remove_after > $2 ORDER BY remove_after, id LIMIT $3",
    )
    .bind(site)
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok((count, rows))
}

/// One sweep run.
#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub id: String,
    pub kind: String,
    pub plan_id: Option<String>,
    pub status: String,
    pub mode: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

pub async fn last_run(db: &Db) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as::<Any, RunRow>(
        "SELECT id, kind, plan_id, status, mode, started_at, finished_at, error FROM sweep_runs \
         ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await
}

/// Restore requests per status.
pub async fn request_counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, COUNT(*) FROM restore_requests GROUP BY status ORDER BY status")
        .fetch_all(db.pool())
        .await
}

/// A plan row as the plan page shows it.
#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub id: i64,
    pub account_id: String,
    pub product: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub decision: String,
    pub reason: String,
    pub last_active: Option<i64>,
    pub excluded: i64,
    pub state: String,
    pub outcome: Option<String>,
    /// JSON: why the seat bills.
    pub billing: String,
}

/// A page of a plan's rows, optionally of one product and one decision.
pub async fn plan_rows(
    db: &Db,
    plan_id: &str,
    product: Option<&str>,
    decision: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as::<Any, ItemRow>(
        "SELECT id, account_id, product, email, display_name, decision, reason, last_active, \
         excluded, state, outcome, billing FROM plan_items WHERE plan_id = $1 \
         AND ($2 IS NULL OR product = $2) AND ($3 IS NULL OR decision = $3) \
         ORDER BY id LIMIT $4 OFFSET $5",
    )
    .bind(plan_id)
    .bind(product)
    .bind(decision)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await
}

/// Rows per product and decision, with how many are excluded.
#[derive(Debug, Clone, FromRow)]
pub struct PlanCount {
    pub product: String,
    pub decision: String,
    pub total: i64,
    pub excluded: i64,
}

pub async fn plan_counts(db: &Db, plan_id: &str) -> Result<Vec<PlanCount>, sqlx::Error> {
    sqlx::query_as::<Any, PlanCount>(
        "SELECT product, decision, COUNT(*) AS total, \
         SUM(CASE WHEN excluded <> 0 THEN 1 ELSE 0 END) AS excluded \
         FROM plan_items WHERE plan_id = $1 GROUP BY product, decision ORDER BY product, decision",
    )
    .bind(plan_id)
    .fetch_all(db.pool())
    .await
}

/// An account found by the user search.
#[derive(Debug, Clone, FromRow)]
pub struct FoundUser {
    pub account_id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// Accounts whose id, name or email contains `q` (case-insensitive), in plan rows,
/// restore requests and the journal.
pub async fn search_users(db: &Db, q: &str, limit: i64) -> Result<Vec<FoundUser>, sqlx::Error> {
    let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
    let rows = sqlx::query_as::<Any, FoundUser>(
        "SELECT account_id, MAX(display_name) AS display_name, MAX(email) AS email FROM ( \
           SELECT account_id, display_name, email FROM plan_items \
             WHERE LOWER(account_id) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(display_name, '')) LIKE $1 ESCAPE '\\' \
             OR LOWER(COALESCE(email, '')) LIKE $1 ESCAPE '\\' \
           UNION ALL SELECT account_id, display_name, email FROM restore_requests \
             WHERE account_id IS NOT NULL AND (LOWER(account_id) LIKE $1 ESCAPE '\\' \
             OR LOWER(COALESCE(display_name, '')) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(email, '')) LIKE $1 ESCAPE '\\') \
           UNION ALL SELECT account_id, NULL, NULL FROM journal WHERE LOWER(account_id) LIKE $1 ESCAPE '\\' \
         ) found GROUP BY account_id ORDER BY account_id LIMIT $2",
    )
    .bind(pattern)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows)
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One event of a user's timeline.
#[derive(Debug, Clone, FromRow)]
pub struct Event {
    pub at: i64,
    pub kind: String,
    pub product: Option<String>,
    pub text: String,
}

/// (plan created, product, decision, reason, last active, state, excluded)
type PlannedRow = (i64, String, String, String, Option<i64>, String, i64);
/// (created, product, channel, status, reason)
type RequestRow = (i64, Option<String>, String, String, Option<String>);

/// Everything reseat knows happened to an account, newest first: activity and decisions in
/// plans, warnings, journal (removals and restores), restore requests, keeps, audit entries.
pub async fn timeline(db: &Db, account: &str, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    let mut events: Vec<Event> = Vec::new();
    let planned: Vec<PlannedRow> = sqlx::query_as(
        "SELECT p.created_at, i.product, i.decision, i.reason, i.last_active, i.state, i.excluded \
         FROM plan_items i JOIN plans p ON p.id = i.plan_id WHERE i.account_id = $1 \
         ORDER BY p.created_at DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for (at, product, decision, reason, last_active, state, excluded) in planned {
        if let Some(seen) = last_active {
            events.push(Event {
                at: seen,
                kind: "activity".into(),
                product: Some(product.clone()),
                text: "last active (as of the plan)".into(),
            });
        }
        let excluded = if excluded != 0 { ", excluded" } else { "" };
        events.push(Event {
            at,
            kind: "plan".into(),
            product: Some(product),
            text: format!("planned: {decision} ({reason}); {state}{excluded}"),
        });
    }
    let warnings: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT warned_at, product, remove_after FROM sweep_warnings WHERE account_id = $1 \
         ORDER BY warned_at DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for (at, product, remove_after) in warnings {
        events.push(Event {
            at,
            kind: "warning".into(),
            product: Some(product),
            text: format!(
                "warned; removal after {}",
                super::pages::date_time(remove_after)
            ),
        });
    }
    let journal: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT created_at, product, action, group_name, reason FROM journal \
         WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for (at, product, action, group, reason) in journal {
        events.push(Event {
            at,
            kind: if matches!(action.as_str(), "removed" | "removing" | "not_member") {
                "removal".into()
            } else {
                "restore".into()
            },
            product: Some(product),
            text: match action.as_str() {
                "removed" => format!("removed from group {group} ({reason})"),
                "removing" => format!("removal from group {group} sent ({reason})"),
                "not_member" => format!("was not in group {group} when the sweep came ({reason})"),
                "restored" => format!("added back to group {group} ({reason})"),
                other => format!("{other}: group {group} ({reason})"),
            },
        });
    }
    let requests: Vec<RequestRow> = sqlx::query_as(
        "SELECT created_at, product, channel, status, reason FROM restore_requests \
         WHERE account_id = $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for (at, product, channel, status, reason) in requests {
        events.push(Event {
            at,
            kind: "request".into(),
            product,
            text: format!(
                "restore request by {channel}: {status}{}",
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        });
    }
    let keeps: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT created_at, product, until_at, source FROM keeps WHERE account_id = $1 \
         ORDER BY created_at DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for (at, product, until, source) in keeps {
        events.push(Event {
            at,
            kind: "keep".into(),
            product: Some(product),
            text: format!(
                "kept until {} (by {source})",
                super::pages::date_time(until)
            ),
        });
    }
    let audit: Vec<Record> = sqlx::query_as::<Any, Record>(
        "SELECT id, at, actor, role, action, account_id, product, details FROM audit_log \
         WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for record in audit {
        events.push(Event {
            at: record.at,
            kind: "audit".into(),
            product: record.product,
            text: format!("{} by {}", record.action, record.actor),
        });
    }
    events.sort_by_key(|event| std::cmp::Reverse(event.at));
    events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(events)
}

/// What the audit page filters on; empty fields match anything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub account: Option<String>,
    /// From this time (UTC ms), inclusive.
    pub from: Option<i64>,
    /// Before this time (UTC ms), exclusive.
    pub to: Option<i64>,
}

/// Audit entries matching the filter, newest first.
pub async fn audit(db: &Db, filter: &AuditFilter, limit: i64) -> Result<Vec<Record>, sqlx::Error> {
    sqlx::query_as::<Any, Record>(
        "SELECT id, at, actor, role, action, account_id, product, details FROM audit_log \
         WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
         AND ($3 IS NULL OR account_id = $3) AND ($4 IS NULL OR at >= $4) \
         AND ($5 IS NULL OR at < $5) ORDER BY id DESC LIMIT $6",
    )
    .bind(filter.actor.as_deref())
    .bind(filter.action.as_deref())
    .bind(filter.account.as_deref())
    .bind(filter.from)
    .bind(filter.to)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}
