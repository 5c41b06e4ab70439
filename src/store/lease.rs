//! Named leases in the database: at most one holder at a time across every process that
//! shares it (SQLite or PostgreSQL), expiring so that a holder that dies frees the lease.

use std::time::Duration;

use crate::store::Db;

/// Takes (or renews) the lease `name` for `holder` until `ttl` from now. True when held.
pub async fn acquire(
    db: &Db,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let now = db.now_ms();
    let until = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
    let result = sqlx::query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
    )
    .bind(name)
    .bind(holder)
    .bind(until)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives the lease up, if `holder` has it.
pub async fn release(db: &Db, name: &str, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(db.pool())
        .await?;
    Ok(())
}
