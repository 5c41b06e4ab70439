//! Restore end to end against the simulator: each channel gives back exactly the journaled
//! groups and answers where the request came from; guards and rules refuse or queue;
//! duplicates, crashes and upstream failures never restore twice or lose a request.

use std::time::Duration;

use reseat::config::Config;
use reseat::ledger::JournalEntry;
use reseat::restore::signature;
use reseat::restore::store;
use reseat::sim::NewRequest as SimRequest;
use reseat::sim::model::Product;
use reseat::sim::seed::{self, Category, SeededUser};
use reseat::sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, spawn_configured};

struct Env {
    sim: SimHandle,
    app: TestApp,
    _dir: tempfile::TempDir,
}

async fn env_with(db: TestDb, sim: SimConfig, adjust: impl FnOnce(&mut Config)) -> Env {
    let sim = reseat::sim::spawn(sim).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = reseat::demo::config_for(&sim, dir.path());
    // The test drives the worker itself.
    config.queue.workers = 0;
    config.queue.backoff_base = Duration::from_millis(5);
    config.queue.backoff_max = Duration::from_millis(50);
    config.queue.max_attempts = 30;
    config.atlassian.retry.base_delay = Duration::from_millis(5);
    config.atlassian.retry.max_delay = Duration::from_millis(50);
    // Injected time-outs should cost little; the simulator, not the client, limits rate.
    config.atlassian.retry.timeout = Duration::from_secs(2);
    for family in [
        &mut config.atlassian.jira,
        &mut config.atlassian.jsm,
        &mut config.atlassian.confluence,
    ] {
        family.requests_per_second = 1000;
        family.concurrency = 16;
    }
    adjust(&mut config);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    Env {
        sim,
        app,
        _dir: dir,
    }
}

