//! Restore on sign-in end to end: Okta's verification handshake, then a sign-in event for
//! a user a real sweep removed restores them under a matching rule, while a user reseat
//! never removed causes nothing (no request, no Atlassian call); the Standard Webhooks
//! format does the same; forged, stale and replayed deliveries change nothing.

use std::time::Duration;

use reseat::atlassian::ProductKey;
use reseat::config::{Config, Secret};
use reseat::restore::rules::{Channel, Decision, Rule};
use reseat::restore::signature;
use serde_json::{Value, json};

use crate::support::TestDb;
use crate::teams::{Env, env};

const OKTA_SECRET: &str = "okta-event-hook-secret-7f3a";
const OKTA_APP: &str = "0oa1atlassiancloud";
const SIGNIN_SECRET: &str = "whsec_c2lnbmluIHdlYmhvb2sgc2VjcmV0IGZvciB0ZXN0cw==";

fn enable(config: &mut Config) {
    let signin = &mut config.restore.signin;
    signin.enabled = true;
    signin.okta.secret = Some(Secret::new(OKTA_SECRET));
    signin
        .okta
        .apps
        .insert(OKTA_APP.into(), ProductKey::JIRA_SOFTWARE);
    signin.webhook.secrets = vec![Secret::new(SIGNIN_SECRET)];
    // Only staff reseat removed get their access back on sign-in; nothing else matches.
    config.restore.rules = vec![Rule {
        name: "signed in, removed by reseat, staff".into(),
        products: vec![],
        channels: vec![Channel::Signin],
        email_domains: vec![],
        member_of_any: vec![reseat::sim::seed::GROUP_ALL_STAFF.into()],
        member_of_none: vec![],
        removed_by_reseat: Some(true),
        seat_reserve: None,
        decision: Decision::Approve,
        message: None,
        grant_groups: vec![],
        approve_for: None,
        require_justification: false,
    }];
}

/// An Okta event hook delivery of one `user.authentication.sso` event.
fn okta_delivery(event_id: &str, email: &str, app: &str, age: Duration) -> Value {
    let at = (chrono::Utc::now() - chrono::Duration::from_std(age).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://acme.okta.com/api/v1/eventHooks/who8vt36qfNpCGz9H1e6",
        "eventId": event_id,
        "data": {
            "events": [{
                "uuid": format!("{event_id}-e1"),
                "published": at,
                "eventType": "user.authentication.sso",
                "version": "0",
                "displayMessage": "User single sign on to app",
                "severity": "INFO",
                "client": { "ipAddress": "198.51.100.7" },
                "actor": {
                    "id": "00u1a2b3c4d5e6f7g8h9",
                    "type": "User",
                    "alternateId": email,
                    "displayName": "Someone",
                    "detailEntry": null
                },
                "outcome": { "result": "SUCCESS", "reason": null },
                "target": [{
                    "id": app,
                    "type": "AppInstance",
                    "alternateId": "Atlassian Cloud",
                    "displayName": "Atlassian Cloud",
                    "detailEntry": { "signOnModeType": "SAML_2_0" }
                }, {
                    "id": "0ua1b2c3d4",
                    "type": "AppUser",
                    "alternateId": email,
                    "displayName": "Someone"
                }]
            }]
        },
        "eventTime": at,
        "contentType": "application/json"
    })
}

