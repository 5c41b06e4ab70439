//! Restore intake and processing, on SQLite and on PostgreSQL.
//!
//! 1. **Intake**: `POST /hooks/webhook` with Standard Webhooks signatures, each request
//!    verified and stored (request row + queue job) before the 202, from `CONCURRENCY`
//!    client tasks over loopback; compared in the same run with a bare axum handler that
//!    answers 202 to the same requests.
//! 2. **Own time per restore**: stored requests are run one at a time through a
//!    `queue::Worker` (claim, `restore::worker::process`, complete) whose Atlassian clients
//!    use a timing transport; reseat's own time = the `run_once` time minus the time spent
//!    inside upstream HTTP calls (the simulator has no latency).
//! 3. **Burst**: 10,000 signed requests against a rate-limited simulator with the app's
//!    workers running; the upstream call rate while draining is compared with the limit,
//!    and every request must end `restored` with its access back in the simulator.
//!
//! `cargo bench --bench restore` (knobs `RESEAT_BENCH_INTAKE`, `_CONCURRENCY`, `_RESTORES`,
//! `_BURST`, `_RATE`, `_WORKERS`); without `--bench`, a smoke run of a few seconds.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use common::Latencies;
use reseat::app::{App, AppState};
use reseat::atlassian::transport::BoxFuture;
use reseat::atlassian::{
    AtlassianClients, ReqwestTransport, Transport, TransportError, TransportRequest,
    TransportResponse,
};
use reseat::config::Config;
use reseat::ledger::JournalEntry;
use reseat::restore::signature;
use reseat::restore::store;
use reseat::sim::model::Product;
use reseat::sim::seed;
use reseat::sim::{SimConfig, SimHandle};
use tokio::sync::oneshot;

/// Knobs of one run.
struct Knobs {
    intake: u64,
    concurrency: u64,
    restores: u64,
    burst: u64,
    rate: u32,
    workers: u64,
}

/// A transport that adds up the time spent in upstream HTTP calls.
struct Timed {
    inner: ReqwestTransport,
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl Transport for Timed {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'_, Result<TransportResponse, TransportError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.send(request).await;
            self.nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.calls.fetch_add(1, Ordering::Relaxed);
            result
        })
    }
}

/// A running app with its simulator.
struct Env {
    sim: SimHandle,
    state: AppState,
    addr: std::net::SocketAddr,
    config: Config,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), reseat::app::StartError>>,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(db_url: &str, sim: SimConfig, rate: Option<u32>, workers: u64) -> Env {
        let sim = reseat::sim::spawn(sim).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = reseat::demo::config_for(&sim, dir.path());
        config.database.url = db_url.to_owned();
        config.server.listen = "127.0.0.1:0".into();
        config.queue.workers = workers.max(1) as usize;
        // Without workers, they look once at start and then sleep for the whole run.
        config.queue.poll_interval = if workers == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(20)
        };
        config.queue.backoff_base = Duration::from_millis(50);
        config.queue.backoff_max = Duration::from_secs(2);
        config.queue.max_attempts = 30;
        config.database.max_connections = 16;
        for family in [
            &mut config.atlassian.admin,
            &mut config.atlassian.jira,
            &mut config.atlassian.jsm,
            &mut config.atlassian.confluence,
        ] {
            family.requests_per_second = rate.unwrap_or(100_000);
            family.concurrency = workers.max(4) as u32;
        }
        let app = App::build_with(config.clone(), Router::new())
            .await
            .unwrap();
        let addr = app.local_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Env {
            sim,
            state,
            addr,
            config,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.state.db.close().await;
        self.sim.shutdown().await;
    }

    /// Staff accounts whose Jira Software access a sweep would have taken: their granting
    /// groups are journaled and removed in the simulator (as `tests/it/restore.rs` does).
    async fn removed_staff(&self, count: usize) -> Vec<String> {
        let truth = self.sim.state().ground_truth();
        let staff: Vec<String> = truth
            .users
            .iter()
            .filter(|u| {
                u.account_type == reseat::sim::AccountType::Atlassian
                    && u.account_status == reseat::sim::AccountStatus::Active
                    && !u.suspended
                    && !u.offboarded
                    && !u.protected
                    && !u.org_admin
                    && u.email
                        .as_deref()
                        .is_some_and(|e| e.ends_with(seed::MANAGED_DOMAIN))
                    && !u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
            })
            .filter(|u| {
                self.sim
                    .state()
                    .user(&u.account_id)
                    .unwrap()
                    .products
                    .contains(&Product::JiraSoftware)
            })
            .take(count)
            .map(|u| u.account_id.clone())
            .collect();
        assert_eq!(staff.len(), count, "enough staff in the seeded org");
        let mut tx = self.state.db.pool().begin().await.unwrap();
        for account in &staff {
            let user = self.sim.state().user(account).unwrap();
            for group in &user.groups {
                let grants = self
                    .sim
                    .state()
                    .group(&group.id)
                    .is_some_and(|g| g.grants.contains(&Product::JiraSoftware));
                if !grants {
                    continue;
                }
                reseat::ledger::journal::journal_removed_in(
                    &mut tx,
                    self.state.db.now_ms(),
                    &JournalEntry {
                        account_id: account,
                        product: "jira-software",
                        site: self.state.site(),
                        group_id: &group.id,
                        group_name: &group.name,
                        run_id: Some("bench-sweep"),
                        request_id: None,
                        reason: "inactive for 120 days",
                    },
                )
                .await
                .unwrap();
                self.sim.state().remove_member(&group.id, account).unwrap();
            }
        }
        tx.commit().await.unwrap();
        staff
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.state.db.pool())
            .await
            .unwrap()
    }
}

