//! The scheduled sweep inside `serve`: at each time of `sweep.schedule` (a cron
//! expression, UTC), plan from the admin API and apply, on one replica at a time — the one
//! that takes the `sweep` lease in the shared database.

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio_util::sync::CancellationToken;

use super::{ApplyOptions, ApplyReport, Source, SweepError};
use crate::app::AppState;
use crate::audit;
use crate::store::lease;

const LEASE: &str = "sweep";

/// Parses a `sweep.schedule` expression.
pub fn parse(expression: &str) -> Result<Cron, String> {
    crate::schedule::parse(expression)
}

/// What one scheduled turn did.
#[derive(Debug)]
pub enum Turn {
    /// Another replica holds the lease.
    NotLeader,
    Ran(Box<ApplyReport>),
}

/// The scheduled sweep of one process.
pub struct Scheduler {
    state: AppState,
    cron: Cron,
    holder: String,
}

impl Scheduler {
    /// `None` when no schedule is configured.
    pub fn new(state: AppState, holder: impl Into<String>) -> Option<Scheduler> {
        let expression = state.config.sweep.schedule.clone()?;
        let cron = parse(&expression).ok()?;
        Some(Scheduler {
            state,
            cron,
            holder: holder.into(),
        })
    }

    /// When the next run is due after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        crate::schedule::next_after(&self.cron, now)
    }

    /// One scheduled run: take the lease, plan from the admin API, apply, give the lease up.
    #[tracing::instrument(skip_all, fields(holder = %self.holder))]
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Turn, SweepError> {
        let ttl = self.state.config.sweep.schedule_lease;
        if !lease::acquire(&self.state.db, LEASE, &self.holder, ttl).await? {
            tracing::info!("another replica runs this sweep");
            return Ok(Turn::NotLeader);
        }
        let options = ApplyOptions {
            now,
            confirmed: true,
            stop_after: None,
            progress: indicatif::ProgressBar::hidden(),
        };
        let outcomes = super::plan_and_apply_sites(
            &self.state.each_site(),
            &[Source::Api],
            &indicatif::ProgressBar::hidden(),
            &options,
        )
        .await;
        if let Err(error) = lease::release(&self.state.db, LEASE, &self.holder).await {
            tracing::warn!(%error, "cannot release the sweep lease; it will expire");
        }
        // Every site's run is audited; the first site's error, if any, is the turn's.
        let mut first = None;
        let mut first_error = None;
        for (site, result) in outcomes {
            match result {
                Ok((_, report)) => {
                    audit::record(
                        &self.state.db,
                        audit::Entry {
                            actor: "schedule",
                            role: None,
                            action: "sweep.scheduled_run",
                            account_id: None,
                            product: None,
                            details: serde_json::json!({ "site": site, "plan_id": report.plan_id, "run_id": report.run_id, "dry_run": report.dry_run }),
                        },
                    )
                    .await?;
                    first.get_or_insert(report);
                }
                Err(error) => {
                    tracing::warn!(%site, %error, "scheduled sweep of a site failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        let Some(report) = first else {
            return Err(SweepError::Config("no site to sweep".to_owned()));
        };
        Ok(Turn::Ran(Box::new(report)))
    }

    /// Runs at each scheduled time until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let cron = self.cron.clone();
        let this = &self;
        crate::schedule::run("sweep", cron, cancel, |at| async move {
            match this.run_once(at).await {
                Ok(Turn::Ran(report)) => tracing::info!(plan = %report.plan_id, removed = report.removed_users, warned = report.warned, dry_run = report.dry_run, "scheduled sweep done"),
                Ok(Turn::NotLeader) => {}
                Err(error) => tracing::error!(%error, "scheduled sweep failed"),
            }
        })
        .await;
    }
}