impl Env {
    async fn okta(&self, secret: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.app.url("/hooks/okta"))
            .header("authorization", secret)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn signin_webhook(&self, id: &str, secret: &str, age: i64, body: &str) -> (u16, Value) {
        let timestamp = chrono::Utc::now().timestamp() - age;
        let sig = signature::sign(secret, id, timestamp, body.as_bytes()).unwrap();
        let response = self
            .http
            .post(self.app.url("/hooks/signin"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sig)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The sequence number of the simulator's last logged request.
    fn atlassian_calls(&self) -> u64 {
        self.sim.state().log().last().map_or(0, |entry| entry.seq)
    }
}

#[tokio::test]
async fn okta_verifies_the_hook_then_a_removed_user_signing_in_gets_jira_back() {
    for db in TestDb::all().await {
        let env = env(db, enable).await;
        // The one-time verification: the challenge echoed, with the auth header only.
        let verify = |secret: Option<&str>| {
            let mut request = env.http.get(env.app.url("/hooks/okta")).header(
                "x-okta-verification-challenge",
                "Gx0WZs7MBm3-zIW9FCrHdSDt0hTNsP2Mo4ueUeQ0",
            );
            if let Some(secret) = secret {
                request = request.header("authorization", secret);
            }
            request.send()
        };
        let response = verify(Some(OKTA_SECRET)).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({ "verification": "Gx0WZs7MBm3-zIW9FCrHdSDt0hTNsP2Mo4ueUeQ0" })
        );
        assert_eq!(verify(Some("wrong")).await.unwrap().status(), 401);
        assert_eq!(verify(None).await.unwrap().status(), 401);

        let removed = env.sweep().await;
        let user = &removed[0];
        assert!(!env.has_jira(&user.account));
        let delivery = okta_delivery("evt-1", &user.email, OKTA_APP, Duration::ZERO);
        let (status, answer) = env.okta(OKTA_SECRET, &delivery).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["requests"].as_array().unwrap().len(), 1);
        env.app.drain_queue().await;
        assert!(env.has_jira(&user.account), "Jira is back in the simulator");
        let (channel, status, rule): (String, String, String) = sqlx::query_as(
            "SELECT channel, status, matched_rule FROM restore_requests WHERE account_id = $1",
        )
        .bind(&user.account)
        .fetch_one(env.app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(
            (channel.as_str(), status.as_str(), rule.as_str()),
            ("signin", "restored", "signed in, removed by reseat, staff")
        );
        assert_eq!(
            env.count(&format!(
                "SELECT COUNT(*) FROM email_outbox WHERE account_id = '{}' AND template = 'restored'",
                user.account
            ))
            .await,
            1,
            "the user is told by email"
        );

        // Okta delivering the same event again: refused, nothing changes.
        let before = env.fingerprint().await;
        assert_eq!(env.okta(OKTA_SECRET, &delivery).await.0, 401);
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);

        // Someone reseat never removed signs in: no request, no Atlassian call.
        let kept = env
            .sim
            .state()
            .ground_truth()
            .users
            .iter()
            .find(|u| {
                u.email.is_some()
                    && env.has_jira(&u.account_id)
                    && !removed.iter().any(|r| r.account == u.account_id)
            })
            .unwrap()
            .clone();
        let calls = env.atlassian_calls();
        let delivery = okta_delivery(
            "evt-2",
            kept.email.as_deref().unwrap(),
            OKTA_APP,
            Duration::ZERO,
        );
        let (status, answer) = env.okta(OKTA_SECRET, &delivery).await;
        assert_eq!(status, 200);
        assert_eq!(answer["requests"], json!([]));
        assert_eq!(answer["nothingToRestore"], 1);
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before, "no request for them");
        assert_eq!(env.atlassian_calls(), calls, "and no Atlassian call");
        // A sign-in to an app that is not mapped to a product: nothing either.
        let other = okta_delivery("evt-3", &removed[1].email, "0oaSlackApp", Duration::ZERO);
        let (status, answer) = env.okta(OKTA_SECRET, &other).await;
        assert_eq!((status, answer["requests"].clone()), (200, json!([])));
        env.app.drain_queue().await;
        assert!(!env.has_jira(&removed[1].account));
    }
}

