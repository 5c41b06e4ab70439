//! The ledger under races, retries and crashes: one apply at a time per site from every
//! surface, "not a member" after a removal was sent, a restore during a removal, the
//! digest's numbers, and migrations started twice at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reseat::app::AppState;
use reseat::config::Config;
use reseat::restore::rules::{Decision, Rule};
use reseat::sim::{FaultPatch, SimConfig, SimHandle};
use reseat::sweep::store::PlanItem;
use reseat::sweep::{ApplyOptions, Source, SweepError};
use serde_json::json;

use crate::support::{TestDb, spawn_configured};

/// A configuration against the simulator: the demo's, any account reseat removed gets its
/// access straight back, retries fit for tests, the test drives the queue.
pub(crate) fn config_for(sim: &SimHandle, db: &TestDb, dir: &std::path::Path) -> Config {
    let mut config = reseat::demo::config_for(sim, dir);
    config.database.url = db.url.clone();
    config.queue.workers = 0;
    config.queue.backoff_base = Duration::from_millis(5);
    config.queue.backoff_max = Duration::from_millis(50);
    config.queue.max_attempts = 30;
    config.atlassian.retry.base_delay = Duration::from_millis(5);
    config.atlassian.retry.max_delay = Duration::from_millis(50);
    config.atlassian.retry.timeout = Duration::from_secs(2);
    config.atlassian.admin.requests_per_second = 1000;
    for family in [&mut config.atlassian.jira, &mut config.atlassian.confluence] {
        family.requests_per_second = 1000;
        family.concurrency = 8;
    }
    config.restore.rules = vec![Rule {
        name: "anyone reseat removed".into(),
        products: vec![],
        channels: vec![],
        email_domains: vec![],
        member_of_any: vec![],
        member_of_none: vec![],
        removed_by_reseat: Some(true),
        seat_reserve: None,
        decision: Decision::Approve,
        message: None,
        grant_groups: vec![],
        approve_for: None,
        require_justification: false,
    }];
    config.restore.offboarding_groups = vec![];
    config
}

