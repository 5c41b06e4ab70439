//! Slack end to end against the Atlassian simulator and the fake Slack: the slash command
//! restores (or sends to the approvers' channel), approvers decide with buttons, everyone
//! else is refused, forged, stale and replayed requests change nothing; and the
//! justification every channel carries is stored, shown and can be required by a rule.

use std::time::Duration;

use reseat::config::{Config, Secret};
use reseat::ledger::JournalEntry;
use reseat::restore::{signature, store};
use reseat::sim::model::Product;
use reseat::sim::seed::{self, Category};
use reseat::sim::slack::{self as fake, FakeUser, SlackHandle, SlashCommand};
use reseat::sim::{SimConfig, SimHandle};
use reseat::web::config::{AdminUser, Role};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, spawn_configured};

const SIGNING_SECRET: &str = "test-slack-signing-secret";
const APPROVERS: &str = "C0APPROVERS";
const PASSWORD: &str = "slack test password";

struct Env {
    sim: SimHandle,
    slack: SlackHandle,
    app: TestApp,
    _dir: tempfile::TempDir,
}

fn admin(name: &str, role: Role, slack_user_id: Option<&str>, email: Option<&str>) -> AdminUser {
    AdminUser {
        slack_user_id: slack_user_id.map(str::to_owned),
        email: email.map(str::to_owned),
        ..crate::support::admin_user(name, PASSWORD, Some(role))
    }
}

