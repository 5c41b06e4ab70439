//! Access for a while: a rule that approves for 14 days (`approve_for`). The ledger records
//! the end; the sweep warns before it, takes the access back at the end, and leaves it to
//! someone who worked in the product since.

use std::time::Duration;

use reseat::sim::Product;
use reseat::sweep::config::Mode;
use reseat::sweep::store::PlanItem;
use reseat::sweep::{ApplyOptions, Source};
use serde_json::json;

use crate::ledger::{config_for, sim};
use crate::support::{TestApp, TestDb, spawn_configured};

const DAY: Duration = Duration::from_secs(86_400);

/// Plans and applies once at the app's clock; the plan's items.
async fn sweep(app: &TestApp) -> Vec<PlanItem> {
    let now = app.state.clock().now();
    let planned = reseat::sweep::plan(
        &app.state,
        &[Source::Api],
        now,
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    reseat::sweep::apply(
        &app.state,
        Some(&planned.plan_id),
        &ApplyOptions {
            confirmed: true,
            now,
            ..ApplyOptions::default()
        },
    )
    .await
    .unwrap();
    reseat::sweep::store::items(&app.state.db, &planned.plan_id)
        .await
        .unwrap()
}

fn item<'a>(items: &'a [PlanItem], account: &str) -> &'a PlanItem {
    items
        .iter()
        .find(|i| i.account_id == account && i.product == "jira-software")
        .unwrap_or_else(|| panic!("no Jira item for {account}"))
}