/// Posts `total` signed webhooks (ids `{prefix}-{n}`, accounts round-robin) from
/// `concurrency` tasks; returns (latencies, non-202 answers, wall time, request ids).
async fn load(
    addr: std::net::SocketAddr,
    prefix: &str,
    accounts: &[String],
    total: u64,
    concurrency: u64,
) -> (Latencies, u64, Duration, Vec<String>) {
    let client = reqwest::Client::new();
    let secret = reseat::demo::demo_webhook_secret();
    let next = Arc::new(AtomicU64::new(0));
    let accounts = Arc::new(accounts.to_vec());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, secret, next, accounts) = (
            client.clone(),
            secret.clone(),
            next.clone(),
            accounts.clone(),
        );
        let url = format!("http://{addr}/hooks/webhook");
        let prefix = prefix.to_owned();
        tasks.spawn(async move {
            let mut latencies = Latencies::new();
            let mut refused = 0u64;
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let id = format!("{prefix}-{n}");
                let account = &accounts[n as usize % accounts.len()];
                let body = format!(r#"{{"accountId":"{account}","product":"jira-software"}}"#);
                let now = chrono::Utc::now().timestamp();
                let sig = signature::sign(&secret, &id, now, body.as_bytes()).unwrap();
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", now.to_string())
                    .header("webhook-signature", sig)
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        latencies.record(sent.elapsed());
                        if let Some(id) = body["requestId"].as_str() {
                            ids.push(id.to_owned());
                        }
                    }
                    Ok(r) => {
                        let _ = r.bytes().await;
                        refused += 1;
                    }
                    Err(_) => refused += 1,
                }
            }
            (latencies, refused, ids)
        });
    }
    let mut all = Latencies::new();
    let mut refused = 0;
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (latencies, r, i) = done.unwrap();
        all.add(&latencies);
        refused += r;
        ids.extend(i);
    }
    (all, refused, started.elapsed(), ids)
}

fn intake_row(name: &str, latencies: &Latencies, refused: u64, time: Duration) {
    println!(
        "INTAKE | {name} | {} | {refused} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
        latencies.count(),
        latencies.count() as f64 / time.as_secs_f64(),
        latencies.ms(0.5),
        latencies.ms(0.99),
        latencies.ms(1.0)
    );
}