pub(crate) async fn sim(users: usize) -> SimHandle {
    reseat::sim::spawn(SimConfig {
        users,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

async fn plan(state: &AppState) -> (String, Vec<PlanItem>) {
    let planned = reseat::sweep::plan(
        state,
        &[Source::Api],
        chrono::Utc::now(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    let items = reseat::sweep::store::items(&state.db, &planned.plan_id)
        .await
        .unwrap();
    (planned.plan_id, items)
}

fn live() -> ApplyOptions {
    ApplyOptions {
        confirmed: true,
        ..ApplyOptions::default()
    }
}

/// Every (account, group name) membership in the simulator.
fn memberships(sim: &SimHandle) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for user in &sim.state().ground_truth().users {
        if let Some(view) = sim.state().user(&user.account_id) {
            for group in view.groups {
                all.insert((user.account_id.clone(), group.name));
            }
        }
    }
    all
}

async fn count(state: &AppState, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(state.db.pool())
        .await
        .unwrap()
}

/// What the ledger says each account lost: (account, product) -> group names.
async fn taken(
    state: &AppState,
    items: &[PlanItem],
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for item in items.iter().filter(|i| i.decision == "remove") {
        let groups =
            reseat::ledger::taken_groups(&state.db, &item.account_id, &item.product, state.site())
                .await
                .unwrap();
        if !groups.is_empty() {
            all.insert(
                (item.account_id.clone(), item.product.clone()),
                groups.into_iter().map(|g| g.name).collect(),
            );
        }
    }
    all
}

/// The memberships gone from the simulator, per (account, product) of the plan's removals.
fn removed_per_seat(
    before: &BTreeSet<(String, String)>,
    after: &BTreeSet<(String, String)>,
    items: &[PlanItem],
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for item in items.iter().filter(|i| i.decision == "remove") {
        let planned: Vec<serde_json::Value> = serde_json::from_str(&item.access_groups).unwrap();
        let gone: BTreeSet<String> = planned
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_owned())
            .filter(|name| {
                let key = (item.account_id.clone(), name.clone());
                before.contains(&key) && !after.contains(&key)
            })
            .collect();
        if !gone.is_empty() {
            all.insert((item.account_id.clone(), item.product.clone()), gone);
        }
    }
    all
}

/// Asks for every seat the ledger says was taken back (one webhook request each), runs the
/// queue, and checks that exactly the removed memberships came back.
async fn restore_everyone(
    app: &crate::support::TestApp,
    sim: &SimHandle,
    before: &BTreeSet<(String, String)>,
    removed: &BTreeMap<(String, String), BTreeSet<String>>,
) {
    let state = &app.state;
    for (n, (account, product)) in removed.keys().enumerate() {
        let accepted = reseat::restore::store::accept(
            &state.queue,
            reseat::restore::store::NewRequest {
                channel: reseat::restore::rules::Channel::Webhook,
                site: state.site().to_owned(),
                idempotency_key: format!("test-restore-{n}"),
                account_id: Some(account.clone()),
                product: Some(product.clone()),
                payload: json!({ "accountId": account, "product": product }),
                justification: None,
            },
        )
        .await
        .unwrap();
        assert!(matches!(accepted, reseat::restore::store::Accepted::New(_)));
    }
    app.drain_queue().await;
    assert_eq!(
        &memberships(sim),
        before,
        "every removed membership is back, nothing else"
    );
    let unrestored = count(
        state,
        "SELECT COUNT(*) FROM restore_requests WHERE status <> 'restored'",
    )
    .await;
    assert_eq!(unrestored, 0, "every restore ends restored");
}

#[tokio::test]
async fn two_applies_at_once_one_runs_the_other_refuses_and_every_removal_is_restorable() {
    for db in TestDb::all().await {
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&sim, &db, dir.path());
        let app = spawn_configured(db, config.clone(), axum::Router::new()).await;
        // A second process on the same database.
        let other = AppState::open(config).await.unwrap();
        let (plan_id, items) = plan(&app.state).await;
        let before = memberships(&sim);
        let options = live();
        let (a, b) = tokio::join!(
            reseat::sweep::apply(&app.state, Some(&plan_id), &options),
            reseat::sweep::apply(&other, Some(&plan_id), &options),
        );
        let (ran, refused) = match (a, b) {
            (Ok(report), Err(error)) | (Err(error), Ok(report)) => (report, error),
            (a, b) => panic!("one apply runs and the other refuses: {a:?} / {b:?}"),
        };
        match &refused {
            SweepError::Busy { running, .. } => {
                assert!(running.contains(&ran.run_id), "{refused}");
                assert!(!refused.to_string().contains('\n'), "one line");
            }
            other => panic!("refused as busy, not {other}"),
        }
        assert_eq!(ran.failed, 0);
        assert!(ran.removed_users > 0);
        // Afterwards the lease is free again: applying once more changes nothing.
        let again = reseat::sweep::apply(&other, Some(&plan_id), &live())
            .await
            .unwrap();
        assert_eq!(again.removed_users, 0);
        let after = memberships(&sim);
        let removed = removed_per_seat(&before, &after, &items);
        assert_eq!(
            taken(&app.state, &items).await,
            removed,
            "the ledger holds every removal"
        );
        assert_eq!(
            count(
                &app.state,
                "SELECT COUNT(*) FROM journal WHERE action = 'not_member'"
            )
            .await,
            0
        );
        let emails = count(
            &app.state,
            "SELECT COUNT(*) FROM email_outbox WHERE template = 'removal'",
        )
        .await;
        assert!(
            emails as u64 <= ran.removed_users,
            "at most one removal email per removal"
        );
        restore_everyone(&app, &sim, &before, &removed).await;
        other.db.close().await;
        sim.shutdown().await;
    }
}

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn apply_pressed_twice_in_the_dashboard_queues_one_apply_with_a_progress_page() {
    for db in TestDb::all().await {
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&sim, &db, dir.path());
        config.admin.users = vec![crate::support::admin_user("ana", PASSWORD, None)];
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (session, csrf) = app.sign_in(&http, "ana", PASSWORD).await;
        let (plan_id, items) = plan(&app.state).await;
        let before = memberships(&sim);
        let path = format!("/admin/plans/{plan_id}/apply");
        let submit = || {
            http.post(app.url(&path))
                .header("cookie", &session)
                .form(&[("csrf", csrf.as_str())])
                .send()
        };
        let (first, second) = tokio::join!(submit(), submit());
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.status(), 303);
        assert_eq!(second.status(), 303);
        let location = first.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(location, second.headers()["location"], "one job for both");
        assert_eq!(
            count(
                &app.state,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'sweep.apply'"
            )
            .await,
            1
        );
        let page = http
            .get(app.url(&location))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("Apply: <span class=\"status\">queued"),
            "{page}"
        );
        assert!(
            page.contains("http-equiv=\"refresh\""),
            "the page follows the run"
        );
        app.drain_queue().await;
        let page = http
            .get(app.url(&location))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let removals = items.iter().filter(|i| i.decision == "remove").count();
        assert!(page.contains("completed"), "{page}");
        assert!(
            page.contains(&format!(
                "<span id=\"done\">{removals}</span> of <span id=\"total\">{removals}</span>"
            )),
            "{page}"
        );
        assert!(page.contains("Plan applied"), "{page}");
        assert_eq!(
            count(
                &app.state,
                "SELECT COUNT(*) FROM sweep_runs WHERE kind = 'apply'"
            )
            .await,
            1,
            "one apply ran"
        );
        let removed = removed_per_seat(&before, &memberships(&sim), &items);
        assert_eq!(taken(&app.state, &items).await, removed);
        restore_everyone(&app, &sim, &before, &removed).await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_a_running_apply_and_a_queued_one_is_refused_while_it_runs() {
    let db = TestDb::sqlite();
    let sim = sim(60).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &db, dir.path());
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let (plan_id, _) = plan(&app.state).await;
    // Another surface (the CLI, say) holds the site's apply lease.
    let lease = reseat::sweep::run_lease::acquire(&app.state.db, app.state.site())
        .await
        .unwrap();
    let job = reseat::sweep::job::enqueue_apply(&app.state, &plan_id)
        .await
        .unwrap();
    app.drain_queue().await;
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state, last_error FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(state, "dead");
    let error = error.unwrap();
    assert!(
        error.contains("another apply is running") && error.contains(lease.run_id()),
        "{error}"
    );
    assert_eq!(
        count(&app.state, "SELECT COUNT(*) FROM journal").await,
        0,
        "nothing changed"
    );
    lease.release().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_answer_to_a_removal_never_makes_it_unrestorable() {
    for db in TestDb::all().await {
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&sim, &db, dir.path());
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let (plan_id, items) = plan(&app.state).await;
        let before = memberships(&sim);
        // A third of the removals take effect and their answer is lost.
        sim.state()
            .set_faults(FaultPatch {
                lose_rate: Some(0.34),
                ..FaultPatch::default()
            })
            .unwrap();
        let first = reseat::sweep::apply(&app.state, Some(&plan_id), &live())
            .await
            .unwrap();
        let lost = sim
            .state()
            .log()
            .iter()
            .filter(|e| e.method == "DELETE" && e.fault == Some(reseat::sim::FaultKind::Lost))
            .count();
        assert!(lost > 0, "some answers were lost");
        sim.state()
            .set_faults(FaultPatch {
                lose_rate: Some(0.0),
                ..FaultPatch::default()
            })
            .unwrap();
        // The re-sent removals heard "not a member", which proves nothing after a removal
        // was sent; applying again finishes anything left.
        let second = reseat::sweep::apply(&app.state, Some(&plan_id), &live())
            .await
            .unwrap();
        assert_eq!(second.failed, 0);
        let after = memberships(&sim);
        let removed = removed_per_seat(&before, &after, &items);
        assert_eq!(
            first.removed_users + second.removed_users,
            removed.len() as u64
        );
        assert_eq!(taken(&app.state, &items).await, removed);
        assert_eq!(
            count(
                &app.state,
                "SELECT COUNT(*) FROM journal WHERE action = 'not_member'"
            )
            .await,
            0
        );
        // One removal email per removed seat, the retried ones included.
        let emails = count(
            &app.state,
            "SELECT COUNT(*) FROM email_outbox WHERE template = 'removal'",
        )
        .await;
        let unaddressed = count(
            &app.state,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'sweep.removal_notice'",
        )
        .await;
        assert_eq!((emails + unaddressed) as usize, removed.len());
        restore_everyone(&app, &sim, &before, &removed).await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_digest_after_a_real_apply_reports_its_numbers() {
    for db in TestDb::all().await {
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&sim, &db, dir.path());
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let since = chrono::Utc::now().timestamp_millis() - 1;
        let (plan_id, items) = plan(&app.state).await;
        let before = memberships(&sim);
        let report = reseat::sweep::apply(&app.state, Some(&plan_id), &live())
            .await
            .unwrap();
        assert!(report.removed_users > 0);
        let removed = removed_per_seat(&before, &memberships(&sim), &items);
        // Give one seat back.
        let first: BTreeMap<_, _> = removed
            .iter()
            .take(1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let partial: BTreeSet<(String, String)> = before
            .iter()
            .filter(|(account, group)| {
                !removed
                    .iter()
                    .any(|((a, _), groups)| a == account && groups.contains(group))
                    || first.keys().any(|(a, _)| a == account)
            })
            .cloned()
            .collect();
        restore_everyone(&app, &sim, &partial, &first).await;
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let digest = reseat::notify::digest::collect(
            &mut conn,
            since,
            &|key: &str| key.to_owned(),
            vec![],
            None,
        )
        .await
        .unwrap();
        let run = digest.last_run.unwrap();
        assert_eq!(run.status, "completed");
        assert_eq!(run.removed, report.removed_users);
        assert_eq!(run.warned, report.warned);
        assert_eq!(run.failed, 0);
        assert_eq!(run.restored, 1);
        let mut per_product: BTreeMap<String, u64> = BTreeMap::new();
        for (_, product) in removed.keys() {
            *per_product.entry(product.clone()).or_default() += 1;
        }
        let reported: BTreeMap<String, u64> = digest
            .reclaimed
            .iter()
            .map(|r| (r.product_name.clone(), r.seats))
            .collect();
        assert_eq!(reported, per_product);
        drop(conn);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_plan_summary_that_does_not_parse_stops_the_apply() {
    let db = TestDb::sqlite();
    let sim = sim(60).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &db, dir.path());
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let (plan_id, items) = plan(&app.state).await;
    let before = memberships(&sim);
    for summary in ["{\"products\": 7}", "{}"] {
        sqlx::query("UPDATE plans SET summary = $1 WHERE id = $2")
            .bind(summary)
            .bind(&plan_id)
            .execute(app.state.db.pool())
            .await
            .unwrap();
        let error = reseat::sweep::apply(&app.state, Some(&plan_id), &live())
            .await
            .unwrap_err();
        assert!(matches!(error, SweepError::Summary(_)), "{error}");
        assert_eq!(memberships(&sim), before, "nothing changed");
    }
    // A bad access_groups fails its item, never "done" without removing anything.
    let (fresh, _) = plan(&app.state).await;
    let victim = items.iter().find(|i| i.decision == "remove").unwrap();
    sqlx::query("UPDATE plan_items SET access_groups = 'not json' WHERE plan_id = $1 AND account_id = $2 AND product = $3")
        .bind(&fresh)
        .bind(&victim.account_id)
        .bind(&victim.product)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let report = reseat::sweep::apply(&app.state, Some(&fresh), &live())
        .await
        .unwrap();
    assert_eq!(report.failed, 1);
    let state: String = sqlx::query_scalar(
        "SELECT state FROM plan_items WHERE plan_id = $1 AND account_id = $2 AND product = $3",
    )
    .bind(&fresh)
    .bind(&victim.account_id)
    .bind(&victim.product)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(state, "failed");
    sim.shutdown().await;
}

#[tokio::test]
async fn two_processes_migrating_at_once_both_start() {
    for db in TestDb::all().await {
        let options = reseat::store::DbOptions {
            url: db.url.clone(),
            max_connections: 2,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        };
        let (a, b) = tokio::join!(
            reseat::store::Db::connect(&options),
            reseat::store::Db::connect(&options)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        ra.unwrap();
        rb.unwrap();
        assert!(a.is_ready().await && b.is_ready().await);
        a.close().await;
        b.close().await;
    }
}

#[tokio::test]
async fn a_restore_arriving_while_the_sweep_removes_the_seat_runs_right_after_it() {
    for db in TestDb::all().await {
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&sim, &db, dir.path());
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let (plan_id, items) = plan(&app.state).await;
        let before = memberships(&sim);
        // Every call now takes a while: the window between the intent and the answer.
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(300),
                ..FaultPatch::default()
            })
            .unwrap();
        let state = app.state.clone();
        let plan_for_apply = plan_id.clone();
        let sweep = tokio::spawn(async move {
            reseat::sweep::apply(&state, Some(&plan_for_apply), &live()).await
        });
        // Wait for a seat whose removal is under way: its intent is journaled, its answer
        // not yet.
        let (account, product): (String, String) = loop {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT account_id, product FROM journal j WHERE action = 'removing' \
                 AND NOT EXISTS (SELECT 1 FROM journal d WHERE d.account_id = j.account_id \
                 AND d.product = j.product AND d.action IN ('removed', 'not_member')) LIMIT 1",
            )
            .fetch_optional(app.state.db.pool())
            .await
            .unwrap();
            if let Some(row) = row {
                break row;
            }
            tokio::task::yield_now().await;
        };
        // The owner asks for access back right now.
        reseat::restore::store::accept(
            &app.state.queue,
            reseat::restore::store::NewRequest {
                channel: reseat::restore::rules::Channel::Webhook,
                site: app.state.site().to_owned(),
                idempotency_key: "during-the-removal".into(),
                account_id: Some(account.clone()),
                product: Some(product.clone()),
                payload: json!({ "accountId": account, "product": product }),
                justification: None,
            },
        )
        .await
        .unwrap();
        app.drain_queue().await;
        let report = sweep.await.unwrap().unwrap();
        assert_eq!(report.failed, 0);
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(0),
                ..FaultPatch::default()
            })
            .unwrap();
        app.drain_queue().await;
        // The user has access: every membership of the seat is back.
        let item = items
            .iter()
            .find(|i| i.account_id == account && i.product == product)
            .unwrap();
        let planned: Vec<serde_json::Value> = serde_json::from_str(&item.access_groups).unwrap();
        let now = memberships(&sim);
        for group in &planned {
            let key = (account.clone(), group["name"].as_str().unwrap().to_owned());
            assert!(
                before.contains(&key) && now.contains(&key),
                "{key:?} is back"
            );
        }
        let status: String = sqlx::query_scalar(
            "SELECT status FROM restore_requests WHERE idempotency_key = 'during-the-removal'",
        )
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(status, "restored");
        // The journal says restored last, after the removal.
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM journal WHERE account_id = $1 AND product = $2 ORDER BY id",
        )
        .bind(&account)
        .bind(&product)
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(
            actions.last().map(String::as_str),
            Some("restored"),
            "{actions:?}"
        );
        assert!(actions.contains(&"removed".to_owned()), "{actions:?}");
        assert!(
            reseat::ledger::taken_groups(&app.state.db, &account, &product, app.state.site())
                .await
                .unwrap()
                .is_empty()
        );
        // The emails come in that order: the removal, then the restore.
        if let Some(email) = &item.email {
            let templates: Vec<String> = sqlx::query_scalar(
                "SELECT template FROM email_outbox WHERE to_addr = $1 ORDER BY id",
            )
            .bind(email)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
            let removal = templates.iter().position(|t| t == "removal");
            let restored = templates.iter().position(|t| t == "restored");
            assert!(removal.is_some() && restored.is_some(), "{templates:?}");
            assert!(removal < restored, "{templates:?}");
        }
        sim.shutdown().await;
    }
}

