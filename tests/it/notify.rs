//! Notifications and links as users and admins meet them: the message a real SMTP server
//! receives, escaping in every template, exactly one message per dedupe key across a
//! crash, undeliverable messages kept for admins, and links that verify, rotate and work
//! once (on every backend).

use std::path::Path;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use reseat::app::App;
use reseat::config::{Config, Secret};
use reseat::notify::templates::{self, Declined, TEMPLATES, Warning};
use reseat::notify::{
    Branding, Enqueued, KeyRing, LinkError, LinkSigner, Purpose, SmtpSecurity, TokenRejection,
    TransportKind,
};
use reseat::queue::WorkerOutcome;
use reseat::store::TestClock;
use sqlx::Any;

use crate::smtp::{self, Mode, SmtpServer};
use crate::support::TestDb;

const ACCOUNT: &str = "5b10ac8d82e05b22cc7d4ef5";
const PRODUCT: &str = "jira-software";
const SITE: &str = "acme.atlassian.net";
const KEY_1: &str = "k1-0123456789abcdef0123456789abcdef";
const KEY_2: &str = "k2-fedcba9876543210fedcba9876543210";
const HOSTILE: &str = "<script>alert(1)</script>";

fn with_keys(config: &mut Config) {
    config.links.keys.insert("k1".into(), Secret::new(KEY_1));
    config.links.signing_key = Some("k1".into());
    config.links.site = Some(SITE.into());
    config.server.public_url = Some("http://127.0.0.1:8080".into());
    config.mail.organisation = "Acme".into();
}

fn with_file_outbox(config: &mut Config, dir: &Path) {
    with_keys(config);
    config.mail.transport = TransportKind::File;
    config.mail.outbox_dir = dir.to_path_buf();
}

fn with_smtp(config: &mut Config, server: &SmtpServer) {
    with_keys(config);
    config.mail.transport = TransportKind::Smtp;
    config.mail.smtp.host = "127.0.0.1".into();
    config.mail.smtp.port = server.addr.port();
    config.mail.smtp.security = SmtpSecurity::None;
    config.mail.smtp.timeout = Duration::from_secs(5);
    // A pooled connection would outlive a server that is told to refuse.
    config.queue.backoff_base = Duration::from_millis(10);
}

async fn build(db: &TestDb, adjust: impl FnOnce(&mut Config)) -> App {
    build_on(db, &TestClock::new(), adjust).await
}

/// An app whose time `clock` moves.
async fn build_on(db: &TestDb, clock: &TestClock, adjust: impl FnOnce(&mut Config)) -> App {
    let mut config = db.config();
    adjust(&mut config);
    config.validate().expect("valid test config");
    App::build_with_clock(config, axum::Router::new(), clock.clock())
        .await
        .expect("app builds")
}

/// Lets time pass for the queue: every waiting retry is due and every lease has expired.
fn time_passes(app: &App, clock: &TestClock) {
    let queue = &app.state().config.queue;
    clock.advance(queue.backoff_max + queue.lease + Duration::from_secs(1));
}

async fn run_until_idle(app: &App) -> Vec<WorkerOutcome> {
    let mut outcomes = Vec::new();
    loop {
        match app.worker().run_once().await.expect("queue works") {
            WorkerOutcome::Idle => return outcomes,
            other => outcomes.push(other),
        }
    }
}

fn warning(display_name: &str, keep_url: &str, restore_url: &str) -> Warning {
    Warning {
        display_name: display_name.into(),
        product_name: "Jira Software".into(),
        last_active: NaiveDate::from_ymd_opt(2025, 1, 6),
        removal_date: NaiveDate::from_ymd_opt(2025, 5, 1).unwrap(),
        keep_url: keep_url.into(),
        restore_url: restore_url.into(),
    }
}

