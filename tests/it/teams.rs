//! Microsoft Teams end to end against the simulator and the Teams fake: a message to the
//! outgoing webhook restores a user a real sweep removed; a request the rules send to an
//! admin is posted as an approval card whose signed, single-use links decide it once the
//! approver is signed in; forged, stale and replayed messages change nothing.

use std::time::Duration;

use reseat::config::{Config, Secret};
use reseat::sim::SimHandle;
use reseat::sim::teams::{OutgoingWebhook, Sender, TeamsChannel, card_links, card_text};
use reseat::sweep::{ApplyOptions, Source};
use reseat::web::config::{AdminUser, Role};
use serde_json::Value;

use crate::support::{TestApp, TestDb, cookie_of, spawn_configured};

pub(crate) const PASSWORD: &str = "approver password 1";

pub(crate) struct Env {
    pub sim: SimHandle,
    pub app: TestApp,
    pub teams: TeamsChannel,
    pub hook: OutgoingWebhook,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A user a real sweep removed from Jira Software.
#[derive(Debug, Clone)]
pub(crate) struct Removed {
    pub account: String,
    pub email: String,
    pub groups: Vec<String>,
}

fn admin(name: &str, role: Role) -> AdminUser {
    crate::support::admin_user(name, PASSWORD, Some(role))
}

pub(crate) async fn env(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Env {
    let sim = crate::ledger::sim(150).await;
    let dir = tempfile::tempdir().unwrap();
    let teams = TeamsChannel::spawn().await.unwrap();
    let hook = OutgoingWebhook::new("reseat");
    let mut config = crate::ledger::config_for(&sim, &db, dir.path());
    config.restore.teams.secret = Some(Secret::new(hook.security_token.clone()));
    config.restore.teams.notify_url = Some(Secret::new(teams.webhook_url()));
    config.admin.users = vec![admin("ana", Role::Approver), admin("vic", Role::Viewer)];
    adjust(&mut config);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    Env {
        sim,
        app,
        teams,
        hook,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Env {
    /// Plans and applies a live sweep; the users it removed from Jira Software whose email
    /// reseat knows, in the all-staff group.
    pub async fn sweep(&self) -> Vec<Removed> {
        let state = &self.app.state;
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
        reseat::sweep::apply(
            state,
            Some(&planned.plan_id),
            &ApplyOptions {
                confirmed: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
        let mut removed = Vec::new();
        for item in items
            .iter()
            .filter(|i| i.decision == "remove" && i.product == "jira-software")
        {
            let Some(email) = item.email.clone() else {
                continue;
            };
            let groups = reseat::ledger::taken_groups(
                &state.db,
                &item.account_id,
                &item.product,
                state.site(),
            )
            .await
            .unwrap();
            let staff = self.sim.state().user(&item.account_id).is_some_and(|u| {
                u.groups
                    .iter()
                    .any(|g| g.name == reseat::sim::seed::GROUP_ALL_STAFF)
            });
            if !groups.is_empty() && staff {
                removed.push(Removed {
                    account: item.account_id.clone(),
                    email,
                    groups: groups.into_iter().map(|g| g.name).collect(),
                });
            }
        }
        assert!(removed.len() >= 2, "the sweep removes some staff");
        removed
    }

    pub fn has_jira(&self, account: &str) -> bool {
        self.sim
            .state()
            .user(account)
            .unwrap()
            .products
            .contains(&reseat::sim::model::Product::JiraSoftware)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.app.state.db.pool())
            .await
            .unwrap()
    }

    /// A state fingerprint: requests, jobs, journal rows, tokens used, outbox messages.
    pub async fn fingerprint(&self) -> Vec<i64> {
        let mut all = Vec::new();
        for sql in [
            "SELECT COUNT(*) FROM restore_requests",
            "SELECT COUNT(*) FROM jobs",
            "SELECT COUNT(*) FROM journal",
            "SELECT COUNT(*) FROM link_tokens WHERE used_at IS NOT NULL",
            "SELECT COUNT(*) FROM email_outbox",
        ] {
            all.push(self.count(sql).await);
        }
        all
    }

    fn sender(email: Option<&str>) -> Sender {
        Sender {
            aad_object_id: "6f2a1c9e-5b7d-4e3a-9c1f-2d8e7b6a5c4d".into(),
            name: "Sam Sender".into(),
            user_principal_name: email.map(str::to_owned),
        }
    }

    /// The body and signature Teams sends for `text` from a sender with that UPN.
    pub fn message(
        &self,
        id: &str,
        text: &str,
        upn: Option<&str>,
        age: Duration,
    ) -> (String, String) {
        let at = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap();
        let body = self
            .hook
            .message(id, text, &Self::sender(upn), at)
            .to_string();
        let auth = self.hook.authorization(body.as_bytes());
        (body, auth)
    }

    pub async fn post_teams(&self, body: &str, auth: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.app.url("/hooks/teams"))
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs in through the sign-in form (with `next`); the session cookie and where the
    /// form sends the browser.
    pub async fn sign_in(&self, name: &str, next: Option<&str>) -> (String, String) {
        let path = match next {
            Some(next) => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                format!("/admin/login?{query}")
            }
            None => "/admin/login".into(),
        };
        let page = self.http.get(self.app.url(&path)).send().await.unwrap();
        let cookie = cookie_of(&page, "reseat_admin_login");
        let html = page.text().await.unwrap();
        let csrf = field(&html, "csrf");
        let mut form = vec![
            ("csrf", csrf),
            ("name", name.to_string()),
            ("password", PASSWORD.into()),
        ];
        if let Some(next) = field_opt(&html, "next") {
            form.push(("next", next));
        }
        let response = self
            .http
            .post(self.app.url("/admin/login"))
            .header("cookie", cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        (cookie_of(&response, "reseat_admin"), location)
    }

    pub async fn get_page(
        &self,
        path: &str,
        session: Option<&str>,
    ) -> (u16, String, Option<String>) {
        let mut request = self.http.get(self.app.url(path));
        if let Some(session) = session {
            request = request.header("cookie", session);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (status, response.text().await.unwrap(), location)
    }

    pub async fn post_form(
        &self,
        path: &str,
        session: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let response = self
            .http
            .post(self.app.url(path))
            .header("cookie", session)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

fn field_opt(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    Some(
        page[start..start + page[start..].find('"')?]
            .replace("&#x2f;", "/")
            .replace("&#47;", "/"),
    )
}

fn field(page: &str, name: &str) -> String {
    field_opt(page, name).expect("the field is on the page")
}

/// The path of a URL (the card's links name `server.public_url`).
fn path_of(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    parsed.path().to_string()
}

fn reply_card(reply: &Value) -> Value {
    assert_eq!(reply["type"], "message");
    assert_eq!(
        reply["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = reply["attachments"][0]["content"].clone();
    assert_eq!(card["type"], "AdaptiveCard");
    card
}

#[tokio::test]
async fn a_teams_message_from_a_removed_user_gives_jira_back_and_a_replay_changes_nothing() {
    for db in TestDb::all().await {
        let env = env(db, |_| {}).await;
        let removed = env.sweep().await;
        let user = &removed[0];
        assert!(!env.has_jira(&user.account));

        let (body, auth) = env.message(
            "1733140000001",
            "restore jira for the release on Friday",
            Some(&user.email),
            Duration::ZERO,
        );
        let (status, reply) = env.post_teams(&body, &auth).await;
        assert_eq!(status, 200, "{reply}");
        let card = reply_card(&reply);
        env.app.drain_queue().await;
        assert!(env.has_jira(&user.account), "Jira is back in the simulator");
        let text = card_text(&card);
        assert!(text.contains("Request "), "{text}");
        let (channel, account, justification): (String, String, String) =
            sqlx::query_as("SELECT channel, account_id, payload FROM restore_requests")
                .fetch_one(env.app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(channel, "teams");
        assert_eq!(&account, &user.account);
        assert!(justification.contains("for the release on Friday"));
        // The user hears it by email too.
        assert_eq!(
            env.count(&format!(
                "SELECT COUNT(*) FROM email_outbox WHERE account_id = '{}' AND template = 'restored'",
                user.account
            ))
            .await,
            1
        );

        // The same message again (Teams' own bytes and signature): refused, nothing new.
        let before = env.fingerprint().await;
        let (status, _) = env.post_teams(&body, &auth).await;
        assert_eq!(status, 401);
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);
    }
}

#[tokio::test]
async fn forged_and_stale_teams_messages_are_refused_and_change_nothing() {
    for db in TestDb::all().await {
        let env = env(db, |_| {}).await;
        let removed = env.sweep().await;
        let user = &removed[0];
        let before = env.fingerprint().await;

        // Signed with another token.
        let (body, _) = env.message(
            "m-forged",
            "restore jira",
            Some(&user.email),
            Duration::ZERO,
        );
        let forged = OutgoingWebhook::new("reseat").authorization(body.as_bytes());
        assert_eq!(env.post_teams(&body, &forged).await.0, 401);
        // Signed, then altered.
        let (body, auth) = env.message(
            "m-altered",
            "restore jira",
            Some(&user.email),
            Duration::ZERO,
        );
        let altered = body.replace("restore jira", "restore conf");
        assert_eq!(env.post_teams(&altered, &auth).await.0, 401);
        // No signature at all.
        assert_eq!(env.post_teams(&body, "").await.0, 401);
        // Correctly signed but ten minutes old.
        let (stale, auth) = env.message(
            "m-stale",
            "restore jira",
            Some(&user.email),
            Duration::from_secs(600),
        );
        assert_eq!(env.post_teams(&stale, &auth).await.0, 401);

        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);
        assert!(!env.has_jira(&user.account));
        assert!(env.teams.cards().is_empty());
    }
}

#[tokio::test]
async fn a_sender_teams_cannot_map_to_an_email_is_told_how_to_ask_and_nothing_is_requested() {
    for db in TestDb::all().await {
        let env = env(db, |config| {
            config.mail.portal_url = Some("https://help.acme.example/portal".into());
        })
        .await;
        let before = env.fingerprint().await;
        let (body, auth) = env.message("m-unmapped", "restore jira", None, Duration::ZERO);
        let (status, reply) = env.post_teams(&body, &auth).await;
        assert_eq!(status, 200);
        let text = card_text(&reply_card(&reply));
        assert!(text.contains("cannot tell who you are"), "{text}");
        assert!(text.contains("help.acme.example/portal"), "{text}");
        assert_eq!(env.fingerprint().await, before, "no request");
    }
}

#[tokio::test]
async fn an_approval_card_decides_through_its_signed_link_once_the_approver_signs_in() {
    for db in TestDb::all().await {
        // No rule: every request waits for an admin.
        let env = env(db, |config| config.restore.rules.clear()).await;
        let removed = env.sweep().await;
        let (a, b) = (&removed[0], &removed[1]);
        for (n, user) in [a, b].into_iter().enumerate() {
            let (body, auth) = env.message(
                &format!("m-{n}"),
                "restore jira",
                Some(&user.email),
                Duration::ZERO,
            );
            let (status, reply) = env.post_teams(&body, &auth).await;
            assert_eq!(status, 200);
            env.app.drain_queue().await;
            let text = card_text(&reply_card(&reply));
            assert!(
                text.contains("Waiting for an administrator") || text.contains("Request received"),
                "{text}"
            );
        }
        assert!(!env.has_jira(&a.account) && !env.has_jira(&b.account));
        let id_of = |account: &str| {
            let account = account.to_string();
            let pool = env.app.state.db.pool().clone();
            async move {
                sqlx::query_scalar::<_, String>(
                    "SELECT id FROM restore_requests WHERE account_id = $1",
                )
                .bind(account)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        let (id_a, id_b) = (id_of(&a.account).await, id_of(&b.account).await);

        // One approval card per request, posted to the channel.
        let cards = env.teams.cards();
        assert_eq!(cards.len(), 2, "{cards:?}");
        let card_a = cards
            .iter()
            .find(|c| card_text(c).contains(&id_a))
            .unwrap()
            .clone();
        let text = card_text(&card_a);
        for expected in [
            a.email.as_str(),
            "Jira",
            env.app.state.site(),
            "rule",
            &a.groups[0],
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
        let links = card_links(&card_a);
        let approve = path_of(&links.iter().find(|(t, _)| t == "Approve").unwrap().1);
        let deny = path_of(&links.iter().find(|(t, _)| t == "Deny").unwrap().1);
        assert!(approve.starts_with(&format!("/admin/requests/{id_a}/decide/")));

        // Not signed in: to the sign-in page, and back to the link after.
        let (status, _, location) = env.get_page(&approve, None).await;
        assert_eq!(status, 303);
        let location = location.unwrap();
        assert!(location.starts_with("/admin/login?next="), "{location}");
        let (viewer, _) = env.sign_in("vic", None).await;
        let (session, back) = env.sign_in("ana", Some(&approve)).await;
        assert_eq!(back, approve, "signing in returns to the decision link");

        // A viewer may not decide, not even see the confirmation.
        let before = env.fingerprint().await;
        assert_eq!(env.get_page(&approve, Some(&viewer)).await.0, 403);
        // GET shows a confirmation and changes nothing.
        let (status, page, _) = env.get_page(&approve, Some(&session)).await;
        assert_eq!(status, 200);
        assert!(page.contains("Approve this request?"), "{page}");
        assert!(page.contains(&a.groups[0]));
        let csrf = field(&page, "csrf");
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);
        assert!(!env.has_jira(&a.account));

        // A's link cannot decide B.
        let token = approve.rsplit('/').next().unwrap();
        let crossed = format!("/admin/requests/{id_b}/decide/{token}");
        assert_eq!(env.get_page(&crossed, Some(&session)).await.0, 403);
        let (status, _) = env.post_form(&crossed, &session, &[("csrf", &csrf)]).await;
        assert_eq!(status, 403);
        // An altered link: refused, nothing changes.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let altered = format!(
            "/admin/requests/{id_a}/decide/{signed}.{flipped}{}",
            &signature[1..]
        );
        assert_eq!(env.get_page(&altered, Some(&session)).await.0, 403);
        let (status, _) = env.post_form(&altered, &session, &[("csrf", &csrf)]).await;
        assert_eq!(status, 403);
        // Without the session's CSRF token: refused.
        let (status, _) = env
            .post_form(&approve, &session, &[("csrf", "wrong")])
            .await;
        assert_eq!(status, 403);
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);
        assert!(!env.has_jira(&b.account));

        // POST decides: access back in the simulator, the requester is emailed.
        let (status, _) = env.post_form(&approve, &session, &[("csrf", &csrf)]).await;
        assert_eq!(status, 303);
        env.app.drain_queue().await;
        assert!(env.has_jira(&a.account));
        let (status_a, rule): (String, String) =
            sqlx::query_as("SELECT status, matched_rule FROM restore_requests WHERE id = $1")
                .bind(&id_a)
                .fetch_one(env.app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(status_a, "restored");
        assert_eq!(rule, "approved by ana");
        assert_eq!(
            env.count(&format!(
                "SELECT COUNT(*) FROM email_outbox WHERE account_id = '{}' AND template = 'restored'",
                a.account
            ))
            .await,
            1
        );

        // A second click, and the other button: the decision is shown, nothing changes.
        let after = env.fingerprint().await;
        let (status, page) = env.post_form(&approve, &session, &[("csrf", &csrf)]).await;
        assert_eq!(status, 200);
        assert!(
            page.contains("used already") && page.contains("restored"),
            "{page}"
        );
        let (status, page, _) = env.get_page(&deny, Some(&session)).await;
        assert_eq!(status, 200);
        assert!(
            page.contains("decided already") && page.contains("restored"),
            "{page}"
        );
        let (status, _) = env
            .post_form(&deny, &session, &[("csrf", &csrf), ("reason", "no")])
            .await;
        assert_eq!(status, 200);
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, after);
        assert!(env.has_jira(&a.account));
        assert!(
            !env.has_jira(&b.account),
            "B still waits for its own decision"
        );

        // B's card links, once they are older than decision_link_ttl: refused, B waits on.
        let card_b = cards
            .iter()
            .find(|c| card_text(c).contains(&id_b))
            .unwrap()
            .clone();
        let approve_b = path_of(
            &card_links(&card_b)
                .iter()
                .find(|(t, _)| t == "Approve")
                .unwrap()
                .1,
        );
        env.app.advance(
            env.app.state.config.restore.teams.decision_link_ttl + Duration::from_secs(60),
        );
        let (session, _) = env.sign_in("ana", None).await;
        let before = env.fingerprint().await;
        let (status, page, _) = env.get_page(&approve_b, Some(&session)).await;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("This decision link cannot be used"), "{page}");
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);
        assert!(!env.has_jira(&b.account));
    }
}
