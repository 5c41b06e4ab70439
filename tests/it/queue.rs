//! The durable queue on every backend: exactly-once under two workers, lease expiry,
//! backoff and not-before, dead-letter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reseat::queue::{
    HandlerFuture, Job, JobError, JobHandler, NewJob, Queue, QueueConfig, Worker, WorkerOutcome,
};
use reseat::store::{Db, TestClock};
use serde_json::json;

use crate::support::TestDb;

async fn open(db: &TestDb, config: QueueConfig) -> Queue {
    open_on(db, config, &TestClock::new()).await
}

/// A queue whose time `clock` moves.
async fn open_on(db: &TestDb, config: QueueConfig, clock: &TestClock) -> Queue {
    let store = Db::connect(&db.config().database.options())
        .await
        .expect("connect")
        .with_clock(clock.clock());
    store.migrate().await.expect("migrate");
    Queue::new(store, config)
}

/// Counts how many times each job ran.
#[derive(Default, Clone)]
struct Counting(Arc<Mutex<HashMap<i64, u32>>>);

impl JobHandler for Counting {
    fn handle<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(async move {
            *self.0.lock().unwrap().entry(job.id).or_default() += 1;
            Ok(())
        })
    }
}

struct AlwaysFails;

impl JobHandler for AlwaysFails {
    fn handle<'a>(&'a self, _job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(async { Err(JobError::retry("upstream said 500")) })
    }
}

struct RateLimited(Duration);

impl JobHandler for RateLimited {
    fn handle<'a>(&'a self, _job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(async move {
            Err(JobError::Retry {
                message: "429".into(),
                after: Some(self.0),
            })
        })
    }
}