async fn env_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Env {
    let sim = reseat::sim::spawn(SimConfig {
        users: 150,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let slack = fake::spawn(fake::SlackSimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = reseat::demo::config_for(&sim, dir.path());
    config.queue.workers = 0;
    config.queue.backoff_base = Duration::from_millis(5);
    config.queue.backoff_max = Duration::from_millis(50);
    config.atlassian.retry.base_delay = Duration::from_millis(5);
    config.atlassian.retry.max_delay = Duration::from_millis(50);
    for family in [&mut config.atlassian.jira, &mut config.atlassian.jsm] {
        family.requests_per_second = 1000;
    }
    let channel = &mut config.restore.slack;
    channel.signing_secret = Some(Secret::new(SIGNING_SECRET));
    channel.bot_token = Some(Secret::new(fake::DEFAULT_BOT_TOKEN));
    channel.api_base_url = url::Url::parse(&slack.api_base_url()).unwrap();
    channel.allowed_domains = vec![seed::MANAGED_DOMAIN.to_string()];
    channel.approvers_channel = Some(APPROVERS.into());
    config.admin.users = vec![
        admin("ana", Role::Approver, Some("U0ANA"), None),
        admin("vic", Role::Viewer, None, Some("vic@it.example")),
    ];
    adjust(&mut config);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    // Vic is known to Slack by email only; his role may not decide.
    slack
        .state()
        .add_user(FakeUser::new("U0VIC", "vic", Some("VIC@it.example")));
    Env {
        sim,
        slack,
        app,
        _dir: dir,
    }
}

impl Env {
    /// An account of the managed domain with Jira Software, optionally a contractor.
    fn account(&self, contractor: bool, skip: usize) -> (String, String) {
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
                    && u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS) == contractor
            })
            .nth(skip)
            .map(|u| (u.account_id.clone(), u.email.clone().unwrap()))
            .expect("a seeded account")
    }

    /// What a sweep does: journal the Jira Software access groups, then remove them.
    async fn remove_like_a_sweep(&self, account: &str) {
        let user = self.sim.state().user(account).unwrap();
        let mut conn = self.app.state.db.pool().acquire().await.unwrap();
        for group in user.groups.iter().filter(|g| {
            self.sim
                .state()
                .group(&g.id)
                .is_some_and(|group| group.grants.contains(&Product::JiraSoftware))
        }) {
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
        assert!(!self.has_jira(account));
    }

    fn has_jira(&self, account: &str) -> bool {
        self.sim
            .state()
            .user(account)
            .unwrap()
            .products
            .contains(&Product::JiraSoftware)
    }

    async fn post_signed(
        &self,
        path: &str,
        body: &str,
        timestamp: i64,
        secret: &str,
    ) -> (u16, Value) {
        let signature = fake::sign(secret, timestamp, body.as_bytes());
        self.post_with(path, body, &timestamp.to_string(), &signature)
            .await
    }

    async fn post_with(
        &self,
        path: &str,
        body: &str,
        timestamp: &str,
        signature: &str,
    ) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn command_body(&self, user: &str, text: &str) -> (String, String) {
        let response_url = self.slack.state().response_url();
        let command = SlashCommand {
            command: "/reseat".into(),
            text: text.into(),
            user_id: user.into(),
            user_name: user.to_lowercase(),
            channel_id: "C0GENERAL".into(),
            response_url: response_url.clone(),
            trigger_id: self.slack.state().trigger_id(),
        };
        (command.body(), response_url)
    }

    /// Runs the slash command as `user`; the answer and the command's response_url.
    async fn command(&self, user: &str, text: &str) -> (u16, Value, String) {
        let (body, response_url) = self.command_body(user, text);
        let now = chrono::Utc::now().timestamp();
        let (status, answer) = self
            .post_signed("/hooks/slack/commands", &body, now, SIGNING_SECRET)
            .await;
        (status, answer, response_url)
    }

    async fn interact(&self, payload: &Value) -> (u16, Value) {
        let body = fake::interaction_body(payload);
        let now = chrono::Utc::now().timestamp();
        self.post_signed("/hooks/slack/interactions", &body, now, SIGNING_SECRET)
            .await
    }

    /// `user` clicks `action` on the approval message of `request`; the click's response_url.
    async fn click(&self, user: &str, action: &str, request: &str) -> (u16, String) {
        let message = self.approval_message(request);
        let payload = fake::block_action(
            self.slack.state(),
            user,
            action,
            request,
            &message.channel,
            &message.ts,
        );
        let url = payload["response_url"].as_str().unwrap().to_string();
        let (status, _) = self.interact(&payload).await;
        (status, url)
    }

    fn approval_message(&self, request: &str) -> fake::Message {
        self.slack
            .state()
            .messages()
            .into_iter()
            .find(|m| m.channel == APPROVERS && m.blocks.to_string().contains(request))
            .expect("an approval message for the request")
    }

    /// What was posted to one response_url.
    fn said_at(&self, response_url: &str) -> Vec<String> {
        let id = response_url.rsplit('/').next().unwrap();
        self.slack
            .state()
            .responses()
            .into_iter()
            .filter(|r| r.id == id)
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.app.state.db.pool())
            .await
            .unwrap()
    }

    async fn only_request(&self) -> store::RestoreRequest {
        let mut all = store::list_recent(&self.app.state.db, 10).await.unwrap();
        assert_eq!(all.len(), 1, "one request");
        all.remove(0)
    }
}