async fn env() -> Env {
    env_with(
        TestDb::sqlite(),
        SimConfig {
            users: 150,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await
}

impl Env {
    /// Staff of the managed domain, active in Jira Software, in no special group.
    fn staff(&self) -> Vec<SeededUser> {
        let truth = self.sim.state().ground_truth();
        truth
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
                    && u.products.get(&Product::JiraSoftware) == Some(&Category::Active)
                    && !u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
            })
            .cloned()
            .collect()
    }

    /// What a sweep does: journal the user's Jira Software access groups, then remove them.
    async fn remove_like_a_sweep(&self, account: &str) -> Vec<String> {
        let user = self.sim.state().user(account).unwrap();
        let granting: Vec<_> = user
            .groups
            .iter()
            .filter(|g| {
                self.sim
                    .state()
                    .group(&g.id)
                    .is_some_and(|group| group.grants.contains(&Product::JiraSoftware))
            })
            .cloned()
            .collect();
        assert!(!granting.is_empty());
        let mut conn = self.app.state.db.pool().acquire().await.unwrap();
        for group in &granting {
            reseat::ledger::journal::journal_removed_in(
                &mut conn,
                self.app.state.db.now_ms(),
                &JournalEntry {
                    account_id: account,
                    product: "jira-software",
                    site: self.app.state.site(),
                    group_id: &group.id,
                    group_name: &group.name,
                    run_id: Some("test-sweep"),
                    request_id: None,
                    reason: "inactive for 120 days",
                },
            )
            .await
            .unwrap();
            self.sim.state().remove_member(&group.id, account).unwrap();
        }
        assert!(!self.products(account).contains(&Product::JiraSoftware));
        granting.into_iter().map(|g| g.id).collect()
    }

    fn products(&self, account: &str) -> Vec<Product> {
        self.sim.state().user(account).unwrap().products
    }

    fn group_ids(&self, account: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sim
            .state()
            .user(account)
            .unwrap()
            .groups
            .into_iter()
            .map(|g| g.id)
            .collect();
        ids.sort();
        ids
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
        let mut request = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn jsm(&self, issue: &str) -> (u16, Value) {
        self.post(
            "/hooks/jsm",
            &[("X-Reseat-Token", reseat::demo::DEMO_JSM_SECRET.into())],
            &json!({ "issueKey": issue }).to_string(),
        )
        .await
    }

    async fn automation(&self, account: &str) -> (u16, Value) {
        let body = json!({ "accountId": account, "product": "jira-software" }).to_string();
        self.post(
            "/hooks/automation",
            &[(
                "X-Reseat-Token",
                reseat::demo::DEMO_AUTOMATION_SECRET.into(),
            )],
            &body,
        )
        .await
    }

    async fn webhook(&self, id: &str, body: &str) -> (u16, Value) {
        let now = chrono::Utc::now().timestamp();
        let sig = signature::sign(
            &reseat::demo::demo_webhook_secret(),
            id,
            now,
            body.as_bytes(),
        )
        .unwrap();
        self.post(
            "/hooks/webhook",
            &[
                ("webhook-id", id.into()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", sig),
            ],
            body,
        )
        .await
    }

    fn portal_request(&self, reporter: &str) -> String {
        self.portal_request_saying(reporter, None)
    }

    /// A portal request for Jira Software, with `why` in its "Why do you need it?" field.
    fn portal_request_saying(&self, reporter: &str, why: Option<&str>) -> String {
        self.sim
            .state()
            .create_request(SimRequest {
                reporter: reporter.into(),
                request_type_id: None,
                summary: None,
                description: None,
                product: Some(Product::JiraSoftware),
                justification: why.map(str::to_owned),
            })
            .unwrap()
            .key
    }

    async fn request_status(&self, id: &str) -> String {
        store::get(&self.app.state.db, id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.app.state.db.pool())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_product_named_jira_is_restored_and_one_reseat_does_not_know_goes_to_an_admin() {
    let env = env().await;
    let staff = env.staff();
    let account = staff[0].account_id.clone();
    let before = env.group_ids(&account);
    env.remove_like_a_sweep(&account).await;
    // "Jira" is today's name of Jira Software: the same product.
    let (status, body) = env
        .webhook(
            "msg_named_jira",
            &json!({ "accountId": account, "product": "Jira" }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["requestId"].as_str().unwrap().to_string();
    env.app.drain_queue().await;
    assert_eq!(env.request_status(&id).await, "restored");
    assert_eq!(env.group_ids(&account), before);

    // A product the product table does not know is not declined: an admin decides.
    let other = staff[1].account_id.clone();
    let groups = env.group_ids(&other);
    let (status, body) = env
        .webhook(
            "msg_unknown_product",
            &json!({ "accountId": other, "product": "Jira Align" }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["requestId"].as_str().unwrap().to_string();
    env.app.drain_queue().await;
    let request = store::get(&env.app.state.db, &id).await.unwrap().unwrap();
    assert_eq!(request.status, "pending");
    assert!(
        request
            .message
            .as_deref()
            .is_some_and(|m| m.contains("does not know the product")),
        "{:?}",
        request.message
    );
    assert_eq!(env.group_ids(&other), groups, "nothing was added");
}

#[tokio::test]
async fn each_channel_gives_back_exactly_the_journaled_groups() {
    let env = env().await;
    let staff = env.staff();
    assert!(staff.len() >= 3, "the seed has staff to test with");
    for (n, channel) in ["jsm", "automation", "webhook"].iter().enumerate() {
        let account = staff[n].account_id.clone();
        let before = env.group_ids(&account);
        let removed = env.remove_like_a_sweep(&account).await;
        let issue = env.portal_request(&account);
        let (status, body) = match *channel {
            "jsm" => env.jsm(&issue).await,
            "automation" => env.automation(&account).await,
            _ => {
                env.webhook(
                    &format!("msg_{n}"),
                    &json!({ "accountId": account, "product": "jira-software" }).to_string(),
                )
                .await
            }
        };
        assert_eq!(status, 202, "{channel}: {body}");
        let id = body["requestId"].as_str().unwrap().to_string();
        assert!(env.app.drain_queue().await >= 1);
        assert_eq!(env.request_status(&id).await, "restored", "{channel}");
        assert_eq!(
            env.group_ids(&account),
            before,
            "{channel}: exactly the groups it had"
        );
        assert!(
            env.products(&account).contains(&Product::JiraSoftware),
            "{channel}"
        );
        let restored: Vec<String> = sqlx::query_scalar(
            "SELECT group_id FROM journal WHERE account_id = $1 AND action = 'restored' ORDER BY group_id",
        )
        .bind(&account)
        .fetch_all(env.app.state.db.pool())
        .await
        .unwrap();
        let mut removed_sorted = removed.clone();
        removed_sorted.sort();
        assert_eq!(
            restored, removed_sorted,
            "{channel}: the restore is journaled"
        );
        // The confirmation email is in the outbox, once, to the address Atlassian knows.
        let mail: Vec<(String, String)> = sqlx::query_as(
            "SELECT to_addr, text_body FROM email_outbox WHERE account_id = $1 AND template = 'restored'",
        )
        .bind(&account)
        .fetch_all(env.app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(mail.len(), 1, "{channel}");
        assert_eq!(Some(&mail[0].0), staff[n].email.as_ref(), "{channel}");
        if *channel == "jsm" {
            let request = env.sim.state().request(&issue).unwrap();
            assert_eq!(request.status, "Resolved");
            assert_eq!(request.comments.len(), 1);
            assert!(request.comments[0].public);
            assert!(
                request.comments[0].body.contains("has been restored"),
                "{}",
                request.comments[0].body
            );
        }
    }
}

#[tokio::test]
async fn guards_and_rules_refuse_or_queue_with_the_right_reply() {
    let env = env().await;
    let truth = env.sim.state().ground_truth();
    let pick = |f: &dyn Fn(&SeededUser) -> bool| {
        truth
            .users
            .iter()
            .find(|u| f(u))
            .map(|u| u.account_id.clone())
            .unwrap()
    };
    let offboarded = pick(&|u| u.offboarded);
    let closed = pick(&|u| u.account_status == reseat::sim::AccountStatus::Closed);
    let app = pick(&|u| u.account_type == reseat::sim::AccountType::App);
    let contractor = pick(&|u| {
        u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
            && u.account_status == reseat::sim::AccountStatus::Active
            && !u.suspended
            && !u.offboarded
    });
    let cases = [
        (offboarded, "denied", "Declined", "declined"),
        (closed, "denied", "Declined", "declined"),
        (app, "denied", "Declined", "declined"),
        (
            contractor,
            "pending",
            "Waiting for support",
            "waiting for an administrator",
        ),
    ];
    for (account, status, jsm_status, reply) in cases {
        let groups_before = env.group_ids(&account);
        let issue = env.portal_request(&account);
        let (code, body) = env.jsm(&issue).await;
        assert_eq!(code, 202);
        env.app.drain_queue().await;
        let id = body["requestId"].as_str().unwrap();
        assert_eq!(env.request_status(id).await, status, "{account}");
        assert_eq!(
            env.group_ids(&account),
            groups_before,
            "nothing added for {account}"
        );
        let request = env.sim.state().request(&issue).unwrap();
        assert_eq!(request.status, jsm_status, "{account}");
        assert_eq!(request.comments.len(), 1, "{account}");
        assert!(
            request.comments[0].body.contains(reply),
            "{}",
            request.comments[0].body
        );
        let template = if status == "pending" {
            "pending"
        } else {
            "declined"
        };
        let mails: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM email_outbox WHERE account_id = $1 AND template = $2",
        )
        .bind(&account)
        .bind(template)
        .fetch_one(env.app.state.db.pool())
        .await
        .unwrap();
        let has_address = env.sim.state().user(&account).unwrap().email.is_some();
        assert_eq!(
            mails,
            i64::from(has_address),
            "{account}: one {template} email when Atlassian shows an address"
        );
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM journal WHERE action = 'restored'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_same_webhook_five_times_at_once_restores_once() {
    let env = env().await;
    let account = env.staff()[0].account_id.clone();
    let removed = env.remove_like_a_sweep(&account).await;
    let body = json!({ "accountId": account, "product": "jira-software" }).to_string();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..5 {
        calls.spawn(send_webhook(
            env.app.client.clone(),
            env.app.url("/hooks/webhook"),
            "msg_dup".into(),
            body.clone(),
        ));
    }
    let answers = calls.join_all().await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(code, body)| {
            assert_eq!(*code, 202);
            body["requestId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one request id for one delivery");
    env.app.drain_queue().await;
    assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 1);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM journal WHERE action = 'restored'")
            .await,
        removed.len() as i64
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'")
            .await,
        1,
        "one confirmation email"
    );
    // Jira was asked to add each group once.
    assert_eq!(
        env.sim.state().calls("POST", "/rest/api/3/group/user"),
        removed.len()
    );
}

/// Sends a signed Standard Webhooks delivery.
async fn send_webhook(
    client: reqwest::Client,
    url: String,
    id: String,
    body: String,
) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp();
    let sig = signature::sign(
        &reseat::demo::demo_webhook_secret(),
        &id,
        now,
        body.as_bytes(),
    )
    .unwrap();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_requests_are_refused_audited_and_change_nothing() {
    let env = env().await;
    let account = env.staff()[0].account_id.clone();
    let good = json!({ "accountId": account, "product": "jira-software" }).to_string();
    let token = (
        "X-Reseat-Token",
        reseat::demo::DEMO_AUTOMATION_SECRET.to_string(),
    );
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, String)>,
        String,
        Option<&'a str>,
        u16,
    );
    let cases: Vec<Case> = vec![
        ("/hooks/automation", vec![], good.clone(), None, 401),
        (
            "/hooks/automation",
            vec![("X-Reseat-Token", "guessed-secret-123".into())],
            good.clone(),
            None,
            401,
        ),
        (
            "/hooks/automation",
            vec![token.clone()],
            "{not json".into(),
            None,
            400,
        ),
        (
            "/hooks/automation",
            vec![token.clone()],
            json!({ "product": "jira-software" }).to_string(),
            None,
            400,
        ),
        (
            "/hooks/automation",
            vec![token.clone()],
            json!({ "accountId": account, "product": "bitbucket" }).to_string(),
            None,
            422,
        ),
        (
            "/hooks/automation",
            vec![token.clone()],
            good.clone(),
            Some("text/plain"),
            415,
        ),
        (
            "/hooks/jsm",
            vec![("X-Reseat-Token", reseat::demo::DEMO_JSM_SECRET.into())],
            json!({ "issue": "HELP-1" }).to_string(),
            None,
            400,
        ),
        ("/hooks/webhook", vec![], good.clone(), None, 401),
    ];
    for (path, headers, body, content_type, expected) in cases {
        let mut request = env
            .app
            .client
            .post(env.app.url(path))
            .header("content-type", content_type.unwrap_or("application/json"))
            .body(body.clone());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path} {body}");
        let json: Value = response.json().await.unwrap();
        assert!(json["error"]["message"].is_string(), "{json}");
    }
    // Oversized body.
    let big = format!(
        "{{\"accountId\":\"{}\",\"product\":\"jira-software\"}}",
        "a".repeat(100_000)
    );
    let (code, _) = env
        .post("/hooks/automation", std::slice::from_ref(&token), &big)
        .await;
    assert_eq!(code, 413);
    // Stale and tampered webhooks.
    let stale = chrono::Utc::now().timestamp() - 600;
    let sig = signature::sign(
        &reseat::demo::demo_webhook_secret(),
        "msg_old",
        stale,
        good.as_bytes(),
    )
    .unwrap();
    let (code, body) = env
        .post(
            "/hooks/webhook",
            &[
                ("webhook-id", "msg_old".into()),
                ("webhook-timestamp", stale.to_string()),
                ("webhook-signature", sig),
            ],
            &good,
        )
        .await;
    assert_eq!(code, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timestamp"),
        "{body}"
    );
    let now = chrono::Utc::now().timestamp();
    let sig = signature::sign(
        &reseat::demo::demo_webhook_secret(),
        "msg_t",
        now,
        good.as_bytes(),
    )
    .unwrap();
    let tampered = good.replace("jira-software", "confluence");
    let (code, _) = env
        .post(
            "/hooks/webhook",
            &[
                ("webhook-id", "msg_t".into()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", sig),
            ],
            &tampered,
        )
        .await;
    assert_eq!(code, 401);

    assert_eq!(
        env.count("SELECT COUNT(*) FROM restore_requests").await,
        0,
        "nothing stored"
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs").await,
        0,
        "nothing queued"
    );
    // Each refusal is audited: the authenticated ones a row each, those anyone could send
    // (no or a wrong secret) counted per minute.
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.rejected'")
            .await
            + env
                .count(
                    "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM audit_refusals \
                     WHERE action = 'restore.rejected'"
                )
                .await,
        11
    );
    // The secret never shows up in the audit trail.
    let mut details: Vec<String> = sqlx::query_scalar("SELECT details FROM audit_log")
        .fetch_all(env.app.state.db.pool())
        .await
        .unwrap();
    details.extend(
        sqlx::query_scalar::<_, String>("SELECT reason FROM audit_refusals")
            .fetch_all(env.app.state.db.pool())
            .await
            .unwrap(),
    );
    assert!(
        details.iter().all(|d| !d.contains("guessed-secret-123")
            && !d.contains(reseat::demo::DEMO_AUTOMATION_SECRET))
    );
}

#[tokio::test]
async fn a_request_accepted_before_a_crash_is_processed_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reseat.db");
    let env = env_with(
        TestDb::sqlite_file(&file),
        SimConfig {
            users: 150,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    let account = env.staff()[0].account_id.clone();
    let before = env.group_ids(&account);
    env.remove_like_a_sweep(&account).await;
    let (code, body) = env.automation(&account).await;
    assert_eq!(code, 202);
    let id = body["requestId"].as_str().unwrap().to_string();
    // The process dies before any worker ran the job.
    let Env { sim, app, _dir } = env;
    let config = app.state.config.as_ref().clone();
    drop(app);
    let restarted = spawn_configured(TestDb::sqlite_file(&file), config, axum::Router::new()).await;
    // The restore, then its confirmation email.
    assert_eq!(restarted.drain_queue().await, 2);
    assert_eq!(
        store::get(&restarted.state.db, &id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "restored"
    );
    let mut after: Vec<String> = sim
        .state()
        .user(&account)
        .unwrap()
        .groups
        .into_iter()
        .map(|g| g.id)
        .collect();
    after.sort();
    assert_eq!(after, before);
    assert_eq!(restarted.drain_queue().await, 0, "nothing runs twice");
    let added: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
            .fetch_one(restarted.state.db.pool())
            .await
            .unwrap();
    assert_eq!(added, 1);
}

#[tokio::test]
async fn with_a_fifth_of_upstream_calls_failing_200_concurrent_restores_all_complete() {
    for db in TestDb::all().await {
        let env = env_with(
            db,
            SimConfig {
                users: 1200,
                ..SimConfig::default()
            },
            |config| config.database.max_connections = 10,
        )
        .await;
        let staff: Vec<String> = env
            .staff()
            .into_iter()
            .take(200)
            .map(|u| u.account_id)
            .collect();
        assert_eq!(staff.len(), 200, "the seed has 200 staff");
        let mut before = Vec::new();
        for account in &staff {
            before.push(env.group_ids(account));
            env.remove_like_a_sweep(account).await;
        }
        env.sim
            .state()
            .set_faults(serde_json::from_value(json!({ "fail_rate": 0.2 })).unwrap())
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for (n, account) in staff.iter().enumerate() {
            let client = env.app.client.clone();
            let url = env.app.url("/hooks/webhook");
            let body = json!({ "accountId": account, "product": "jira-software" }).to_string();
            tasks.spawn(send_webhook(client, url, format!("msg_load_{n}"), body));
        }
        while let Some(answer) = tasks.join_next().await {
            assert_eq!(answer.unwrap().0, 202);
        }
        // Four workers, as `serve` runs them, until every request is decided.
        for _ in 0..200 {
            let mut workers = tokio::task::JoinSet::new();
            for n in 0..4 {
                let worker = env.app.worker.named(format!("load-{n}"));
                workers.spawn(async move {
                    while !matches!(
                        worker.run_once().await.unwrap(),
                        reseat::queue::WorkerOutcome::Idle
                    ) {}
                });
            }
            while workers.join_next().await.is_some() {}
            let open = env
                .count("SELECT COUNT(*) FROM restore_requests WHERE status <> 'restored'")
                .await;
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests WHERE status = 'restored'")
                .await,
            200,
            "{}",
            env.app._db.backend_name()
        );
        for (account, groups) in staff.iter().zip(&before) {
            assert_eq!(&env.group_ids(account), groups, "{account}");
        }
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
                .await,
            200
        );
    }
}

fn contractor(env: &Env) -> String {
    env.sim
        .state()
        .ground_truth()
        .users
        .iter()
        .find(|u| {
            u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
                && u.account_status == reseat::sim::AccountStatus::Active
                && !u.suspended
                && !u.offboarded
                && u.account_type == reseat::sim::AccountType::Atlassian
        })
        .map(|u| u.account_id.clone())
        .unwrap()
}

#[tokio::test]
async fn an_admin_approves_or_denies_what_the_rules_sent_to_manual() {
    let env = env().await;
    let state = &env.app.state;
    // A contractor removed by a sweep: the rules want an admin.
    let account = contractor(&env);
    let before = env.group_ids(&account);
    env.remove_like_a_sweep(&account).await;
    let issue = env.portal_request(&account);
    let (_, body) = env.jsm(&issue).await;
    let id = body["requestId"].as_str().unwrap().to_string();
    env.app.drain_queue().await;
    assert_eq!(env.request_status(&id).await, "pending");
    let listed = reseat::restore::cli::requests(
        state,
        &reseat::restore::cli::RequestsArgs {
            command: reseat::restore::cli::RequestsCommand::List {
                status: "pending".into(),
                limit: 10,
            },
        },
    )
    .await
    .unwrap();
    assert!(
        listed.contains(&id) && listed.contains("1 request(s)"),
        "{listed}"
    );

    reseat::restore::admin::approve(state, &id, &ana(), vec![])
        .await
        .unwrap();
    env.app.drain_queue().await;
    assert_eq!(env.request_status(&id).await, "restored");
    assert_eq!(
        env.group_ids(&account),
        before,
        "the journaled groups, no more"
    );
    let request = env.sim.state().request(&issue).unwrap();
    assert_eq!(request.status, "Resolved");
    assert_eq!(request.comments.len(), 2, "waiting, then restored");
    assert!(request.comments[1].body.contains("has been restored"));
    assert_eq!(env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved' AND actor = 'admin:ana'").await, 1);
    // A decided request cannot be approved again.
    assert!(
        reseat::restore::admin::approve(state, &id, &ana(), vec![])
            .await
            .is_err()
    );

    // Another contractor's request is denied with a reason the requester reads.
    let other = env
        .sim
        .state()
        .ground_truth()
        .users
        .iter()
        .filter(|u| {
            u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
                && u.account_id != account
                && !u.offboarded
                && !u.suspended
                && u.account_status == reseat::sim::AccountStatus::Active
        })
        .map(|u| u.account_id.clone())
        .next()
        .unwrap();
    let issue = env.portal_request(&other);
    let (_, body) = env.jsm(&issue).await;
    let id = body["requestId"].as_str().unwrap().to_string();
    env.app.drain_queue().await;
    reseat::restore::admin::deny(state, &id, &ana(), "Your contract ended in October.")
        .await
        .unwrap();
    env.app.drain_queue().await;
    assert_eq!(env.request_status(&id).await, "denied");
    let request = env.sim.state().request(&issue).unwrap();
    assert_eq!(request.status, "Declined");
    assert!(
        request
            .comments
            .last()
            .unwrap()
            .body
            .contains("Your contract ended in October.")
    );
}

#[tokio::test]
async fn rules_explain_shows_each_rule_and_the_decision() {
    let env = env().await;
    let account = contractor(&env);
    let out = reseat::restore::cli::rules(
        &env.app.state,
        &reseat::restore::cli::RulesArgs {
            command: reseat::restore::cli::RulesCommand::Explain {
                account: account.clone(),
                product: reseat::atlassian::ProductKey::JIRA_SOFTWARE,
                channel: reseat::restore::rules::Channel::Jsm,
                justified: false,
            },
        },
    )
    .await
    .unwrap();
    assert!(
        out.contains("rule \"contractors need approval\": MATCHED"),
        "{out}"
    );
    assert!(out.contains("decision: manual"), "{out}");
    let staff = env.staff()[0].account_id.clone();
    env.remove_like_a_sweep(&staff).await;
    let out = reseat::restore::cli::rules(
        &env.app.state,
        &reseat::restore::cli::RulesArgs {
            command: reseat::restore::cli::RulesCommand::Explain {
                account: staff,
                product: reseat::atlassian::ProductKey::JIRA_SOFTWARE,
                channel: reseat::restore::rules::Channel::Webhook,
                justified: false,
            },
        },
    )
    .await
    .unwrap();
    assert!(
        out.contains("rule \"contractors need approval\": no match"),
        "{out}"
    );
    assert!(
        out.contains("rule \"staff removed by reseat\": MATCHED"),
        "{out}"
    );
    assert!(out.contains("decision: approve"), "{out}");
    assert!(out.contains("groups to add: "), "{out}");
    // Explaining changes nothing.
    assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 0);
}

/// The CSRF value in a confirmation page and its cookie.
fn csrf_of(page: &str, set_cookie: &str) -> (String, String) {
    let value = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    (value, cookie)
}

async fn issue_link(env: &Env, purpose: reseat::notify::Purpose, account: &str) -> String {
    let state = &env.app.state;
    let mut conn = state.db.pool().acquire().await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::days(7);
    let link = state
        .notify
        .links
        .issue(
            &mut conn,
            purpose,
            account,
            "jira-software",
            state.site(),
            expires,
        )
        .await
        .unwrap();
    link.token
}

async fn issue_link_for_site(env: &Env, account: &str, site: &str) -> String {
    let state = &env.app.state;
    let mut conn = state.db.pool().acquire().await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::days(7);
    let link = state
        .notify
        .links
        .issue(
            &mut conn,
            reseat::notify::Purpose::Restore,
            account,
            "jira-software",
            site,
            expires,
        )
        .await
        .unwrap();
    link.token
}

#[tokio::test]
async fn a_link_for_the_site_works_under_every_spelling_and_another_sites_says_why_not() {
    let env = env().await;
    let staff = env.staff()[0].clone();
    let account = staff.account_id.clone();
    let site = env.app.state.site().to_owned();
    for spelling in [
        format!("{site}.atlassian.net"),
        format!("https://{}.atlassian.net/", site.to_uppercase()),
    ] {
        let token = issue_link_for_site(&env, &account, &spelling).await;
        let url = env.app.url(&format!("/restore/{token}"));
        let response = env.app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{spelling}");
        assert!(
            response.text().await.unwrap().contains("Restore my access"),
            "{spelling}"
        );
    }
    let token = issue_link_for_site(&env, &account, "other-site.atlassian.net").await;
    let response = env
        .app
        .client
        .get(env.app.url(&format!("/restore/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM audit_refusals WHERE action = 'link.rejected'")
            .fetch_all(env.app.state.db.pool())
            .await
            .unwrap();
    assert!(
        reasons.iter().any(|d| d.contains("wrong_site")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_restore_link_changes_nothing_on_get_and_works_once_on_post() {
    let env = env().await;
    let staff = env.staff()[0].clone();
    let account = staff.account_id.clone();
    let before = env.group_ids(&account);
    env.remove_like_a_sweep(&account).await;
    let token = issue_link(&env, reseat::notify::Purpose::Restore, &account).await;
    let url = env.app.url(&format!("/restore/{token}"));

    // Mail scanners open the link: any number of GETs change nothing.
    let mut page = String::new();
    let mut cookie = String::new();
    for _ in 0..3 {
        let response = env.app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        page = response.text().await.unwrap();
        assert!(page.contains("Restore my access"), "{page}");
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 0);
    assert!(!env.products(&account).contains(&Product::JiraSoftware));
    let (csrf, cookie) = csrf_of(&page, &cookie);

    // A POST without the page's CSRF token is refused and uses nothing.
    let forged = env
        .app
        .client
        .post(&url)
        .form(&[("csrf", "forged")])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 0);

    let response = env
        .app
        .client
        .post(&url)
        .form(&[("csrf", &csrf)])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("access is back"), "{body}");
    assert_eq!(env.group_ids(&account), before);
    let request: (String, String) = sqlx::query_as("SELECT channel, status FROM restore_requests")
        .fetch_one(env.app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(request, ("link".to_string(), "restored".to_string()));
    env.app.drain_queue().await;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'")
            .await,
        1
    );

    // The link works once. The same POST again (its answer was lost, the person pressed
    // again) shows the outcome of the request it started, and starts nothing new.
    let again = env
        .app
        .client
        .post(&url)
        .form(&[("csrf", &csrf)])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let page = again.text().await.unwrap();
    assert!(page.contains("access is back"), "{page}");
    env.app.drain_queue().await;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
            .await,
        1
    );
    assert_eq!(env.app.client.get(&url).send().await.unwrap().status(), 410);
    assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 1);

    // A tampered link is refused, and why is audited, not shown.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{signed}.{first}{}", &signature[1..]);
    let response = env
        .app
        .client
        .get(env.app.url(&format!("/restore/{tampered}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(!page.contains("signature"), "{page}");
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM audit_refusals WHERE action = 'link.rejected'")
            .fetch_all(env.app.state.db.pool())
            .await
            .unwrap();
    assert!(
        reasons.iter().any(|d| d.contains("bad_signature")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|d| d.contains("already_used")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|d| d.contains("csrf")), "{reasons:?}");
    // No page or audit entry carries the token.
    assert!(reasons.iter().all(|d| !d.contains(&token)));
}

#[tokio::test]
async fn a_keep_link_defers_removal_once() {
    let env = env().await;
    let account = env.staff()[0].account_id.clone();
    let token = issue_link(&env, reseat::notify::Purpose::Keep, &account).await;
    let url = env.app.url(&format!("/keep/{token}"));
    let response = env.app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let page = response.text().await.unwrap();
    assert!(page.contains("Keep my access"));
    assert_eq!(env.count("SELECT COUNT(*) FROM keeps").await, 0);
    // A keep link is not a restore link.
    assert_eq!(
        env.app
            .client
            .get(env.app.url(&format!("/restore/{token}")))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let (csrf, cookie) = csrf_of(&page, &cookie);
    let response = env
        .app
        .client
        .post(&url)
        .form(&[("csrf", &csrf)])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Nothing will be removed before")
    );
    let until: i64 = sqlx::query_scalar("SELECT until_at FROM keeps WHERE account_id = $1")
        .bind(&account)
        .fetch_one(env.app.state.db.pool())
        .await
        .unwrap();
    let days = (until - chrono::Utc::now().timestamp_millis()) / 86_400_000;
    assert!(
        (89..=90).contains(&days),
        "kept for restore.keep_period: {days} days"
    );
    let again = env
        .app
        .client
        .post(&url)
        .form(&[("csrf", &csrf)])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);
    assert_eq!(env.count("SELECT COUNT(*) FROM keeps").await, 1);
}

/// A live, warning-free sweep environment on `db`, its plan, and the first item of staff
/// of the managed domain (no contractor) for which `pick` holds.
async fn swept_staff(
    db: TestDb,
    adjust: impl FnOnce(&mut Config),
    pick: impl Fn(&reseat::sweep::store::PlanItem, &[reseat::sweep::store::PlanItem]) -> bool,
) -> (Env, String, String) {
    let env = env_with(
        db,
        SimConfig {
            users: 150,
            ..SimConfig::default()
        },
        |config| {
            config.sweep.ladder.warn = false;
            config.atlassian.admin.requests_per_second = 1000;
            adjust(config);
        },
    )
    .await;
    let state = &env.app.state;
    let planned = reseat::sweep::plan(
        state,
        &[reseat::sweep::Source::Api],
        chrono::Utc::now(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    let items = reseat::sweep::store::items(&state.db, &planned.plan_id)
        .await
        .unwrap();
    let victim = items
        .iter()
        .find(|i| {
            i.product == "jira-software"
                && i.email
                    .as_deref()
                    .is_some_and(|e| e.ends_with(seed::MANAGED_DOMAIN))
                && !env
                    .sim
                    .state()
                    .user(&i.account_id)
                    .unwrap()
                    .groups
                    .iter()
                    .any(|g| g.name == seed::GROUP_JIRA_CONTRACTORS)
                && pick(i, &items)
        })
        .expect("the seed has an idle staff seat")
        .account_id
        .clone();
    (env, planned.plan_id, victim)
}

#[tokio::test]
async fn a_real_sweep_then_a_restore_gives_back_exactly_what_was_taken() {
    for db in TestDb::all().await {
        let (env, plan_id, victim) =
            swept_staff(db, |_| {}, |item, _| item.decision == "remove").await;
        let state = &env.app.state;
        let before = env.group_ids(&victim);
        let options = reseat::sweep::ApplyOptions {
            confirmed: true,
            ..Default::default()
        };
        reseat::sweep::apply(state, Some(&plan_id), &options)
            .await
            .unwrap();
        assert!(
            !env.products(&victim).contains(&Product::JiraSoftware),
            "the sweep removed the seat"
        );
        assert_ne!(env.group_ids(&victim), before);

        let body = json!({ "accountId": victim, "product": "jira-software" }).to_string();
        let (code, _) = env.webhook("msg_after_sweep", &body).await;
        assert_eq!(code, 202);
        env.app.drain_queue().await;
        assert_eq!(
            env.group_ids(&victim),
            before,
            "exactly the groups the sweep journaled"
        );
        assert!(env.products(&victim).contains(&Product::JiraSoftware));
        env.sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_restore_lifts_the_suspension_the_sweep_ladder_made() {
    for db in TestDb::all().await {
        // Staff whose every managed product is removed, Jira Software among them.
        let (env, plan_id, victim) = swept_staff(
            db,
            |config| config.sweep.ladder.suspend = true,
            |item, items| {
                items
                    .iter()
                    .filter(|j| j.account_id == item.account_id)
                    .all(|j| j.decision == "remove")
            },
        )
        .await;
        let state = &env.app.state;
        let options = reseat::sweep::ApplyOptions {
            confirmed: true,
            ..Default::default()
        };
        let report = reseat::sweep::apply(state, Some(&plan_id), &options)
            .await
            .unwrap();
        assert!(report.suspended > 0);
        assert!(env.sim.state().user(&victim).unwrap().suspended);

        let body = json!({ "accountId": victim, "product": "jira-software" }).to_string();
        let (code, _) = env.webhook("msg_after_suspension", &body).await;
        assert_eq!(code, 202);
        env.app.drain_queue().await;
        let outcome: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT status, reason FROM restore_requests")
                .fetch_all(state.db.pool())
                .await
                .unwrap();
        assert!(
            !env.sim.state().user(&victim).unwrap().suspended,
            "{outcome:?}"
        );
        assert!(env.products(&victim).contains(&Product::JiraSoftware));
        let open = reseat::ledger::suspensions::open_suspension(&state.db, &victim)
            .await
            .unwrap();
        assert_eq!(open, None, "the suspension is closed");
        // Applying the same plan again does not suspend the restored account again.
        let again = reseat::sweep::apply(state, Some(&plan_id), &options)
            .await
            .unwrap();
        assert_eq!(again.suspended, 0);
        assert!(!env.sim.state().user(&victim).unwrap().suspended);
        env.sim.shutdown().await;
    }
}

/// Runs `serve`'s queue worker until `stop` is set.
fn poll_queue(
    env: &Env,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let worker = env.app.worker.named("serve");
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if worker.run_once().await.unwrap() == reseat::queue::WorkerOutcome::Idle {
                tokio::task::yield_now().await;
            }
        }
    })
}

#[tokio::test]
async fn a_link_posted_while_its_queued_job_runs_restores_once() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 150,
                ..SimConfig::default()
            },
            |_| {},
        )
        .await;
        let account = env.staff()[0].account_id.clone();
        let before = env.group_ids(&account);
        let removed = env.remove_like_a_sweep(&account).await;
        let token = issue_link(&env, reseat::notify::Purpose::Restore, &account).await;
        let url = env.app.url(&format!("/restore/{token}"));
        let page = env.app.client.get(&url).send().await.unwrap();
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
        let (csrf, cookie) = csrf_of(&page.text().await.unwrap(), &cookie);
        env.sim
            .state()
            .set_faults(serde_json::from_value(json!({ "latency_ms": 20 })).unwrap())
            .unwrap();
        let adds_before = env.sim.state().calls("POST", "/rest/api/3/group/user");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let polling = poll_queue(&env, stop.clone());
        let response = env
            .app
            .client
            .post(&url)
            .form(&[("csrf", &csrf)])
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        polling.await.unwrap();
        assert_eq!(response.status(), 200, "{backend}");
        let page = response.text().await.unwrap();
        assert!(page.contains("access is back"), "{backend}: {page}");
        env.app.drain_queue().await;
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests WHERE status = 'restored'")
                .await,
            1,
            "{backend}"
        );
        assert_eq!(env.group_ids(&account), before, "{backend}");
        assert_eq!(
            env.sim.state().calls("POST", "/rest/api/3/group/user") - adds_before,
            removed.len(),
            "{backend}: one add per removed group"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
                .await,
            1,
            "{backend}: one audit row"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'")
                .await,
            1,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn with_failures_and_lost_answers_each_jsm_request_gets_one_comment() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 400,
                ..SimConfig::default()
            },
            |_| {},
        )
        .await;
        let staff: Vec<String> = env
            .staff()
            .into_iter()
            .take(40)
            .map(|u| u.account_id)
            .collect();
        let mut issues = Vec::new();
        for account in &staff {
            env.remove_like_a_sweep(account).await;
            issues.push(env.portal_request(account));
        }
        for issue in &issues {
            assert_eq!(env.jsm(issue).await.0, 202);
        }
        // A fifth of the calls fail; a tenth of the changes take effect and lose their answer.
        env.sim
            .state()
            .set_faults(
                serde_json::from_value(json!({ "fail_rate": 0.2, "lose_rate": 0.1 })).unwrap(),
            )
            .unwrap();
        for _ in 0..200 {
            env.app.drain_queue().await;
            let open = env
                .count(
                    "SELECT COUNT(*) FROM restore_requests WHERE status <> 'restored' \
                     OR replied_at IS NULL",
                )
                .await;
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.sim
            .state()
            .set_faults(
                serde_json::from_value(json!({ "fail_rate": 0.0, "lose_rate": 0.0 })).unwrap(),
            )
            .unwrap();
        let lost = env
            .sim
            .state()
            .log()
            .iter()
            .filter(|e| e.fault == Some(reseat::sim::faults::FaultKind::Lost))
            .count();
        assert!(lost > 0, "{backend}: answers were lost");
        for issue in &issues {
            let request = env.sim.state().request(issue).unwrap();
            let public: Vec<_> = request.comments.iter().filter(|c| c.public).collect();
            assert_eq!(public.len(), 1, "{backend}: {issue}: {public:?}");
            assert!(public[0].body.contains("has been restored"));
            assert_eq!(request.status, "Resolved", "{backend}: {issue}");
        }
        assert_eq!(
            env.count("SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'")
                .await,
            staff.len() as i64,
            "{backend}: one email each"
        );
    }
}

/// The configuration as a file the `reseat` binary reads, secrets written out.
fn config_file(config: &Config, sim: &SimHandle, path: &std::path::Path, link_key: &str) {
    let mut table: toml::Table = toml::from_str(&toml::to_string(config).unwrap()).unwrap();
    let set = |table: &mut toml::Table, keys: &[&str], value: toml::Value| {
        let (last, parents) = keys.split_last().unwrap();
        let mut at = table;
        for key in parents {
            at = at.get_mut(*key).unwrap().as_table_mut().unwrap();
        }
        at.insert(last.to_string(), value);
    };
    let text = |s: &str| toml::Value::String(s.to_string());
    let c = sim.config();
    set(
        &mut table,
        &["atlassian", "admin_api_key"],
        text(&c.admin_key),
    );
    set(
        &mut table,
        &["atlassian", "site_api_token"],
        text(&c.site_token),
    );
    set(&mut table, &["links", "keys", "demo"], text(link_key));
    set(
        &mut table,
        &["restore", "jsm", "secret"],
        text(reseat::demo::DEMO_JSM_SECRET),
    );
    set(
        &mut table,
        &["restore", "automation", "secret"],
        text(reseat::demo::DEMO_AUTOMATION_SECRET),
    );
    set(
        &mut table,
        &["restore", "webhook", "secrets"],
        toml::Value::Array(vec![text(&reseat::demo::demo_webhook_secret())]),
    );
    std::fs::write(path, toml::to_string(&table).unwrap()).unwrap();
}

#[tokio::test]
async fn kill_9_at_random_points_of_a_restore_drain_ends_as_an_uninterrupted_run() {
    use rand::Rng;
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 300,
                ..SimConfig::default()
            },
            |config| {
                config.queue.lease = Duration::from_secs(2);
                config.queue.poll_interval = Duration::from_millis(20);
                config.links.keys.insert(
                    "demo".into(),
                    reseat::config::Secret::new("kill-test-link-key-0123456789abcdefghij"),
                );
            },
        )
        .await;
        let staff: Vec<String> = env
            .staff()
            .into_iter()
            .take(40)
            .map(|u| u.account_id)
            .collect();
        assert_eq!(staff.len(), 40);
        let mut before = Vec::new();
        let mut issues = Vec::new();
        let mut ids = Vec::new();
        for (n, account) in staff.iter().enumerate() {
            before.push(env.group_ids(account));
            env.remove_like_a_sweep(account).await;
            // Half through JSM (comment and transition to reply), half through Automation.
            let (code, body) = if n % 2 == 0 {
                let issue = env.portal_request(account);
                issues.push(issue.clone());
                env.jsm(&issue).await
            } else {
                env.automation(account).await
            };
            assert_eq!(code, 202);
            ids.push(body["requestId"].as_str().unwrap().to_string());
        }
        // The service runs as its own process with four workers, and is killed.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reseat.toml");
        let mut config = env.app.state.config.as_ref().clone();
        config.queue.workers = 4;
        config_file(
            &config,
            &env.sim,
            &file,
            "kill-test-link-key-0123456789abcdefghij",
        );
        let serve = || {
            tokio::process::Command::new(crate::support::reseat_bin())
                .args(["serve", "--config", file.to_str().unwrap()])
                .current_dir(dir.path())
                .env_remove("RESEAT_DATABASE__URL")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
                .kill_on_drop(true)
                .spawn()
                .expect("reseat starts")
        };
        let changes = || {
            env.sim
                .state()
                .log()
                .iter()
                .filter(|e| e.method != "GET")
                .count()
        };
        let open = || async {
            env.count(
                "SELECT COUNT(*) FROM restore_requests WHERE status <> 'restored' \
                 OR replied_at IS NULL",
            )
            .await
                + env
                    .count("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
                    .await
        };
        let mut killed_mid_drain = 0;
        for round in 0..10 {
            let mut child = serve();
            // Kill -9 after a random number of further changes reach the simulator.
            let target = changes() + rand::rng().random_range(1..=4);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while changes() < target && open().await > 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{backend}: the service does not work; its log: {}",
                    std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            if open().await > 0 {
                killed_mid_drain += 1;
            }
            eprintln!(
                "{backend}: round {round}: killed after {} changes",
                changes()
            );
        }
        assert!(
            killed_mid_drain >= 8,
            "{backend}: {killed_mid_drain} kills mid-drain"
        );
        // A last start runs to the end.
        let mut child = serve();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let open = open().await;
            if open == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend}: {open} requests or jobs still open; the log: {}",
                std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.start_kill().unwrap();
        child.wait().await.unwrap();

        // The end state of a run never interrupted: every request restored once, every
        // group back, one audit row, one email, one comment and one transition each.
        for (account, groups) in staff.iter().zip(&before) {
            assert_eq!(&env.group_ids(account), groups, "{backend}: {account}");
        }
        let n = staff.len() as i64;
        for (sql, expected) in [
            (
                "SELECT COUNT(*) FROM restore_requests WHERE status = 'restored'",
                n,
            ),
            (
                "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'",
                n,
            ),
            (
                "SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'",
                n,
            ),
            ("SELECT COUNT(*) FROM jobs WHERE state = 'dead'", 0),
            (
                "SELECT COUNT(*) FROM journal WHERE action = 'restored'",
                env.count("SELECT COUNT(*) FROM journal WHERE action = 'removed'")
                    .await,
            ),
        ] {
            assert_eq!(env.count(sql).await, expected, "{backend}: {sql}");
        }
        for issue in &issues {
            let request = env.sim.state().request(issue).unwrap();
            let public = request.comments.iter().filter(|c| c.public).count();
            assert_eq!(public, 1, "{backend}: {issue}");
            assert_eq!(request.status, "Resolved", "{backend}: {issue}");
        }
        assert_eq!(ids.len(), staff.len());
    }
}

#[tokio::test]
async fn one_account_asking_through_four_channels_at_once_gets_one_restore_and_one_email() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 150,
                ..SimConfig::default()
            },
            |_| {},
        )
        .await;
        let account = env.staff()[0].account_id.clone();
        let before = env.group_ids(&account);
        let removed = env.remove_like_a_sweep(&account).await;
        let issue = env.portal_request(&account);
        let token = issue_link(&env, reseat::notify::Purpose::Restore, &account).await;
        let url = env.app.url(&format!("/restore/{token}"));
        let page = env.app.client.get(&url).send().await.unwrap();
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
        let (csrf, cookie) = csrf_of(&page.text().await.unwrap(), &cookie);
        env.sim
            .state()
            .set_faults(serde_json::from_value(json!({ "latency_ms": 15 })).unwrap())
            .unwrap();
        let adds_before = env.sim.state().calls("POST", "/rest/api/3/group/user");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..4).map(|_| poll_queue(&env, stop.clone())).collect();
        let webhook_body = json!({ "accountId": account, "product": "jira-software" }).to_string();
        let (jsm, automation, webhook, link) = tokio::join!(
            env.jsm(&issue),
            env.automation(&account),
            env.webhook("msg_four_channels", &webhook_body),
            env.app
                .client
                .post(&url)
                .form(&[("csrf", &csrf)])
                .header("cookie", &cookie)
                .send(),
        );
        assert_eq!(
            (jsm.0, automation.0, webhook.0),
            (202, 202, 202),
            "{backend}"
        );
        assert_eq!(link.unwrap().status(), 200, "{backend}");
        for _ in 0..500 {
            let open = env
                .count(
                    "SELECT COUNT(*) FROM restore_requests WHERE status <> 'restored' \
                     OR replied_at IS NULL",
                )
                .await;
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for worker in workers {
            worker.await.unwrap();
        }
        env.app.drain_queue().await;
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests WHERE status = 'restored'")
                .await,
            4,
            "{backend}: every request is answered restored"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests WHERE coalesced_into IS NOT NULL")
                .await,
            3,
            "{backend}: three share the first's outcome"
        );
        assert_eq!(env.group_ids(&account), before, "{backend}");
        assert_eq!(
            env.sim.state().calls("POST", "/rest/api/3/group/user") - adds_before,
            removed.len(),
            "{backend}: one restore"
        );
        for (sql, expected) in [
            (
                "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'",
                1,
            ),
            (
                "SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'",
                1,
            ),
            (
                "SELECT COUNT(*) FROM journal WHERE action = 'restored'",
                removed.len() as i64,
            ),
        ] {
            assert_eq!(env.count(sql).await, expected, "{backend}: {sql}");
        }
        let request = env.sim.state().request(&issue).unwrap();
        assert_eq!(request.status, "Resolved", "{backend}");
        let public: Vec<_> = request.comments.iter().filter(|c| c.public).collect();
        assert_eq!(public.len(), 1, "{backend}");
        assert!(public[0].body.contains("has been restored"), "{backend}");
    }
}

