//! Apply from the dashboard is a queued job (`sweep.apply`), so that a 50,000-removal plan is
//! not tied to a request's time-out: the page enqueues it and shows its progress
//! (`sweep_runs.items_*`), the queue's worker runs it under the site's apply lease.
//!
//! A double submit enqueues one job: the job's dedupe key names the plan and how many of its
//! applies have ended. A job that finds another apply running (CLI, schedule) is refused at
//! once (dead-lettered with the running run's name), as the CLI is.

use std::sync::Arc;
use std::time::Duration;

use super::{ApplyOptions, SweepError};
use crate::app::AppState;
use crate::queue::{HandlerFuture, Job, JobError, JobHandler, NewJob};

/// The job kind.
pub const APPLY_JOB: &str = "sweep.apply";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Payload {
    plan_id: String,
}

/// Enqueues the apply of a plan (once per plan until that apply ends); returns the job id.
pub async fn enqueue_apply(state: &AppState, plan_id: &str) -> Result<i64, sqlx::Error> {
    let ended = super::store::finished_runs_of(&state.db, plan_id).await?;
    state
        .queue
        .enqueue(
            NewJob::new(
                APPLY_JOB,
                serde_json::to_value(Payload {
                    plan_id: plan_id.to_owned(),
                })
                .unwrap_or_default(),
            )
            .dedupe_key(format!("{APPLY_JOB}:{plan_id}:{ended}"))
            .max_attempts(5),
        )
        .await
}

/// The `sweep.apply` job handler.
pub struct ApplyJob {
    state: AppState,
}

impl ApplyJob {
    pub fn new(state: AppState) -> Arc<ApplyJob> {
        Arc::new(ApplyJob { state })
    }
}

impl JobHandler for ApplyJob {
    fn handle<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(async move {
            let payload: Payload = job
                .payload()
                .map_err(|e| JobError::Permanent(format!("bad job payload: {e}")))?;
            let options = ApplyOptions {
                now: self.state.clock().now(),
                confirmed: true,
                ..ApplyOptions::default()
            };
            // The job's lease follows the run, however long it takes.
            let queue = self.state.queue.clone();
            let lease = queue.config().lease;
            let keep = async {
                let mut every = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
                loop {
                    every.tick().await;
                    if let Err(error) = queue.extend_lease(job, lease).await {
                        tracing::warn!(%error, "cannot extend the apply job's lease");
                    }
                }
            };
            let run = super::apply(&self.state, Some(&payload.plan_id), &options);
            let result = tokio::select! {
                result = run => result,
                () = keep => unreachable!("the lease loop never ends"),
            };
            match result {
                Ok(_) => Ok(()),
                Err(error @ SweepError::Db(_) | error @ SweepError::Atlassian(_)) => {
                    Err(JobError::retry(error.to_string()))
                }
                Err(error) => Err(JobError::Permanent(error.to_string())),
            }
        })
    }
}