#[tokio::test]
async fn a_slash_command_restores_at_once_and_answers_through_the_response_url() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        let (account, email) = env.account(false, 0);
        env.remove_like_a_sweep(&account).await;
        env.slack
            .state()
            .add_user(FakeUser::new("U0STAFF", "Sam Staff", Some(&email)));

        let (status, answer, response_url) = env
            .command("U0STAFF", "restore jira  back on the billing project")
            .await;
        assert_eq!(status, 200, "{backend}: {answer}");
        assert_eq!(answer["response_type"], "ephemeral", "{backend}");
        assert!(
            answer["text"]
                .as_str()
                .unwrap()
                .starts_with("Working on it"),
            "{backend}: {answer}"
        );
        assert!(
            !env.has_jira(&account),
            "{backend}: nothing before the worker"
        );

        env.app.drain_queue().await;
        assert!(env.has_jira(&account), "{backend}: access is back");
        let said = env.said_at(&response_url);
        assert_eq!(said.len(), 1, "{backend}: {said:?}");
        assert!(said[0].contains("has been restored"), "{backend}: {said:?}");
        let request = env.only_request().await;
        assert_eq!(request.channel, "slack");
        assert_eq!(request.status, "restored");
        assert_eq!(request.account_id.as_deref(), Some(account.as_str()));
        assert_eq!(
            request.justification.as_deref(),
            Some("back on the billing project")
        );
        // By email as well, as every channel.
        let emails = env
            .count(&format!(
                "SELECT COUNT(*) FROM email_outbox WHERE template = 'restored' AND to_addr = '{email}'"
            ))
            .await;
        assert_eq!(emails, 1, "{backend}");
        // users.info was asked with the bot token; no approval was posted.
        assert_eq!(env.slack.state().calls_of("users.info").len(), 1);
        assert!(env.slack.state().calls_of("chat.postMessage").is_empty());

        // Help for anything else, and an unknown word is not a request.
        let (status, answer, _) = env.command("U0STAFF", "please").await;
        assert_eq!(status, 200);
        assert!(
            answer["text"]
                .as_str()
                .unwrap()
                .contains("/reseat restore jira"),
            "{answer}"
        );
        assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 1);
    }
}

#[tokio::test]
async fn a_manual_request_is_approved_in_the_approvers_channel_and_only_by_an_approver() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        let (account, email) = env.account(true, 0);
        env.remove_like_a_sweep(&account).await;
        env.slack
            .state()
            .add_user(FakeUser::new("U0CON", "Cora Contractor", Some(&email)));
        let (status, _, response_url) = env.command("U0CON", "restore jira sprint 12 bugs").await;
        assert_eq!(status, 200, "{backend}");
        env.app.drain_queue().await;
        let request = env.only_request().await;
        assert_eq!(request.status, "pending", "{backend}");
        assert!(
            env.said_at(&response_url)[0].contains("waiting for an administrator"),
            "{backend}"
        );
        // The approvers' channel has the request, its justification, the groups, the trace
        // and both buttons.
        let message = env.approval_message(&request.id);
        let blocks = message.blocks.to_string();
        for wanted in [
            "sprint 12 bugs",
            "contractors need approval",
            seed::GROUP_JIRA_CONTRACTORS,
            "reseat_approve",
            "reseat_deny",
            "acme",
        ] {
            assert!(blocks.contains(wanted), "{backend}: {wanted} in {blocks}");
        }

        // Someone Slack knows but reseat does not, and a viewer: refused, audited, no change.
        let (status, nobody_url) = env.click("U0NOBODY", "reseat_approve", &request.id).await;
        assert_eq!(status, 200);
        assert!(
            env.said_at(&nobody_url)[0].contains("not a reseat admin"),
            "{backend}: {:?}",
            env.said_at(&nobody_url)
        );
        let (_, vic_url) = env.click("U0VIC", "reseat_approve", &request.id).await;
        assert!(
            env.said_at(&vic_url)[0].contains("role (viewer) may not"),
            "{backend}: {:?}",
            env.said_at(&vic_url)
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.decision_refused'")
                .await,
            2,
            "{backend}"
        );
        env.app.drain_queue().await;
        assert_eq!(
            store::get(&env.app.state.db, &request.id)
                .await
                .unwrap()
                .unwrap()
                .status,
            "pending"
        );
        assert!(!env.has_jira(&account), "{backend}");

        // The approver's click restores, and the message says who approved.
        let (status, _) = env.click("U0ANA", "reseat_approve", &request.id).await;
        assert_eq!(status, 200);
        env.app.drain_queue().await;
        assert!(env.has_jira(&account), "{backend}: access is back");
        let message = env.approval_message(&request.id);
        let blocks = message.blocks.to_string();
        assert!(
            blocks.contains("Approved by ana (<@U0ANA>)"),
            "{backend}: {blocks}"
        );
        assert!(
            !blocks.contains("reseat_approve"),
            "{backend}: buttons gone"
        );
        assert!(
            env.said_at(&response_url)
                .iter()
                .any(|t| t.contains("has been restored")),
            "{backend}"
        );
        let approvals = "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved' AND actor = 'admin:ana'";
        assert_eq!(env.count(approvals).await, 1, "{backend}");

        // A second click shows the decision and does nothing.
        let (_, again) = env.click("U0ANA", "reseat_approve", &request.id).await;
        let said = env.said_at(&again);
        assert!(
            said[0].contains("already restored") && said[0].contains("approved by ana"),
            "{backend}: {said:?}"
        );
        assert_eq!(env.count(approvals).await, 1, "{backend}");
        assert_eq!(env.app.drain_queue().await, 0, "{backend}");
    }
}

