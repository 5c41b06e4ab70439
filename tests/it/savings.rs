//! Money saved: after a real sweep (plan and apply against the simulator) and some restores,
//! on the test clock, the savings equal the figure computed by hand, and the overview, the
//! API's `/api/v1/stats`, the monthly CSV report and the digest all say the same; the CLI
//! report agrees with them; bad prices are one line from `config check` with exit 2.

use std::collections::BTreeMap;
use std::time::Duration;

use reseat::billing::config::{PriceConfig, PriceText};
use reseat::config::Config;
use reseat::sweep::{ApplyOptions, Source};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, spawn_configured};

const PASSWORD: &str = "correct horse battery staple";

fn price(product: &str, amount: &str, cycle: &str) -> PriceConfig {
    PriceConfig {
        product: product.into(),
        site: None,
        price: PriceText(amount.into()),
        currency: Some("USD".into()),
        cycle: Some(cycle.into()),
    }
}

/// Prices whose daily share is a whole number of cents in April 2030 (30 days) and in 2030
/// (365 days): Jira 9.30 a month (0.31 a day), Jira Service Management 21.90 a month (0.73 a
/// day), Confluence 73.00 a year (0.20 a day).
fn with_prices(config: &mut Config) {
    config.billing.prices = vec![
        price("jira-software", "9.30", "monthly"),
        price("jira-service-desk", "21.90", "monthly"),
        price("confluence", "73.00", "annual"),
    ];
    config.billing.renewal = Some("2030-06-01".into());
}

/// (site, product) → seats the ledger says were reclaimed.
async fn reclaimed(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut seats: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for seat in reseat::ledger::reclaimed_seats(&mut conn, 0).await.unwrap() {
        assert_eq!(seat.site, app.state.site());
        seats.entry(seat.product).or_default().push(seat.account_id);
    }
    seats
}

async fn restore(app: &TestApp, key: &str, account: &str, product: &str) {
    reseat::restore::store::accept(
        &app.state.queue,
        reseat::restore::store::NewRequest {
            channel: reseat::restore::rules::Channel::Webhook,
            site: app.state.site().to_owned(),
            idempotency_key: key.into(),
            account_id: Some(account.into()),
            product: Some(product.into()),
            payload: json!({ "accountId": account, "product": product }),
            justification: None,
        },
    )
    .await
    .unwrap();
    app.drain_queue().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM restore_requests WHERE idempotency_key = $1")
            .bind(key)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(status, "restored", "{account} {product}");
}

fn cents(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap();
    whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
}

