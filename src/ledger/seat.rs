//! Taking and giving back one seat never interleave.
//!
//! A seat is (account, product, site). Whoever changes its memberships holds the seat's
//! claim, a named lease in the shared database (`leases`, name `seat:<site>:<product>:
//! <account>`), for as long as the change takes:
//!
//! - the sweep claims it with the holder `removal:<plan id>` before it journals its intent
//!   (`removing`) and sends the removals, and gives it up once the item is done (journal
//!   `removed`, removal email queued). A restarted apply of the same plan takes its own
//!   claim back at once; only one apply runs per site ([`crate::sweep::run_lease`]).
//! - the restore worker claims it with the holder `restore:<request id>` BEFORE it reads
//!   what the journal says reseat took ([`super::taken_groups`]), and gives it up after it
//!   journaled `restored`:
//!
//! ```ignore
//! let seat = Seat::new(account, product, state.site());
//! match seat::claim(&state.db, &seat, &seat::restore_holder(&request.id), seat::CLAIM_TTL,
//!                   seat::RESTORE_PATIENCE).await? {
//!     Ok(claim) => { /* gather facts, add groups, journal `restored` */ claim.release().await; }
//!     Err(busy) => { /* retry the job after busy.retry_in() */ }
//! }
//! ```
//!
//! A restore that arrives during a removal waits for it ([`claim`] polls until the claim is
//! free, up to its patience) and so runs right after it, seeing the `removed` rows. A sweep
//! that finds a seat claimed by a restore, or whose owner asked for access (a restore
//! request, a keep, a restore) after the plan was made ([`asked_since`]), skips it.

use std::time::Duration;

use crate::store::{Db, lease};

/// How long a claim lasts unless given up first (a holder that dies frees it after this).
pub const CLAIM_TTL: Duration = Duration::from_secs(600);

/// How long a restore waits for a removal of the same seat to end before its job is retried.
pub const RESTORE_PATIENCE: Duration = Duration::from_secs(60);

/// How often a waiting claim looks again.
const POLL: Duration = Duration::from_millis(20);

/// One seat: an account's access to a product on a site.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seat {
    pub account_id: String,
    pub product: String,
    pub site: String,
}

impl Seat {
    pub fn new(account_id: &str, product: &str, site: &str) -> Seat {
        Seat {
            account_id: account_id.to_owned(),
            product: product.to_owned(),
            site: site.to_owned(),
        }
    }

    fn lease_name(&self) -> String {
        format!("seat:{}:{}:{}", self.site, self.product, self.account_id)
    }
}

/// The holder name of a removal by the sweep applying `plan_id`.
pub fn removal_holder(plan_id: &str) -> String {
    format!("removal:{plan_id}")
}

/// The holder name of a restore processing `request_id`.
pub fn restore_holder(request_id: &str) -> String {
    format!("restore:{request_id}")
}

/// A held claim; give it up with [`SeatClaim::release`] (or let it expire).
#[derive(Debug)]
#[must_use = "a claim is held until released or expired"]
pub struct SeatClaim {
    db: Db,
    name: String,
    holder: String,
}

impl SeatClaim {
    pub async fn release(self) {
        if let Err(error) = lease::release(&self.db, &self.name, &self.holder).await {
            tracing::warn!(%error, seat = %self.name, "cannot give up the seat claim; it will expire");
        }
    }
}

/// Someone else holds the seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatBusy {
    /// `removal:<plan>` or `restore:<request>`.
    pub holder: String,
    /// When the claim expires at the latest (UTC ms).
    pub expires_at: i64,
    /// When the claim was refused (UTC ms, from the database handle's clock).
    pub refused_at: i64,
}

impl SeatBusy {
    /// Whether a restore holds it.
    pub fn is_restore(&self) -> bool {
        self.holder.starts_with("restore:")
    }

    /// A fair wait before asking again: a second, or the claim's expiry if sooner.
    pub fn retry_in(&self) -> Duration {
        let left = u64::try_from(self.expires_at - self.refused_at).unwrap_or(0);
        Duration::from_millis(left.clamp(50, 1_000))
    }
}

/// Takes the seat's claim for `holder` if it is free (or already `holder`'s).
pub async fn try_claim(
    db: &Db,
    seat: &Seat,
    holder: &str,
    ttl: Duration,
) -> Result<Result<SeatClaim, SeatBusy>, sqlx::Error> {
    let name = seat.lease_name();
    if lease::acquire(db, &name, holder, ttl).await? {
        return Ok(Ok(SeatClaim {
            db: db.clone(),
            name,
            holder: holder.to_owned(),
        }));
    }
    let current: Option<(String, i64)> =
        sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
            .bind(&name)
            .fetch_optional(db.pool())
            .await?;
    match current {
        Some((holder, expires_at)) => Ok(Err(SeatBusy {
            holder,
            expires_at,
            refused_at: db.now_ms(),
        })),
        // Given up between the two statements: try once more.
        None => Box::pin(try_claim(db, seat, holder, ttl)).await,
    }
}

/// Takes the seat's claim, waiting up to `patience` for the current holder to give it up.
pub async fn claim(
    db: &Db,
    seat: &Seat,
    holder: &str,
    ttl: Duration,
    patience: Duration,
) -> Result<Result<SeatClaim, SeatBusy>, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match try_claim(db, seat, holder, ttl).await? {
            Ok(claim) => return Ok(Ok(claim)),
            Err(busy) if tokio::time::Instant::now() >= deadline => return Ok(Err(busy)),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Why a seat's owner wants it kept, recorded at or after `since` (UTC ms): a restore
/// request, a keep, or a restore. The sweep skips such a seat.
pub async fn asked_since(db: &Db, seat: &Seat, since: i64) -> Result<Option<String>, sqlx::Error> {
    let requested: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM restore_requests WHERE account_id = $1 \
         AND (product = $2 OR product IS NULL) AND created_at >= $3",
    )
    .bind(&seat.account_id)
    .bind(&seat.product)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    if requested > 0 {
        return Ok(Some("the user asked for access after the plan".to_owned()));
    }
    let kept: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM keeps WHERE account_id = $1 AND product = $2 AND site = $3 \
         AND created_at >= $4",
    )
    .bind(&seat.account_id)
    .bind(&seat.product)
    .bind(&seat.site)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    if kept > 0 {
        return Ok(Some(
            "the user asked to keep access after the plan".to_owned(),
        ));
    }
    if super::journal::seat_restored_since(db, &seat.account_id, &seat.product, &seat.site, since)
        .await?
    {
        return Ok(Some("access was restored after the plan".to_owned()));
    }
    Ok(None)
}