#[tokio::test]
async fn an_approver_denies_with_a_reason_from_the_modal() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        let (account, email) = env.account(true, 0);
        env.remove_like_a_sweep(&account).await;
        env.slack
            .state()
            .add_user(FakeUser::new("U0CON", "Cora", Some(&email)));
        let (_, _, response_url) = env.command("U0CON", "restore jira").await;
        env.app.drain_queue().await;
        let request = env.only_request().await;
        assert_eq!(request.status, "pending");

        env.click("U0ANA", "reseat_deny", &request.id).await;
        let opened = env.slack.state().calls_of("views.open");
        assert_eq!(opened.len(), 1, "{backend}");
        let view = &opened[0].args["view"];
        assert_eq!(view["private_metadata"], request.id.as_str());
        assert_eq!(
            store::get(&env.app.state.db, &request.id)
                .await
                .unwrap()
                .unwrap()
                .status,
            "pending",
            "{backend}: opening the form decides nothing"
        );
        // The viewer cannot submit it either.
        let submit = |user: &str, reason: &str| {
            fake::view_submission(user, "reseat_deny", &request.id, "reason", "reason", reason)
        };
        let (status, answer) = env.interact(&submit("U0VIC", "no")).await;
        assert_eq!(status, 200);
        assert_eq!(answer["response_action"], "errors", "{backend}: {answer}");
        let (_, answer) = env
            .interact(&submit("U0ANA", "not on the project any more"))
            .await;
        assert_eq!(answer["response_action"], "clear", "{backend}: {answer}");
        env.app.drain_queue().await;
        let denied = store::get(&env.app.state.db, &request.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(denied.status, "denied", "{backend}");
        assert!(!env.has_jira(&account));
        let blocks = env.approval_message(&request.id).blocks.to_string();
        assert!(
            blocks.contains("Denied by ana (<@U0ANA>): not on the project any more"),
            "{backend}: {blocks}"
        );
        assert!(
            env.said_at(&response_url)
                .iter()
                .any(|t| t.contains("declined") && t.contains("not on the project any more")),
            "{backend}: {:?}",
            env.said_at(&response_url)
        );
    }
}

