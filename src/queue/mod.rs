//! The durable job queue: jobs live in the `jobs` table, are enqueued in the same
//! transaction as the record they belong to, claimed with a lease, retried with
//! exponential backoff and jitter (or after an upstream's `Retry-After`), and moved to
//! dead-letter after too many attempts, where they stay visible until an admin retries them.
//!
//! Claims are atomic: `FOR UPDATE SKIP LOCKED` on PostgreSQL and a single
//! `UPDATE … RETURNING` on SQLite, so two workers never run the same job at once. A worker
//! that dies leaves its lease to expire, and another worker claims the job again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, FromRow};

use crate::store::{Backend, Db};

pub mod worker;

pub use worker::{HandlerFuture, JobError, JobHandler, Worker, WorkerOutcome};

/// Queue settings, from the `[queue]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// How many jobs one process runs at the same time; 0 runs none here (web-only
    /// replicas, while other processes work the shared queue).
    pub workers: usize,
    /// How long an idle worker waits before looking for new jobs again.
    #[serde(with = "crate::config::duration")]
    pub poll_interval: Duration,
    /// How long a claimed job belongs to its worker; after that another worker may take it.
    #[serde(with = "crate::config::duration")]
    pub lease: Duration,
    /// Attempts before a job is moved to dead-letter.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further retry doubles it.
    #[serde(with = "crate::config::duration")]
    pub backoff_base: Duration,
    /// No retry waits longer than this (unless an upstream asked for longer).
    #[serde(with = "crate::config::duration")]
    pub backoff_max: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            workers: 4,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(300),
            max_attempts: 8,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3_600),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// When set, a second job with the same key is not enqueued (the first one's id is returned).
    pub dedupe_key: Option<String>,
    /// Not before this time (UTC ms); now when `None`.
    pub run_at: Option<i64>,
    /// Overrides `queue.max_attempts` for this job.
    pub max_attempts: Option<u32>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload,
            dedupe_key: None,
            run_at: None,
            max_attempts: None,
        }
    }

    pub fn dedupe_key(mut self, key: impl Into<String>) -> NewJob {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at_ms: i64) -> NewJob {
        self.run_at = Some(at_ms);
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> NewJob {
        self.max_attempts = Some(attempts);
        self
    }
}

/// A job as stored.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub dedupe_key: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Job {
    /// The payload parsed as `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// What happened to a job that failed an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// It will run again, not before this time (UTC ms).
    At(i64),
    /// It used its last attempt and is now in dead-letter.
    DeadLettered,
}

/// Job counts by state, for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
}

const JOB_COLUMNS: &str = "id, kind, payload, dedupe_key, state, attempts, max_attempts, run_at, \
     lease_until, locked_by, last_error, created_at, updated_at";

/// The queue over the shared database.
#[derive(Clone, Debug)]
pub struct Queue {
    db: Db,
    config: QueueConfig,
}

impl Queue {
    pub fn new(db: Db, config: QueueConfig) -> Queue {
        Queue { db, config }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Enqueues a job on its own.
    pub async fn enqueue(&self, job: NewJob) -> Result<i64, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        self.enqueue_in(&mut conn, job).await
    }

