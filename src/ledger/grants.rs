//! Access given back for a while: a restore rule's `approve_for` (`grants`, migration
//! 0019). The restore that gives the seat back records the grant and its end; the sweep keeps
//! the seat until then, warns before it, and takes it back at the end unless the user worked
//! in the product since or asked to keep it. A restore without an end, a keep, or a removal
//! closes any open grant.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::store::{
    Db,
    time::{from_ms, to_ms},
};

/// An open grant of one seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted_at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Records what restore `request_id` gave back: until `until` when the rule says for how
/// long, else for good. Either way, the seat's earlier open grants end (`superseded`). Once
/// per request.
#[allow(clippy::too_many_arguments)]
pub async fn record_restore(
    conn: &mut AnyConnection,
    now: i64,
    request_id: &str,
    account_id: &str,
    product: &str,
    site: &str,
    until: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE grants SET ended_at = $1, ended_by = 'superseded' \
         WHERE account_id = $2 AND product = $3 AND site = $4 AND ended_at IS NULL \
         AND request_id <> $5",
    )
    .bind(now)
    .bind(account_id)
    .bind(product)
    .bind(site)
    .bind(request_id)
    .execute(&mut *conn)
    .await?;
    if let Some(until) = until {
        sqlx::query(
            "INSERT INTO grants (request_id, account_id, product, site, granted_at, until_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(request_id)
        .bind(account_id)
        .bind(product)
        .bind(site)
        .bind(now)
        .bind(to_ms(until))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// When the access restore `request_id` gave back ends: `None` when it was given for good.
pub async fn until_of(db: &Db, request_id: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let until: Option<i64> =
        sqlx::query_scalar("SELECT until_at FROM grants WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(until.map(from_ms))
}

/// Why a grant ended before a restore replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantEnd {
    /// The user asked to keep the access (a keep link).
    Kept,
    /// The sweep took the access back.
    Taken,
}

impl GrantEnd {
    fn as_str(self) -> &'static str {
        match self {
            GrantEnd::Kept => "kept",
            GrantEnd::Taken => "taken",
        }
    }
}

/// Ends the seat's open grants, saying why.
pub async fn end_open_in(
    conn: &mut AnyConnection,
    now: i64,
    account_id: &str,
    product: &str,
    site: &str,
    end: GrantEnd,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE grants SET ended_at = $1, ended_by = $2 \
         WHERE account_id = $3 AND product = $4 AND site = $5 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(end.as_str())
    .bind(account_id)
    .bind(product)
    .bind(site)
    .execute(conn)
    .await?;
    Ok(())
}

/// The open grant of every seat of `site` that has one (the newest), by (account, product).
pub async fn open_grants(
    db: &Db,
    site: &str,
) -> Result<HashMap<(String, String), Grant>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT account_id, product, granted_at, until_at FROM grants \
         WHERE site = $1 AND ended_at IS NULL ORDER BY granted_at",
    )
    .bind(site)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account, product, granted, until)| {
            (
                (account, product),
                Grant {
                    granted_at: from_ms(granted),
                    until: from_ms(until),
                },
            )
        })
        .collect())
}
