//! App access as roles: a Jira seat held each way (default group, direct role, both,
//! inferred, IdP-synced group, IdP-managed account) is explained by the plan, freed where
//! reseat can, reported `still_billed` where it cannot, and given back exactly by a restore.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use reseat::sim::roles::{AccessWays, ROLE_ADMIN, ROLE_USER, RoleView};
use reseat::sim::{Product, SimConfig, SimHandle};
use reseat::sweep::roles::Billing;
use reseat::sweep::store::{self, PlanItem};
use reseat::sweep::{ApplyOptions, Source};
use serde_json::json;

use crate::support::{TestApp, TestDb, cookie_of, spawn_configured};

const TOKEN: &str = "test-api-token-0123456789";
const PASSWORD: &str = "correct horse battery staple";

struct Env {
    sim: SimHandle,
    app: TestApp,
    ways: AccessWays,
    _dir: tempfile::TempDir,
}

async fn env(db: TestDb) -> Env {
    env_with(db, |_| {}).await
}

async fn env_with(db: TestDb, adjust: impl FnOnce(&mut reseat::config::Config)) -> Env {
    let sim = reseat::sim::spawn(SimConfig {
        users: 60,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ways = sim.state().seed_access_ways(400).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = reseat::demo::config_for(&sim, dir.path());
    config.queue.workers = 0;
    config.queue.backoff_base = Duration::from_millis(5);
    config.queue.backoff_max = Duration::from_millis(50);
    config.atlassian.retry.base_delay = Duration::from_millis(5);
    config.atlassian.retry.max_delay = Duration::from_millis(50);
    for family in [
        &mut config.atlassian.admin,
        &mut config.atlassian.jira,
        &mut config.atlassian.jsm,
        &mut config.atlassian.confluence,
    ] {
        family.requests_per_second = 1000;
        family.concurrency = 8;
    }
    config.admin.api_tokens = vec![reseat::web::config::ApiToken {
        name: "ci".into(),
        token_sha256: reseat::web::config::hash_token(TOKEN),
        role: None,
        sites: Vec::new(),
        products: Vec::new(),
    }];
    config.admin.users = vec![crate::support::admin_user("ana", PASSWORD, None)];
    config.sweep.limits.max_removal_percent = 100.0;
    config.sweep.limits.max_inactive_percent = 100.0;
    adjust(&mut config);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    Env {
        sim,
        app,
        ways,
        _dir: dir,
    }
}

impl Env {
    fn accounts(&self) -> [(&'static str, String); 6] {
        let w = &self.ways;
        [
            ("default group", w.default_group.clone()),
            ("direct role", w.direct_role.clone()),
            ("both", w.both.clone()),
            ("inferred", w.inferred.clone()),
            ("IdP group", w.idp_group.clone()),
            ("IdP account", w.idp_account.clone()),
        ]
    }

    fn item<'a>(&self, items: &'a [PlanItem], account: &str) -> &'a PlanItem {
        items
            .iter()
            .find(|i| i.account_id == account && i.product == "jira-software")
            .unwrap_or_else(|| panic!("no Jira item for {account}"))
    }

    async fn removal_emails(&self, account: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM email_outbox WHERE account_id = $1 AND template = 'removal'",
        )
        .bind(account)
        .fetch_one(self.app.state.db.pool())
        .await
        .unwrap()
    }

    fn groups(&self, account: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .sim
            .state()
            .user(account)
            .unwrap()
            .groups
            .into_iter()
            .map(|g| g.name)
            .collect();
        names.sort();
        names
    }

    /// A signed-in admin's session cookie.
    async fn admin_cookie(&self) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http.get(self.app.url("/admin/login")).send().await.unwrap();
        let cookie = cookie_of(&page, "reseat_admin_login");
        let text = page.text().await.unwrap();
        let start = text.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &text[start..start + text[start..].find('"').unwrap()];
        let response = http
            .post(self.app.url("/admin/login"))
            .header("cookie", cookie)
            .form(&[("csrf", csrf), ("name", "ana"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        cookie_of(&response, "reseat_admin")
    }

    async fn page(&self, path: &str, cookie: &str) -> String {
        let response = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }

    fn roles(&self, account: &str) -> Vec<RoleView> {
        self.sim.state().roles_of(account).unwrap()
    }
}

fn role(product: Product, role: &str, methods: &[&str]) -> RoleView {
    RoleView {
        product,
        role: role.to_owned(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
    }
}

#[tokio::test]
async fn each_way_a_jira_seat_is_held_is_explained_freed_or_still_billed_and_restored_exactly() {
    for db in TestDb::all().await {
        let env = env(db).await;
        let state = &env.app.state;
        let jsw = Product::JiraSoftware;
        for (way, account) in env.accounts() {
            assert!(
                env.sim.state().holds_seat(&account, jsw),
                "{way} holds a seat"
            );
        }
        let seats_before = env.sim.state().user_count(jsw);
        let before: BTreeMap<String, (Vec<String>, Vec<RoleView>)> = env
            .accounts()
            .iter()
            .map(|(_, a)| (a.clone(), (env.groups(a), env.roles(a))))
            .collect();

        // The plan: every way is a removal candidate, and says why the seat bills.
        let planned = reseat::sweep::plan(
            state,
            &[Source::Api],
            Utc::now(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .unwrap();
        let items = store::items(&state.db, &planned.plan_id).await.unwrap();
        let removals = items.iter().filter(|i| i.decision == "remove").count() as u64;
        let stats = planned.summary.roles.clone().expect("roles were checked");
        assert_eq!(
            stats.role_reads, removals,
            "one role read per removal candidate"
        );
        assert!(stats.holder_pages >= 3, "{stats:?}");
        let w = &env.ways;
        let explain = |account: &str| {
            let item = env.item(&items, account);
            assert_eq!(item.decision, "remove", "{item:?}");
            let billing = Billing::parse(&item.billing);
            assert!(billing.checked, "{item:?}");
            (billing.explain(), billing.blockers())
        };
        let (text, blockers) = explain(&w.default_group);
        assert_eq!(
            text,
            "group jira-software-users; role atlassian/user (group_direct)"
        );
        assert!(blockers.is_empty());
        let (text, blockers) = explain(&w.direct_role);
        assert_eq!(text, "role atlassian/user (direct)");
        assert!(blockers.is_empty());
        let (text, blockers) = explain(&w.both);
        assert_eq!(
            text,
            "group jira-software-users; role atlassian/user (direct, group_direct)"
        );
        assert!(blockers.is_empty());
        let (text, blockers) = explain(&w.inferred);
        assert_eq!(text, "role atlassian/admin (inferred)");
        assert!(
            blockers[0].contains("inferred from an admin role"),
            "{blockers:?}"
        );
        let (text, blockers) = explain(&w.idp_group);
        assert!(
            text.contains("okta-jira-users (synced from the identity provider)"),
            "{text}"
        );
        assert!(
            blockers[0].contains("remove the user from it there"),
            "{blockers:?}"
        );
        let (text, blockers) = explain(&w.idp_account);
        assert!(
            text.contains("account managed by the identity provider"),
            "{text}"
        );
        assert!(!blockers.is_empty());

        // Apply: frees what it can, reports the rest.
        let report = reseat::sweep::apply(
            state,
            Some(&planned.plan_id),
            &ApplyOptions {
                confirmed: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(report.failed, 0, "{report:?}");
        assert_eq!(report.still_billed, 3, "{report:?}");
        assert_eq!(report.revoked_roles, 2, "{report:?}");
        let items = store::items(&state.db, &planned.plan_id).await.unwrap();
        for (way, account) in env.accounts() {
            let item = env.item(&items, &account);
            let freed = [&w.default_group, &w.direct_role, &w.both].contains(&&account);
            let emails = env.removal_emails(&account).await;
            if freed {
                assert_eq!(item.state, "done", "{way}: {item:?}");
                assert!(!env.sim.state().holds_seat(&account, jsw), "{way} freed");
                assert_eq!(emails, 1, "{way}: told once");
            } else {
                assert_eq!(item.state, "still_billed", "{way}: {item:?}");
                assert!(env.sim.state().holds_seat(&account, jsw), "{way} billed");
                assert_eq!(emails, 0, "{way}: not told \"removed\"");
                // Nothing was taken from a seat reseat could not free.
                assert_eq!(before[&account].0, env.groups(&account), "{way}");
                assert_eq!(before[&account].1, env.roles(&account), "{way}");
            }
        }
        let outcome = |account: &str| env.item(&items, account).outcome.clone().unwrap();
        assert!(outcome(&w.inferred).contains("atlassian/admin is inferred"));
        assert!(outcome(&w.idp_group).contains("synced from your identity provider"));
        assert!(outcome(&w.idp_account).contains("managed by your identity provider"));
        assert!(outcome(&w.both).contains("revoked role atlassian/user"));
        assert_eq!(
            env.sim.state().user_count(jsw),
            seats_before
                - items
                    .iter()
                    .filter(|i| i.product == "jira-software" && i.state == "done")
                    .count() as u32,
            "the seat count follows the roles"
        );
        // The one count of reclaimed seats counts the freed seats, direct roles included,
        // and none still billed.
        let mut conn = state.db.pool().acquire().await.unwrap();
        let reclaimed: Vec<String> = reseat::ledger::journal::reclaimed_seats(&mut conn, 0)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.product == "jira-software")
            .map(|s| s.account_id)
            .collect();
        drop(conn);
        for (way, account) in env.accounts() {
            let freed = [&w.default_group, &w.direct_role, &w.both].contains(&&account);
            assert_eq!(reclaimed.contains(&account), freed, "{way}");
        }

        // The API, the plan page, the overview and the CSV show the seats still billed.
        let api: serde_json::Value = env
            .app
            .client
            .get(env.app.url(&format!(
                "/api/v1/plans/{}/items?product=jira-software&decision=remove&limit=500",
                planned.plan_id
            )))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entry = api["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["account_id"] == w.idp_group.as_str())
            .unwrap();
        assert_eq!(entry["state"], "still_billed", "{entry}");
        assert_eq!(
            entry["billing"]["groups"][0]["modifiable"], false,
            "{entry}"
        );
        assert!(
            entry["bills_through"]
                .as_str()
                .unwrap()
                .contains("okta-jira-users")
        );
        let cookie = env.admin_cookie().await;
        let page = env
            .page(&format!("/admin/plans/{}", planned.plan_id), &cookie)
            .await;
        assert!(
            page.contains("<strong>3</strong> seats are still billed"),
            "{page}"
        );
        assert!(page.contains("role atlassian/user (direct, group_direct)"));
        let overview = env.page("/admin", &cookie).await;
        assert!(overview.contains("<strong>3</strong> seats are still billed"));
        let csv = env
            .page(
                &format!("/admin/plans/{}/still-billed.csv", planned.plan_id),
                &cookie,
            )
            .await;
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert!(lines[0].starts_with("account_id,email,display_name,product,bills_through"));
        for account in [&w.inferred, &w.idp_group, &w.idp_account] {
            assert!(
                lines.iter().any(|l| l.starts_with(account.as_str())),
                "{csv}"
            );
        }
        assert!(csv.contains("synced from your identity provider: remove the user from it there"));

        // Roles were journaled as roles.
        let history = reseat::ledger::roles::history(&state.db, &w.both)
            .await
            .unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(
            (history[0].2.as_str(), history[0].3.as_str()),
            (ROLE_USER, "revoked")
        );

        // A restore gives back exactly the groups and roles taken.
        for account in [&w.both, &w.default_group, &w.direct_role] {
            let body = json!({ "accountId": account, "product": "jira-software" }).to_string();
            let response = env
                .app
                .client
                .post(env.app.url("/hooks/automation"))
                .header("content-type", "application/json")
                .header("X-Reseat-Token", reseat::demo::DEMO_AUTOMATION_SECRET)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 202);
            assert!(env.app.drain_queue().await >= 1);
            assert_eq!(env.groups(account), before[account].0, "groups back");
            assert_eq!(env.roles(account), before[account].1, "roles back");
        }
        assert_eq!(
            env.roles(&w.both),
            vec![role(jsw, ROLE_USER, &["direct", "group_direct"])]
        );
        assert_eq!(
            env.roles(&w.direct_role),
            vec![role(jsw, ROLE_USER, &["direct"])],
            "a seat held by a direct role only comes back too"
        );
        assert_eq!(
            env.roles(&w.inferred),
            vec![role(jsw, ROLE_ADMIN, &["inferred"])]
        );
        let history = reseat::ledger::roles::history(&state.db, &w.both)
            .await
            .unwrap();
        assert_eq!(history.last().unwrap().3, "restored", "{history:?}");
        env.sim.shutdown().await;
    }
}

#[tokio::test]
async fn idp_managed_groups_and_accounts_refuse_membership_changes() {
    let sim = reseat::sim::spawn(SimConfig {
        users: 20,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ways = sim.state().seed_access_ways(400).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = reseat::demo::config_for(&sim, dir.path());
    let clients = reseat::atlassian::AtlassianClients::new(&config.atlassian).unwrap();
    let jira = clients.jira.as_ref().unwrap();
    let group = sim.state().group(&ways.idp_group_name).unwrap();
    let gid = reseat::atlassian::GroupId::parse(group.id).unwrap();
    let account = reseat::atlassian::AccountId::parse(ways.idp_group.clone()).unwrap();
    let error = jira.remove_from_group(&gid, &account).await.unwrap_err();
    assert!(error.to_string().contains("identity provider"), "{error}");
    let jsw = sim.state().group("jira-software-users").unwrap();
    let jsw = reseat::atlassian::GroupId::parse(jsw.id).unwrap();
    let synced = reseat::atlassian::AccountId::parse(ways.idp_account.clone()).unwrap();
    let error = jira.remove_from_group(&jsw, &synced).await.unwrap_err();
    assert!(error.to_string().contains("identity provider"), "{error}");
    assert!(
        sim.state()
            .holds_seat(&ways.idp_group, Product::JiraSoftware)
    );
    assert!(
        sim.state()
            .holds_seat(&ways.idp_account, Product::JiraSoftware)
    );

    // The admin API reports the group as not modifiable and the account as synced.
    let admin = clients.admin.as_ref().unwrap();
    let org = clients.org_id.as_ref().unwrap();
    let details = admin
        .group_details(org, "-", group_id(&sim, &ways.idp_group_name).as_str())
        .await
        .unwrap();
    assert!(!details.modifiable());
    // A revoke touches direct roles only: the inferred role stays, and the seat with it.
    let inferred = reseat::atlassian::AccountId::parse(ways.inferred.clone()).unwrap();
    let resource = reseat::sweep::roles::resource_of(
        &reseat::atlassian::ProductKey::JIRA_SOFTWARE,
        &sim.config().cloud_id,
    )
    .unwrap();
    admin
        .revoke_role(org, &inferred, ROLE_ADMIN, &resource)
        .await
        .unwrap();
    assert!(
        sim.state()
            .holds_seat(&ways.inferred, Product::JiraSoftware)
    );
    let read = admin
        .user_role_assignments(org, "-", &inferred, Some(&resource))
        .await
        .unwrap();
    let roles = reseat::sweep::roles::billable_roles(&read, &resource);
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].methods, ["inferred"]);
    // A direct grant and revoke change the seat count.
    let count = sim.state().user_count(Product::JiraSoftware);
    admin
        .assign_role(org, &synced, ROLE_ADMIN, &resource)
        .await
        .unwrap();
    assert_eq!(sim.state().user_count(Product::JiraSoftware), count);
    let fresh = sim
        .state()
        .create_user(reseat::sim::NewUser {
            name: "New".into(),
            email: None,
            account_id: None,
            account_type: None,
            account_status: None,
            managed: None,
            added_to_org: None,
            groups: vec![],
            synced: None,
        })
        .unwrap();
    let fresh = reseat::atlassian::AccountId::parse(fresh.account_id).unwrap();
    admin
        .assign_role(org, &fresh, ROLE_USER, &resource)
        .await
        .unwrap();
    assert_eq!(sim.state().user_count(Product::JiraSoftware), count + 1);
    admin
        .revoke_role(org, &fresh, ROLE_USER, &resource)
        .await
        .unwrap();
    assert_eq!(sim.state().user_count(Product::JiraSoftware), count);
    sim.shutdown().await;
}

fn group_id(sim: &SimHandle, name: &str) -> String {
    sim.state().group(name).unwrap().id
}

#[tokio::test]
async fn the_read_back_waits_out_eventual_consistency_within_the_window_only() {
    for (window, freed) in [(Duration::from_secs(20), true), (Duration::ZERO, false)] {
        for db in TestDb::all().await {
            let env = env_with(db, |config| config.sweep.verify_window = window).await;
            let state = &env.app.state;
            let planned = reseat::sweep::plan(
                state,
                &[Source::Api],
                Utc::now(),
                &indicatif::ProgressBar::hidden(),
            )
            .await
            .unwrap();
            // Changes show 1.2 s after Atlassian accepted them (scaled down from the
            // documented 30 s).
            env.sim
                .state()
                .set_faults(reseat::sim::FaultPatch {
                    consistency_ms: Some(1_200),
                    ..reseat::sim::FaultPatch::default()
                })
                .unwrap();
            let report = reseat::sweep::apply(
                state,
                Some(&planned.plan_id),
                &ApplyOptions {
                    confirmed: true,
                    ..ApplyOptions::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(report.failed, 0, "{report:?}");
            let items = store::items(&state.db, &planned.plan_id).await.unwrap();
            let w = &env.ways;
            for account in [&w.default_group, &w.direct_role, &w.both] {
                let item = env.item(&items, account);
                let emails = env.removal_emails(account).await;
                if freed {
                    assert_eq!(item.state, "done", "{item:?}");
                    assert_eq!(emails, 1);
                } else {
                    // Past the window the seat still shows: reported, never "removed".
                    assert_eq!(item.state, "still_billed", "{item:?}");
                    assert!(
                        item.outcome
                            .as_deref()
                            .unwrap()
                            .contains("still shows after the removal"),
                        "{item:?}"
                    );
                    assert_eq!(emails, 0);
                }
            }
            env.sim.state().settle();
            for account in [&w.default_group, &w.direct_role, &w.both] {
                assert!(!env.sim.state().holds_seat(account, Product::JiraSoftware));
            }
            env.sim.shutdown().await;
        }
    }
}