    /// Enqueues a job inside the caller's transaction (or connection), so that the job and
    /// the record it belongs to are written together or not at all.
    pub async fn enqueue_in(
        &self,
        conn: &mut AnyConnection,
        job: NewJob,
    ) -> Result<i64, sqlx::Error> {
        let now = self.db.now_ms();
        let max_attempts = i64::from(job.max_attempts.unwrap_or(self.config.max_attempts).max(1));
        let payload = job.payload.to_string();
        // `ON CONFLICT DO NOTHING` keeps a surrounding PostgreSQL transaction usable when the
        // dedupe key already exists; the existing job's id is then returned.
        let inserted: Option<i64> = sqlx::query_scalar::<Any, i64>(
            "INSERT INTO jobs (kind, payload, dedupe_key, state, attempts, max_attempts, run_at, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $6) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&job.kind)
        .bind(&payload)
        .bind(job.dedupe_key.as_deref())
        .bind(max_attempts)
        .bind(job.run_at.unwrap_or(now))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        match (inserted, &job.dedupe_key) {
            (Some(id), _) => Ok(id),
            (None, Some(key)) => {
                sqlx::query_scalar::<Any, i64>("SELECT id FROM jobs WHERE dedupe_key = $1")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await
            }
            (None, None) => Err(sqlx::Error::RowNotFound),
        }
    }

    /// Claims the next job that is due (or whose lease expired), for `worker`.
    pub async fn claim(&self, worker: &str) -> Result<Option<Job>, sqlx::Error> {
        let now = self.db.now_ms();
        let lease_until = now + duration_ms(self.config.lease);
        let sql = match self.db.backend() {
            Backend::Postgres => format!(
                "WITH next AS (SELECT id FROM jobs WHERE \
                   (state = 'queued' AND run_at <= $1) OR (state = 'running' AND lease_until < $1) \
                   ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, lease_until = $2, \
                   locked_by = $3, updated_at = $1 FROM next WHERE jobs.id = next.id \
                 RETURNING {}",
                JOB_COLUMNS
                    .split(", ")
                    .map(|c| format!("jobs.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            // SQLite runs one writer at a time, so the sub-select and the update are atomic.
            Backend::Sqlite => format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, \
                   locked_by = $3, updated_at = $1 \
                 WHERE id = (SELECT id FROM jobs WHERE \
                   (state = 'queued' AND run_at <= $1) OR (state = 'running' AND lease_until < $1) \
                   ORDER BY run_at, id LIMIT 1) \
                 RETURNING {JOB_COLUMNS}"
            ),
        };
        sqlx::query_as::<Any, Job>(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(worker)
            .fetch_optional(self.db.pool())
            .await
    }

    /// Claims one job by id, now, whatever its `run_at`: a surface that must act at once
    /// (a link, an admin's click) runs the job itself, under the same lease as any worker.
    /// `None` when the job is running under another live lease, done or dead.
    pub async fn claim_job(&self, id: i64, worker: &str) -> Result<Option<Job>, sqlx::Error> {
        let now = self.db.now_ms();
        let lease_until = now + duration_ms(self.config.lease);
        sqlx::query_as::<Any, Job>(&format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, \
               locked_by = $3, updated_at = $1 \
             WHERE id = $4 AND (state = 'queued' OR (state = 'running' AND lease_until < $1)) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now)
        .bind(lease_until)
        .bind(worker)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
    }

    /// Gives a claimed job back to the queue for later without spending an attempt (the job
    /// is waiting for something, not failing). False when the lease was lost meanwhile.
    pub async fn postpone(&self, job: &Job, after: Duration) -> Result<bool, sqlx::Error> {
        let now = self.db.now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, attempts = attempts - 1, \
             lease_until = NULL, locked_by = NULL, updated_at = $2 \
             WHERE id = $3 AND state = 'running' AND locked_by = $4 AND attempts = $5",
        )
        .bind(now + duration_ms(after))
        .bind(now)
        .bind(job.id)
        .bind(job.locked_by.as_deref())
        .bind(job.attempts)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Extends a claimed job's lease to `lease` from now, for a handler that runs longer
    /// than `queue.lease`. False when the job is not this claim's any more.
    pub async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, sqlx::Error> {
        let now = self.db.now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 \
             WHERE id = $3 AND state = 'running' AND locked_by = $4 AND attempts = $5",
        )
        .bind(now + duration_ms(lease))
        .bind(now)
        .bind(job.id)
        .bind(job.locked_by.as_deref())
        .bind(job.attempts)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Marks a claimed job done. Returns false when the job's lease was lost to another
    /// worker meanwhile (the other worker's outcome stands).
    pub async fn complete(&self, job: &Job) -> Result<bool, sqlx::Error> {
        let now = self.db.now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = $1 \
             WHERE id = $2 AND state = 'running' AND locked_by = $3 AND attempts = $4",
        )
        .bind(now)
        .bind(job.id)
        .bind(job.locked_by.as_deref())
        .bind(job.attempts)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed attempt: schedules a retry with backoff (never sooner than
    /// `not_before`, e.g. an upstream's `Retry-After`), or moves the job to dead-letter when
    /// it has used its attempts or `permanent` is set.
    pub async fn fail(
        &self,
        job: &Job,
        error: &str,
        not_before: Option<Duration>,
        permanent: bool,
    ) -> Result<Retry, sqlx::Error> {
        let now = self.db.now_ms();
        let error = truncate(error, 2_000);
        let outcome = if permanent || job.attempts >= job.max_attempts {
            Retry::DeadLettered
        } else {
            let backoff = self.backoff(job.attempts as u32);
            let wait = not_before.map_or(backoff, |asked| asked.max(backoff));
            Retry::At(now + duration_ms(wait))
        };
        let (state, run_at) = match outcome {
            Retry::At(at) => ("queued", at),
            Retry::DeadLettered => ("dead", job.run_at),
        };
        sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, lease_until = NULL, locked_by = NULL, \
             last_error = $3, updated_at = $4 \
             WHERE id = $5 AND state = 'running' AND locked_by = $6 AND attempts = $7",
        )
        .bind(state)
        .bind(run_at)
        .bind(error)
        .bind(now)
        .bind(job.id)
        .bind(job.locked_by.as_deref())
        .bind(job.attempts)
        .execute(self.db.pool())
        .await?;
        Ok(outcome)
    }

    /// The wait before retry number `attempt` (1-based): exponential from
    /// `queue.backoff_base`, capped at `queue.backoff_max`, with jitter so that many failed
    /// jobs do not all retry at the same moment.
    pub fn backoff(&self, attempt: u32) -> Duration {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.config.backoff_base)
            .with_max_delay(self.config.backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.config.backoff_max)
    }

    /// Jobs in dead-letter, newest first.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as::<Any, Job>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
    }

    /// Puts a dead-lettered job back in the queue with fresh attempts. False if it was not dead.
    pub async fn retry_dead(&self, id: i64) -> Result<bool, sqlx::Error> {
        let now = self.db.now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn get(&self, id: i64) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as::<Any, Job>(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await
    }

    pub async fn stats(&self) -> Result<QueueStats, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                .fetch_all(self.db.pool())
                .await?;
        let mut stats = QueueStats::default();
        for (state, count) in rows {
            match state.as_str() {
                "queued" => stats.queued = count,
                "running" => stats.running = count,
                "done" => stats.done = count,
                "dead" => stats.dead = count,
                _ => {}
            }
        }
        Ok(stats)
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