/// A bare axum server answering 202 to the same path.
async fn bare_server() -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let router = Router::new().route(
        "/hooks/webhook",
        post(|| async {
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({"requestId": "x", "status": "accepted"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, stop)
}

/// Intake, then own time per restore, on one database.
async fn intake_and_own_time(backend: &str, db_url: &str, k: &Knobs) {
    let env = Env::start(
        db_url,
        SimConfig {
            users: 2_000,
            // Benchmarks measure the simulator without the test suite's spec checks.
            validate_responses: false,
            ..SimConfig::default()
        },
        None,
        0,
    )
    .await;
    let staff = env.removed_staff(k.restores as usize).await;
    // Warm-up: connections and the pool.
    let _ = load(env.addr, "warm", &staff, 200, k.concurrency).await;
    let (latencies, refused, time, _) =
        load(env.addr, "intake", &staff, k.intake, k.concurrency).await;
    intake_row(
        &format!("reseat `POST /hooks/webhook`, {backend}"),
        &latencies,
        refused,
        time,
    );
    let stored = env.count("SELECT COUNT(*) FROM restore_requests").await;
    assert_eq!(
        stored as u64,
        k.intake + 200,
        "every 202 is a stored request"
    );

    // Own time: a fresh set of requests, each run alone through a worker whose clients time
    // their upstream calls. The intake requests above are left out of the queue first.
    sqlx::query("DELETE FROM jobs")
        .execute(env.state.db.pool())
        .await
        .unwrap();
    let (_, _, _, ids) = load(env.addr, "own", &staff, k.restores, 1).await;
    assert_eq!(ids.len() as u64, k.restores);
    let timed = Arc::new(Timed {
        inner: ReqwestTransport::new(Duration::from_secs(30)).unwrap(),
        nanos: AtomicU64::new(0),
        calls: AtomicU64::new(0),
    });
    let mut state = env.state.clone();
    state.atlassian =
        Arc::new(AtlassianClients::with_transport(&env.config.atlassian, timed.clone()).unwrap());
    let worker = reseat::queue::Worker::new(state.queue.clone(), "bench")
        .handle(
            store::PROCESS_JOB,
            reseat::restore::worker::RestoreProcessor::new(state.clone()),
        )
        // Restores queue their confirmation emails; the file outbox sends them.
        .handle(
            reseat::notify::SEND_JOB,
            std::sync::Arc::new(state.notify.sender.clone()),
        );
    let (mut total, mut own, mut upstream) = (Latencies::new(), Latencies::new(), Latencies::new());
    let calls_before = timed.calls.load(Ordering::Relaxed);
    let mut processed = 0u64;
    loop {
        let nanos = timed.nanos.load(Ordering::Relaxed);
        let started = Instant::now();
        let outcome = worker.run_once().await.unwrap();
        let elapsed = started.elapsed();
        if matches!(outcome, reseat::queue::WorkerOutcome::Idle) {
            break;
        }
        let reseat::queue::WorkerOutcome::Completed { job_id } = outcome else {
            panic!("{outcome:?}");
        };
        // Only restores are measured; their confirmation emails are sent but not counted.
        let job = state.queue.get(job_id).await.unwrap().unwrap();
        if job.kind != store::PROCESS_JOB {
            continue;
        }
        processed += 1;
        let up = Duration::from_nanos(timed.nanos.load(Ordering::Relaxed) - nanos);
        total.record(elapsed);
        upstream.record(up);
        own.record(elapsed.saturating_sub(up));
    }
    let calls = timed.calls.load(Ordering::Relaxed) - calls_before;
    let restored = env
        .count("SELECT COUNT(*) FROM restore_requests WHERE status = 'restored'")
        .await;
    assert_eq!(processed, k.restores);
    println!(
        "OWN | {backend} | {processed} | {restored} | {:.1} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
        calls as f64 / processed as f64,
        total.ms(0.5),
        total.ms(0.99),
        upstream.ms(0.5),
        upstream.ms(0.99),
        own.ms(0.5),
        own.ms(0.99)
    );
    env.stop().await;
}

/// The burst against a rate-limited simulator.
async fn burst(backend: &str, db_url: &str, k: &Knobs) {
    let users = ((k.burst as usize) * 4).max(2_000);
    let env = Env::start(
        db_url,
        SimConfig {
            users,
            rate_limit: Some(k.rate),
            // Benchmarks measure the simulator without the test suite's spec checks.
            validate_responses: false,
            ..SimConfig::default()
        },
        // The upstream limit itself: the client keeps every second at or under it (its
        // burst comes out of the sustained rate).
        Some(k.rate),
        k.workers,
    )
    .await;
    let staff = env.removed_staff(k.burst as usize).await;
    env.sim.state().clear_log();
    let started = Instant::now();
    let (latencies, refused, posted, _) =
        load(env.addr, "burst", &staff, k.burst, k.concurrency).await;
    assert_eq!(refused, 0, "every burst request accepted");
    let limit = Duration::from_secs(600);
    let mut restored = 0;
    while started.elapsed() < limit {
        restored = env
            .count("SELECT COUNT(*) FROM restore_requests WHERE status = 'restored'")
            .await;
        if restored as u64 >= k.burst {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();
    let log = env.sim.state().log();
    let ok = log.iter().filter(|e| e.status != 429).count() as f64;
    let limited = log.iter().filter(|e| e.status == 429).count();
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM restore_requests GROUP BY status")
            .fetch_all(env.state.db.pool())
            .await
            .unwrap();
    let back = staff
        .iter()
        .filter(|a| {
            env.sim
                .state()
                .user(a)
                .unwrap()
                .products
                .contains(&Product::JiraSoftware)
        })
        .count();
    let per_restore = ok / k.burst as f64;
    let rate = ok / drained.as_secs_f64();
    println!(
        "BURST | {backend} | {} | {:.1} s (intake {:.1} s, p99 {:.0} ms) | {restored} restored, {back} with access back; {statuses:?} | {ok} ({per_restore:.2}/restore), {limited} × 429 | {rate:.0}/s = {:.0} % of {} | {:.0} restores/s of a {:.0} bound |",
        k.burst,
        drained.as_secs_f64(),
        posted.as_secs_f64(),
        latencies.ms(0.99),
        rate * 100.0 / k.rate as f64,
        k.rate,
        restored as f64 / drained.as_secs_f64(),
        k.rate as f64 / per_restore,
    );
    env.stop().await;
}

#[tokio::main]
async fn main() {
    let full = common::full();
    let k = if full {
        Knobs {
            intake: common::knob("INTAKE", 10_000),
            concurrency: common::knob("CONCURRENCY", 32),
            restores: common::knob("RESTORES", 300),
            burst: common::knob("BURST", 10_000),
            rate: common::knob("RATE", 500) as u32,
            workers: common::knob("WORKERS", 8),
        }
    } else {
        Knobs {
            intake: 300,
            concurrency: 8,
            restores: 20,
            burst: 200,
            rate: 200,
            workers: 4,
        }
    };
    println!(
        "# restore bench ({}): intake {} requests from {} tasks; {} restores timed; burst {} at {}/s with {} workers",
        if full { "full" } else { "smoke" },
        k.intake,
        k.concurrency,
        k.restores,
        k.burst,
        k.rate,
        k.workers
    );
    let pg = common::PgDb::create().await;
    println!(
        "INTAKE | server | answered 202 | refused | requests/s | p50 | p99 | max |\n|---|---|---|---|---|---|---|"
    );
    {
        let (addr, stop) = bare_server().await;
        let staff = vec!["557058:bench".to_owned()];
        let _ = load(addr, "warm", &staff, 200, k.concurrency).await;
        let (latencies, refused, time, _) =
            load(addr, "bare", &staff, k.intake, k.concurrency).await;
        intake_row("bare axum handler answering 202", &latencies, refused, time);
        let _ = stop.send(());
    }
    println!(
        "OWN | backend | restores | restored | upstream calls/restore | run_once p50 / p99 | upstream p50 / p99 | own p50 / p99 |"
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    intake_and_own_time("SQLite", &sqlite("intake.db"), &k).await;
    if let Some(pg) = &pg {
        intake_and_own_time("PostgreSQL", &pg.url, &k).await;
    }
    println!(
        "BURST | backend | requests | drained in | lost? | upstream calls | upstream rate vs limit | restores/s |"
    );
    burst("SQLite", &sqlite("burst.db"), &k).await;
    if let Some(pg) = pg {
        let burst_db = common::PgDb::create().await;
        if let Some(db) = burst_db {
            burst("PostgreSQL", &db.url, &k).await;
            db.drop_db().await;
        }
        pg.drop_db().await;
    }
}