/// Writes `config` as a file the `reseat` binary reads, secrets included.
pub(crate) fn write_config(config: &Config, sim: &SimHandle, path: &std::path::Path) {
    let mut value = toml::Value::try_from(config).unwrap();
    let table = value.as_table_mut().unwrap();
    let atlassian = table["atlassian"].as_table_mut().unwrap();
    atlassian.insert(
        "admin_api_key".into(),
        sim.config().admin_key.clone().into(),
    );
    atlassian.insert(
        "site_api_token".into(),
        sim.config().site_token.clone().into(),
    );
    let links = table["links"].as_table_mut().unwrap();
    links.insert(
        "keys".into(),
        toml::Value::Table(toml::map::Map::from_iter([(
            "demo".to_owned(),
            "a-link-signing-key-of-more-than-32-chars".into(),
        )])),
    );
    table.remove("restore");
    std::fs::write(path, toml::to_string(&value).unwrap()).unwrap();
}

pub(crate) fn reseat_cli(config: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(crate::support::reseat_bin());
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RESEAT_DATABASE__URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Two processes of `reseat` with the same arguments at once: (exit code, stderr) of each.
async fn twice_at_once(config: &std::path::Path, args: &[&str]) -> Vec<(i32, String)> {
    let (a, b) = tokio::join!(
        reseat_cli(config, args).output(),
        reseat_cli(config, args).output()
    );
    let mut results: Vec<(i32, String)> = [a.unwrap(), b.unwrap()]
        .into_iter()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .collect();
    results.sort();
    results
}

fn assert_one_ran_one_refused(results: &[(i32, String)]) {
    assert_eq!(results[0].0, 0, "{results:?}");
    assert_eq!(
        results[1].0, 3,
        "the second exits at once with code 3: {results:?}"
    );
    let refusal = results[1].1.trim_end();
    assert!(!refusal.contains('\n'), "one line: {refusal}");
    assert!(
        refusal.starts_with("sweep: another apply is running on ") && refusal.contains("run "),
        "{refusal}"
    );
}

#[tokio::test]
async fn two_cli_applies_and_two_cli_sweeps_at_once_one_runs_the_other_refuses() {
    for db in TestDb::all().await {
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&sim, &db, dir.path());
        // The terminal shows warnings and errors only (PostgreSQL's notices are info).
        config.log.level = "warn".into();
        let file = dir.path().join("reseat.toml");
        write_config(&config, &sim, &file);
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let (_, items) = plan(&app.state).await;
        let before = memberships(&sim);
        // Calls take a little while, so the first run still holds the lease when the second
        // starts.
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(20),
                ..FaultPatch::default()
            })
            .unwrap();
        let results = twice_at_once(&file, &["sweep", "apply", "--yes"]).await;
        assert_one_ran_one_refused(&results);
        let removed = removed_per_seat(&before, &memberships(&sim), &items);
        assert!(!removed.is_empty());
        assert_eq!(taken(&app.state, &items).await, removed);
        // Two `reseat sweep` (plan and apply) at once, on the restored org.
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(0),
                ..FaultPatch::default()
            })
            .unwrap();
        restore_everyone(&app, &sim, &before, &removed).await;
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(20),
                ..FaultPatch::default()
            })
            .unwrap();
        let plans_before = count(&app.state, "SELECT COUNT(*) FROM plans").await;
        let results = twice_at_once(&file, &["sweep", "--yes"]).await;
        assert_one_ran_one_refused(&results);
        assert_eq!(
            count(&app.state, "SELECT COUNT(*) FROM plans").await,
            plans_before + 1,
            "the refused sweep did not even plan"
        );
        let after = memberships(&sim);
        assert!(
            after.len() < before.len(),
            "the sweep that ran removed seats"
        );
        assert_eq!(
            count(
                &app.state,
                "SELECT COUNT(*) FROM journal WHERE action = 'not_member'"
            )
            .await,
            0
        );
        sim.shutdown().await;
    }
}

