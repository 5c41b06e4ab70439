//! How long the admin overview takes to render for a large org: a 100,000-user plan, a
//! year of journal, warnings, requests and audit entries, on SQLite.
//!
//! Run with `cargo bench --bench admin_overview`; the figures go in `docs/benchmarks.md`.
//! `ADMIN_BENCH_USERS` changes the org size. Under `cargo test --all-targets` it is a smoke
//! run on a small org.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reseat::app::AppState;
use reseat::config::Config;
use reseat::sweep::store::{NewItem, create_plan_in, insert_items_in};

const DAY: i64 = 86_400_000;

/// Inserts `rows` rows of `columns` values each, 400 rows per statement.
async fn insert_rows(
    state: &AppState,
    table: &str,
    columns: &[&str],
    rows: usize,
    row: impl Fn(usize) -> Vec<String>,
) {
    let mut tx = state.db.pool().begin().await.unwrap();
    let mut start = 0;
    while start < rows {
        let end = (start + 400).min(rows);
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut values = Vec::new();
        for (n, i) in (start..end).enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            let cells = row(i);
            for (c, cell) in cells.into_iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                values.push(cell);
                sql.push_str(&format!("${}", values.len()));
            }
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for value in &values {
            // Numbers are bound as numbers, everything else as text.
            query = match value.parse::<i64>() {
                Ok(number) => query.bind(number),
                Err(_) => query.bind(value.clone()),
            };
        }
        query.execute(&mut *tx).await.unwrap();
        start = end;
    }
    tx.commit().await.unwrap();
}

async fn seed(state: &AppState, users: usize) {
    let now = state.db.now_ms();
    let site = state.site().to_string();
    let products = ["jira-software", "confluence", "jira-service-desk"];
    let mut conn = state.db.pool().acquire().await.unwrap();
    create_plan_in(
        &mut conn,
        now,
        "bench-plan",
        "api",
        &site,
        &serde_json::json!({}),
    )
    .await
    .unwrap();
    let items: Vec<NewItem> = (0..users)
        .map(|i| NewItem {
            account_id: format!("acc-{i:06}"),
            product: products[i % 3].to_string(),
            email: Some(format!("user{i}@acme.example")),
            display_name: Some(format!("User {i}")),
            decision: ["keep", "keep", "warn", "remove", "exempt"][i % 5].to_string(),
            reason: "last active 2025-01-01 (400 days ago); inactive after 90 days".into(),
            last_active: Some(now - (i as i64 % 400) * DAY),
            threshold_days: Some(90),
            access_groups: "[]".into(),
            added_to_org: Some(now - 800 * DAY),
            billing: "{}".into(),
        })
        .collect();
    insert_items_in(&mut conn, "bench-plan", &items)
        .await
        .unwrap();
    drop(conn);
    let removals = users / 5;
    insert_rows(
        state,
        "journal",
        &[
            "account_id",
            "product",
            "site",
            "group_id",
            "group_name",
            "action",
            "run_id",
            "reason",
            "created_at",
        ],
        removals,
        |i| {
            vec![
                format!("acc-{i:06}"),
                products[i % 3].into(),
                site.clone(),
                format!("group-{}", i % 7),
                "jira-users".into(),
                if i % 10 == 0 { "restored" } else { "removed" }.into(),
                format!("run-{}", i % 12),
                "inactive".into(),
                (now - (i as i64 % 365) * DAY).to_string(),
            ]
        },
    )
    .await;
    insert_rows(
        state,
        "sweep_warnings",
        &[
            "account_id",
            "product",
            "site",
            "plan_id",
            "email",
            "warned_at",
            "remove_after",
        ],
        users / 10,
        |i| {
            vec![
                format!("acc-{i:06}"),
                products[i % 3].into(),
                site.clone(),
                format!("plan-{}", i % 12),
                format!("user{i}@acme.example"),
                (now - (i as i64 % 60) * DAY).to_string(),
                (now + (14 - i as i64 % 60) * DAY).to_string(),
            ]
        },
    )
    .await;
    insert_rows(
        state,
        "restore_requests",
        &[
            "id",
            "channel",
            "idempotency_key",
            "account_id",
            "product",
            "status",
            "payload",
            "created_at",
            "updated_at",
        ],
        users / 20,
        |i| {
            let at = (now - (i as i64 % 365) * DAY).to_string();
            vec![
                format!("req-{i:06}"),
                "jsm".into(),
                format!("key-{i}"),
                format!("acc-{i:06}"),
                products[i % 3].into(),
                ["restored", "restored", "denied", "pending"][i % 4].into(),
                "{}".into(),
                at.clone(),
                at,
            ]
        },
    )
    .await;
    insert_rows(
        state,
        "audit_log",
        &["at", "actor", "action", "account_id", "product", "details"],
        users / 2,
        |i| {
            vec![
                (now - (i as i64 % 365) * DAY).to_string(),
                "reseat".into(),
                "restore.groups_added".into(),
                format!("acc-{i:06}"),
                products[i % 3].into(),
                "{}".into(),
            ]
        },
    )
    .await;
    insert_rows(
        state,
        "jobs",
        &[
            "kind",
            "payload",
            "state",
            "max_attempts",
            "run_at",
            "created_at",
            "updated_at",
        ],
        users / 20,
        |i| {
            vec![
                "restore.process".into(),
                "{}".into(),
                if i % 50 == 0 { "dead" } else { "done" }.into(),
                "8".into(),
                now.to_string(),
                now.to_string(),
                now.to_string(),
            ]
        },
    )
    .await;
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let users: usize = std::env::var("ADMIN_BENCH_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if bench { 100_000 } else { 2_000 });
    let runs = if bench { 30 } else { 3 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let state = AppState::open(config).await.unwrap();
        let started = Instant::now();
        seed(&state, users).await;
        println!(
            "seeded {users} users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // One warm-up render (statement cache, page cache).
        let html = reseat::web::admin::pages::render_overview(&state, "bench")
            .await
            .unwrap();
        assert!(html.contains("Seats reclaimed"));
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let html = reseat::web::admin::pages::render_overview(&state, "bench")
                .await
                .unwrap();
            times.push(started.elapsed());
            std::hint::black_box(html);
        }
        times.sort();
        let median = times[times.len() / 2];
        let max = times[times.len() - 1];
        println!(
            "overview, {users} users: median {:.1} ms, max {:.1} ms over {runs} renders ({} bytes)",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            html.len()
        );
        if bench && users >= 100_000 {
            assert!(
                median < Duration::from_millis(300),
                "the overview of a 100,000-user org must render in under 300 ms"
            );
        }
    });
}
