//! The worker loop: claims due jobs, runs the handler registered for the job's kind, and
//! records the outcome. `run_once()` does one claim-and-run so tests can drive it directly.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Job, Queue, Retry};
use crate::metrics::Metrics;

/// Why a job attempt failed, as the handler sees it.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later, not before `after` when given (e.g. an upstream's `Retry-After`).
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help; the job goes straight to dead-letter.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: the job waits for something (a consistency window, another job) and
    /// runs again after `after` without spending an attempt.
    #[error("{message}")]
    Later { message: String, after: Duration },
}

impl JobError {
    pub fn retry(message: impl Into<String>) -> JobError {
        JobError::Retry {
            message: message.into(),
            after: None,
        }
    }
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// Runs jobs of one kind. Handlers must be idempotent: a job whose worker died mid-run is
/// run again by another worker.
pub trait JobHandler: Send + Sync {
    fn handle<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a>;
}

impl<F> JobHandler for F
where
    F: for<'a> Fn(&'a Job) -> HandlerFuture<'a> + Send + Sync,
{
    fn handle<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a> {
        self(job)
    }
}

/// What one `run_once()` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// No job was due.
    Idle,
    Completed {
        job_id: i64,
    },
    Retrying {
        job_id: i64,
        at: i64,
    },
    DeadLettered {
        job_id: i64,
    },
    /// The job asked to run again later, without spending an attempt.
    Postponed {
        job_id: i64,
    },
    /// The job's lease was taken over by another worker before this one finished.
    LeaseLost {
        job_id: i64,
    },
}

/// Claims and runs jobs with the registered handlers.
#[derive(Clone)]
pub struct Worker {
    queue: Queue,
    id: String,
    handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>,
    metrics: Option<Metrics>,
}

impl Worker {
    pub fn new(queue: Queue, id: impl Into<String>) -> Worker {
        Worker {
            queue,
            id: id.into(),
            handlers: Arc::new(HashMap::new()),
            metrics: None,
        }
    }

    /// Registers the handler for jobs of `kind`.
    pub fn handle(mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) -> Worker {
        Arc::make_mut(&mut self.handlers).insert(kind.into(), handler);
        self
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Worker {
        self.metrics = Some(metrics);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A copy of this worker with another id (for running several loops in one process).
    pub fn named(&self, id: impl Into<String>) -> Worker {
        Worker {
            id: id.into(),
            ..self.clone()
        }
    }

    /// Claims one due job and runs it.
    #[tracing::instrument(skip_all, fields(worker = %self.id))]
    pub async fn run_once(&self) -> Result<WorkerOutcome, sqlx::Error> {
        let Some(job) = self.queue.claim(&self.id).await? else {
            return Ok(WorkerOutcome::Idle);
        };
        self.run_claimed(job).await
    }

    /// Claims the job `id` now, whatever its schedule, and runs it; `None` when another
    /// worker holds it or it is finished. Surfaces that must act at once go through this,
    /// so that one job never runs twice at the same time.
    pub async fn run_now(&self, id: i64) -> Result<Option<WorkerOutcome>, sqlx::Error> {
        match self.queue.claim_job(id, &self.id).await? {
            Some(job) => self.run_claimed(job).await.map(Some),
            None => Ok(None),
        }
    }

    /// Runs a job this worker claimed and records the outcome.
    async fn run_claimed(&self, job: Job) -> Result<WorkerOutcome, sqlx::Error> {
        let result = match self.handlers.get(&job.kind) {
            Some(handler) => handler.handle(&job).await,
            None => Err(JobError::Permanent(format!(
                "no handler for job kind {:?}",
                job.kind
            ))),
        };
        let outcome = match result {
            Ok(()) => {
                if self.queue.complete(&job).await? {
                    WorkerOutcome::Completed { job_id: job.id }
                } else {
                    WorkerOutcome::LeaseLost { job_id: job.id }
                }
            }
            Err(JobError::Later { message, after }) => {
                tracing::debug!(job_id = job.id, kind = %job.kind, %message, "job waits");
                if self.queue.postpone(&job, after).await? {
                    WorkerOutcome::Postponed { job_id: job.id }
                } else {
                    WorkerOutcome::LeaseLost { job_id: job.id }
                }
            }
            Err(error) => {
                let (after, permanent) = match &error {
                    JobError::Retry { after, .. } => (*after, false),
                    JobError::Permanent(_) => (None, true),
                    JobError::Later { .. } => unreachable!("handled above"),
                };
                if let Some(metrics) = &self.metrics {
                    metrics.job_failed(&job.kind);
                }
                match self
                    .queue
                    .fail(&job, &error.to_string(), after, permanent)
                    .await?
                {
                    Retry::At(at) => {
                        tracing::warn!(job_id = job.id, kind = %job.kind, attempt = job.attempts, %error, "job failed; will retry");
                        WorkerOutcome::Retrying { job_id: job.id, at }
                    }
                    Retry::DeadLettered => {
                        tracing::error!(job_id = job.id, kind = %job.kind, attempt = job.attempts, %error, "job moved to dead-letter");
                        WorkerOutcome::DeadLettered { job_id: job.id }
                    }
                }
            }
        };
        Ok(outcome)
    }

    /// Runs jobs until `cancel` fires; a job in progress is finished first.
    pub async fn run(self, cancel: CancellationToken) {
        let poll = self.queue.config().poll_interval;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let wait = match self.run_once().await {
                Ok(WorkerOutcome::Idle) => Some(poll),
                Ok(_) => None,
                Err(error) => {
                    tracing::error!(worker = %self.id, error = %error, "queue unavailable; retrying");
                    Some(poll.max(Duration::from_secs(1)))
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        tracing::debug!(worker = %self.id, "worker stopped");
    }
}
