//! The journal: every membership reseat took away and gave back, one row per step.
//!
//! Actions, per membership (account, product, site, group):
//! - `removing`: the intent, committed BEFORE the removal is sent. From then on reseat may
//!   have taken the membership, whatever it hears back: a restore gives it back.
//! - `removed`: the removal answered (the membership changed, or "not a member" after a
//!   removal was possibly sent before, see below).
//! - `not_member`: reseat took nothing. Written only when Atlassian answered "not a member"
//!   to the FIRST removal reseat ever sent for this membership since it last gave it back:
//!   the `removing` row of this attempt was new, no other `removing` / `removed` row of the
//!   membership exists since its latest `restored` (or ever), and no earlier attempt may
//!   have acted (the client answers `Changed` for "not a member" after a lost answer, a
//!   time-out or a 5xx; the sweep's own re-send clears `first_send`). The caller holds
//!   the seat's claim ([`super::seat`]) and the site's apply lease, so no other removal of
//!   it can be in flight. In every other case, "not a member" proves nothing (a retry after a lost
//!   answer, a second apply of the plan, another plan): the journal keeps what the plan saw
//!   and writes `removed`.
//! - `restored`: a restore re-added it (once per group and request).
//!
//! What a restore gives back ([`taken_groups`]) is the latest row per group: `removing` or
//! `removed` means taken.

use serde::Serialize;
use sqlx::{Any, AnyConnection, FromRow};

use crate::atlassian::GroupId;
use crate::restore::rules::GroupFact;
use crate::store::{Db, time::to_ms};

/// One journal row to write.
#[derive(Debug, Clone)]
pub struct JournalEntry<'a> {
    pub account_id: &'a str,
    pub product: &'a str,
    pub site: &'a str,
    pub group_id: &'a str,
    pub group_name: &'a str,
    pub run_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub reason: &'a str,
}

/// A stored journal row.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct JournalRecord {
    pub id: i64,
    pub account_id: String,
    pub product: String,
    pub site: String,
    pub group_id: String,
    pub group_name: String,
    /// removing | removed | not_member | restored
    pub action: String,
    pub run_id: Option<String>,
    pub request_id: Option<String>,
    pub reason: String,
    pub created_at: i64,
}

/// What [`begin_removal_in`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalIntent {
    /// No removal of this membership was sent before this one (since it was last given
    /// back): only then may a "not a member" answer be journaled as `not_member`.
    pub first_send: bool,
}

/// How Atlassian answered a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalAnswer {
    /// The membership was removed now.
    Removed,
    /// "Not a member".
    NotMember,
}

/// What the journal recorded for an answered removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// `removed`: reseat took the membership (a restore gives it back).
    Removed,
    /// `not_member`: reseat took nothing.
    NotMember,
}

/// Records the intent to remove a membership (`removing`), before the call is sent; the
/// caller commits it before sending. Safe to repeat (one row per membership and run).
pub async fn begin_removal_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: &JournalEntry<'_>,
) -> Result<RemovalIntent, sqlx::Error> {
    let fresh = insert_in(conn, now, "removing", entry).await?;
    if !fresh {
        return Ok(RemovalIntent { first_send: false });
    }
    // Any other removal step of this membership after its latest give-back?
    let earlier: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM journal j WHERE j.account_id = $1 AND j.product = $2 \
         AND j.site = $3 AND j.group_id = $4 AND j.action IN ('removing', 'removed') \
         AND NOT (j.action = 'removing' AND j.run_id = $5) \
         AND j.id > COALESCE((SELECT MAX(r.id) FROM journal r WHERE r.account_id = $1 \
             AND r.product = $2 AND r.site = $3 AND r.group_id = $4 \
             AND r.action = 'restored'), 0)",
    )
    .bind(entry.account_id)
    .bind(entry.product)
    .bind(entry.site)
    .bind(entry.group_id)
    .bind(entry.run_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(RemovalIntent {
        first_send: earlier == 0,
    })
}

/// Records how a removal sent after [`begin_removal_in`] was answered (see the module docs
/// for when "not a member" is `not_member`). Safe to repeat.
pub async fn removal_answered_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: &JournalEntry<'_>,
    intent: RemovalIntent,
    answer: RemovalAnswer,
) -> Result<Recorded, sqlx::Error> {
    match answer {
        RemovalAnswer::NotMember if intent.first_send => {
            let entry = JournalEntry {
                reason: "not a member when the sweep removed it",
                ..entry.clone()
            };
            insert_in(conn, now, "not_member", &entry).await?;
            Ok(Recorded::NotMember)
        }
        _ => {
            insert_in(conn, now, "removed", entry).await?;
            Ok(Recorded::Removed)
        }
    }
}

