//! "Keep my access": one row per account, product and site with `until_at` (`keeps`,
//! migration 0004). Plan and apply keep the product while `until_at` is in the future; a
//! keep recorded after a plan was made also stops that plan's removal of the seat.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::store::{
    Db,
    time::{from_ms, to_ms},
};

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
    add_keep_in(
        &mut conn,
        db.now_ms(),
        account_id,
        product,
        site,
        until,
        source,
    )
    .await
}

/// The same inside the caller's transaction, recorded at `now` (UTC ms).
pub async fn add_keep_in(
    conn: &mut AnyConnection,
    now: i64,
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
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Asking to keep access given for a while makes it the user's like any other seat: the
    // grant ends (`kept`), and after the keep the usual inactivity rules apply.
    super::grants::end_open_in(
        conn,
        now,
        account_id,
        product,
        site,
        super::grants::GrantEnd::Kept,
    )
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