#[tokio::test]
async fn forged_stale_and_replayed_sign_in_events_are_refused_and_change_nothing() {
    for db in TestDb::all().await {
        let env = env(db, enable).await;
        let removed = env.sweep().await;
        let user = &removed[0];
        let before = env.fingerprint().await;
        let calls = env.atlassian_calls();

        // Okta: wrong or missing auth header, stale delivery.
        let fresh = okta_delivery("evt-x", &user.email, OKTA_APP, Duration::ZERO);
        assert_eq!(env.okta("Bearer guessed", &fresh).await.0, 401);
        assert_eq!(env.okta("", &fresh).await.0, 401);
        let stale = okta_delivery("evt-old", &user.email, OKTA_APP, Duration::from_secs(3600));
        assert_eq!(env.okta(OKTA_SECRET, &stale).await.0, 401);

        // Standard Webhooks: forged signature, stale timestamp.
        let body =
            json!({ "type": "user.signin", "data": { "email": user.email, "product": "jira" } })
                .to_string();
        let other_secret = "whsec_b3RoZXIgc2VjcmV0IG5vYm9keSBjb25maWd1cmVk";
        assert_eq!(
            env.signin_webhook("wh-1", other_secret, 0, &body).await.0,
            401
        );
        assert_eq!(
            env.signin_webhook("wh-1", SIGNIN_SECRET, 600, &body)
                .await
                .0,
            401
        );
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, before);
        assert_eq!(env.atlassian_calls(), calls);
        assert!(!env.has_jira(&user.account));

        // A good one restores; the same webhook-id again is refused and changes nothing.
        let (status, answer) = env.signin_webhook("wh-1", SIGNIN_SECRET, 0, &body).await;
        assert_eq!(status, 202, "{answer}");
        env.app.drain_queue().await;
        assert!(env.has_jira(&user.account));
        let after = env.fingerprint().await;
        assert_eq!(
            env.signin_webhook("wh-1", SIGNIN_SECRET, 0, &body).await.0,
            401
        );
        env.app.drain_queue().await;
        assert_eq!(env.fingerprint().await, after);
    }
}

#[tokio::test]
async fn restore_on_sign_in_is_off_unless_enabled() {
    for db in TestDb::all().await {
        let env = env(db, |config| {
            enable(config);
            config.restore.signin.enabled = false;
        })
        .await;
        let delivery = okta_delivery("evt-off", "someone@acme.example", OKTA_APP, Duration::ZERO);
        assert_eq!(env.okta(OKTA_SECRET, &delivery).await.0, 404);
        let body = json!({ "type": "user.signin", "data": { "email": "someone@acme.example", "product": "jira" } })
            .to_string();
        assert_eq!(
            env.signin_webhook("wh-off", SIGNIN_SECRET, 0, &body)
                .await
                .0,
            404
        );
        assert_eq!(env.count("SELECT COUNT(*) FROM restore_requests").await, 0);
    }
}

/// A sign-in that no rule approves asks once per removal: signing in again (a new event)
/// while the request waits makes no second request and sends no second email.
#[tokio::test]
async fn signing_in_again_while_a_request_waits_asks_and_mails_once() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env(db, |config| {
            enable(config);
            // No rule: every sign-in request goes to an admin.
            config.restore.rules.clear();
        })
        .await;
        let removed = env.sweep().await;
        let user = &removed[0];
        let first = okta_delivery("evt-a", &user.email, OKTA_APP, Duration::ZERO);
        let (status, answer) = env.okta(OKTA_SECRET, &first).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["requests"][0].as_str().unwrap().to_string();
        env.app.drain_queue().await;
        let pending = format!(
            "SELECT COUNT(*) FROM email_outbox WHERE account_id = '{}' AND template = 'pending'",
            user.account
        );
        assert_eq!(env.count(&pending).await, 1, "{backend}");

        let again = okta_delivery("evt-b", &user.email, OKTA_APP, Duration::ZERO);
        let (status, answer) = env.okta(OKTA_SECRET, &again).await;
        assert_eq!(status, 200);
        assert_eq!(answer["requests"], json!([]), "{backend}: {answer}");
        assert_eq!(answer["askedAlready"], json!([id]));
        env.app.drain_queue().await;
        assert_eq!(
            env.count("SELECT COUNT(*) FROM restore_requests").await,
            1,
            "{backend}: no second request"
        );
        assert_eq!(env.count(&pending).await, 1, "{backend}: no second email");
        assert_eq!(
            env.count(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.signin_ignored' AND account_id = '{}'",
                user.account
            ))
            .await,
            1
        );
        assert!(!env.has_jira(&user.account));
    }
}
