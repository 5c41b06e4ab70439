//! The admin digest: pending requests, licence alerts from the seat counts, once a day.

use chrono::Utc;
use reseat::app::AppState;
use reseat::sim::SimConfig;

use crate::support::TestDb;

#[tokio::test]
async fn the_daily_digest_lists_pending_requests_and_licence_alerts_once() {
    let db = TestDb::sqlite();
    let sim = reseat::sim::spawn(SimConfig {
        users: 80,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = reseat::demo::config_for(&sim, dir.path());
    config.database.url = db.url.clone();
    config.mail.admin_recipients = vec!["it-admins@acme.example".into()];
    // Any use of a seat passes a 1% threshold: every Jira product alerts.
    config.sweep.licence_alert_percent = 1;
    config.validate().unwrap();
    let state = AppState::open(config).await.unwrap();
    sqlx::query(
        "INSERT INTO restore_requests (id, channel, idempotency_key, account_id, product, status, \
         payload, created_at, updated_at, display_name) \
         VALUES ('r-1', 'jsm', 'jsm:HELP-9', 'acc-1', 'jira-software', 'pending', '{}', 1, 1, $1)",
    )
    .bind("Ana <b>Lima</b>")
    .execute(state.db.pool())
    .await
    .unwrap();

    let now = Utc::now();
    assert_eq!(
        reseat::notify::digest::scheduled_turn(&state, now)
            .await
            .unwrap(),
        1
    );
    let (subject, text, html): (String, String, String) = sqlx::query_as(
        "SELECT subject, text_body, html_body FROM email_outbox WHERE template = 'digest'",
    )
    .fetch_one(state.db.pool())
    .await
    .unwrap();
    assert!(!subject.is_empty());
    assert!(text.contains("Ana <b>Lima</b>"), "{text}");
    assert!(
        html.contains("Ana &lt;b&gt;Lima&lt;/b&gt;") || html.contains("Ana &#60;b&#62;Lima"),
        "escaped in HTML"
    );
    assert!(
        text.contains("- Jira: ") && text.contains("- Jira Service Management: "),
        "{text}"
    );
    // The same day again sends nothing more.
    assert_eq!(
        reseat::notify::digest::scheduled_turn(&state, now)
            .await
            .unwrap(),
        0
    );
    let digests: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM email_outbox WHERE template = 'digest'")
            .fetch_one(state.db.pool())
            .await
            .unwrap();
    assert_eq!(digests, 1);
    sim.shutdown().await;
}