fn eml_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn a_real_smtp_server_receives_both_parts_headers_and_links() {
    let server = SmtpServer::start(Some(("reseat", "s3cret")));
    let db = TestDb::sqlite();
    let app = build(&db, |config| {
        with_smtp(config, &server);
        config.mail.smtp.username = Some("reseat".into());
        config.mail.smtp.password = Some(Secret::new("s3cret"));
        config.mail.from = "IT Access <access@acme.example>".into();
        config.mail.reply_to = Some("Service Desk <help@acme.example>".into());
        config.mail.support_contact = Some("help@acme.example".into());
        config.mail.portal_url =
            Some("https://acme.atlassian.net/servicedesk/customer/portal/1".into());
    })
    .await;
    let state = app.state();
    let now = Utc::now();

    let mut tx = state.db.pool().begin().await.unwrap();
    let keep = state
        .notify
        .links
        .issue(
            &mut tx,
            Purpose::Keep,
            ACCOUNT,
            PRODUCT,
            SITE,
            now + chrono::Duration::days(14),
        )
        .await
        .unwrap();
    let restore = state
        .notify
        .links
        .issue(
            &mut tx,
            Purpose::Restore,
            ACCOUNT,
            PRODUCT,
            SITE,
            now + chrono::Duration::days(30),
        )
        .await
        .unwrap();
    let message = state
        .notify
        .outbox
        .message(
            format!("warning:{ACCOUNT}:{PRODUCT}:run-1"),
            "Ada Lovelace <ada@acme.example>",
            &warning("Ada Lovelace", &keep.url, &restore.url),
        )
        .about(ACCOUNT, PRODUCT);
    let enqueued = state
        .notify
        .outbox
        .enqueue_in(&mut tx, message)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(enqueued, Enqueued::Queued(_)));

    assert!(matches!(
        app.worker().run_once().await.unwrap(),
        WorkerOutcome::Completed { .. }
    ));

    let received = server.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.from, "access@acme.example");
    assert_eq!(mail.to, vec!["ada@acme.example".to_string()]);
    assert_eq!(mail.auth, Some(("reseat".into(), "s3cret".into())));

    let (head, _) = mail.data.split_once("\r\n\r\n").unwrap();
    assert_eq!(
        smtp::header(head, "Subject").unwrap(),
        "Your Jira Software access at Acme will be removed on 1 May 2025"
    );
    assert_eq!(
        smtp::header(head, "From").unwrap(),
        "\"IT Access\" <access@acme.example>"
    );
    assert_eq!(
        smtp::header(head, "To").unwrap(),
        "\"Ada Lovelace\" <ada@acme.example>"
    );
    assert_eq!(
        smtp::header(head, "Reply-To").unwrap(),
        "\"Service Desk\" <help@acme.example>"
    );
    assert_eq!(
        smtp::header(head, "Auto-Submitted").unwrap(),
        "auto-generated"
    );
    assert!(
        smtp::header(head, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let entry = state
        .notify
        .outbox
        .get(enqueued.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(smtp::header(head, "Message-ID"), entry.message_id);
    assert!(entry.message_id.unwrap().ends_with("@acme.example>"));
    assert_eq!(entry.status, "sent");
    assert!(entry.sent_at.is_some());
    assert_eq!(entry.account_id.as_deref(), Some(ACCOUNT));

    let parts = smtp::parts(&mail.data);
    assert_eq!(parts.len(), 2, "{}", mail.data);
    let (text_type, text) = &parts[0];
    let (html_type, html) = &parts[1];
    assert!(text_type.starts_with("text/plain"), "{text_type}");
    assert!(html_type.starts_with("text/html"), "{html_type}");
    assert!(text.contains("Hello Ada Lovelace,"), "{text}");
    assert!(text.contains("since 6 January 2025"), "{text}");
    assert!(
        text.contains(&keep.url) && text.contains(&restore.url),
        "{text}"
    );
    assert!(
        text.contains("Questions? Contact help@acme.example."),
        "{text}"
    );
    assert!(html.contains(&format!("href=\"{}\"", keep.url)), "{html}");
    assert!(
        html.contains(&format!("href=\"{}\"", restore.url)),
        "{html}"
    );
    assert!(
        restore
            .url
            .starts_with("http://127.0.0.1:8080/restore/v1.k1.")
    );

    // The link in the email is the one that works.
    let token = restore.url.rsplit('/').next().unwrap();
    let claims = state
        .notify
        .links
        .verify(token, Purpose::Restore, Utc::now())
        .unwrap();
    assert_eq!(
        (claims.account_id.as_str(), claims.product.as_str()),
        (ACCOUNT, PRODUCT)
    );
    let mut conn = state.db.pool().acquire().await.unwrap();
    state
        .notify
        .links
        .consume(&mut conn, &claims, Utc::now())
        .await
        .unwrap();
}

#[test]
fn every_html_part_escapes_a_hostile_display_name() {
    let brand = Branding {
        organisation: "Acme".into(),
        support_contact: Some("help@acme.example".into()),
        portal_url: Some("https://acme.example/portal".into()),
    };
    for name in TEMPLATES {
        let rendered = templates::sample(name, HOSTILE, &brand, "https://reseat.example")
            .unwrap()
            .unwrap();
        assert!(
            !rendered.html.contains("<script") && !rendered.html.contains("alert(1)</"),
            "{name}: {}",
            rendered.html
        );
        assert!(
            rendered
                .html
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{name}: the name is shown, escaped: {}",
            rendered.html
        );
        // Plain text is not HTML: the name is shown as written.
        assert!(rendered.text.contains(HOSTILE), "{name}");
    }
}

#[tokio::test]
async fn hostile_text_stays_escaped_all_the_way_to_the_outbox_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let app = build(&db, |config| with_file_outbox(config, dir.path())).await;
    let outbox = &app.state().notify.outbox;
    let declined = Declined {
        display_name: HOSTILE.into(),
        product_name: "Confluence".into(),
        request_id: "REQ-1".into(),
        reason: format!("\"><img src=x onerror=alert(1)> {HOSTILE}"),
    };
    outbox
        .enqueue(outbox.message("declined:REQ-1", "x@acme.example", &declined))
        .await
        .unwrap();
    run_until_idle(&app).await;
    let files = eml_files(dir.path());
    assert_eq!(files.len(), 1);
    let data = std::fs::read_to_string(dir.path().join(&files[0])).unwrap();
    let parts = smtp::parts(&data);
    let html = &parts[1].1;
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{html}"
    );
}