/// (memberships, removed journal rows, removal emails) of a finished apply.
async fn end_state(
    sim: &SimHandle,
    state: &AppState,
) -> (
    BTreeSet<(String, String)>,
    Vec<(String, String, String)>,
    Vec<String>,
) {
    let mut journal: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT account_id, product, group_name FROM journal WHERE action = 'removed'",
    )
    .fetch_all(state.db.pool())
    .await
    .unwrap();
    journal.sort();
    let mut emails: Vec<String> =
        sqlx::query_scalar("SELECT to_addr FROM email_outbox WHERE template = 'removal'")
            .fetch_all(state.db.pool())
            .await
            .unwrap();
    emails.sort();
    (memberships(sim), journal, emails)
}

#[tokio::test]
async fn apply_killed_ten_times_at_random_points_ends_as_an_uninterrupted_run() {
    use rand::Rng as _;
    for db in TestDb::all().await {
        let backend = db.backend_name();
        // The same org twice: one applied straight, one killed ten times.
        let (straight_sim, killed_sim) = (sim(150).await, sim(150).await);
        let straight_db = TestDb::sqlite();
        let dir = tempfile::tempdir().unwrap();
        let straight_dir = tempfile::tempdir().unwrap();
        let straight_config = config_for(&straight_sim, &straight_db, straight_dir.path());
        let straight = spawn_configured(straight_db, straight_config, axum::Router::new()).await;
        let config = config_for(&killed_sim, &db, dir.path());
        let file = dir.path().join("reseat.toml");
        write_config(&config, &killed_sim, &file);
        let killed = spawn_configured(db, config, axum::Router::new()).await;
        let (straight_plan, _) = plan(&straight.state).await;
        let (_, items) = plan(&killed.state).await;
        let mut kills = 0;
        reseat::sweep::apply(&straight.state, Some(&straight_plan), &live())
            .await
            .unwrap();
        killed_sim
            .state()
            .set_faults(FaultPatch {
                latency_ms: Some(10),
                ..FaultPatch::default()
            })
            .unwrap();
        let removals = items.iter().filter(|i| i.decision == "remove").count() as i64;
        let mut rng = rand::rng();
        for round in 0..10 {
            let mut child = reseat_cli(&file, &["sweep", "apply", "--yes"])
                .spawn()
                .unwrap();
            // A random point of the run (it takes about a second here).
            let at = Duration::from_millis(rng.random_range(50..1_200));
            tokio::select! {
                status = child.wait() => {
                    let status = status.unwrap();
                    assert!(status.success(), "{backend} round {round}: {status}");
                }
                () = tokio::time::sleep(at) => {
                    child.start_kill().unwrap();
                    child.wait().await.unwrap();
                    kills += 1;
                }
            }
        }
        let output = reseat_cli(&file, &["sweep", "apply", "--yes"])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let done = count(
            &killed.state,
            "SELECT COUNT(*) FROM plan_items WHERE decision = 'remove' AND state = 'done'",
        )
        .await;
        assert_eq!(done, removals, "{backend}");
        // No run is left `running`: each killed one was ended `interrupted`, with the reason,
        // by the next apply to take the lease.
        assert_eq!(
            count(
                &killed.state,
                "SELECT COUNT(*) FROM sweep_runs WHERE status = 'running'"
            )
            .await,
            0,
            "{backend}"
        );
        let stopped: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sweep_runs WHERE status = 'interrupted' AND error = $1",
        )
        .bind(reseat::sweep::store::STOPPED_RUN)
        .fetch_one(killed.state.db.pool())
        .await
        .unwrap();
        // A kill before the run row was written (at start) leaves nothing to end.
        assert!(stopped <= kills, "{backend}: {stopped} of {kills}");
        let (a, b) = (
            end_state(&straight_sim, &straight.state).await,
            end_state(&killed_sim, &killed.state).await,
        );
        assert_eq!(a.0, b.0, "{backend}: the same memberships left");
        assert_eq!(
            a.1, b.1,
            "{backend}: the same removals journaled, once each"
        );
        assert_eq!(
            a.2, b.2,
            "{backend}: the same removal emails, no duplicates"
        );
        straight_sim.shutdown().await;
        killed_sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_live_sweep_without_yes_shows_its_plan_and_changes_nothing() {
    let db = TestDb::sqlite();
    let sim = sim(150).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&sim, &db, dir.path());
    config.log.level = "warn".into();
    let file = dir.path().join("reseat.toml");
    write_config(&config, &sim, &file);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let before = memberships(&sim);
    let output = reseat_cli(&file, &["sweep"]).output().await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("re-run with --yes to confirm"), "{stderr}");
    let plan_id: String = sqlx::query_scalar("SELECT id FROM plans")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(stdout.contains(&format!("plan {plan_id}")), "{stdout}");
    assert!(stdout.contains("remove"), "the plan's counts: {stdout}");
    assert!(
        stdout.contains(&format!("reseat sweep apply --plan {plan_id} --yes")),
        "{stdout}"
    );
    assert_eq!(memberships(&sim), before, "nothing changed");
    assert_eq!(
        count(&app.state, "SELECT COUNT(*) FROM sweep_runs").await,
        0
    );
    // The command it names applies that plan.
    let output = reseat_cli(&file, &["sweep", "apply", "--plan", &plan_id, "--yes"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_ne!(memberships(&sim), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_killed_apply_shows_interrupted_and_the_next_apply_finishes_it() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&sim, &db, dir.path());
        let file = dir.path().join("reseat.toml");
        write_config(&config, &sim, &file);
        config.admin.users = vec![crate::support::admin_user("ana", PASSWORD, None)];
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let (plan_id, items) = plan(&app.state).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (session, _) = app.sign_in(&http, "ana", PASSWORD).await;
        let page = || async {
            http.get(app.url(&format!("/admin/plans/{plan_id}/apply")))
                .header("cookie", &session)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(30),
                ..FaultPatch::default()
            })
            .unwrap();
        let mut child = reseat_cli(&file, &["sweep", "apply", "--yes"])
            .spawn()
            .unwrap();
        // Once it has removed something, the dashboard shows it running; then kill -9.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let done = count(
                &app.state,
                "SELECT COUNT(*) FROM plan_items WHERE state = 'done' AND decision = 'remove'",
            )
            .await;
            if done > 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend}: no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            page()
                .await
                .contains(r#"<span class="status">running</span>"#),
            "{backend}"
        );
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        // Its row still says `running` and its lease has not expired, but its process is
        // gone: the dashboard says interrupted, with why, and offers no "running" state.
        let shown = page().await;
        assert!(
            shown.contains(r#"<span class="status">interrupted</span>"#),
            "{backend}: {shown}"
        );
        assert!(shown.contains("stopped before it finished"), "{backend}");
        sim.state()
            .set_faults(FaultPatch {
                latency_ms: Some(0),
                ..FaultPatch::default()
            })
            .unwrap();
        // The next apply ends the stale row, with the reason, and finishes the plan.
        let output = reseat_cli(&file, &["sweep", "apply", "--yes"])
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{backend}");
        let runs: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT status, error FROM sweep_runs ORDER BY started_at, id")
                .fetch_all(app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(runs.len(), 2, "{backend}: {runs:?}");
        assert_eq!(runs[0].0, "interrupted", "{backend}");
        assert_eq!(
            runs[0].1.as_deref(),
            Some(reseat::sweep::store::STOPPED_RUN),
            "{backend}"
        );
        assert_eq!(runs[1].0, "completed", "{backend}");
        let removals = items.iter().filter(|i| i.decision == "remove").count() as i64;
        assert_eq!(
            count(
                &app.state,
                "SELECT COUNT(*) FROM plan_items WHERE decision = 'remove' AND state = 'done'"
            )
            .await,
            removals,
            "{backend}"
        );
        assert!(
            page()
                .await
                .contains(r#"<span class="status">completed</span>"#),
            "{backend}"
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn planning_a_stale_export_from_the_cli_warns_and_stores_the_plan() {
    let db = TestDb::sqlite();
    let sim = sim(150).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&sim, &db, dir.path());
    config.log.level = "warn".into();
    let file = dir.path().join("reseat.toml");
    write_config(&config, &sim, &file);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let export = dir.path().join("export.csv");
    crate::sweep::export_csv_taken(&sim, &export, chrono::Duration::days(199));
    let source = format!("csv:{}", export.display());
    let output = reseat_cli(&file, &["sweep", "plan", "--source", &source])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: the plan's activity data looks stale")
            && stderr.contains("apply will refuse this plan"),
        "{stderr}"
    );
    let plan_id: String = sqlx::query_scalar("SELECT id FROM plans")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(stdout.contains(&format!("plan {plan_id}")), "{stdout}");
    // A fresh export plans with no warning.
    crate::sweep::export_csv(&sim, &export);
    let output = reseat_cli(&file, &["sweep", "plan", "--source", &source])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("stale"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn out_with_an_extension_reseat_does_not_write_is_refused_before_planning() {
    let db = TestDb::sqlite();
    let sim = sim(50).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&sim, &db, dir.path());
    config.log.level = "warn".into();
    let file = dir.path().join("reseat.toml");
    write_config(&config, &sim, &file);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let out = dir.path().join("plan.txt");
    let output = reseat_cli(&file, &["sweep", "plan", "--out", out.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("write a .csv (a spreadsheet) or a .json file"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_eq!(
        count(&app.state, "SELECT COUNT(*) FROM plans").await,
        0,
        "nothing planned"
    );
    for name in ["plan.csv", "plan.json"] {
        let out = dir.path().join(name);
        let output = reseat_cli(&file, &["sweep", "plan", "--out", out.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(out.exists(), "{name}");
    }
    sim.shutdown().await;
}

/// A live apply from the command line queues its emails; it says how many, and that
/// `reseat serve` sends them.
#[tokio::test]
async fn a_cli_apply_says_its_emails_wait_for_serve() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&sim, &db, dir.path());
        config.log.level = "warn".into();
        let file = dir.path().join("reseat.toml");
        write_config(&config, &sim, &file);
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let output = reseat_cli(&file, &["sweep", "--yes"])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let queued = count(
            &app.state,
            "SELECT COUNT(*) FROM email_outbox WHERE status = 'queued'",
        )
        .await;
        assert!(queued > 0, "{backend}: removal notices are queued");
        assert!(
            stdout.contains(&format!("{queued} email(s) queued"))
                && stdout.contains("`reseat serve` sends them"),
            "{backend}: {stdout}"
        );
        sim.shutdown().await;
    }
}
