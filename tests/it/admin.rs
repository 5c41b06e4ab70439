//! The admin pages: every route refuses a request without a session, every form one without
//! the right CSRF token (and changes nothing); sign-in works, fails and is rate-limited;
//! and, in headless Chromium, the whole loop an admin clicks through.

use std::time::Duration;

use reqwest::redirect::Policy;
use reseat::config::Config;
use reseat::ledger::JournalEntry;
use reseat::restore::store as restore_store;
use reseat::sim::model::Product;
use reseat::sim::seed;
use reseat::sim::{NewRequest as SimRequest, SimConfig, SimHandle};
use reseat::sweep::Source;
use reseat::web::admin::ROUTES;
use reseat::web::config::AdminUser;
use serde_json::json;

use crate::support::{TestApp, TestDb, spawn_configured};

const PASSWORD: &str = "correct horse battery staple";
const XSS: &str = "<img src=x onerror=alert(1)>";

struct Env {
    sim: SimHandle,
    app: TestApp,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn env_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Env {
    let sim = reseat::sim::spawn(SimConfig {
        users: 150,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = reseat::demo::config_for(&sim, dir.path());
    config.queue.workers = 0;
    config.atlassian.retry.base_delay = Duration::from_millis(5);
    config.atlassian.retry.max_delay = Duration::from_millis(50);
    config.admin.users = vec![crate::support::admin_user("ana", PASSWORD, None)];
    adjust(&mut config);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Env {
        sim,
        app,
        http,
        _dir: dir,
    }
}

/// The value of `name="csrf"` in a page.
fn hidden_csrf(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

/// `name=value` of a Set-Cookie header with this name.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// A signed-in admin: the session cookie and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Env {
    async fn login_attempt(&self, name: &str, password: &str) -> reqwest::Response {
        let page = self
            .http
            .get(self.app.url("/admin/login"))
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(&page, "reseat_admin_login").unwrap();
        let csrf = hidden_csrf(&page.text().await.unwrap());
        self.http
            .post(self.app.url("/admin/login"))
            .header("cookie", cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A sign-in attempt as if from `client`, through a proxy that says so in
    /// `X-Forwarded-For`.
    async fn login_attempt_from(
        &self,
        client: &str,
        name: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = self
            .http
            .get(self.app.url("/admin/login"))
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(&page, "reseat_admin_login").unwrap();
        let csrf = hidden_csrf(&page.text().await.unwrap());
        self.http
            .post(self.app.url("/admin/login"))
            .header("cookie", cookie)
            .header("x-forwarded-for", client)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn login(&self) -> Session {
        self.login_as("ana").await
    }

    async fn login_as(&self, name: &str) -> Session {
        let response = self.login_attempt(name, PASSWORD).await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/admin");
        let raw = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|v| v.starts_with("reseat_admin="))
            .unwrap();
        assert!(
            raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
            "{raw}"
        );
        let cookie = raw.split(';').next().unwrap().to_string();
        let page = self.get("/admin", Some(&cookie)).await;
        assert_eq!(page.status(), 200);
        let csrf = hidden_csrf(&page.text().await.unwrap());
        Session { cookie, csrf }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.app.url(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.app.state.db.pool())
            .await
            .unwrap()
    }

    /// A stored plan against the simulator.
    async fn plan(&self) -> String {
        reseat::sweep::plan(
            &self.app.state,
            &[Source::Api],
            chrono::Utc::now(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .unwrap()
        .plan_id
    }

    /// A contractor whose Jira access a sweep removed asks for it back; the rules want an
    /// admin, so the request waits as `pending`. Returns (request id, account).
    async fn pending_request(&self) -> (String, String) {
        let account = self
            .sim
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
            .unwrap();
        let user = self.sim.state().user(&account).unwrap();
        let mut conn = self.app.state.db.pool().acquire().await.unwrap();
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
                &mut conn,
                self.app.state.db.now_ms(),
                &JournalEntry {
                    account_id: &account,
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
            self.sim.state().remove_member(&group.id, &account).unwrap();
        }
        drop(conn);
        let issue = self
            .sim
            .state()
            .create_request(SimRequest {
                reporter: account.clone(),
                request_type_id: None,
                summary: None,
                description: None,
                product: Some(Product::JiraSoftware),
                justification: None,
            })
            .unwrap()
            .key;
        let response = self
            .http
            .post(self.app.url("/hooks/jsm"))
            .header("X-Reseat-Token", reseat::demo::DEMO_JSM_SECRET)
            .json(&json!({ "issueKey": issue }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        let id = body["requestId"].as_str().unwrap().to_string();
        self.app.drain_queue().await;
        assert_eq!(self.request_status(&id).await, "pending");
        (id, account)
    }

    async fn request_status(&self, id: &str) -> String {
        restore_store::get(&self.app.state.db, id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    fn has_jira(&self, account: &str) -> bool {
        self.sim
            .state()
            .user(account)
            .unwrap()
            .products
            .contains(&Product::JiraSoftware)
    }
}

/// A route's path with its parameters filled in.
fn concrete(path: &str, plan: &str, request: &str, token: &str, account: &str) -> String {
    let path = if path.starts_with("/admin/plans") {
        path.replace("{id}", plan)
    } else {
        path.replace("{id}", request)
    };
    path.replace("{token}", token).replace("{account}", account)
}

/// A multipart body with only a file (no CSRF field), as a browser would send it.
fn multipart_without_csrf() -> (String, Vec<u8>) {
    let boundary = "reseatboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\nContent-Type: text/csv\r\n\r\nUser id,email\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test]
async fn every_page_needs_a_session_and_every_form_the_csrf_token() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        let (request, account) = env.pending_request().await;
        let plan = env.plan().await;
        let link = reseat::web::admin::auth::create_login_link(&env.app.state, "ana")
            .await
            .unwrap();
        let token = link.rsplit('/').next().unwrap().to_string();
        let session = env.login().await;
        // One import, for its progress page.
        let file = env._dir.path().join("export.csv");
        crate::sweep::export_csv(&env.sim, &file);
        let (status, page) = upload(&env, &session, &std::fs::read(&file).unwrap()).await;
        assert_eq!(status, 200, "{backend}: {page}");
        let import: String = sqlx::query_scalar("SELECT id FROM imports")
            .fetch_one(env.app.state.db.pool())
            .await
            .unwrap();
        let state_sql = [
            "SELECT COUNT(*) FROM plan_items WHERE excluded <> 0",
            "SELECT COUNT(*) FROM plans WHERE status <> 'planned'",
            "SELECT COUNT(*) FROM plans",
            "SELECT COUNT(*) FROM restore_requests WHERE status <> 'pending'",
            "SELECT COUNT(*) FROM admin_sessions",
            "SELECT COUNT(*) FROM admin_login_links WHERE used_at IS NOT NULL",
            "SELECT COUNT(*) FROM journal",
        ];
        let mut before = Vec::new();
        for sql in state_sql {
            before.push(env.count(sql).await);
        }
        assert!(ROUTES.len() >= 20, "the route table lists every page");
        for route in ROUTES {
            let path = if route.path == "/admin/import/{id}" {
                format!("/admin/import/{import}")
            } else {
                concrete(route.path, &plan, &request, &token, &account)
            };
            let method = route.method.clone();
            // No session at all.
            if !route.public {
                let response = env
                    .http
                    .request(method.clone(), env.app.url(&path))
                    .form(&[("csrf", session.csrf.as_str())])
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                if method == reqwest::Method::GET {
                    assert_eq!(status, 303, "{backend}: GET {path} without a session");
                    let location = response.headers()["location"].to_str().unwrap();
                    assert!(
                        location == "/admin/login" || location.starts_with("/admin/login?next=%2F"),
                        "{backend}: GET {path} goes to the sign-in page: {location}"
                    );
                } else {
                    assert_eq!(status, 401, "{backend}: {method} {path} without a session");
                }
            }
            if route.changes {
                // Signed in, but without the token, then with a wrong one.
                for csrf in [None, Some("wrong-token")] {
                    let mut request = env
                        .http
                        .request(method.clone(), env.app.url(&path))
                        .header("cookie", &session.cookie);
                    if path == "/admin/import" {
                        let (content_type, body) = multipart_without_csrf();
                        request = request.header("content-type", content_type).body(body);
                    } else {
                        let mut form = vec![
                            ("name", "ana"),
                            ("password", PASSWORD),
                            ("action", "exclude"),
                            ("item", "1"),
                            ("reason", "no"),
                        ];
                        form.extend(csrf.map(|c| ("csrf", c)));
                        request = request.form(&form);
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(
                        response.status().as_u16(),
                        403,
                        "{backend}: {method} {path} with csrf {csrf:?}"
                    );
                }
            } else if !route.public {
                // Every page renders for a signed-in admin.
                let response = env.get(&path, Some(&session.cookie)).await;
                let headers = response.headers().clone();
                if route.path.contains("/decide/") {
                    // `{token}` here is a restore link's, not a decision link: refused as
                    // a link (the Teams tests open real decision links).
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap();
                    assert!(
                        status == 403 && body.contains("This decision link cannot be used"),
                        "{backend}: GET {path}: {status}"
                    );
                    continue;
                }
                assert_eq!(response.status().as_u16(), 200, "{backend}: GET {path}");
                assert_eq!(headers["cache-control"], "no-store", "{path}");
                assert!(
                    headers["content-security-policy"]
                        .to_str()
                        .unwrap()
                        .contains("default-src 'none'"),
                    "{path}"
                );
            }
        }
        for (sql, was) in state_sql.iter().zip(&before) {
            assert_eq!(env.count(sql).await, *was, "{backend}: {sql} changed");
        }
        // The same forms with the token do work (so the refusals above were the token's).
        let response = env
            .http
            .post(env.app.url(&format!("/admin/requests/{request}/deny")))
            .header("cookie", &session.cookie)
            .form(&[("csrf", session.csrf.as_str()), ("reason", "Not now.")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{backend}");
        assert_eq!(env.request_status(&request).await, "denied");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.denied' AND actor = 'admin:ana'")
                .await,
            1
        );
        // The audit export has the entry.
        let csv = env
            .get("/admin/audit.csv?actor=admin:ana", Some(&session.cookie))
            .await
            .text()
            .await
            .unwrap();
        assert!(csv.starts_with("id,at,actor,action"), "{csv}");
        assert!(csv.contains("restore.denied"), "{csv}");
        // Signing out ends the session.
        let response = env
            .http
            .post(env.app.url("/admin/logout"))
            .header("cookie", &session.cookie)
            .form(&[("csrf", session.csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(env.get("/admin", Some(&session.cookie)).await.status(), 303);
    }
}

#[tokio::test]
async fn sign_in_works_fails_and_is_rate_limited() {
    for db in TestDb::all().await {
        let env = env_with(db, |config| config.admin.login_attempts_per_minute = 3).await;
        // Right password: a session.
        env.login().await;
        // Wrong password, unknown user: 401 and audited.
        let response = env.login_attempt("ana", "wrong").await;
        assert_eq!(response.status(), 401);
        assert!(set_cookie(&response, "reseat_admin").is_none());
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Wrong name or password")
        );
        assert_eq!(env.login_attempt("nobody", PASSWORD).await.status(), 401);
        assert_eq!(
            env.count(
                "SELECT CAST(SUM(count) AS BIGINT) FROM audit_refusals WHERE action = 'admin.login_failed'"
            )
            .await,
            2
        );
        // Three attempts a minute from this address: the fourth is refused, right
        // password or not.
        let response = env.login_attempt("ana", PASSWORD).await;
        assert_eq!(response.status(), 429);
        assert!(set_cookie(&response, "reseat_admin").is_none());
        assert_eq!(response.headers()["retry-after"], "60");

        // A login link shows a button on GET, signs in once on POST.
        let link = reseat::web::admin::auth::create_login_link(&env.app.state, "ana")
            .await
            .unwrap();
        let path = link
            .split_once("/admin/")
            .map(|(_, p)| format!("/admin/{p}"))
            .unwrap();
        let page = env.get(&path, None).await;
        assert_eq!(page.status(), 200);
        let cookie = set_cookie(&page, "reseat_admin_login").unwrap();
        let csrf = hidden_csrf(&page.text().await.unwrap());
        assert_eq!(
            env.count("SELECT COUNT(*) FROM admin_login_links WHERE used_at IS NULL")
                .await,
            1,
            "GET uses nothing"
        );
        let use_link = || {
            env.http
                .post(env.app.url(&path))
                .header("cookie", &cookie)
                .form(&[("csrf", csrf.as_str())])
                .send()
        };
        let response = use_link().await.unwrap();
        assert_eq!(response.status(), 303);
        assert!(set_cookie(&response, "reseat_admin").is_some());
        assert_eq!(use_link().await.unwrap().status(), 410, "a link works once");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'admin.login' AND actor = 'admin:ana'")
                .await,
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_clicks_through_in_a_real_browser() {
    let Some(chromium) = crate::browser::chromium() else {
        assert!(
            std::env::var("RESEAT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "RESEAT_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)"
        );
        crate::support::say_skipped(
            "the headless-browser test of the admin pages",
            "chromium is not installed; apt-get install chromium to run it \
             (RESEAT_REQUIRE_BROWSER=1 makes its absence a failure)",
        );
        return;
    };
    // Remove at once (no warning first), so one plan shows removals.
    let env = env_with(TestDb::sqlite(), |config| {
        config.sweep.ladder.warn = false;
        config.sweep.limits.max_removal_percent = 100.0;
        config.sweep.limits.max_inactive_percent = 100.0;
        // Prices, so that the overview shows the savings.
        config.billing = toml::from_str(
            "renewal = \"2027-03-01\"\n\
             [[prices]]\nproduct = \"jira\"\nprice = \"9.30\"\ncurrency = \"USD\"\ncycle = \"monthly\"\n\
             [[prices]]\nproduct = \"confluence\"\nprice = \"73.00\"\ncurrency = \"USD\"\ncycle = \"annual\"\n",
        )
        .unwrap();
    })
    .await;
    // The README's screenshots are refreshed on request; otherwise they go to a temp dir.
    let temp_shots = tempfile::tempdir().unwrap();
    let shots = if std::env::var("RESEAT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        crate::support::repo_root().join("docs/screenshots")
    } else {
        temp_shots.path().to_path_buf()
    };
    let (request, contractor) = env.pending_request().await;
    assert!(!env.has_jira(&contractor));
    let plan = env.plan().await;
    // Two users the plan removes from Jira Software: one the admin keeps, one who goes.
    // The second's name, as Atlassian reports it, is an attack on the page.
    let removals: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, account_id FROM plan_items WHERE plan_id = $1 AND decision = 'remove' \
         AND product = 'jira-software' ORDER BY id",
    )
    .bind(&plan)
    .fetch_all(env.app.state.db.pool())
    .await
    .unwrap();
    assert!(removals.len() >= 2, "the sample org has idle Jira users");
    let (kept_item, kept) = removals[0].clone();
    let (_, removed) = removals[1].clone();
    assert!(env.has_jira(&kept) && env.has_jira(&removed));
    sqlx::query("UPDATE plan_items SET display_name = $1 WHERE plan_id = $2 AND account_id = $3")
        .bind(XSS)
        .bind(&plan)
        .bind(&removed)
        .execute(env.app.state.db.pool())
        .await
        .unwrap();

    let mut browser = crate::browser::Browser::launch(&chromium).await;
    let base = env.app.url("");
    // A first visit starts at the landing page and follows its link to the admin pages,
    // which ask to sign in.
    browser.goto(&format!("{base}/")).await;
    let text = browser.text().await;
    assert!(text.contains("Admin pages"), "{text}");
    browser.screenshot(&shots.join("landing.png")).await;
    browser.click_and_wait("a[href='/admin']").await;
    assert!(browser.url().await.ends_with("/admin/login"));
    browser.screenshot(&shots.join("login.png")).await;
    browser.fill("#name", "ana").await;
    browser.fill("#password", PASSWORD).await;
    browser.click_and_wait("form button[type=submit]").await;
    assert!(
        browser.url().await.ends_with("/admin"),
        "{}",
        browser.url().await
    );
    let text = browser.text().await;
    assert!(
        text.contains("Seats per product")
            && text.contains("Restore requests")
            && text.contains("saved to date"),
        "{text}"
    );
    browser.screenshot(&shots.join("overview.png")).await;

    // Approve the pending request, reached through the menu: the access is back in Atlassian.
    browser
        .click_and_wait("nav a[href='/admin/requests']")
        .await;
    assert!(browser.url().await.ends_with("/admin/requests"));
    browser.screenshot(&shots.join("requests.png")).await;
    browser
        .click_and_wait(&format!(
            "form[action='/admin/requests/{request}/approve'] button"
        ))
        .await;
    let text = browser.text().await;
    assert!(text.contains("is now restored"), "{text}");
    assert_eq!(env.request_status(&request).await, "restored");
    assert!(env.has_jira(&contractor), "access is back");

    // Open the plan, exclude one user, and see the attack shown as text.
    browser
        .goto(&format!(
            "{base}/admin/plans/{plan}?decision=remove&product=jira-software"
        ))
        .await;
    let text = browser.text().await;
    assert!(text.contains(XSS), "the name shows as text");
    assert_eq!(
        browser
            .eval("document.querySelectorAll('img').length")
            .await,
        json!(0)
    );
    browser
        .eval(&format!(
            "document.querySelector('input[name=item][value=\"{kept_item}\"]').checked = true"
        ))
        .await;
    browser
        .click_and_wait("button[name=action][value=exclude]")
        .await;
    assert!(browser.text().await.contains("are excluded"));
    assert_eq!(
        browser
            .eval(&format!(
                "document.querySelector('#item-{kept_item}').className"
            ))
            .await,
        json!("excluded")
    );
    browser.screenshot(&shots.join("plan.png")).await;

    // Apply, confirming on the second page.
    browser
        .goto(&format!("{base}/admin/plans/{plan}/apply"))
        .await;
    assert!(
        browser
            .text()
            .await
            .to_lowercase()
            .contains("excluded (left alone)")
    );
    browser.screenshot(&shots.join("apply.png")).await;
    browser.click_and_wait("form button.danger").await;
    // The apply is a queued job: the page shows it queued, then its progress and outcome.
    let text = browser.text().await;
    assert!(text.contains("Apply: queued"), "{text}");
    env.app.drain_queue().await;
    let here = browser.eval("location.href").await;
    browser.goto(here.as_str().unwrap()).await;
    let text = browser.text().await;
    assert!(text.contains("Plan applied"), "{text}");
    assert!(
        !env.has_jira(&removed),
        "the planned user is removed in Atlassian"
    );
    assert!(env.has_jira(&kept), "the excluded user keeps access");

    // A removed member of staff opens the restore link of their removal notice: the page
    // asks first, and the button gives the access back.
    let notices: Vec<(String, String)> = sqlx::query_as(
        "SELECT dedupe_key, text_body FROM email_outbox WHERE template = 'removal' \
         AND dedupe_key LIKE '%:jira-software:%' AND to_addr LIKE $1 ORDER BY id",
    )
    .bind(format!("%@{}", reseat::sim::seed::MANAGED_DOMAIN))
    .fetch_all(env.app.state.db.pool())
    .await
    .unwrap();
    // Not the user whose page is looked at below.
    let (staff_account, notice) = notices
        .iter()
        .map(|(key, notice)| (key.split(':').nth(2).unwrap().to_string(), notice))
        .find(|(account, _)| *account != removed)
        .expect("a Jira removal notice to a member of staff");
    let link = notice
        .split_whitespace()
        .find(|word| word.contains("/restore/"))
        .expect("the notice carries a restore link");
    let path = &link[link.find("/restore/").unwrap()..];
    assert!(!env.has_jira(&staff_account));
    browser.goto(&format!("{base}{path}")).await;
    let text = browser.text().await;
    assert!(
        text.contains("Get your Jira access back") && text.contains("Restore my access"),
        "{text}"
    );
    assert!(
        !env.has_jira(&staff_account),
        "opening the link changes nothing"
    );
    browser.screenshot(&shots.join("restore.png")).await;
    browser.click_and_wait("form button[type=submit]").await;
    let text = browser.text().await;
    assert!(text.contains("Your Jira access is back"), "{text}");
    assert!(
        env.has_jira(&staff_account),
        "the access is back in Atlassian"
    );

    // The audit log names the admin; the user's page tells the story.
    browser
        .goto(&format!("{base}/admin/audit?actor=admin:ana"))
        .await;
    let text = browser.text().await;
    for action in [
        "plan.items_excluded",
        "plan.apply_requested",
        "restore.approved",
        "admin.login",
    ] {
        assert!(text.contains(action), "{action} in {text}");
    }
    // The README's audit screenshot: the admin's own entries, one line each at 1280 px.
    browser.screenshot(&shots.join("audit.png")).await;
    assert_eq!(
        browser
            .eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        json!(true),
        "the audit page fits the window's width"
    );
    browser.goto(&format!("{base}/admin/audit")).await;
    assert!(browser.text().await.contains("sweep.applied"));
    browser.goto(&format!("{base}/admin/users/{removed}")).await;
    let text = browser.text().await;
    assert!(
        text.contains(XSS) && text.contains("removed from group"),
        "{text}"
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('img').length")
            .await,
        json!(0)
    );
    browser.screenshot(&shots.join("user.png")).await;
    browser
        .goto(&format!(
            "{base}/admin/rules?account={contractor}&product=jira-software&channel=jsm"
        ))
        .await;
    assert!(browser.text().await.contains("decision:"));
    browser.screenshot(&shots.join("rules.png")).await;

    // Three weeks later (the session has expired: sign in again) the seats freed by the
    // apply have saved money, and the overview says so.
    env.app.advance(Duration::from_secs(21 * 86_400));
    browser.click_and_wait("nav a[href='/admin']").await;
    assert!(browser.url().await.ends_with("/admin/login"));
    browser.fill("#name", "ana").await;
    browser.fill("#password", PASSWORD).await;
    browser.click_and_wait("form button[type=submit]").await;
    let text = browser.text().await;
    assert!(text.contains("saved to date"), "{text}");
    assert!(!text.contains("USD 0.00 saved to date"), "{text}");
    browser.screenshot(&shots.join("overview.png")).await;

    assert!(
        browser
            .events_named("Page.javascriptDialogOpening")
            .is_empty(),
        "no script ran"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_uploaded_export_file_is_planned_with_its_parse_report() {
    let env = env_with(TestDb::sqlite(), |config| {
        config.server.body_limit_bytes = 1024 * 1024;
    })
    .await;
    let session = env.login().await;
    let file = env._dir.path().join("export.csv");
    crate::sweep::export_csv(&env.sim, &file);
    let mut csv = std::fs::read(&file).unwrap();
    // One row the parser refuses, reported by line.
    csv.extend_from_slice(b"not-an-account,,,,,,,\n");
    let response = post_import(&env, &session, &csv).await;
    let (status, page) = follow_import(&env, &session, response).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("created from the file"), "{page}");
    assert!(page.contains("Rows refused"), "{page}");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM plans WHERE source LIKE 'csv:%'")
            .await,
        1
    );
    assert_eq!(
        env.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'plan.imported' AND actor = 'admin:ana'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_import_page_shows_the_physical_line_of_a_bad_row_in_an_excel_file() {
    let env = env_with(TestDb::sqlite(), |config| {
        config.server.body_limit_bytes = 1024 * 1024;
        config.sweep.csv.max_bad_row_percent = 5.0;
    })
    .await;
    let session = env.login().await;
    let file = env._dir.path().join("export.csv");
    crate::sweep::export_csv(&env.sim, &file);
    let text = std::fs::read_to_string(&file).unwrap();
    // As Excel saves it: a byte-order mark, CRLF, a blank line (line 4), a bad row (line 7),
    // a separator-only row.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "");
    lines.insert(6, "not an account,,,,,,,");
    lines.insert(7, ",,,,,,,,");
    let csv = format!("\u{feff}{}\r\n", lines.join("\r\n"));
    let response = post_import(&env, &session, csv.as_bytes()).await;
    let (status, page) = follow_import(&env, &session, response).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("line 7: "), "{page}");
    assert!(!page.contains("line 6: "), "{page}");
    assert!(page.contains("Rows refused</th><td>1</td>"), "{page}");
    assert!(page.contains("1 separator-only rows skipped"), "{page}");
}

/// Posts `csv` to the import page as the signed-in admin (a multipart form with the CSRF
/// token).
async fn post_import(env: &Env, session: &Session, csv: &[u8]) -> reqwest::Response {
    let boundary = "reseatboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.csv\"\r\nContent-Type: text/csv\r\n\r\n",
        session.csrf
    )
    .into_bytes();
    body.extend_from_slice(csv);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    env.http
        .post(env.app.url("/admin/import"))
        .header("cookie", &session.cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Posts `csv` to the import page and follows the import to its end: the status and page.
async fn upload(env: &Env, session: &Session, csv: &[u8]) -> (u16, String) {
    let response = post_import(env, session, csv).await;
    follow_import(env, session, response).await
}

/// The import's final page: the upload answers 303 to its progress page, which refreshes
/// itself until the plan is made (or refused); a refused upload answers at once.
async fn follow_import(env: &Env, session: &Session, response: reqwest::Response) -> (u16, String) {
    if response.status() != 303 {
        let status = response.status().as_u16();
        return (status, response.text().await.unwrap());
    }
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    poll_import(env, session, &location).await
}

async fn poll_import(env: &Env, session: &Session, location: &str) -> (u16, String) {
    assert!(location.starts_with("/admin/import/"), "{location}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = env.get(location, Some(&session.cookie)).await;
        let status = page.status().as_u16();
        let text = page.text().await.unwrap();
        if !text.contains(r#"id="progress""#) {
            return (status, text);
        }
        assert!(text.contains("rows read"), "{text}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_import_takes_a_real_export_under_its_own_limit_and_names_it_when_refusing() {
    // The smallest body limit: an export file is far larger, and the import does not care.
    let env = env_with(TestDb::sqlite(), |config| {
        config.server.body_limit_bytes = 1024;
    })
    .await;
    let session = env.login().await;
    let file = env._dir.path().join("export.csv");
    crate::sweep::export_csv(&env.sim, &file);
    let csv = std::fs::read(&file).unwrap();
    assert!(csv.len() > 16 * 1024, "{} bytes", csv.len());
    let (status, page) = upload(&env, &session, &csv).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("created from the file"), "{page}");

    // Past admin.import_max_bytes: 413, and the message names the setting.
    let env = env_with(TestDb::sqlite(), |config| {
        config.admin.import_max_bytes = 4096;
    })
    .await;
    let session = env.login().await;
    let (status, page) = upload(&env, &session, &csv).await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("larger than admin.import_max_bytes (4096 bytes)"),
        "{page}"
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM plans").await,
        0,
        "nothing planned"
    );
}

#[tokio::test]
async fn approve_double_clicked_while_a_worker_runs_restores_once() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |_| {}).await;
        let (request, account) = env.pending_request().await;
        let session = env.login().await;
        // An approval naming a group that does not grant the product is refused on the page.
        let admins = env.sim.state().group(seed::GROUP_ORG_ADMINS).unwrap().id;
        let refused = env
            .http
            .post(env.app.url(&format!("/admin/requests/{request}/approve")))
            .header("cookie", &session.cookie)
            .form(&[("csrf", session.csrf.as_str()), ("groups", admins.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{backend}");
        let page = refused.text().await.unwrap();
        assert!(
            page.contains("not among the access groups"),
            "{backend}: {page}"
        );
        assert_eq!(env.request_status(&request).await, "pending", "{backend}");
        // Slow answers, so that both clicks and the queue's worker overlap.
        env.sim
            .state()
            .set_faults(serde_json::from_value(json!({ "latency_ms": 20 })).unwrap())
            .unwrap();
        let adds_before = env.sim.state().calls("POST", "/rest/api/3/group/user");
        let click = || {
            env.http
                .post(env.app.url(&format!("/admin/requests/{request}/approve")))
                .header("cookie", &session.cookie)
                .form(&[("csrf", session.csrf.as_str()), ("groups", "")])
                .send()
        };
        // `serve`'s worker polls the queue the whole time.
        let worker = env.app.worker.named("serve");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let polling = {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if worker.run_once().await.unwrap() == reseat::queue::WorkerOutcome::Idle {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let (first, second) = tokio::join!(click(), click());
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        polling.await.unwrap();
        for response in [first.unwrap(), second.unwrap()] {
            assert_eq!(
                response.status(),
                303,
                "{backend}: both clicks show the outcome"
            );
        }
        env.app.drain_queue().await;
        assert_eq!(env.request_status(&request).await, "restored", "{backend}");
        assert!(env.has_jira(&account), "{backend}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved'")
                .await,
            1,
            "{backend}: one approval"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.groups_added'")
                .await,
            1,
            "{backend}: one restore"
        );
        let journaled = env
            .count("SELECT COUNT(*) FROM journal WHERE action = 'removed'")
            .await as usize;
        assert_eq!(
            env.sim.state().calls("POST", "/rest/api/3/group/user") - adds_before,
            journaled,
            "{backend}: one add per removed group"
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
async fn a_removed_or_changed_admin_entry_ends_its_sessions_after_a_restart() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let mut env = env_with(db, |config| {
            config
                .admin
                .users
                .push(crate::support::admin_user("bob", "bob's password", None));
        })
        .await;
        let ana = env.login().await;
        let bob = {
            let response = env.login_attempt("bob", "bob's password").await;
            assert_eq!(response.status(), 303, "{backend}");
            set_cookie(&response, "reseat_admin").unwrap()
        };
        assert_eq!(env.get("/admin", Some(&bob)).await.status(), 200);
        // The file loses ana's entry and bob's password changes; the service restarts.
        env.app = env
            .app
            .restart(|config| {
                config.admin.users.retain(|user| user.name == "bob");
                config.admin.users[0].password_hash =
                    reseat::web::admin::auth::hash_password("bob's new password")
                        .unwrap()
                        .into();
            })
            .await;
        for (who, cookie) in [("ana", &ana.cookie), ("bob", &bob)] {
            let page = env.get("/admin", Some(cookie)).await;
            assert_eq!(page.status(), 303, "{backend}: {who}'s session ended");
            assert_eq!(page.headers()["location"], "/admin/login");
            let form = env
                .http
                .post(env.app.url("/admin/requests/none/deny"))
                .header("cookie", cookie.as_str())
                .form(&[("csrf", ana.csrf.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(form.status(), 401, "{backend}: {who}");
        }
        // Bob signs in with the new password and works again.
        let response = env.login_attempt("bob", "bob's new password").await;
        assert_eq!(response.status(), 303, "{backend}");
        let cookie = set_cookie(&response, "reseat_admin").unwrap();
        assert_eq!(env.get("/admin", Some(&cookie)).await.status(), 200);
        assert_eq!(env.login_attempt("ana", PASSWORD).await.status(), 401);
        env.sim.shutdown().await;
    }
}

#[tokio::test]
async fn guesses_from_one_address_do_not_lock_the_admin_out_from_another() {
    let env = env_with(TestDb::sqlite(), |config| {
        config.admin.login_attempts_per_minute = 3;
        config.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    for _ in 0..3 {
        let response = env.login_attempt_from("198.51.100.1", "ana", "guess").await;
        assert_eq!(response.status(), 401);
    }
    // The guesser's address is used up, the right password included…
    let response = env
        .login_attempt_from("198.51.100.1", "ana", PASSWORD)
        .await;
    assert_eq!(response.status(), 429);
    // …and ana, from her own address, signs in.
    let response = env
        .login_attempt_from("203.0.113.20", "ana", PASSWORD)
        .await;
    assert_eq!(response.status(), 303);
    assert!(set_cookie(&response, "reseat_admin").is_some());
    let throttled: Vec<String> = sqlx::query_scalar(
        "SELECT source FROM audit_refusals WHERE action = 'admin.login_throttled'",
    )
    .fetch_all(env.app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(throttled.len(), 1);
    assert!(throttled[0].contains("198.51.100.1"), "{throttled:?}");

    // Without trusted proxies the header is the client's own claim: ignored, so a guesser
    // cannot buy fresh attempts by inventing addresses.
    let env = env_with(TestDb::sqlite(), |config| {
        config.admin.login_attempts_per_minute = 3;
    })
    .await;
    for n in 0..3 {
        let response = env
            .login_attempt_from(&format!("198.51.100.{n}"), "ana", "guess")
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = env
        .login_attempt_from("198.51.100.9", "ana", PASSWORD)
        .await;
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn a_long_import_shows_its_progress_then_its_summary() {
    let env = env_with(TestDb::sqlite(), |_| {}).await;
    let session = env.login().await;
    let file = env._dir.path().join("export.csv");
    crate::sweep::export_csv(&env.sim, &file);
    let csv = std::fs::read(&file).unwrap();
    // Every call to the site takes a while: the plan is still reading the site's groups when
    // the page is first shown.
    env.sim
        .state()
        .set_faults(serde_json::from_value(json!({ "latency_ms": 150 })).unwrap())
        .unwrap();
    let response = post_import(&env, &session, &csv).await;
    // The upload is answered at once, whatever the plan takes: no request time-out.
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let page = env
        .get(&location, Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="progress""#), "{page}");
    assert!(page.contains(r#"<meta http-equiv="refresh" content="2">"#));
    assert!(page.contains("rows read"), "{page}");
    assert!(page.contains("MB)"), "the file's size: {page}");
    assert!(
        !page.contains(&env._dir.path().display().to_string()) && !page.contains("/tmp"),
        "no server path on the page: {page}"
    );
    let (status, page) = poll_import(&env, &session, &location).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("created from the file"), "{page}");
    let rows = csv.iter().filter(|&&b| b == b'\n').count() - 1;
    assert!(
        page.contains(&format!("<tr><th>Rows read</th><td>{rows}</td></tr>")),
        "{page}"
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM imports WHERE status = 'done' AND plan_id IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'plan.imported'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_applied_plan_offers_no_apply_and_the_timeline_and_audit_read_plainly() {
    let env = env_with(TestDb::sqlite(), |config| config.sweep.ladder.warn = false).await;
    let session = env.login().await;
    let plan = env.plan().await;
    let removed: String = sqlx::query_scalar(
        "SELECT account_id FROM plan_items WHERE plan_id = $1 AND decision = 'remove' \
         AND product = 'jira-software' LIMIT 1",
    )
    .bind(&plan)
    .fetch_one(env.app.state.db.pool())
    .await
    .unwrap();
    let options = reseat::sweep::ApplyOptions {
        confirmed: true,
        ..Default::default()
    };
    let report = reseat::sweep::apply(&env.app.state, Some(&plan), &options)
        .await
        .unwrap();
    assert_eq!(report.failed, 0);
    let text = |path: String| {
        let (env, cookie) = (&env, session.cookie.clone());
        async move { env.get(&path, Some(&cookie)).await.text().await.unwrap() }
    };
    let page = text(format!("/admin/plans/{plan}")).await;
    assert!(page.contains("This plan has been applied"), "{page}");
    // Products by the one display name the emails use, never by their keys.
    let jira = reseat::atlassian::ProductKey::JIRA_SOFTWARE.display_name();
    assert!(page.contains(&format!("<td>{jira}</td>")), "{page}");
    assert!(!page.contains("<td>jira-software</td>"), "{page}");
    assert!(!page.contains("Apply this plan…"), "{page}");
    let page = text(format!("/admin/plans/{plan}/apply")).await;
    assert!(
        page.contains("applying it again would change nothing"),
        "{page}"
    );
    assert!(
        !page.contains(r#"class="danger""#),
        "no red Apply button: {page}"
    );
    // The timeline says what happened to each group, in words.
    let page = text(format!("/admin/users/{removed}")).await;
    assert!(page.contains("removed from group"), "{page}");
    assert!(!page.contains("restored from group"), "{page}");
    // The overview says why Confluence has no seat row.
    let page = text("/admin".into()).await;
    assert!(page.contains("Confluence is not listed"), "{page}");
    // The audit page folds each entry's details into one readable line.
    let page = text("/admin/audit".into()).await;
    assert!(page.contains("<details><summary>plan_id: "), "{page}");
    assert!(page.contains(r#"<td class="nowrap">"#), "{page}");
}

/// Every admin route for every role: pages a viewer may read render; a form above the
/// signed-in admin's role is 403 with a page saying which role it needs, and changes
/// nothing; the refusal is counted in the refusal audit.
#[tokio::test]
async fn every_admin_route_for_every_role_is_allowed_or_a_clear_403() {
    use reseat::web::config::{Action, Role};
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |config| {
            for role in [Role::Viewer, Role::Approver, Role::Operator] {
                config.admin.users.push(AdminUser {
                    name: role.as_str().into(),
                    password_hash: reseat::web::admin::auth::hash_password(PASSWORD)
                        .unwrap()
                        .into(),
                    role: Some(role),
                    sites: Vec::new(),
                    products: Vec::new(),
                    slack_user_id: None,
                    email: None,
                });
            }
        })
        .await;
        let (request, account) = env.pending_request().await;
        let plan = env.plan().await;
        let state_sql = [
            "SELECT COUNT(*) FROM plan_items WHERE excluded <> 0",
            "SELECT COUNT(*) FROM plans WHERE status <> 'planned'",
            "SELECT COUNT(*) FROM plans",
            "SELECT COUNT(*) FROM restore_requests WHERE status <> 'pending'",
            "SELECT COUNT(*) FROM journal",
            "SELECT COUNT(*) FROM imports",
        ];
        for role in [Role::Viewer, Role::Approver, Role::Operator] {
            let session = env.login_as(role.as_str()).await;
            let mut before = Vec::new();
            for sql in state_sql {
                before.push(env.count(sql).await);
            }
            for route in ROUTES.iter().filter(|r| !r.public) {
                let path = concrete(route.path, &plan, &request, "x", &account)
                    .replace("/admin/import/{id}", "/admin/import/none");
                let action = Action::of_route(&route.method, route.path);
                if role.allows(action) {
                    if route.method == reqwest::Method::GET {
                        let response = env.get(&path, Some(&session.cookie)).await;
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap();
                        // A decision link with a forged token is refused as a link (403
                        // naming the link), never as outside the role.
                        assert!(
                            status != 403
                                || (route.path.contains("/decide/")
                                    && body.contains("This decision link cannot be used")),
                            "{backend}: {} GET {path}: {status} {body}",
                            role.as_str()
                        );
                    }
                    continue;
                }
                let response = env
                    .http
                    .request(route.method.clone(), env.app.url(&path))
                    .header("cookie", &session.cookie)
                    .form(&[
                        ("csrf", session.csrf.as_str()),
                        ("reason", "no"),
                        ("action", "exclude"),
                        ("item", "1"),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    403,
                    "{backend}: {} {} {path}",
                    role.as_str(),
                    route.method
                );
                let page = response.text().await.unwrap();
                assert!(
                    page.contains(&format!("Your role ({})", role.as_str()))
                        && page.contains("Nothing was changed"),
                    "{backend}: {page}"
                );
            }
            for (sql, was) in state_sql.iter().zip(&before) {
                assert_eq!(
                    env.count(sql).await,
                    *was,
                    "{backend}: {} changed {sql}",
                    role.as_str()
                );
            }
        }
        assert_eq!(env.request_status(&request).await, "pending", "{backend}");
        assert!(
            env.count("SELECT COUNT(*) FROM audit_refusals WHERE action = 'role.refused' AND source = 'admin:viewer'")
                .await
                >= 1,
            "{backend}"
        );
        // The approver's deny goes through.
        let session = env.login_as("approver").await;
        let response = env
            .http
            .post(env.app.url(&format!("/admin/requests/{request}/deny")))
            .header("cookie", &session.cookie)
            .form(&[("csrf", session.csrf.as_str()), ("reason", "Not now.")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{backend}");
        assert_eq!(env.request_status(&request).await, "denied");
    }
}

/// An admin scoped to JSM (an operator: decides and operates) sees only JSM requests and
/// plan rows, approves a JSM request and excludes a JSM row (both audited with the role),
/// and is refused with a 403 page, changing nothing, on a Jira Software request, a Jira
/// row, and applying a plan that holds other products. Only the owner sees the
/// configuration page and its link.
#[tokio::test]
async fn a_product_scoped_admin_sees_and_acts_only_in_scope() {
    use reseat::web::config::Role;
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env_with(db, |config| {
            config.admin.users.push(AdminUser {
                name: "jsm".into(),
                password_hash: reseat::web::admin::auth::hash_password(PASSWORD)
                    .unwrap()
                    .into(),
                role: Some(Role::Operator),
                sites: Vec::new(),
                products: vec!["jira-servicedesk".into()],
                email: None,
                slack_user_id: None,
            });
        })
        .await;
        let (jira, jira_account) = env.pending_request().await;
        let other = env
            .sim
            .state()
            .ground_truth()
            .users
            .iter()
            .find(|u| {
                u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
                    && u.account_id != jira_account
                    && u.account_status == reseat::sim::AccountStatus::Active
                    && !u.suspended
                    && !u.offboarded
                    && u.account_type == reseat::sim::AccountType::Atlassian
            })
            .map(|u| u.account_id.clone())
            .unwrap();
        let issue = env
            .sim
            .state()
            .create_request(SimRequest {
                reporter: other.clone(),
                request_type_id: None,
                summary: None,
                description: None,
                product: Some(Product::JiraServiceDesk),
                justification: None,
            })
            .unwrap()
            .key;
        let response = env
            .http
            .post(env.app.url("/hooks/jsm"))
            .header("X-Reseat-Token", reseat::demo::DEMO_JSM_SECRET)
            .json(&json!({ "issueKey": issue }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        let jsm = body["requestId"].as_str().unwrap().to_string();
        env.app.drain_queue().await;
        assert_eq!(env.request_status(&jsm).await, "pending", "{backend}");
        let session = env.login_as("jsm").await;
        let post = |path: String, fields: Vec<(&'static str, String)>| {
            let mut form = vec![("csrf", session.csrf.clone())];
            form.extend(fields);
            env.http
                .post(env.app.url(&path))
                .header("cookie", &session.cookie)
                .form(&form)
                .send()
        };

        // The requests page lists the JSM request only.
        let page = env
            .get("/admin/requests", Some(&session.cookie))
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(&jsm), "{backend}");
        assert!(!page.contains(&jira), "{backend}: {page}");
        assert!(
            !page.contains("Config</a>"),
            "{backend}: the nav links the config page for owners only"
        );

        // Approving the Jira request: 403, nothing changes.
        let groups_before = env.sim.state().user(&jira_account).unwrap().groups.len();
        let response = post(format!("/admin/requests/{jira}/approve"), vec![])
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{backend}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains("outside the scope of admin:jsm") && text.contains("nothing was changed"),
            "{backend}: {text}"
        );
        env.app.drain_queue().await;
        assert_eq!(env.request_status(&jira).await, "pending", "{backend}");
        assert_eq!(
            env.sim.state().user(&jira_account).unwrap().groups.len(),
            groups_before,
            "{backend}"
        );
        assert!(!env.has_jira(&jira_account), "{backend}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved'")
                .await,
            0,
            "{backend}"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_refusals WHERE action = 'role.refused' AND source = 'admin:jsm' AND reason = 'operator outside its scope'")
                .await,
            1,
            "{backend}"
        );

        // Approving the JSM request goes through, audited with the role.
        let response = post(format!("/admin/requests/{jsm}/approve"), vec![])
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{backend}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved' AND actor = 'admin:jsm' AND role = 'operator'")
                .await,
            1,
            "{backend}"
        );

        // A plan: only JSM rows are shown; a Jira row cannot be excluded, a JSM row can;
        // the plan, holding other products, cannot be applied.
        let plan = env.plan().await;
        let row = |product: &'static str| {
            let plan = plan.clone();
            let db = env.app.state.db.clone();
            async move {
                sqlx::query_as::<_, (i64, String)>(
                    "SELECT id, account_id FROM plan_items WHERE plan_id = $1 AND product = $2 ORDER BY id LIMIT 1",
                )
                .bind(&plan)
                .bind(product)
                .fetch_one(db.pool())
                .await
                .unwrap()
            }
        };
        let (jira_item, jira_item_account) = row("jira-software").await;
        let (jsm_item, jsm_item_account) = row("jira-service-desk").await;
        let page = env
            .get(
                &format!("/admin/plans/{plan}?product=jira-service-desk"),
                Some(&session.cookie),
            )
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(&jsm_item_account), "{backend}");
        let page = env
            .get(
                &format!("/admin/plans/{plan}?product=jira-software"),
                Some(&session.cookie),
            )
            .await
            .text()
            .await
            .unwrap();
        let jira_only = env
            .count(&format!(
                "SELECT COUNT(*) FROM plan_items WHERE plan_id = '{plan}' AND account_id = '{jira_item_account}' AND product = 'jira-service-desk'"
            ))
            .await
            == 0;
        if jira_only {
            assert!(!page.contains(&jira_item_account), "{backend}");
        }
        let excluded = "SELECT COUNT(*) FROM plan_items WHERE excluded <> 0";
        let response = post(
            format!("/admin/plans/{plan}/items"),
            vec![
                ("action", "exclude".into()),
                ("item", jira_item.to_string()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 403, "{backend}");
        assert_eq!(env.count(excluded).await, 0, "{backend}");
        let response = post(
            format!("/admin/plans/{plan}/items"),
            vec![("action", "exclude".into()), ("item", jsm_item.to_string())],
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 303, "{backend}");
        assert_eq!(env.count(excluded).await, 1, "{backend}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'plan.item_excluded' AND actor = 'admin:jsm' AND role = 'operator'")
                .await,
            1,
            "{backend}"
        );
        let jobs = "SELECT COUNT(*) FROM jobs";
        let jobs_before = env.count(jobs).await;
        let response = post(format!("/admin/plans/{plan}/apply"), vec![])
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{backend}");
        let text = response.text().await.unwrap();
        assert!(text.contains("outside the scope"), "{backend}: {text}");
        assert_eq!(
            env.count(jobs).await,
            jobs_before,
            "{backend}: nothing queued"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM plans WHERE status <> 'planned'")
                .await,
            0,
            "{backend}"
        );

        // The owner sees the configuration page (and its link); secrets are not on it.
        let owner = env.login_as("ana").await;
        let response = env.get("/admin/config", Some(&owner.cookie)).await;
        assert_eq!(response.status(), 200, "{backend}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Config</a>"), "{backend}");
        assert!(
            page.contains("link signing key demo") && page.contains("active: signs new links"),
            "{backend}: {page}"
        );
        assert!(page.contains("[redacted]"), "{backend}");
        let link_key = env.app.state.config.links.keys["demo"].expose().to_string();
        for secret in [
            link_key.as_str(),
            reseat::demo::DEMO_JSM_SECRET,
            reseat::demo::DEMO_AUTOMATION_SECRET,
        ] {
            assert!(!page.contains(secret), "{backend}: a secret is on the page");
        }
        let response = env.get("/admin/config", Some(&session.cookie)).await;
        assert_eq!(response.status(), 403, "{backend}: an operator may not");
    }
}