#[tokio::test]
async fn a_crash_between_rendering_and_sending_delivers_each_message_once() {
    for db in TestDb::all().await {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::new();
        let app = build_on(&db, &clock, |config| with_file_outbox(config, dir.path())).await;
        let state = app.state();
        let keys = [
            "warning:a:jira-software:run-1",
            "warning:b:jira-software:run-1",
            "removal:c:confluence:run-1",
        ];

        // The event and its message commit together: a rolled-back event leaves no message.
        let mut tx = state.db.pool().begin().await.unwrap();
        state
            .notify
            .outbox
            .enqueue_in(
                &mut tx,
                state.notify.outbox.message(
                    "rolled-back",
                    "a@acme.example",
                    &warning("A", "k", "r"),
                ),
            )
            .await
            .unwrap();
        tx.rollback().await.unwrap();

        let mut tx = state.db.pool().begin().await.unwrap();
        for key in keys {
            let message = state.notify.outbox.message(
                key,
                "user@acme.example",
                &warning("User", "https://k", "https://r"),
            );
            assert!(matches!(
                state
                    .notify
                    .outbox
                    .enqueue_in(&mut tx, message)
                    .await
                    .unwrap(),
                Enqueued::Queued(_)
            ));
        }
        tx.commit().await.unwrap();

        // A worker claims every job, then dies before sending anything.
        let mut crashed = Vec::new();
        while let Some(job) = state.queue.claim("crashed-worker").await.unwrap() {
            crashed.push(job);
        }
        assert_eq!(crashed.len(), 3, "{}", db.backend_name());
        assert_eq!(run_until_idle(&app).await, vec![], "leases still held");
        assert!(eml_files(dir.path()).is_empty());

        // Re-planning renders the same messages again: nothing new is added.
        for key in keys {
            let message = state.notify.outbox.message(
                key,
                "user@acme.example",
                &warning("User", "https://k", "https://r"),
            );
            assert!(matches!(
                state.notify.outbox.enqueue(message).await.unwrap(),
                Enqueued::Duplicate(_)
            ));
        }

        // The process restarts after the leases expired: each message is sent once.
        time_passes(&app, &clock);
        let outcomes = run_until_idle(&app).await;
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, WorkerOutcome::Completed { .. }))
        );
        assert_eq!(eml_files(dir.path()).len(), 3, "{}", db.backend_name());
        // The dead worker's late completion does not count.
        assert!(!state.queue.complete(&crashed[0]).await.unwrap());

        // A crash after the file was written but before the row was marked sent: the
        // message goes again and replaces its own file.
        let id: i64 =
            sqlx::query_scalar::<Any, i64>("SELECT id FROM email_outbox WHERE dedupe_key = $1")
                .bind(keys[0])
                .fetch_one(state.db.pool())
                .await
                .unwrap();
        sqlx::query::<Any>("UPDATE email_outbox SET status = 'queued' WHERE id = $1")
            .bind(id)
            .execute(state.db.pool())
            .await
            .unwrap();
        sqlx::query::<Any>("UPDATE jobs SET state = 'queued' WHERE dedupe_key = $1")
            .bind(format!("mail:{id}"))
            .execute(state.db.pool())
            .await
            .unwrap();
        assert_eq!(run_until_idle(&app).await.len(), 1);
        assert_eq!(eml_files(dir.path()).len(), 3);

        // Sent messages are never sent again, however often their job runs.
        time_passes(&app, &clock);
        assert_eq!(run_until_idle(&app).await, vec![]);
        let stats = state.notify.outbox.stats().await.unwrap();
        assert_eq!((stats.queued, stats.sent, stats.dead), (0, 3, 0));
    }
}