#[tokio::test]
async fn an_account_suspended_at_the_org_is_not_restored_and_says_so() {
    let env = env().await;
    let state = &env.app.state;
    let account = env.staff()[0].account_id.clone();
    env.remove_like_a_sweep(&account).await;
    let removed = env.group_ids(&account);
    // An admin suspended the account in Atlassian (not reseat's ladder).
    let admin = state.atlassian.admin.as_ref().unwrap();
    let org = state.atlassian.org_id.as_ref().unwrap();
    admin
        .suspend(org, &reseat::atlassian::AccountId::parse(&account).unwrap())
        .await
        .unwrap();
    let (code, body) = env.automation(&account).await;
    assert_eq!(code, 202);
    env.app.drain_queue().await;
    let request = store::get(&state.db, body["requestId"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.status, "denied");
    let verdict: Value = serde_json::from_str(request.verdict.as_deref().unwrap()).unwrap();
    assert_eq!(verdict["guard"], "account_suspended", "{verdict}");
    assert_eq!(env.group_ids(&account), removed, "nothing added");
}

#[tokio::test]
async fn a_restore_waits_out_eventual_consistency_without_spending_attempts() {
    // Scaled a hundredfold: the platform shows changes after 30 s (0.3 s here), reseat
    // verifies within its default window of 60 s (0.6 s here).
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 150,
                consistency: Duration::from_millis(300),
                ..SimConfig::default()
            },
            |config| {
                config.queue = reseat::queue::QueueConfig {
                    workers: 0,
                    ..reseat::queue::QueueConfig::default()
                };
                config.restore.verify_window = Duration::from_millis(600);
            },
        )
        .await;
        assert_eq!(
            reseat::restore::config::RestoreConfig::default().verify_window,
            Duration::from_secs(60)
        );
        let account = env.staff()[0].account_id.clone();
        let before = env.group_ids(&account);
        env.remove_like_a_sweep(&account).await;
        let (code, body) = env.automation(&account).await;
        assert_eq!(code, 202);
        let id = body["requestId"].as_str().unwrap().to_string();
        let mut seen = Vec::new();
        for _ in 0..200 {
            env.app.drain_queue().await;
            let status = env.request_status(&id).await;
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if status == "restored" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, ["verifying", "restored"], "{backend}");
        env.sim.state().settle();
        assert_eq!(env.group_ids(&account), before, "{backend}");
        let job = env
            .app
            .state
            .queue
            .get(
                store::get(&env.app.state.db, &id)
                    .await
                    .unwrap()
                    .unwrap()
                    .job_id
                    .unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.state, "done", "{backend}");
        assert_eq!(
            job.attempts, 1,
            "{backend}: waiting for consistency spent no attempt"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
                .await,
            1
        );
    }
}

