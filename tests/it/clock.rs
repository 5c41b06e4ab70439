//! The injected clock drives expiry end to end: a link refused once its time is up, and a
//! failed job that falls due once its backoff has passed, on every backend, with no
//! sleeping and no rewritten timestamps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reseat::config::{Config, Secret};
use reseat::notify::Purpose;
use reseat::queue::{HandlerFuture, Job, JobError, JobHandler, NewJob, Worker, WorkerOutcome};
use serde_json::json;

use crate::support::{TestDb, spawn_app_with};

const ACCOUNT: &str = "5b10ac8d82e05b22cc7d4ef5";

fn with_keys(config: &mut Config) {
    config.links.keys.insert(
        "k1".into(),
        Secret::new("k1-0123456789abcdef0123456789abcdef"),
    );
    config.links.signing_key = Some("k1".into());
    // The test drives the worker itself.
    config.queue.workers = 0;
}

#[tokio::test]
async fn a_restore_link_is_refused_once_the_clock_passes_its_expiry() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let app = spawn_app_with(db, with_keys, axum::Router::new()).await;
        let state = &app.state;
        let expires = state.clock().now() + chrono::Duration::hours(1);
        let mut conn = state.db.pool().acquire().await.unwrap();
        let link = state
            .notify
            .links
            .issue(
                &mut conn,
                Purpose::Restore,
                ACCOUNT,
                "jira-software",
                state.site(),
                expires,
            )
            .await
            .unwrap();
        drop(conn);
        let url = app.url(&format!("/restore/{}", link.token));

        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{backend}: a fresh link works");

        app.advance(Duration::from_secs(59 * 60));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{backend}: a minute before expiry");

        app.advance(Duration::from_secs(2 * 60));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 410, "{backend}: an expired link is gone");
        let reasons: Vec<String> =
            sqlx::query_scalar("SELECT reason FROM audit_refusals WHERE action = 'link.rejected'")
                .fetch_all(state.db.pool())
                .await
                .unwrap();
        assert!(
            reasons.iter().any(|d| d.contains("expired")),
            "{backend}: {reasons:?}"
        );
    }
}

/// Fails its first attempt, succeeds after.
#[derive(Default)]
struct FailsOnce(AtomicU32);

impl JobHandler for FailsOnce {
    fn handle<'a>(&'a self, _job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(async move {
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => Err(JobError::retry("upstream said 503")),
                _ => Ok(()),
            }
        })
    }
}

#[tokio::test]
async fn a_failed_job_falls_due_once_the_clock_passes_its_backoff() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let app = spawn_app_with(
            db,
            |config| {
                with_keys(config);
                config.queue.backoff_base = Duration::from_secs(600);
                config.queue.backoff_max = Duration::from_secs(3_600);
            },
            axum::Router::new(),
        )
        .await;
        let queue = &app.state.queue;
        let handler = Arc::new(FailsOnce::default());
        let worker = Worker::new(queue.clone(), "w").handle("flaky", handler.clone());
        let id = queue
            .enqueue(NewJob::new("flaky", json!({})))
            .await
            .unwrap();

        let WorkerOutcome::Retrying { job_id, at } = worker.run_once().await.unwrap() else {
            panic!("{backend}: expected a retry");
        };
        assert_eq!(job_id, id);
        let wait = at - app.state.db.now_ms();
        assert!(wait >= 590_000, "{backend}: backoff of {wait} ms");
        assert_eq!(
            worker.run_once().await.unwrap(),
            WorkerOutcome::Idle,
            "{backend}: retried before its backoff"
        );

        app.advance(Duration::from_millis(u64::try_from(wait).unwrap() + 1_000));
        assert_eq!(
            worker.run_once().await.unwrap(),
            WorkerOutcome::Completed { job_id: id },
            "{backend}: due once the backoff has passed"
        );
        let job = queue.get(id).await.unwrap().unwrap();
        assert_eq!((job.state.as_str(), job.attempts), ("done", 2), "{backend}");
        assert_eq!(handler.0.load(Ordering::SeqCst), 2);
    }
}