#[tokio::test]
async fn refused_unreachable_and_invalid_messages_are_kept_for_admins() {
    for db in TestDb::all().await {
        let server = SmtpServer::start(None);
        let app = build(&db, |config| {
            with_smtp(config, &server);
            config.queue.max_attempts = 2;
        })
        .await;
        let outbox = &app.state().notify.outbox;
        let message =
            |key: &str, to: &str| outbox.message(key, to, &warning("U", "https://k", "https://r"));

        // Refused for good (554): dead at once, listed for admins.
        server.set_mode(Mode::Refuse);
        let refused = outbox
            .enqueue(message("refused", "u@acme.example"))
            .await
            .unwrap();
        assert!(matches!(
            app.worker().run_once().await.unwrap(),
            WorkerOutcome::DeadLettered { .. }
        ));
        let dead = outbox.undelivered(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, refused.id());
        assert!(
            dead[0].last_error.as_deref().unwrap().contains("refused"),
            "{:?}",
            dead[0].last_error
        );

        // An admin retries once the server accepts again: sent, once.
        server.set_mode(Mode::Accept);
        assert!(outbox.retry(refused.id()).await.unwrap());
        assert!(
            !outbox.retry(refused.id()).await.unwrap(),
            "only dead messages are retried"
        );
        assert!(matches!(
            app.worker().run_once().await.unwrap(),
            WorkerOutcome::Completed { .. }
        ));
        assert_eq!(server.received().len(), 1);

        // An invalid address never reaches the queue but is kept, visible.
        let invalid = outbox
            .enqueue(message("invalid", "not an address"))
            .await
            .unwrap();
        assert!(matches!(invalid, Enqueued::Undeliverable(_)));
        let entry = outbox.get(invalid.id()).await.unwrap().unwrap();
        assert_eq!(entry.status, "dead");
        assert!(entry.last_error.unwrap().contains("invalid recipient"));
        assert_eq!(run_until_idle(&app).await, vec![]);

        // Server down: retried with backoff, then dead after queue.max_attempts; kept.
        let down_db = TestDb::sqlite();
        let down_clock = TestClock::new();
        let down = build_on(&down_db, &down_clock, |config| {
            with_smtp(config, &server);
            config.mail.smtp.port = unused_port();
            config.queue.max_attempts = 2;
        })
        .await;
        let outbox = &down.state().notify.outbox;
        let queued = outbox
            .enqueue(outbox.message("down", "u@acme.example", &warning("U", "k", "r")))
            .await
            .unwrap();
        assert!(matches!(
            down.worker().run_once().await.unwrap(),
            WorkerOutcome::Retrying { .. }
        ));
        let entry = outbox.get(queued.id()).await.unwrap().unwrap();
        assert_eq!((entry.status.as_str(), entry.attempts), ("queued", 1));
        assert!(entry.last_error.is_some());
        time_passes(&down, &down_clock);
        assert!(matches!(
            down.worker().run_once().await.unwrap(),
            WorkerOutcome::DeadLettered { .. }
        ));
        let entry = outbox.get(queued.id()).await.unwrap().unwrap();
        assert_eq!((entry.status.as_str(), entry.attempts), ("dead", 2));
        assert_eq!(server.received().len(), 1);
    }
}

fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn signer(ring: KeyRing) -> LinkSigner {
    LinkSigner::new(ring, "https://reseat.example.com")
}

fn ring_k1() -> KeyRing {
    KeyRing::new().with_signing_key("k1", KEY_1.as_bytes())
}

#[tokio::test]
async fn a_link_works_once_even_when_two_clicks_race() {
    for db in TestDb::all().await {
        let app = build(&db, with_keys).await;
        let pool = app.state().db.pool().clone();
        let links = app.state().notify.links.clone();
        let now = Utc::now();
        for _ in 0..5 {
            let mut conn = pool.acquire().await.unwrap();
            let issued = links
                .issue(
                    &mut conn,
                    Purpose::Restore,
                    ACCOUNT,
                    PRODUCT,
                    SITE,
                    now + chrono::Duration::days(30),
                )
                .await
                .unwrap();
            drop(conn);
            let claims = links.verify(&issued.token, Purpose::Restore, now).unwrap();
            let consume = || {
                let (pool, links, claims) = (pool.clone(), links.clone(), claims.clone());
                async move {
                    let mut tx = pool.begin().await.unwrap();
                    let result = links.consume(&mut tx, &claims, Utc::now()).await;
                    tx.commit().await.unwrap();
                    result
                }
            };
            let (a, b) = tokio::join!(tokio::spawn(consume()), tokio::spawn(consume()));
            let results = [a.unwrap(), b.unwrap()];
            let ok = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(ok, 1, "{}: {results:?}", db.backend_name());
            assert!(
                results
                    .iter()
                    .any(|r| matches!(r, Err(LinkError::Rejected(TokenRejection::AlreadyUsed))))
            );
            // And any later click.
            let mut conn = pool.acquire().await.unwrap();
            assert!(matches!(
                links.check(&mut conn, &claims).await,
                Err(LinkError::Rejected(TokenRejection::AlreadyUsed))
            ));
            assert!(matches!(
                links.consume(&mut conn, &claims, Utc::now()).await,
                Err(LinkError::Rejected(TokenRejection::AlreadyUsed))
            ));
        }
    }
}