/// Every (account, group id) membership in the simulator.
fn memberships(sim: &SimHandle) -> std::collections::BTreeSet<(String, String)> {
    let mut all = std::collections::BTreeSet::new();
    for user in &sim.state().ground_truth().users {
        if let Some(view) = sim.state().user(&user.account_id) {
            for group in view.groups {
                all.insert((user.account_id.clone(), group.id));
            }
        }
    }
    all
}

/// Sends one restore request for `account`'s Jira Software seat through channel `n % 4`
/// (JSM portal, Automation, signed webhook, restore link) and returns the HTTP status
/// (202 for a link page that answered 200) and the JSM issue it opened, if any.
async fn ask_through_channel(env: &Env, n: usize, account: &str) -> (u16, Option<String>) {
    let client = env.app.client.clone();
    match n % 4 {
        0 => {
            let issue = env.portal_request(account);
            let status = client
                .post(env.app.url("/hooks/jsm"))
                .header("X-Reseat-Token", reseat::demo::DEMO_JSM_SECRET)
                .json(&json!({ "issueKey": issue }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            (status, Some(issue))
        }
        1 => {
            let status = client
                .post(env.app.url("/hooks/automation"))
                .header("X-Reseat-Token", reseat::demo::DEMO_AUTOMATION_SECRET)
                .json(&json!({ "accountId": account, "product": "jira-software" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            (status, None)
        }
        2 => {
            let body = json!({ "accountId": account, "product": "jira-software" }).to_string();
            let (status, _) = send_webhook(
                client,
                env.app.url("/hooks/webhook"),
                format!("msg_all_{n}"),
                body,
            )
            .await;
            (status, None)
        }
        _ => {
            let token = issue_link(env, reseat::notify::Purpose::Restore, account).await;
            let url = env.app.url(&format!("/restore/{token}"));
            let page = client.get(&url).send().await.unwrap();
            let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
            let (csrf, cookie) = csrf_of(&page.text().await.unwrap(), &cookie);
            let status = client
                .post(url)
                .form(&[("csrf", &csrf)])
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            // The page answers 200 whether done or still under way.
            (if status == 200 { 202 } else { status }, None)
        }
    }
}

#[tokio::test]
async fn a_sweep_of_a_thousand_users_and_two_hundred_restores_with_failures_and_lost_answers() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 1000,
                ..SimConfig::default()
            },
            |config| {
                config.database.max_connections = 10;
                config.sweep.ladder.warn = false;
                config.atlassian.admin.requests_per_second = 1000;
                config.atlassian.admin.concurrency = 8;
                // A fifth of the calls fail: enough attempts that no single call runs out.
                config.atlassian.retry.max_attempts = 12;
            },
        )
        .await;
        let before = memberships(&env.sim);
        // A fifth of the calls fail; a tenth of the changes take effect and lose their
        // answer: from the plan on, for the sweep and the restores alike.
        env.sim
            .state()
            .set_faults(
                serde_json::from_value(json!({ "fail_rate": 0.2, "lose_rate": 0.1 })).unwrap(),
            )
            .unwrap();
        let state = env.app.state.clone();
        let planned = reseat::sweep::plan(
            &state,
            &[reseat::sweep::Source::Api],
            chrono::Utc::now(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .unwrap();
        let items = reseat::sweep::store::items(&state.db, &planned.plan_id)
            .await
            .unwrap();
        // The staff whose Jira Software seat the sweep takes: the demo's rules give it
        // straight back to them.
        let truth = env.sim.state().ground_truth();
        let askers: Vec<String> = items
            .iter()
            .filter(|i| i.decision == "remove" && i.product == "jira-software")
            .filter(|i| {
                truth.users.iter().any(|u| {
                    u.account_id == i.account_id
                        && u.account_type == reseat::sim::AccountType::Atlassian
                        && u.account_status == reseat::sim::AccountStatus::Active
                        && !u.suspended
                        && !u.offboarded
                        && u.email
                            .as_deref()
                            .is_some_and(|e| e.ends_with(seed::MANAGED_DOMAIN))
                        && !u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
                })
            })
            .map(|i| i.account_id.clone())
            .take(200)
            .collect();
        assert_eq!(
            askers.len(),
            200,
            "{backend}: the seed has 200 idle staff seats"
        );

        // The queue runs throughout; the apply runs while the requests come in.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..4).map(|_| poll_queue(&env, stop.clone())).collect();
        let apply = {
            let (state, plan_id) = (state.clone(), planned.plan_id.clone());
            tokio::spawn(async move {
                let options = reseat::sweep::ApplyOptions {
                    confirmed: true,
                    ..Default::default()
                };
                reseat::sweep::apply(&state, Some(&plan_id), &options).await
            })
        };
        // Each staff member asks once the sweep has taken their seat, through the four
        // channels in turn, while the sweep goes on with the others.
        let mut issues = Vec::new();
        let mut asked = std::collections::BTreeSet::new();
        let mut during_apply = 0;
        let mut requests = tokio::task::JoinSet::new();
        let env = std::sync::Arc::new(env);
        while asked.len() < askers.len() {
            let removed: Vec<String> = sqlx::query_scalar(
                "SELECT account_id FROM plan_items WHERE plan_id = $1 \
                 AND product = 'jira-software' AND state = 'done'",
            )
            .bind(&planned.plan_id)
            .fetch_all(state.db.pool())
            .await
            .unwrap();
            let running = !apply.is_finished();
            for account in removed {
                if askers.contains(&account) && asked.insert(account.clone()) {
                    let n = asked.len();
                    if running {
                        during_apply += 1;
                    }
                    let env = env.clone();
                    requests.spawn(async move { ask_through_channel(&env, n, &account).await });
                }
            }
            if !running && asked.len() < askers.len() {
                let missing: Vec<_> = askers.iter().filter(|a| !asked.contains(*a)).collect();
                panic!("{backend}: the apply ended without removing {missing:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while let Some(answer) = requests.join_next().await {
            let (status, issue) = answer.unwrap();
            assert_eq!(status, 202, "{backend}");
            issues.extend(issue);
        }
        let report = apply.await.unwrap().unwrap();
        assert_eq!(report.failed, 0, "{backend}: {report:?}");
        assert!(
            during_apply > 0,
            "{backend}: some requests came in while the sweep was removing"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        while tokio::time::Instant::now() < deadline {
            let open = env
                .count(
                    "SELECT COUNT(*) FROM restore_requests WHERE status <> 'restored' \
                     OR replied_at IS NULL",
                )
                .await;
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for worker in workers {
            worker.await.unwrap();
        }
        env.sim
            .state()
            .set_faults(
                serde_json::from_value(json!({ "fail_rate": 0.0, "lose_rate": 0.0 })).unwrap(),
            )
            .unwrap();
        let lost = env
            .sim
            .state()
            .log()
            .iter()
            .filter(|e| e.fault == Some(reseat::sim::FaultKind::Lost))
            .count();
        assert!(lost > 0, "{backend}: some answers were lost");

        // Every request is restored and answered.
        let open: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT channel, status, reason FROM restore_requests \
             WHERE status <> 'restored' OR replied_at IS NULL",
        )
        .fetch_all(state.db.pool())
        .await
        .unwrap();
        assert!(open.is_empty(), "{backend}: {open:?}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests").await,
            200,
            "{backend}"
        );

        // The simulator's end state: the plan's removals are gone, except the seats given
        // back; nothing else changed.
        let asked_set: std::collections::BTreeSet<&String> = askers.iter().collect();
        let mut expected = before.clone();
        let mut removed_seats = 0;
        for item in items.iter().filter(|i| i.decision == "remove") {
            let groups: Vec<Value> = serde_json::from_str(&item.access_groups).unwrap();
            let given_back =
                item.product == "jira-software" && asked_set.contains(&item.account_id);
            let mut took = false;
            for group in &groups {
                let key = (
                    item.account_id.clone(),
                    group["id"].as_str().unwrap().to_owned(),
                );
                if before.contains(&key) && !given_back {
                    expected.remove(&key);
                    took = true;
                }
            }
            removed_seats += usize::from(took || given_back);
            // No removal is unrestorable: the ledger holds exactly what is still taken.
            let taken: Vec<String> = reseat::ledger::taken_groups(
                &state.db,
                &item.account_id,
                &item.product,
                state.site(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.id.to_string())
            .collect();
            let mut want: Vec<String> = if given_back {
                Vec::new()
            } else {
                groups
                    .iter()
                    .map(|g| g["id"].as_str().unwrap().to_owned())
                    .filter(|id| before.contains(&(item.account_id.clone(), id.clone())))
                    .collect()
            };
            want.sort();
            let mut taken = taken;
            taken.sort();
            assert_eq!(
                taken, want,
                "{backend}: {} {}",
                item.account_id, item.product
            );
        }
        assert_eq!(memberships(&env.sim), expected, "{backend}: the end state");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM journal WHERE action = 'not_member'")
                .await,
            0,
            "{backend}"
        );

        // No duplicate email: one removal notice per seat taken, one confirmation per
        // request, never two of a kind for one seat.
        let removal_notices = env
            .count("SELECT COUNT(*) FROM email_outbox WHERE template = 'removal'")
            .await
            + env
                .count("SELECT COUNT(*) FROM audit_log WHERE action = 'sweep.removal_notice'")
                .await;
        assert_eq!(removal_notices as usize, removed_seats, "{backend}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM email_outbox WHERE template = 'restored'")
                .await,
            200,
            "{backend}"
        );
        assert_eq!(
            env.count(
                "SELECT COUNT(*) FROM (SELECT account_id, product, template FROM email_outbox \
                 GROUP BY account_id, product, template HAVING COUNT(*) > 1) AS twice"
            )
            .await,
            0,
            "{backend}: no duplicate email"
        );
        // The confirmation never comes before the removal notice.
        let out_of_order = env
            .count(
                "SELECT COUNT(*) FROM email_outbox r JOIN email_outbox x \
                 ON r.account_id = x.account_id AND r.product = x.product \
                 WHERE r.template = 'removal' AND x.template = 'restored' AND x.id < r.id",
            )
            .await;
        assert_eq!(out_of_order, 0, "{backend}");
        for (sql, expected) in [
            (
                "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'",
                200,
            ),
            ("SELECT COUNT(*) FROM jobs WHERE state = 'dead'", 0),
        ] {
            assert_eq!(env.count(sql).await, expected, "{backend}: {sql}");
        }
        // No duplicate comment: each JSM request has one public reply and is resolved.
        for issue in &issues {
            let request = env.sim.state().request(issue).unwrap();
            let public = request.comments.iter().filter(|c| c.public).count();
            assert_eq!(public, 1, "{backend}: {issue}");
            assert_eq!(request.status, "Resolved", "{backend}: {issue}");
        }
        assert_eq!(issues.len(), 50, "{backend}");
    }
}

#[tokio::test]
async fn no_link_token_reaches_the_log_even_at_trace() {
    let logs = crate::support::LogBuffer::default();
    let _guard = logs.capture_at_trace();
    let env = env().await;
    let account = env.staff()[0].account_id.clone();
    env.remove_like_a_sweep(&account).await;
    let token = issue_link(&env, reseat::notify::Purpose::Restore, &account).await;
    let url = env.app.url(&format!("/restore/{token}"));
    let page = env.app.client.get(&url).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    let (csrf, cookie) = csrf_of(&page.text().await.unwrap(), &cookie);
    for _ in 0..2 {
        // Used once, then refused as used: the refusal is logged, the token is not.
        env.app
            .client
            .post(&url)
            .form(&[("csrf", &csrf)])
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
    }
    let forged = format!("{}x", &token[..token.len() - 1]);
    let refused = env
        .app
        .client
        .get(env.app.url(&format!("/restore/{forged}")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let unrouted = env
        .app
        .client
        .get(env.app.url(&format!("/no-such-page/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 404);
    env.app.drain_queue().await;
    let logged = logs.text();
    assert!(logged.contains("/restore/{token}"), "{logged}");
    assert!(logged.contains("link refused"), "{logged}");
    // The token's signature is its last part; no piece of it, nor the forged one, shows.
    let signature = token.rsplit('.').next().unwrap();
    for secret in [token.as_str(), forged.as_str(), signature] {
        assert!(!logged.contains(secret), "{secret} in the log");
    }
    assert!(!logged.contains(&csrf), "the CSRF token is not logged");
}

#[tokio::test]
async fn ten_thousand_refused_requests_add_a_few_rows_and_every_one_is_counted() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(
            db,
            SimConfig {
                users: 20,
                ..SimConfig::default()
            },
            |config| {
                config.admin.users = vec![crate::support::admin_user("ana", "pw-for-ana", None)];
            },
        )
        .await;
        let rows_before = env.count("SELECT COUNT(*) FROM audit_log").await;
        // 10,000 requests without the channel's secret, 32 at a time, on three channels.
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..32 {
            let (client, base, sent) = (env.app.client.clone(), env.app.url(""), sent.clone());
            tasks.spawn(async move {
                loop {
                    let n = sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n >= 10_000 {
                        return;
                    }
                    let (path, header) = match (n + worker) % 3 {
                        0 => ("/hooks/jsm", "X-Reseat-Token"),
                        1 => ("/hooks/automation", "X-Reseat-Token"),
                        _ => ("/hooks/webhook", "webhook-signature"),
                    };
                    let status = client
                        .post(format!("{base}{path}"))
                        .header(header, "guessed")
                        .header("content-type", "application/json")
                        .body("{}")
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert!(status.is_client_error(), "{path}: {status}");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let rows = env.count("SELECT COUNT(*) FROM audit_log").await - rows_before
            + env.count("SELECT COUNT(*) FROM audit_refusals").await;
        assert!(
            rows <= 300,
            "{backend}: {rows} audit rows for 10,000 refusals"
        );
        assert_eq!(
            env.count("SELECT CAST(SUM(count) AS BIGINT) FROM audit_refusals WHERE action = 'restore.rejected'")
                .await,
            10_000,
            "{backend}: every refusal counted"
        );
        // The audit page shows the count.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http.get(env.app.url("/admin/login")).send().await.unwrap();
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .find(|v| v.starts_with("reseat_admin_login="))
            .unwrap();
        let text = page.text().await.unwrap();
        let start = text.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &text[start..start + text[start..].find('"').unwrap()];
        let signed = http
            .post(env.app.url("/admin/login"))
            .header("cookie", cookie)
            .form(&[("csrf", csrf), ("name", "ana"), ("password", "pw-for-ana")])
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 303, "{backend}");
        let session = signed
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .find(|v| v.starts_with("reseat_admin="))
            .unwrap();
        let audit = http
            .get(env.app.url("/admin/audit"))
            .header("cookie", session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            audit.contains("Refused requests, last 24 hours: 10000"),
            "{backend}: {audit}"
        );
        assert!(audit.contains("restore.rejected"), "{backend}");
    }
}

/// An approval that cannot restore (reseat removed nothing and no groups were named) leaves
/// the request pending, and the command says why and what to do instead.
#[tokio::test]
async fn an_approval_left_pending_prints_the_reason_and_the_next_step() {
    for db in TestDb::all().await {
        let env = env_with(
            db,
            SimConfig {
                users: 150,
                ..SimConfig::default()
            },
            |_| {},
        )
        .await;
        let staff = env.staff();
        let account = staff[0].account_id.clone();
        // Never removed by reseat, for a product it does not know: an admin decides.
        let (status, body) = env
            .webhook(
                "msg_never_removed",
                &json!({ "accountId": account, "product": "Jira Align" }).to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let id = body["requestId"].as_str().unwrap().to_string();
        env.app.drain_queue().await;
        assert_eq!(env.request_status(&id).await, "pending");
        let printed = reseat::restore::cli::requests(
            &env.app.state,
            &reseat::restore::cli::RequestsArgs {
                command: reseat::restore::cli::RequestsCommand::Approve {
                    id: id.clone(),
                    groups: vec![],
                    as_admin: None,
                },
            },
        )
        .await
        .unwrap();
        assert!(
            printed.starts_with(&format!("request {id}: pending\n")),
            "{printed}"
        );
        assert!(
            printed.contains("approve again naming the groups"),
            "{printed}"
        );
        assert!(
            printed.contains(&format!("next: reseat requests approve {id} --groups")),
            "{printed}"
        );
        assert_eq!(env.request_status(&id).await, "pending");
    }
}

/// An approver named ana, unscoped, as the admin pages would pass her.
fn ana() -> reseat::web::config::Grant {
    reseat::web::config::Grant {
        actor: "admin:ana".into(),
        role: reseat::web::config::Role::Approver,
        sites: Vec::new(),
        products: Vec::new(),
    }
}

/// The portal request's "Why do you need it?" field and the restore page's text box carry a
/// justification. A rule that requires one restores with it, and denies without it, saying
/// why, on the request and in the portal comment.
#[tokio::test]
async fn a_jsm_field_and_the_link_page_carry_a_justification_a_rule_can_require() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sim = SimConfig {
            users: 150,
            ..SimConfig::default()
        };
        let env = env_with(db, sim, |config| {
            let staff_rule = config
                .restore
                .rules
                .iter()
                .position(|r| r.name == "staff removed by reseat")
                .unwrap();
            let rule = &mut config.restore.rules[staff_rule];
            rule.require_justification = true;
        })
        .await;
        let staff = env.staff();
        let [with_field, without_field, by_link] = [0, 1, 2].map(|n| staff[n].account_id.clone());
        for account in [&with_field, &without_field, &by_link] {
            env.remove_like_a_sweep(account).await;
        }
        let given = env.portal_request_saying(
            &with_field,
            Some("  Release <b>week</b>: I review SUP tickets "),
        );
        let missing = env.portal_request(&without_field);
        let (_, accepted) = env.jsm(&given).await;
        let given_id = accepted["requestId"].as_str().unwrap().to_string();
        let (_, accepted) = env.jsm(&missing).await;
        let missing_id = accepted["requestId"].as_str().unwrap().to_string();
        env.app.drain_queue().await;

        let restored = store::get(&env.app.state.db, &given_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(restored.status, "restored", "{backend}");
        assert_eq!(
            restored.justification.as_deref(),
            Some("Release <b>week</b>: I review SUP tickets"),
            "{backend}: read from the field, trimmed"
        );
        assert!(env.products(&with_field).contains(&Product::JiraSoftware));
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE details LIKE '%I review SUP tickets%'")
                .await,
            1,
            "{backend}: the justification is audited"
        );

        let denied = store::get(&env.app.state.db, &missing_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(denied.status, "denied", "{backend}");
        assert_eq!(denied.justification, None);
        assert!(
            !env.products(&without_field)
                .contains(&Product::JiraSoftware)
        );
        let portal = env.sim.state().request(&missing).unwrap();
        assert!(
            portal
                .comments
                .iter()
                .any(|c| c.public && c.body.contains("needs a justification")),
            "{backend}: the portal says why: {:?}",
            portal.comments
        );

        // `rules explain` shows the rule needs a reason, and what it decides with one.
        for (justified, decision) in [(false, "decision: deny"), (true, "decision: approve")] {
            let out = reseat::restore::cli::rules(
                &env.app.state,
                &reseat::restore::cli::RulesArgs {
                    command: reseat::restore::cli::RulesCommand::Explain {
                        account: without_field.clone(),
                        product: reseat::atlassian::ProductKey::JIRA_SOFTWARE,
                        channel: reseat::restore::rules::Channel::Jsm,
                        justified,
                    },
                },
            )
            .await
            .unwrap();
            assert!(
                out.contains(decision),
                "{backend} justified={justified}: {out}"
            );
        }

        // The restore page asks why; what is typed there is the request's justification.
        let token = issue_link(&env, reseat::notify::Purpose::Restore, &by_link).await;
        let url = env.app.url(&format!("/restore/{token}"));
        let page = env.app.client.get(&url).send().await.unwrap();
        let page = page.text().await.unwrap();
        assert!(page.contains("name=\"justification\""), "{page}");
        assert!(
            page.contains("(required)") && page.contains("maxlength=\"2000\" required"),
            "{backend}: the rule requires a reason, so the page asks for one: {page}"
        );
        let response = env
            .app
            .press_link(&url, &[("justification", "covering the on-call rota")])
            .await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.contains("access is back"), "{backend}: {body}");
        assert!(env.products(&by_link).contains(&Product::JiraSoftware));
        let (channel, justification): (String, Option<String>) = sqlx::query_as(
            "SELECT channel, justification FROM restore_requests WHERE account_id = $1",
        )
        .bind(&by_link)
        .fetch_one(env.app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(channel, "link");
        assert_eq!(justification.as_deref(), Some("covering the on-call rota"));
    }
}