#[tokio::test]
async fn forged_stale_and_replayed_slack_requests_are_refused_and_change_nothing() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        let (account, email) = env.account(false, 0);
        env.remove_like_a_sweep(&account).await;
        env.slack
            .state()
            .add_user(FakeUser::new("U0STAFF", "Sam", Some(&email)));
        let now = chrono::Utc::now().timestamp();
        let state_sql = [
            "SELECT COUNT(*) FROM restore_requests",
            "SELECT COUNT(*) FROM jobs",
            "SELECT COUNT(*) FROM slack_requests",
            "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'restore.approved%'",
        ];
        for path in ["/hooks/slack/commands", "/hooks/slack/interactions"] {
            let body = if path.ends_with("commands") {
                env.command_body("U0STAFF", "restore jira").0
            } else {
                fake::interaction_body(&fake::block_action(
                    env.slack.state(),
                    "U0ANA",
                    "reseat_approve",
                    "no-such-request",
                    APPROVERS,
                    "1.2",
                ))
            };
            let mut before = Vec::new();
            for sql in state_sql {
                before.push(env.count(sql).await);
            }
            let forged = env.post_signed(path, &body, now, "not-the-secret").await;
            // Well outside the 5-minute window, however slow the machine is between here
            // and the server's own clock reading.
            let stale = env
                .post_signed(path, &body, now - 400, SIGNING_SECRET)
                .await;
            let future = env
                .post_signed(path, &body, now + 400, SIGNING_SECRET)
                .await;
            let unsigned = env.post_with(path, &body, &now.to_string(), "").await;
            let good = fake::sign(SIGNING_SECRET, now, body.as_bytes());
            let tampered = env
                .post_with(path, &body.replace("U0", "U9"), &now.to_string(), &good)
                .await;
            for (what, (status, _)) in [
                ("forged", forged),
                ("stale", stale),
                ("future", future),
                ("unsigned", unsigned),
                ("tampered", tampered),
            ] {
                assert_eq!(status, 401, "{backend} {path}: {what}");
            }
            let mut after = Vec::new();
            for sql in state_sql {
                after.push(env.count(sql).await);
            }
            assert_eq!(
                before, after,
                "{backend} {path}: refused requests change nothing"
            );

            // The genuine request once, then its replay.
            let (status, _) = env.post_with(path, &body, &now.to_string(), &good).await;
            assert_eq!(status, 200, "{backend} {path}");
            let mut once = Vec::new();
            for sql in state_sql {
                once.push(env.count(sql).await);
            }
            let (status, answer) = env.post_with(path, &body, &now.to_string(), &good).await;
            assert_eq!(status, 401, "{backend} {path}: replay");
            assert!(answer.to_string().contains("replayed"), "{answer}");
            let mut replayed = Vec::new();
            for sql in state_sql {
                replayed.push(env.count(sql).await);
            }
            assert_eq!(once, replayed, "{backend} {path}: a replay changes nothing");
        }
        let refusals = env
            .count("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM audit_refusals WHERE source = 'slack'")
            .await;
        assert_eq!(refusals, 12, "{backend}: every refusal is counted");
        // The one genuine command restored once.
        env.app.drain_queue().await;
        assert!(env.has_jira(&account));
        assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 1);
    }
}

#[tokio::test]
async fn a_slack_user_outside_the_domains_or_without_an_account_is_told_and_audited() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        env.slack.state().add_user(FakeUser::new(
            "U0OUT",
            "Olga Outsider",
            Some("olga@elsewhere.example"),
        ));
        env.slack.state().add_user(FakeUser::new(
            "U0GHOST",
            "Gus Ghost",
            Some(&format!("nobody-here@{}", seed::MANAGED_DOMAIN)),
        ));
        let (_, _, outside_url) = env.command("U0OUT", "restore jira").await;
        let (_, _, ghost_url) = env.command("U0GHOST", "restore confluence").await;
        env.app.drain_queue().await;
        let outside = env.said_at(&outside_url);
        assert!(
            outside[0].contains("elsewhere.example is not one of them"),
            "{backend}: {outside:?}"
        );
        let ghost = env.said_at(&ghost_url);
        assert!(
            ghost[0].contains("could not find an Atlassian account"),
            "{backend}: {ghost:?}"
        );
        let denied: Vec<String> = sqlx::query_scalar(
            "SELECT details FROM audit_log WHERE action = 'restore.denied' ORDER BY id",
        )
        .fetch_all(env.app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(denied.len(), 2, "{backend}: {denied:?}");
        assert!(
            denied[0].contains("allowed_domains"),
            "{backend}: {denied:?}"
        );
        assert!(
            denied[1].contains("no Atlassian account"),
            "{backend}: {denied:?}"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests WHERE status = 'denied'")
                .await,
            2
        );
        assert_eq!(env.count("SELECT COUNT(*) FROM email_outbox").await, 0);
    }
}