fn usd(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[tokio::test]
async fn savings_after_a_sweep_and_restores_equal_the_hand_computed_figure_everywhere() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sim = crate::ledger::sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::ledger::config_for(&sim, &db, dir.path());
        with_prices(&mut config);
        // Everyone idle goes at once; the clock is moved years ahead, so the guards that
        // would see nearly everyone inactive and the activity old are opened.
        config.sweep.ladder.warn = false;
        config.sweep.limits.max_removals = 10_000;
        config.sweep.limits.max_removal_percent = 100.0;
        config.sweep.limits.max_inactive_percent = 100.0;
        config.sweep.limits.stale_after = Duration::from_secs(20 * 365 * 86_400);
        config.admin.users = vec![crate::support::admin_user("ana", PASSWORD, None)];
        let app = spawn_configured(db, config, axum::Router::new()).await;
        // To 2030-04-01 06:00 UTC: April has 30 days and 2030 has 365.
        let start = chrono::DateTime::parse_from_rfc3339("2030-04-01T06:00:00Z")
            .unwrap()
            .timestamp_millis();
        let ahead = start - app.state.db.now_ms();
        app.advance(Duration::from_millis(u64::try_from(ahead).unwrap()));

        let planned = reseat::sweep::plan(
            &app.state,
            &[Source::Api],
            app.state.clock().now(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .unwrap();
        let report = reseat::sweep::apply(
            &app.state,
            Some(&planned.plan_id),
            &ApplyOptions {
                confirmed: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(
            report.removed_users > 0,
            "{backend}: the sweep removed seats"
        );
        let seats = reclaimed(&app).await;
        let jira = seats["jira-software"].clone();
        let confluence = seats["confluence"].clone();
        let jsm = seats.get("jira-service-desk").cloned().unwrap_or_default();
        assert!(
            jira.len() >= 2 && confluence.len() >= 2,
            "{backend}: {seats:?}"
        );

        // Day 11: one Jira seat comes back (free 10 days).
        app.advance(Duration::from_secs(10 * 86_400));
        restore(&app, "back-jira", &jira[0], "jira-software").await;
        // Day 16: one Confluence seat comes back (free 15 days); the rest are still free.
        app.advance(Duration::from_secs(5 * 86_400));
        restore(&app, "back-confluence", &confluence[0], "confluence").await;
        app.drain_queue().await;

        // By hand, in cents: Jira 31 a day, Confluence 20 a day, JSM 73 a day.
        let (nj, nc, ns) = (jira.len() as i64, confluence.len() as i64, jsm.len() as i64);
        let saved = 10 * 31 + (nj - 1) * 15 * 31 + nc * 15 * 20 + ns * 15 * 73;
        // Free now: Jira 9.30 a month each, Confluence 73.00 / 12 = 6.0833.. each (rounded
        // once for the product), JSM 21.90 each.
        let confluence_rate = ((nc - 1) * 7300 * 100 / 12 + 50) / 100;
        let run_rate = (nj - 1) * 930 + confluence_rate + ns * 2190;

        let savings = reseat::billing::savings(&app.state).await.unwrap();
        assert_eq!(savings.saved().0, saved, "{backend}: the ledger's savings");
        assert_eq!(savings.run_rate().0, run_rate, "{backend}: the run rate");
        assert_eq!(savings.free_now() as i64, nj + nc + ns - 2);

        // The API says the same, and its answer is in the OpenAPI document.
        let stats: Value = app
            .client
            .get(app.url("/api/v1/stats"))
            .bearer_auth(reseat::demo::DEMO_API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let money = &stats["savings"];
        assert_eq!(money["currency"], "USD", "{backend}: {money:#}");
        assert_eq!(money["saved"], usd(saved), "{backend}");
        assert_eq!(money["saved_minor"], saved);
        assert_eq!(money["run_rate_per_month"], usd(run_rate));
        let jira_row = money["by_site_product"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["product"] == "jira-software")
            .unwrap();
        assert_eq!(jira_row["site"], app.state.site());
        assert_eq!(jira_row["restored"], 1);
        assert_eq!(jira_row["free_now"], nj - 1);
        assert_eq!(jira_row["seat_days"], 10 + (nj - 1) * 15);
        let forecast = money["forecast"].as_array().unwrap();
        assert!(
            forecast
                .iter()
                .any(|f| f["product"] == "jira-software" && f["renewal"] == "2030-06-01"),
            "{forecast:?}"
        );

        // The overview shows the figure.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (cookie, _) = app.sign_in(&http, "ana", PASSWORD).await;
        let page = http
            .get(app.url("/admin"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("USD {} saved to date", usd(saved)))
                || page.contains(&format!(
                    "<span class=\"money\">USD {}</span> saved to date",
                    usd(saved)
                )),
            "{backend}: the overview shows USD {}",
            usd(saved)
        );
        assert!(page.contains(&format!("run rate <strong>USD {}</strong>", usd(run_rate))));
        assert!(page.contains("Forecast at renewal (2030-06-01)"));
        assert!(page.contains("/admin/reports/savings.csv"));

        // The monthly CSV report: one row per site × product × month, summing to it.
        let response = http
            .get(app.url("/admin/reports/savings.csv"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv_text = response.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            reseat::billing::report::COLUMNS
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(
            rows.len(),
            seats.len(),
            "{backend}: one month, one row per product"
        );
        assert!(
            rows.iter()
                .all(|r| &r[0] == "2030-04" && &r[1] == app.state.site())
        );
        let csv_total: i64 = rows.iter().map(|r| cents(&r[9])).sum();
        assert_eq!(
            csv_total, saved,
            "{backend}: the CSV sums to the same figure"
        );
        let jira_csv = rows.iter().find(|r| &r[2] == "jira-software").unwrap();
        assert_eq!(&jira_csv[3], "Jira");
        assert_eq!(jira_csv[9].to_string(), usd(10 * 31 + (nj - 1) * 15 * 31));
        assert_eq!(&jira_csv[5], "1", "one Jira seat given back");

        // The digest says it too.
        let queued = reseat::notify::digest::scheduled_turn(&app.state, app.state.clock().now())
            .await
            .unwrap();
        assert_eq!(queued, 1);
        let body: String = sqlx::query_scalar(
            "SELECT text_body FROM email_outbox WHERE template = 'digest' ORDER BY id DESC",
        )
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        assert!(
            body.contains(&format!("USD {} saved to date", usd(saved))),
            "{backend}: {body}"
        );
        assert!(body.contains("FORECAST AT RENEWAL"), "{body}");
    }
}

#[tokio::test]
async fn the_cli_report_writes_the_same_rows_as_csv_and_json() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("reseat.toml");
    std::fs::write(
        &config_path,
        format!(
            "[database]\nurl = \"{}\"\n\n[[billing.prices]]\nproduct = \"jira\"\nprice = \"73.00\"\ncurrency = \"USD\"\ncycle = \"annual\"\n",
            db.url
        ),
    )
    .unwrap();
    let mut config = db.config();
    with_prices(&mut config);
    config.billing.prices = vec![price("jira-software", "73.00", "annual")];
    let app = spawn_configured(db, config, axum::Router::new()).await;
    // Removed 20 days ago, given back 10 days ago; another removed 3 days ago (real time:
    // the CLI reads the system clock).
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    for (account, removed, restored) in [("acc-a", 20, Some(10)), ("acc-b", 3, None)] {
        let entry = reseat::ledger::JournalEntry {
            account_id: account,
            product: "jira-software",
            site: app.state.site(),
            group_id: "5e471e1f-3739-492e-9243-da17fc8090eb",
            group_name: "jira-users",
            run_id: Some("plan-x"),
            request_id: None,
            reason: "inactive",
        };
        reseat::ledger::journal::journal_removed_in(&mut conn, now - removed * day, &entry)
            .await
            .unwrap();
        if let Some(restored) = restored {
            reseat::ledger::journal::journal_restored_in(
                &mut conn,
                now - restored * day,
                &reseat::ledger::JournalEntry {
                    request_id: Some("req-1"),
                    ..entry
                },
            )
            .await
            .unwrap();
        }
    }
    drop(conn);
    // 10 + 3 days of 73.00 a year: 0.20 a day (or 73/366 in a leap year).
    let expected = reseat::billing::savings(&app.state).await.unwrap();
    assert_eq!(expected.totals[0].seat_days, 13);
    let out = dir.path().join("savings.csv");
    let run = std::process::Command::new(crate::support::reseat_bin())
        .args(["--config"])
        .arg(&config_path)
        .args(["report", "savings", "--format", "csv", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty());
    let total: i64 = rows.iter().map(|r| cents(&r[9])).sum();
    assert_eq!(total, expected.saved().0, "{text}");
    let days: u64 = rows.iter().map(|r| r[7].parse::<u64>().unwrap()).sum();
    assert_eq!(days, 13);

    let run = std::process::Command::new(crate::support::reseat_bin())
        .args(["--config"])
        .arg(&config_path)
        .args(["report", "savings", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["currency"], "USD");
    assert_eq!(json["saved"], expected.format(Some(expected.saved())));
    assert_eq!(json["rows"].as_array().unwrap().len(), rows.len());
    assert_eq!(json["rows"][0]["site"], app.state.site());
}

#[test]
fn a_price_without_a_currency_is_one_line_from_config_check_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (body, says) in [
        (
            "price = \"7.53\"\ncycle = \"monthly\"",
            "config: billing.prices[0] (jira-software).currency: a price needs its currency",
        ),
        (
            "price = \"-7.53\"\ncurrency = \"USD\"\ncycle = \"monthly\"",
            "config: billing.prices[0] (jira-software).price: -7.53 is negative",
        ),
        (
            "price = \"7.53\"\ncurrency = \"USD\"\ncycle = \"weekly\"",
            "unknown billing cycle \"weekly\"",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            format!("[[billing.prices]]\nproduct = \"jira-software\"\n{body}\n"),
        )
        .unwrap();
        let run = std::process::Command::new(crate::support::reseat_bin())
            .args(["--config"])
            .arg(&path)
            .args(["config", "check"])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{body}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let path = dir.path().join("two.toml");
    std::fs::write(
        &path,
        "[[billing.prices]]\nproduct = \"jira\"\nprice = 7\ncurrency = \"USD\"\ncycle = \"monthly\"\n\
         [[billing.prices]]\nproduct = \"unknown-app\"\nprice = 7\ncurrency = \"USD\"\ncycle = \"monthly\"\n",
    )
    .unwrap();
    let run = std::process::Command::new(crate::support::reseat_bin())
        .args(["--config"])
        .arg(&path)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown product \"unknown-app\""));
}

#[tokio::test]
async fn a_seat_taken_twice_has_two_free_periods_and_a_seat_still_billed_has_none() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let config = db.config();
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let site = app.state.site().to_string();
        let day = 86_400_000;
        let t0 = app.state.db.now_ms();
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        // Plan p2's item for acc-billed ended still_billed: what was journaled freed nothing.
        reseat::sweep::store::create_plan_in(&mut conn, t0, "p2", "api", &site, &json!({}))
            .await
            .unwrap();
        reseat::sweep::store::insert_items_in(
            &mut conn,
            "p2",
            &[reseat::sweep::store::NewItem {
                account_id: "acc-billed".into(),
                product: "jira-software".into(),
                email: None,
                display_name: None,
                decision: "remove".into(),
                reason: "inactive".into(),
                last_active: None,
                threshold_days: Some(90),
                access_groups: "[]".into(),
                added_to_org: None,
                billing: "{}".into(),
            }],
        )
        .await
        .unwrap();
        sqlx::query("UPDATE plan_items SET state = 'still_billed' WHERE plan_id = 'p2'")
            .execute(&mut *conn)
            .await
            .unwrap();
        use reseat::ledger::journal::{journal_removed_in, journal_restored_in};
        // acc-twice: removed on day 0, back on day 4, removed again on day 6, still free.
        journal_removed_in(&mut conn, t0, &entry(&site, "acc-twice", "p1", None))
            .await
            .unwrap();
        journal_restored_in(
            &mut conn,
            t0 + 4 * day,
            &entry(&site, "acc-twice", "p1", Some("r1")),
        )
        .await
        .unwrap();
        journal_removed_in(
            &mut conn,
            t0 + 6 * day,
            &entry(&site, "acc-twice", "p3", None),
        )
        .await
        .unwrap();
        journal_removed_in(&mut conn, t0, &entry(&site, "acc-billed", "p2", None))
            .await
            .unwrap();
        let periods = reseat::ledger::free_periods(&mut conn).await.unwrap();
        let spans: Vec<(String, i64, Option<i64>)> = periods
            .iter()
            .map(|p| (p.account_id.clone(), p.from - t0, p.to.map(|to| to - t0)))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("acc-twice".to_string(), 0, Some(4 * day)),
                ("acc-twice".to_string(), 6 * day, None),
            ],
            "{backend}"
        );
        assert!(periods.iter().all(|p| p.site == site));
        // The count every report reads agrees: one seat reclaimed, not the one still billed.
        let seats = reseat::ledger::reclaimed_seats(&mut conn, 0).await.unwrap();
        assert_eq!(seats.len(), 1, "{backend}");
        assert_eq!(seats[0].account_id, "acc-twice");
    }
}

fn entry<'a>(
    site: &'a str,
    account: &'a str,
    run: &'a str,
    request: Option<&'a str>,
) -> reseat::ledger::JournalEntry<'a> {
    reseat::ledger::JournalEntry {
        account_id: account,
        product: "jira-software",
        site,
        group_id: "5e471e1f-3739-492e-9243-da17fc8090eb",
        group_name: "jira-users",
        run_id: Some(run),
        request_id: request,
        reason: "inactive",
    }
}