#[tokio::test]
async fn forged_expired_and_misused_tokens_are_rejected_and_change_nothing() {
    for db in TestDb::all().await {
        let app = build(&db, with_keys).await;
        let pool = app.state().db.pool().clone();
        let links = &app.state().notify.links;
        let now = Utc::now();
        let expires = now + chrono::Duration::days(1);
        let mut conn = pool.acquire().await.unwrap();
        let issued = links
            .issue(&mut conn, Purpose::Restore, ACCOUNT, PRODUCT, SITE, expires)
            .await
            .unwrap();
        let token = issued.token.as_str();

        let verify = |t: &str| links.verify(t, Purpose::Restore, now);
        assert!(verify(token).is_ok());
        // Truncated.
        assert!(verify(&token[..token.len() - 1]).is_err());
        assert_eq!(
            verify(&token[..token.len() / 2]),
            Err(TokenRejection::Malformed)
        );
        // Claims altered (another account) and re-encoded, signature kept.
        let parts: Vec<&str> = token.split('.').collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json = String::from_utf8(b64.decode(parts[2]).unwrap()).unwrap();
        let forged_claims = b64.encode(json.replace(ACCOUNT, "557058:attacker"));
        let forged = format!("{}.{}.{}.{}", parts[0], parts[1], forged_claims, parts[3]);
        assert_eq!(verify(&forged), Err(TokenRejection::BadSignature));
        // Signature from another key, or no such key.
        let other = signer(KeyRing::new().with_signing_key("k1", KEY_2.as_bytes()));
        let mut claims = verify(token).unwrap();
        assert_eq!(
            verify(&other.sign(&claims).unwrap()),
            Err(TokenRejection::BadSignature)
        );
        let unknown = signer(KeyRing::new().with_signing_key("k9", KEY_1.as_bytes()));
        assert_eq!(
            verify(&unknown.sign(&claims).unwrap()),
            Err(TokenRejection::UnknownKey)
        );
        // Wrong purpose and expiry.
        assert_eq!(
            links.verify(token, Purpose::Keep, now),
            Err(TokenRejection::WrongPurpose)
        );
        assert_eq!(
            links.verify(token, Purpose::Restore, expires),
            Err(TokenRejection::Expired)
        );
        // Correctly signed but never issued (not recorded): unknown.
        claims.token_id = "never-issued".into();
        let unrecorded = links.sign(&claims).unwrap();
        let unrecorded = links.verify(&unrecorded, Purpose::Restore, now).unwrap();
        assert!(matches!(
            links.consume(&mut conn, &unrecorded, now).await,
            Err(LinkError::Rejected(TokenRejection::Unknown))
        ));

        // None of that used the real link.
        let used: Option<i64> = sqlx::query_scalar::<Any, Option<i64>>(
            "SELECT used_at FROM link_tokens WHERE token_id = $1",
        )
        .bind(&issued.claims.token_id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(used, None, "{}", db.backend_name());
        let count: i64 = sqlx::query_scalar::<Any, i64>("SELECT COUNT(*) FROM link_tokens")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(count, 1);
        let good = links.verify(token, Purpose::Restore, now).unwrap();
        links.check(&mut conn, &good).await.unwrap();
        links.consume(&mut conn, &good, now).await.unwrap();
    }
}

#[test]
fn a_key_rotated_to_verify_only_still_verifies_old_links() {
    let now = Utc::now();
    let old = signer(ring_k1());
    let claims = reseat::notify::TokenClaims {
        token_id: "t1".into(),
        purpose: Purpose::Keep,
        account_id: ACCOUNT.into(),
        product: PRODUCT.into(),
        site: SITE.into(),
        expires_at: now.timestamp_millis() + 60_000,
        request_id: None,
        decision: None,
        key_id: String::new(),
    };
    let old_token = old.sign(&claims).unwrap();

    // k2 now signs; k1 only verifies.
    let rotated = signer(
        KeyRing::new()
            .with_verify_key("k1", KEY_1.as_bytes())
            .with_signing_key("k2", KEY_2.as_bytes()),
    );
    assert_eq!(
        rotated
            .verify(&old_token, Purpose::Keep, now)
            .unwrap()
            .key_id,
        "k1"
    );
    let new_token = rotated.sign(&claims).unwrap();
    assert!(new_token.starts_with("v1.k2."));
    assert_eq!(
        rotated
            .verify(&new_token, Purpose::Keep, now)
            .unwrap()
            .key_id,
        "k2"
    );

    // Once k1 is removed from the ring, its links stop working.
    let retired = signer(KeyRing::new().with_signing_key("k2", KEY_2.as_bytes()));
    assert_eq!(
        retired.verify(&old_token, Purpose::Keep, now),
        Err(TokenRejection::UnknownKey)
    );
    assert!(retired.verify(&new_token, Purpose::Keep, now).is_ok());

    // A ring with no signing key verifies but does not sign.
    let verify_only = signer(KeyRing::new().with_verify_key("k1", KEY_1.as_bytes()));
    assert!(!verify_only.can_sign());
    assert!(matches!(
        verify_only.sign(&claims),
        Err(LinkError::NoSigningKey)
    ));
    assert!(verify_only.verify(&old_token, Purpose::Keep, now).is_ok());
}

fn reseat(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::support::reseat_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RESEAT_DATABASE__URL")
        .output()
        .expect("reseat runs")
}

#[tokio::test]
async fn reseat_link_prints_a_link_that_works_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("reseat.toml"),
        format!(
            "[server]\npublic_url = \"https://reseat.example.com\"\n\
             [database]\nurl = \"sqlite://reseat.db\"\n\
             [mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"smtp.example.com\"\n\
             [links]\nsigning_key = \"k1\"\nsite = \"{SITE}\"\n[links.keys]\nk1 = \"{KEY_1}\"\n"
        ),
    )
    .unwrap();
    // The database first: `link` does not create one.
    assert_eq!(reseat(dir.path(), &["migrate"]).status.code(), Some(0));
    let output = reseat(
        dir.path(),
        &["link", "--account", ACCOUNT, "--product", PRODUCT],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let token = url
        .strip_prefix("https://reseat.example.com/restore/")
        .expect("a restore URL");

    // The same configuration verifies it, and the link was recorded: it works once.
    let db = reseat::store::Db::connect(&reseat::store::DbOptions {
        url: format!("sqlite://{}", dir.path().join("reseat.db").display()),
        max_connections: 1,
        busy_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let links = signer(ring_k1());
    let claims = links.verify(token, Purpose::Restore, Utc::now()).unwrap();
    assert_eq!(
        (
            claims.account_id.as_str(),
            claims.product.as_str(),
            claims.site.as_str()
        ),
        // `acme.atlassian.net` and `acme` are one site: the link carries `acme`.
        (ACCOUNT, PRODUCT, "acme")
    );
    let days = (claims.expires_at - Utc::now().timestamp_millis()) / 86_400_000;
    assert_eq!(days, 29, "restore links last links.restore_ttl (30d)");
    let mut conn = db.pool().acquire().await.unwrap();
    links.consume(&mut conn, &claims, Utc::now()).await.unwrap();
    assert!(links.consume(&mut conn, &claims, Utc::now()).await.is_err());

    // Keep links, another site.
    let output = reseat(
        dir.path(),
        &[
            "link",
            "--account",
            ACCOUNT,
            "--product",
            PRODUCT,
            "--purpose",
            "keep",
            "--site",
            "other.atlassian.net",
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .starts_with("https://reseat.example.com/keep/v1.k1.")
    );

    // Without keys: one line naming the key to set.
    std::fs::write(dir.path().join("reseat.toml"), "[links]\nsite = \"x\"\n").unwrap();
    let output = reseat(
        dir.path(),
        &["link", "--account", ACCOUNT, "--product", PRODUCT],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("config: links.signing_key: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn mail_preview_renders_every_template_and_names_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    for name in TEMPLATES {
        let output = reseat(dir.path(), &["mail", "preview", name, "--name", HOSTILE]);
        assert_eq!(output.status.code(), Some(0), "{name}");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.starts_with("Subject: "), "{printed}");
        assert!(printed.contains("--- text/plain ---") && printed.contains("--- text/html ---"));
        let html = printed.split("--- text/html ---").nth(1).unwrap();
        assert!(!html.contains("<script"), "{name}: {html}");
    }
    let output = reseat(
        dir.path(),
        &["mail", "preview", "warning", "--part", "html"],
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("<!DOCTYPE html>"));
    let output = reseat(dir.path(), &["mail", "preview", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "mail preview: no template \"nope\"; choose one of: warning, removal, restored, pending, declined, digest\n"
    );
}

#[tokio::test]
async fn the_admin_digest_gathers_pending_runs_and_reclaimed_seats_once_per_period() {
    for db in TestDb::all().await {
        let dir = tempfile::tempdir().unwrap();
        let app = build(&db, |config| with_file_outbox(config, dir.path())).await;
        let state = app.state();
        let pool = state.db.pool();
        let now = Utc::now().timestamp_millis();
        sqlx::query::<Any>(
            "INSERT INTO restore_requests (id, channel, idempotency_key, account_id, product, status, created_at, updated_at) \
             VALUES ('req-1', 'jsm', 'ISD-1', $1, 'confluence', 'pending', $2, $2), \
                    ('req-2', 'link', 'tok-2', 'acc-2', 'confluence', 'restored', $2, $2)",
        )
        .bind(HOSTILE)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        // The run summary as apply writes it (its one contract type).
        let summary = serde_json::to_string(&reseat::sweep::ApplyReport {
            warned: 4,
            removed_users: 7,
            removed_memberships: 9,
            ..Default::default()
        })
        .unwrap();
        sqlx::query::<Any>(
            "INSERT INTO sweep_runs (id, kind, status, mode, started_at, summary) \
             VALUES ('run-1', 'apply', 'completed', 'live', $1, $2)",
        )
        .bind(now - 3_600_000)
        .bind(summary)
        .execute(pool)
        .await
        .unwrap();
        for (account, group) in [("a", "g1"), ("a", "g2"), ("b", "g1")] {
            sqlx::query::<Any>(
                "INSERT INTO journal (account_id, product, site, group_id, group_name, action, run_id, reason, created_at) \
                 VALUES ($1, 'jira-software', $2, $3, $3, 'removed', 'run-1', 'inactive', $4)",
            )
            .bind(account)
            .bind(SITE)
            .bind(group)
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
        }

        let mut conn = pool.acquire().await.unwrap();
        let name = |key: &str| match key {
            "jira-software" => "Jira Software".to_string(),
            other => other.to_string(),
        };
        let digest =
            reseat::notify::digest::collect(&mut conn, now - 86_400_000, &name, vec![], None)
                .await
                .unwrap();
        assert_eq!(digest.pending.len(), 1, "{}", db.backend_name());
        assert_eq!(digest.pending[0].request_id, "req-1");
        let run = digest.last_run.as_ref().unwrap();
        assert_eq!((run.warned, run.removed, run.failed), (4, 7, 0));
        assert_eq!(digest.reclaimed.len(), 1);
        assert_eq!(
            (
                digest.reclaimed[0].product_name.as_str(),
                digest.reclaimed[0].seats
            ),
            ("Jira Software", 2)
        );

        let admins = vec![
            "admin@acme.example".to_string(),
            "cio@acme.example".to_string(),
        ];
        let outbox = &state.notify.outbox;
        for _ in 0..2 {
            reseat::notify::digest::enqueue(outbox, &mut conn, &admins, "2025-05-01", &digest)
                .await
                .unwrap();
        }
        drop(conn);
        assert_eq!(run_until_idle(&app).await.len(), 2);
        let files = eml_files(dir.path());
        assert_eq!(files.len(), 2);
        let data = std::fs::read_to_string(dir.path().join(&files[0])).unwrap();
        let parts = smtp::parts(&data);
        assert!(parts[0].1.contains("Jira Software: 2"), "{}", parts[0].1);
        assert!(parts[0].1.contains("4 warned, 7 removed"), "{}", parts[0].1);
        assert!(!parts[1].1.contains("<script"), "{}", parts[1].1);
    }
}

#[test]
fn config_check_never_prints_link_keys_or_the_smtp_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), format!("{KEY_2}\n")).unwrap();
    std::fs::write(
        dir.path().join("reseat.toml"),
        format!(
            "[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"smtp.example.com\"\n\
             username = \"reseat\"\npassword = \"smtp-pass-123\"\n\
             [links]\nsigning_key = \"k2\"\n[links.keys]\nk1 = \"{KEY_1}\"\nk2_file = \"key\"\n"
        ),
    )
    .unwrap();
    let output = reseat(dir.path(), &["config", "check"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    for secret in [KEY_1, KEY_2, "smtp-pass-123"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(
        printed.contains("k1 = \"[redacted]\"") && printed.contains("k2 = \"[redacted]\""),
        "{printed}"
    );
}