#[tokio::test]
async fn two_workers_run_each_of_1000_jobs_exactly_once() {
    for db in TestDb::all().await {
        let queue = open(&db, QueueConfig::default()).await;
        for n in 0..1000 {
            queue
                .enqueue(NewJob::new("count", json!({ "n": n })))
                .await
                .unwrap();
        }
        let counting = Counting::default();
        let worker = Worker::new(queue.clone(), "w").handle("count", Arc::new(counting.clone()));
        let run = |worker: Worker| async move {
            let mut completed = 0;
            loop {
                match worker.run_once().await.expect("queue works") {
                    WorkerOutcome::Idle => return completed,
                    WorkerOutcome::Completed { .. } => completed += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        };
        let (a, b) = tokio::join!(
            tokio::spawn(run(worker.named("a"))),
            tokio::spawn(run(worker.named("b")))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a + b, 1000, "{}", db.backend_name());
        assert!(
            a > 0 && b > 0,
            "both workers took jobs on {}: {a} / {b}",
            db.backend_name()
        );
        let runs = counting.0.lock().unwrap().clone();
        assert_eq!(runs.len(), 1000);
        assert!(
            runs.values().all(|&n| n == 1),
            "a job ran twice on {}",
            db.backend_name()
        );
        let stats = queue.stats().await.unwrap();
        assert_eq!(
            (stats.done, stats.queued, stats.running, stats.dead),
            (1000, 0, 0, 0)
        );
    }
}

#[tokio::test]
async fn a_job_whose_lease_expired_is_claimed_again() {
    for db in TestDb::all().await {
        let config = QueueConfig {
            lease: Duration::from_secs(60),
            ..QueueConfig::default()
        };
        let clock = TestClock::new();
        let queue = open_on(&db, config, &clock).await;
        let id = queue
            .enqueue(NewJob::new("count", json!({})))
            .await
            .unwrap();
        // Worker "dead" claims the job and never finishes.
        let lost = queue.claim("dead").await.unwrap().expect("claimed");
        assert_eq!(lost.id, id);
        assert!(
            queue.claim("other").await.unwrap().is_none(),
            "lease still held"
        );
        clock.advance(Duration::from_secs(61));
        let counting = Counting::default();
        let worker =
            Worker::new(queue.clone(), "alive").handle("count", Arc::new(counting.clone()));
        assert_eq!(
            worker.run_once().await.unwrap(),
            WorkerOutcome::Completed { job_id: id }
        );
        let job = queue.get(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state.as_str(), job.attempts),
            ("done", 2),
            "{}",
            db.backend_name()
        );
        // The dead worker's late completion does not overwrite the outcome.
        assert!(!queue.complete(&lost).await.unwrap());
    }
}

#[tokio::test]
async fn not_before_and_backoff_are_honoured() {
    for db in TestDb::all().await {
        let config = QueueConfig {
            backoff_base: Duration::from_secs(30),
            ..QueueConfig::default()
        };
        let queue = open(&db, config).await;
        let later = queue.db().now_ms() + 60_000;
        queue
            .enqueue(NewJob::new("count", json!({})).run_at(later))
            .await
            .unwrap();
        assert!(
            queue.claim("w").await.unwrap().is_none(),
            "job ran before its time"
        );

        let id = queue
            .enqueue(NewJob::new("fails", json!({})))
            .await
            .unwrap();
        let worker = Worker::new(queue.clone(), "w").handle("fails", Arc::new(AlwaysFails));
        let before = queue.db().now_ms();
        let WorkerOutcome::Retrying { job_id, at } = worker.run_once().await.unwrap() else {
            panic!("expected a retry");
        };
        assert_eq!(job_id, id);
        assert!(
            at >= before + 30_000,
            "backoff shorter than the base: {}",
            at - before
        );
        assert!(
            at <= queue.db().now_ms() + 60_000,
            "jitter beyond twice the base"
        );
        assert_eq!(
            worker.run_once().await.unwrap(),
            WorkerOutcome::Idle,
            "retried too early"
        );

        let limited = queue
            .enqueue(NewJob::new("limited", json!({})))
            .await
            .unwrap();
        let worker = Worker::new(queue.clone(), "w")
            .handle("limited", Arc::new(RateLimited(Duration::from_secs(600))));
        let before = queue.db().now_ms();
        let WorkerOutcome::Retrying { job_id, at } = worker.run_once().await.unwrap() else {
            panic!("expected a retry");
        };
        assert_eq!(job_id, limited);
        assert!(
            at >= before + 600_000,
            "Retry-After not honoured on {}",
            db.backend_name()
        );
    }
}

#[tokio::test]
async fn a_job_that_keeps_failing_lands_in_dead_letter_after_n_attempts() {
    for db in TestDb::all().await {
        let config = QueueConfig {
            max_attempts: 3,
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            ..QueueConfig::default()
        };
        let queue = open(&db, config).await;
        let id = queue
            .enqueue(NewJob::new("fails", json!({"x": 1})))
            .await
            .unwrap();
        let worker = Worker::new(queue.clone(), "w").handle("fails", Arc::new(AlwaysFails));
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            outcomes.push(worker.run_once().await.unwrap());
        }
        assert!(matches!(outcomes[0], WorkerOutcome::Retrying { .. }));
        assert!(matches!(outcomes[1], WorkerOutcome::Retrying { .. }));
        assert_eq!(outcomes[2], WorkerOutcome::DeadLettered { job_id: id });
        assert_eq!(worker.run_once().await.unwrap(), WorkerOutcome::Idle);
        let dead = queue.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1, "{}", db.backend_name());
        assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
        assert_eq!(dead[0].last_error.as_deref(), Some("upstream said 500"));
        assert_eq!(queue.stats().await.unwrap().dead, 1);
        // An admin puts it back.
        assert!(queue.retry_dead(id).await.unwrap());
        assert_eq!(queue.get(id).await.unwrap().unwrap().state, "queued");
    }
}

#[tokio::test]
async fn an_unknown_job_kind_is_dead_lettered_not_lost() {
    let db = TestDb::sqlite();
    let queue = open(&db, QueueConfig::default()).await;
    let id = queue
        .enqueue(NewJob::new("mystery", json!({})))
        .await
        .unwrap();
    let worker = Worker::new(queue.clone(), "w");
    assert_eq!(
        worker.run_once().await.unwrap(),
        WorkerOutcome::DeadLettered { job_id: id }
    );
}

#[tokio::test]
async fn enqueue_joins_the_callers_transaction_and_dedupes() {
    for db in TestDb::all().await {
        let queue = open(&db, QueueConfig::default()).await;
        // Rolled back with the record it belongs to: no job.
        let mut tx = queue.db().pool().begin().await.unwrap();
        queue
            .enqueue_in(&mut tx, NewJob::new("count", json!({})))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            queue.stats().await.unwrap().queued,
            0,
            "{}",
            db.backend_name()
        );

        let mut tx = queue.db().pool().begin().await.unwrap();
        let first = queue
            .enqueue_in(&mut tx, NewJob::new("count", json!({})).dedupe_key("req-1"))
            .await
            .unwrap();
        let again = queue
            .enqueue_in(&mut tx, NewJob::new("count", json!({})).dedupe_key("req-1"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(first, again);
        assert_eq!(
            queue.stats().await.unwrap().queued,
            1,
            "{}",
            db.backend_name()
        );
    }
}