async fn count(app: &TestApp, sql: &str, account: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(account)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_grant_for_14_days_is_taken_back_at_the_end_after_a_warning_unless_used() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&sim, &db, dir.path());
        config.sweep.mode = Mode::Live;
        config.sweep.ladder.warn = true;
        config.sweep.ladder.remove = true;
        config.sweep.ladder.warn_before = 7 * DAY;
        // The simulator's activity stays where it was while the test clock moves on.
        config.sweep.limits.stale_after = 365 * DAY;
        config.restore.rules = vec![
            toml::from_str(
                "name = \"back for two weeks\"\ndecision = \"approve\"\nremoved_by_reseat = true\napprove_for = \"14d\"\n",
            )
            .unwrap(),
        ];
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let members = || sim.state().group_members("jira-software-users").unwrap();

        // Warned, then removed a week later: two people who had not used Jira for long.
        sweep(&app).await;
        app.advance(8 * DAY);
        let items = sweep(&app).await;
        let removed: Vec<String> = items
            .iter()
            .filter(|i| i.product == "jira-software" && i.decision == "remove" && i.email.is_some())
            .filter(|i| !members().contains(&i.account_id))
            .map(|i| i.account_id.clone())
            .take(3)
            .collect();
        assert_eq!(removed.len(), 3, "{backend}: three Jira users removed");
        let (idle, busy, keeper) = (removed[0].clone(), removed[1].clone(), removed[2].clone());

        // `rules explain` says the rule gives it back for 14 days.
        let explained = reseat::restore::worker::explain(
            &app.state,
            &reseat::atlassian::AccountId::parse(idle.clone()).unwrap(),
            &reseat::atlassian::ProductKey::JIRA_SOFTWARE,
            reseat::restore::rules::Channel::Webhook,
            false,
        )
        .await
        .unwrap()
        .explain();
        assert!(
            explained.contains("decision: approve")
                && explained.contains("for: 14d, then taken back"),
            "{explained}"
        );

        // They ask, and the rule gives Jira back for 14 days.
        for (n, account) in removed.iter().enumerate() {
            reseat::restore::store::accept(
                &app.state.queue,
                reseat::restore::store::NewRequest {
                    channel: reseat::restore::rules::Channel::Webhook,
                    idempotency_key: format!("grant-{n}"),
                    account_id: Some(account.clone()),
                    product: Some("jira-software".into()),
                    site: app.state.site().to_owned(),
                    justification: None,
                    payload: json!({ "accountId": account, "product": "jira-software" }),
                },
            )
            .await
            .unwrap();
        }
        app.drain_queue().await;
        assert!(
            members().contains(&idle) && members().contains(&busy),
            "{backend}: access back"
        );
        let (granted, until): (i64, i64) = sqlx::query_as(
            "SELECT granted_at, until_at FROM grants WHERE account_id = $1 AND ended_at IS NULL",
        )
        .bind(&idle)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        assert_eq!(
            until - granted,
            14 * 86_400_000,
            "the ledger records the end"
        );
        // The requester is told the access is for a while, and until when.
        let end = chrono::DateTime::from_timestamp_millis(until)
            .unwrap()
            .format("%-d %B %Y")
            .to_string();
        let told: String = sqlx::query_scalar(
            "SELECT text_body FROM email_outbox WHERE account_id = $1 AND template = 'restored'",
        )
        .bind(&idle)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        assert!(
            told.contains(&format!("it ends on {end}, unless you work in Jira")),
            "{backend}: {told}"
        );

        // A day later: kept, and the plan says until when.
        app.advance(DAY);
        let items = sweep(&app).await;
        assert_eq!(
            item(&items, &idle).decision,
            "keep",
            "{}",
            item(&items, &idle).reason
        );
        assert!(
            item(&items, &idle).reason.contains("time-bound access"),
            "{}",
            item(&items, &idle).reason
        );

        // A week before the end: the idle one is warned (keep and restore links in the
        // mail); the other has worked in Jira since, and is left alone.
        app.advance(7 * DAY);
        sim.state()
            .set_last_active(
                &busy,
                Product::JiraSoftware,
                None,
                Some(app.state.clock().now()),
            )
            .unwrap();
        let warned_before = count(
            &app,
            "SELECT COUNT(*) FROM sweep_warnings WHERE account_id = $1",
            &idle,
        )
        .await;
        let items = sweep(&app).await;
        let warn = item(&items, &idle);
        assert_eq!(warn.decision, "warn", "{backend}: {}", warn.reason);
        assert!(warn.reason.contains("ends in"), "{}", warn.reason);
        assert_eq!(
            item(&items, &busy).decision,
            "keep",
            "{}",
            item(&items, &busy).reason
        );
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM sweep_warnings WHERE account_id = $1",
                &idle
            )
            .await,
            warned_before + 1,
            "the warning went out before the end"
        );
        let mail: String = sqlx::query_scalar(
            "SELECT text_body FROM email_outbox WHERE to_addr = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(warn.email.as_deref().unwrap())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        assert!(mail.contains("/keep/"), "a keep link: {mail}");

        // The third was warned too, and presses the keep link in the warning.
        let keeper_email = item(&items, &keeper).email.clone().unwrap();
        assert_eq!(item(&items, &keeper).decision, "warn");
        let mail: String = sqlx::query_scalar(
            "SELECT text_body FROM email_outbox WHERE to_addr = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(&keeper_email)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        let keep_url = mail
            .split_whitespace()
            .find_map(|w| w.find("/keep/").map(|at| app.url(&w[at..])))
            .unwrap();
        let kept = app.press_link(&keep_url, &[]).await;
        assert_eq!(kept.status(), 200);
        assert!(kept.text().await.unwrap().contains("You keep your"));
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM grants WHERE account_id = $1 AND ended_by = 'kept'",
                &keeper
            )
            .await,
            1,
            "{backend}: keeping ends the grant"
        );

        // At the end, past the warning's notice: taken back; the one who used it keeps it.
        app.advance(7 * DAY);
        let items = sweep(&app).await;
        let taken = item(&items, &idle);
        assert_eq!(taken.decision, "remove", "{backend}: {}", taken.reason);
        assert!(taken.reason.contains("ended"), "{}", taken.reason);
        assert!(
            !members().contains(&idle),
            "{backend}: taken back at the end"
        );
        assert!(members().contains(&busy), "{backend}: used since, kept");
        assert_eq!(
            item(&items, &keeper).decision,
            "keep",
            "{}",
            item(&items, &keeper).reason
        );
        assert!(
            members().contains(&keeper),
            "{backend}: asked to keep, kept"
        );
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM grants WHERE account_id = $1 AND ended_by = 'taken'",
                &idle
            )
            .await,
            1
        );
        sim.shutdown().await;
    }
}