/// Records a membership reseat gave back (once per group and request).
pub async fn journal_restored_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: &JournalEntry<'_>,
) -> Result<(), sqlx::Error> {
    insert_in(conn, now, "restored", entry).await.map(drop)
}

async fn insert_in(
    conn: &mut AnyConnection,
    now: i64,
    action: &str,
    entry: &JournalEntry<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO journal (account_id, product, site, group_id, group_name, action, run_id, \
         request_id, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(entry.account_id)
    .bind(entry.product)
    .bind(entry.site)
    .bind(entry.group_id)
    .bind(entry.group_name)
    .bind(action)
    .bind(entry.run_id)
    .bind(entry.request_id)
    .bind(entry.reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Groups reseat took from this account for this product on this site and has not given
/// back since: what a restore re-adds. The latest row per group decides: `removing` (the
/// removal may have been sent) and `removed` are taken; `not_member` and `restored` not.
pub async fn taken_groups(
    db: &Db,
    account: &str,
    product: &str,
    site: &str,
) -> Result<Vec<GroupFact>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT group_id, group_name, action FROM journal \
         WHERE account_id = $1 AND product = $2 AND site = $3 ORDER BY id",
    )
    .bind(account)
    .bind(product)
    .bind(site)
    .fetch_all(db.pool())
    .await?;
    let mut current: Vec<GroupFact> = Vec::new();
    for (group_id, group_name, action) in rows {
        current.retain(|g| g.id.as_str() != group_id);
        if matches!(action.as_str(), "removed" | "removing")
            && let Ok(id) = GroupId::parse(group_id)
        {
            current.push(GroupFact {
                id,
                name: group_name,
            });
        }
    }
    Ok(current)
}

/// Whether a restore gave anything back to the account after `since` (then it is not
/// removed from the directory).
pub async fn restored_since(
    db: &Db,
    account_id: &str,
    since: chrono::DateTime<chrono::Utc>,
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

/// Whether reseat gave anything of this seat back at or after `since` (UTC ms).
pub async fn seat_restored_since(
    db: &Db,
    account_id: &str,
    product: &str,
    site: &str,
    since: i64,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM journal WHERE account_id = $1 AND product = $2 AND site = $3 \
         AND action = 'restored' AND created_at >= $4",
    )
    .bind(account_id)
    .bind(product)
    .bind(site)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok(count > 0)
}

/// Journal rows of one account (every product and site), oldest first, at most `limit`.
pub async fn journal_of(
    db: &Db,
    account: &str,
    limit: i64,
) -> Result<Vec<JournalRecord>, sqlx::Error> {
    sqlx::query_as::<Any, JournalRecord>(
        "SELECT id, account_id, product, site, group_id, group_name, action, run_id, \
         request_id, reason, created_at FROM journal WHERE account_id = $1 ORDER BY id LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// Journal rows counted by product and action.
pub async fn journal_counts(db: &Db) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT product, action, COUNT(*) FROM journal GROUP BY product, action \
         ORDER BY product, action",
    )
    .fetch_all(db.pool())
    .await
}

/// One seat reclaimed: reseat removed at least one of its memberships (a `removed` row, not
/// compensated by a `not_member`) or revoked a direct role (`role_journal`, the item `done`),
/// first at `removed_at` (UTC ms) within the period asked; never a seat whose plan item
/// ended `still_billed`.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ReclaimedSeats {
    pub account_id: String,
    pub product: String,
    pub site: String,
    pub removed_at: i64,
}

/// Every step that took a seat (account, product, site) at `at` since `$1` (UTC ms): a
/// membership `removed` (not compensated by a later `not_member`), or a direct role revoked
/// by an item that ended `done`; never a step of a plan item that ended `still_billed`.
/// [`reclaimed_seats`] and [`free_periods`] both read it.
const SEAT_TAKEN: &str = "SELECT t.account_id, t.product, t.site, t.at FROM ( \
       SELECT j.account_id, j.product, j.site, j.run_id, j.created_at AS at FROM journal j \
       WHERE j.action = 'removed' AND j.created_at >= $1 \
         AND NOT EXISTS (SELECT 1 FROM journal n WHERE n.action = 'not_member' \
             AND n.account_id = j.account_id AND n.product = j.product AND n.site = j.site \
             AND n.group_id = j.group_id AND n.id > j.id) \
       UNION ALL \
       SELECT r.account_id, r.product, r.site, r.run_id, r.created_at AS at FROM role_journal r \
       WHERE r.action = 'revoked' AND r.created_at >= $1 \
         AND EXISTS (SELECT 1 FROM plan_items p WHERE p.plan_id = r.run_id \
             AND p.account_id = r.account_id AND p.product = r.product AND p.state = 'done') \
     ) t \
     WHERE NOT EXISTS (SELECT 1 FROM plan_items b WHERE b.plan_id = t.run_id \
         AND b.account_id = t.account_id AND b.product = t.product \
         AND b.state = 'still_billed')";