async fn webhook(env: &Env, id: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let now = chrono::Utc::now().timestamp();
    let sig = signature::sign(
        &reseat::demo::demo_webhook_secret(),
        id,
        now,
        body.as_bytes(),
    )
    .unwrap();
    let response = env
        .app
        .client
        .post(env.app.url("/hooks/webhook"))
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

async fn admin_page(env: &Env, path: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (session, _) = env.app.sign_in(&http, "vic", PASSWORD).await;
    let page = http
        .get(env.app.url(path))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

#[tokio::test]
async fn a_justification_is_stored_shown_and_can_be_required_by_a_rule() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |config| {
            let mut rule = config.restore.rules[1].clone();
            rule.name = "webhooks need a reason".into();
            rule.channels = vec![reseat::restore::rules::Channel::Webhook];
            rule.require_justification = true;
            config.restore.rules.insert(0, rule);
        })
        .await;
        let (first, _) = env.account(false, 0);
        let (second, _) = env.account(false, 1);
        let (contractor, _) = env.account(true, 0);
        for account in [&first, &second, &contractor] {
            env.remove_like_a_sweep(account).await;
        }
        // Without a justification the rule denies, saying why.
        let (status, _) = webhook(
            &env,
            "wh-1",
            &json!({ "accountId": first, "product": "jira-software" }),
        )
        .await;
        assert_eq!(status, 202);
        // With one it restores.
        let (_, accepted) = webhook(
            &env,
            "wh-2",
            &json!({ "accountId": second, "product": "jira-software", "justification": "  on call <b>this week</b> " }),
        )
        .await;
        let second_id = accepted["requestId"].as_str().unwrap().to_string();
        // The automation channel carries one too; the contractor's goes to an admin.
        let response = env
            .app
            .client
            .post(env.app.url("/hooks/automation"))
            .header("content-type", "application/json")
            .header("X-Reseat-Token", reseat::demo::DEMO_AUTOMATION_SECRET)
            .body(json!({ "accountId": contractor, "product": "jira-software", "justification": "assigned SUP-7 & SUP-8" }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        env.app.drain_queue().await;

        assert!(!env.has_jira(&first), "{backend}");
        let denied = store::by_key(&env.app.state.db, "webhook:wh-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(denied.status, "denied", "{backend}");
        assert_eq!(
            denied.message.as_deref(),
            Some(reseat::restore::rules::JUSTIFICATION_NEEDED)
        );
        assert!(
            denied.verdict.unwrap().contains("FAIL justification given"),
            "{backend}"
        );
        assert!(env.has_jira(&second), "{backend}");
        let restored = store::get(&env.app.state.db, &second_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(restored.status, "restored");
        assert_eq!(
            restored.justification.as_deref(),
            Some("on call <b>this week</b>")
        );
        let audited = env
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.received' AND details LIKE '%on call <b>this week</b>%'")
            .await;
        assert_eq!(audited, 1, "{backend}: the justification is audited");

        // The API and the admin page show it (escaped).
        let api: Value = env
            .app
            .client
            .get(env.app.url(&format!("/api/v1/requests/{second_id}")))
            .bearer_auth(reseat::demo::DEMO_API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            api["justification"], "on call <b>this week</b>",
            "{backend}: {api}"
        );
        let page = admin_page(&env, "/admin/requests").await;
        assert!(
            page.contains("assigned SUP-7 &amp; SUP-8")
                || page.contains("assigned SUP-7 &#38; SUP-8"),
            "{backend}: the pending request shows its justification"
        );
        assert!(
            page.contains("&lt;b&gt;this week&lt;/b&gt;") || page.contains("&#60;b&#62;this week"),
            "{backend}"
        );
        assert!(!page.contains("<b>this week</b>"), "{backend}: escaped");
        // The OpenAPI document describes the field.
        let doc: Value = env
            .app
            .client
            .get(env.app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            doc["components"]["schemas"]["Request"]["properties"]["justification"].is_object(),
            "{backend}"
        );
    }
}
