//! One apply at a time per site, from every surface (`reseat sweep apply`, `reseat sweep`,
//! the dashboard's queued apply, the schedule).
//!
//! The lease `apply:<site>` in the shared database (`leases`) is taken before anything
//! else (for `reseat sweep`, before planning) and held for the whole run: renewed every
//! third of [`LEASE_TTL`] while it runs, given up at the end. A second run finds it taken
//! and stops at once with [`SweepError::Busy`], one line naming the running run; the CLI
//! exits with [`EXIT_BUSY`].
//!
//! The holder is `<run id> pid <pid> on <host>`. A holder that died without giving the
//! lease up (`kill -9`) frees it when the lease expires; on the same host, a holder
//! whose process is gone is replaced at once.

use std::time::Duration;

use super::SweepError;
use crate::store::{Db, lease, time::from_ms};

/// The exit code of `reseat sweep` and `reseat sweep apply` when another apply holds the
/// site's lease.
pub const EXIT_BUSY: u8 = 3;

/// How long the lease lasts without renewal (a holder that dies frees it after this).
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// The held lease; give it up with [`ApplyLease::release`].
#[derive(Debug)]
pub struct ApplyLease {
    db: Db,
    name: String,
    holder: String,
    run_id: String,
    renew: tokio::task::JoinHandle<()>,
}

impl ApplyLease {
    /// The id the run holding this lease records its `sweep_runs` row under.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub async fn release(self) {
        self.renew.abort();
        if let Err(error) = lease::release(&self.db, &self.name, &self.holder).await {
            tracing::warn!(%error, "cannot give up the apply lease; it will expire");
        }
    }
}

impl Drop for ApplyLease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

fn lease_name(site: &str) -> String {
    format!("apply:{site}")
}

fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "reseat".into())
}

/// The run named in a holder, and whether its process is known to be gone.
fn parse_holder(holder: &str) -> (&str, bool) {
    let mut parts = holder.split(' ');
    let run = parts.next().unwrap_or(holder);
    let gone = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("pid"), Some(pid), Some("on"), Some(on)) => {
            on == host()
                && std::path::Path::new("/proc/self").exists()
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    };
    (run, gone)
}

/// Takes the site's apply lease for a new run, or says which run holds it.
pub async fn acquire(db: &Db, site: &str) -> Result<ApplyLease, SweepError> {
    let name = lease_name(site);
    let run_id = uuid::Uuid::now_v7().to_string();
    let holder = format!("{run_id} pid {} on {}", std::process::id(), host());
    let mut taken = lease::acquire(db, &name, &holder, LEASE_TTL).await?;
    if !taken {
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(&name)
                .fetch_optional(db.pool())
                .await?;
        if let Some((current, _)) = &current {
            let (_, gone) = parse_holder(current);
            if gone {
                tracing::warn!(holder = %current, "the apply lease's holder is gone; taking over");
                lease::release(db, &name, current).await?;
            }
        }
        taken = lease::acquire(db, &name, &holder, LEASE_TTL).await?;
        if !taken {
            return Err(busy(db, site, current.map(|(h, _)| h).unwrap_or_default()).await?);
        }
    }
    // Any run of this site still marked `running` lost its process: only a lease holder
    // runs, and the lease is ours now.
    let stopped = super::store::interrupt_stopped_runs(db, site).await?;
    if stopped > 0 {
        tracing::warn!(
            stopped,
            site,
            "apply runs whose process stopped are marked interrupted"
        );
    }
    let renew = {
        let (db, name, holder) = (db.clone(), name.clone(), holder.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LEASE_TTL / 3);
            every.tick().await;
            loop {
                every.tick().await;
                match lease::acquire(&db, &name, &holder, LEASE_TTL).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(%holder, "the apply lease was taken over"),
                    Err(error) => tracing::warn!(%error, "cannot renew the apply lease"),
                }
            }
        })
    };
    Ok(ApplyLease {
        db: db.clone(),
        name,
        holder,
        run_id,
        renew,
    })
}

async fn busy(db: &Db, site: &str, holder: String) -> Result<SweepError, sqlx::Error> {
    let (run, _) = parse_holder(&holder);
    let row: Option<(Option<String>, i64)> =
        sqlx::query_as("SELECT plan_id, started_at FROM sweep_runs WHERE id = $1")
            .bind(run)
            .fetch_optional(db.pool())
            .await?;
    let what = match row {
        Some((plan, started)) => format!(
            "run {run} (plan {}, started {})",
            plan.as_deref().unwrap_or("not made yet"),
            from_ms(started).format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => format!("run {run} (planning)"),
    };
    Ok(SweepError::Busy {
        site: site.to_owned(),
        running: what,
        holder,
    })
}

/// The run holding the site's apply lease now, if any: (run id, holder). A holder whose
/// process is known to be gone (same host) holds nothing.
pub async fn running(db: &Db, site: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    let row: Option<String> =
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND expires_at >= $2")
            .bind(lease_name(site))
            .bind(db.now_ms())
            .fetch_optional(db.pool())
            .await?;
    Ok(row.and_then(|holder| {
        let (run, gone) = parse_holder(&holder);
        (!gone).then(|| (run.to_owned(), holder.clone()))
    }))
}