/// THE count of seats reclaimed since `since` (UTC ms): one row per (account, product,
/// site). Every report (sweep, restore, the digest, the admin pages, the API) reads this.
pub async fn reclaimed_seats(
    conn: &mut AnyConnection,
    since: i64,
) -> Result<Vec<ReclaimedSeats>, sqlx::Error> {
    sqlx::query_as::<Any, ReclaimedSeats>(&format!(
        "SELECT s.account_id, s.product, s.site, MIN(s.at) AS removed_at FROM ({SEAT_TAKEN}) s \
         GROUP BY s.account_id, s.product, s.site ORDER BY s.product, s.account_id"
    ))
    .bind(since)
    .fetch_all(conn)
    .await
}

/// A time a seat reseat reclaimed was free: from the first step that took it (see
/// [`reclaimed_seats`]) to the first give-back after that (a `restored` membership or
/// role), or still free (`to` is `None`). A seat taken, given back and taken again has
/// two periods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreePeriod {
    pub account_id: String,
    pub product: String,
    pub site: String,
    /// UTC ms.
    pub from: i64,
    /// UTC ms; `None` while the seat is still free.
    pub to: Option<i64>,
}

/// Every period a reclaimed seat was free, ordered by seat and time: what savings are
/// computed from. Built on the same steps as [`reclaimed_seats`], so a seat that ended
/// `still_billed` was never free.
pub async fn free_periods(conn: &mut AnyConnection) -> Result<Vec<FreePeriod>, sqlx::Error> {
    type Step = (String, String, String, i64, i64);
    // kind 0: taken, kind 1: given back; at the same millisecond a take comes first.
    let steps: Vec<Step> = sqlx::query_as::<Any, Step>(&format!(
        "SELECT s.account_id, s.product, s.site, s.at, CAST(0 AS BIGINT) AS kind FROM ({SEAT_TAKEN}) s \
         UNION ALL SELECT account_id, product, site, created_at AS at, CAST(1 AS BIGINT) AS kind FROM journal \
             WHERE action = 'restored' \
         UNION ALL SELECT account_id, product, site, created_at AS at, CAST(1 AS BIGINT) AS kind \
             FROM role_journal WHERE action = 'restored' \
         ORDER BY 3, 2, 1, 4, 5"
    ))
    .bind(0_i64)
    .fetch_all(conn)
    .await?;
    let mut periods: Vec<FreePeriod> = Vec::new();
    let mut open: Option<usize> = None;
    let mut seat: Option<(String, String, String)> = None;
    for (account_id, product, site, at, kind) in steps {
        let this = (account_id, product, site);
        if seat.as_ref() != Some(&this) {
            open = None;
            seat = Some(this.clone());
        }
        match (kind, open) {
            (0, None) => {
                periods.push(FreePeriod {
                    account_id: this.0,
                    product: this.1,
                    site: this.2,
                    from: at,
                    to: None,
                });
                open = Some(periods.len() - 1);
            }
            (1, Some(index)) => {
                if let Some(period) = periods.get_mut(index) {
                    period.to = Some(at);
                }
                open = None;
            }
            // A second membership of a seat already free, or a give-back of a seat reseat
            // had not reclaimed (a rule's default groups), changes nothing.
            _ => {}
        }
    }
    Ok(periods)
}

/// Seats reclaimed since `since`, counted per product.
pub async fn reclaimed_per_product(
    conn: &mut AnyConnection,
    since: i64,
) -> Result<std::collections::BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = std::collections::BTreeMap::new();
    for seat in reclaimed_seats(conn, since).await? {
        *counts.entry(seat.product).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Records a removal already made and answered (`removed`), in one step: what
/// [`begin_removal_in`] then [`removal_answered_in`] leave for a membership that changed.
/// Returns false when the row was already there.
pub async fn journal_removed_in(
    conn: &mut AnyConnection,
    now: i64,
    entry: &JournalEntry<'_>,
) -> Result<bool, sqlx::Error> {
    insert_in(conn, now, "removed", entry).await
}

/// Seats (account, product, site) reseat gave something back to since `since` (UTC ms).
pub async fn restored_seats(conn: &mut AnyConnection, since: i64) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT DISTINCT account_id, product, site FROM journal \
         WHERE action = 'restored' AND created_at >= $1) seats",
    )
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
