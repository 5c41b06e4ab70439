//! The sweep against a seeded simulator with known ground truth: the plan, apply with the
//! journal, CSV vs API, the guards, and resuming after a stop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use reseat::activity::csv::write;
use reseat::app::AppState;
use reseat::atlassian::{AtlassianConfig, FamilyLimits, ProductKey, RetrySettings, UserListing};
use reseat::sim::{Category, Product, SimConfig, SimHandle};
use reseat::sweep::config::{Mode, ProductPolicy};
use reseat::sweep::store::{self, PlanItem};
use reseat::sweep::{ApplyOptions, Source, SweepError};

use crate::support::TestDb;

const USERS: usize = 300;

/// The demo's `[atlassian]` for this simulator, with limits and retries fit for tests.
pub(crate) fn atlassian_for(sim: &SimHandle) -> AtlassianConfig {
    let fast = FamilyLimits {
        requests_per_second: 10_000,
        concurrency: 8,
    };
    AtlassianConfig {
        admin: fast,
        jira: fast,
        confluence: fast,
        jsm: fast,
        retry: RetrySettings {
            max_attempts: 5,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_wait: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        },
        ..reseat::demo::atlassian_for(sim)
    }
}

pub(crate) fn group_id(sim: &SimHandle, name: &str) -> reseat::atlassian::GroupId {
    reseat::atlassian::GroupId::parse(sim.state().group(name).unwrap().id).unwrap()
}

/// A configuration that sweeps the three products, with permissive guards and no warning
/// step (inactive means remove), so the plan maps one-to-one to the ground truth.
pub(crate) async fn state_for(sim: &SimHandle, db: &TestDb, mode: Mode) -> AppState {
    state_with(sim, db, mode, |_| {}).await
}

/// [`state_for`] with the admin API read through the given user listing.
async fn state_reading(sim: &SimHandle, db: &TestDb, mode: Mode, listing: UserListing) -> AppState {
    state_with(sim, db, mode, |config| {
        config.atlassian.user_listing = listing
    })
    .await
}

/// [`state_for`] with a last change to the configuration.
pub(crate) async fn state_with(
    sim: &SimHandle,
    db: &TestDb,
    mode: Mode,
    change: impl FnOnce(&mut reseat::config::Config),
) -> AppState {
    let mut config = db.config();
    config.atlassian = atlassian_for(sim);
    let sweep = &mut config.sweep;
    sweep.mode = mode;
    for key in ["jira-software", "jira-service-desk"] {
        sweep.products.insert(key.into(), ProductPolicy::default());
    }
    sweep.products.insert(
        "confluence".into(),
        ProductPolicy {
            access_groups: vec![
                group_id(sim, "confluence-users"),
                group_id(sim, "jira-confluence-bundle"),
            ],
            ..ProductPolicy::default()
        },
    );
    sweep.protect.groups = vec!["reseat-protected".into()];
    sweep.governance.block_on_multi_product_groups = false;
    sweep.ladder.warn = false;
    sweep.limits.max_removals = 10_000;
    sweep.limits.max_removal_percent = 100.0;
    sweep.limits.max_inactive_percent = 100.0;
    config.links.signing_key = Some("test".into());
    config.links.keys.insert(
        "test".into(),
        "a-test-signing-key-of-at-least-32-chars".into(),
    );
    change(&mut config);
    config.validate().unwrap();
    AppState::open(config).await.unwrap()
}

/// A simulator seeded with `users` accounts.
pub(crate) async fn seeded(users: usize) -> SimHandle {
    reseat::sim::spawn(SimConfig {
        users,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

pub(crate) fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

fn sim_product(key: &str) -> Product {
    Product::from_admin_key(key).unwrap()
}

/// The expected decision of every seat holder, from the simulator's ground truth.
pub(crate) fn expected(sim: &SimHandle) -> BTreeMap<(String, String), String> {
    let truth = sim.state().ground_truth();
    let mut out = BTreeMap::new();
    for user in &truth.users {
        let usable = user.account_status == reseat::sim::AccountStatus::Active && !user.suspended;
        for (product, category) in &user.products {
            if *category == Category::NoAccess || !usable {
                continue;
            }
            let exempt = user.account_type == reseat::sim::AccountType::App
                || user.protected
                || user.org_admin
                || (user.via_multi_product_group && *product != Product::JiraServiceDesk);
            let decision = if exempt {
                "exempt"
            } else {
                match category {
                    Category::Active | Category::NeverAccessedNew => "keep",
                    Category::Inactive
                    | Category::NeverAccessedOld
                    | Category::ActiveElsewhereOnly => "remove",
                    Category::NoAccess => unreachable!(),
                }
            };
            out.insert(
                (user.account_id.clone(), product.admin_key().to_owned()),
                decision.to_owned(),
            );
        }
    }
    out
}

pub(crate) fn decisions(items: &[PlanItem]) -> BTreeMap<(String, String), String> {
    items
        .iter()
        .map(|i| {
            (
                (i.account_id.clone(), i.product.clone()),
                i.decision.clone(),
            )
        })
        .collect()
}

async fn plan_items(state: &AppState, sources: &[Source]) -> (String, Vec<PlanItem>) {
    let planned = reseat::sweep::plan(state, sources, Utc::now(), &hidden())
        .await
        .unwrap();
    let items = store::items(&state.db, &planned.plan_id).await.unwrap();
    (planned.plan_id, items)
}

#[tokio::test]
async fn the_plan_matches_the_ground_truth_with_reasons() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::DryRun).await;
        let (_, items) = plan_items(&state, &[Source::Api]).await;
        let want = expected(&sim);
        let got = decisions(&items);
        for (key, decision) in &want {
            assert_eq!(
                got.get(key),
                Some(decision),
                "{key:?} on {}: {:?}",
                db.backend_name(),
                items
                    .iter()
                    .find(|i| (&i.account_id, &i.product) == (&key.0, &key.1))
                    .map(|i| &i.reason)
            );
        }
        assert_eq!(got.len(), want.len(), "no extra rows");
        // Every category is present, and each decision carries its reason.
        let truth = sim.state().ground_truth();
        let reason = |pred: &dyn Fn(&reseat::sim::SeededUser) -> bool, needle: &str| {
            let user = truth
                .users
                .iter()
                .find(|u| {
                    pred(u)
                        && u.account_status == reseat::sim::AccountStatus::Active
                        && !u.suspended
                        && items.iter().any(|i| i.account_id == u.account_id)
                })
                .unwrap_or_else(|| panic!("a seeded user for {needle}"));
            let item = items
                .iter()
                .find(|i| i.account_id == user.account_id)
                .unwrap();
            assert!(
                item.reason.contains(needle),
                "{needle}: {} ({})",
                item.reason,
                item.decision
            );
        };
        reason(
            &|u| u.account_type == reseat::sim::AccountType::App,
            "app account",
        );
        reason(&|u| u.protected && !u.org_admin, "protected group");
        reason(&|u| u.org_admin, "org admin");
        reason(
            &|u| u.via_multi_product_group && !u.protected && !u.org_admin,
            "also grants",
        );
        let plain = |u: &reseat::sim::SeededUser| {
            !u.protected && !u.org_admin && !u.via_multi_product_group
        };
        reason(
            &|u| {
                plain(u)
                    && u.products
                        .values()
                        .all(|c| matches!(c, Category::NeverAccessedNew | Category::NoAccess))
                    && u.products
                        .values()
                        .any(|c| *c == Category::NeverAccessedNew)
            },
            "never accessed",
        );
        reason(
            &|u| {
                plain(u)
                    && u.products
                        .values()
                        .all(|c| matches!(c, Category::ActiveElsewhereOnly | Category::NoAccess))
                    && u.products
                        .values()
                        .any(|c| *c == Category::ActiveElsewhereOnly)
            },
            "active on another site of the org",
        );
        // Customers hold no seat: no rows.
        for user in truth
            .users
            .iter()
            .filter(|u| u.account_type == reseat::sim::AccountType::Customer)
        {
            assert!(!items.iter().any(|i| i.account_id == user.account_id));
        }
        sim.shutdown().await;
    }
}

/// Memberships of every seeded account, by group name.
/// The v2 search names Jira `jira` today (the simulator's default), and may name a product
/// with a key reseat has never seen: here Jira Service Management's. Activity on the site
/// under that key may be any product's, so the user's seats there are `unknown`, never a
/// removal, and nobody the simulator has active is planned for removal.
#[tokio::test]
async fn activity_under_a_product_key_reseat_does_not_know_is_unknown_never_a_removal() {
    const NEW_KEY: &str = "jira-service-next";
    for db in TestDb::all().await {
        let sim = reseat::sim::spawn(SimConfig {
            users: USERS,
            jsm_key: NEW_KEY.into(),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let state = state_for(&sim, &db, Mode::DryRun).await;
        let (_, items) = plan_items(&state, &[Source::Api]).await;
        let want = expected(&sim);
        assert_eq!(items.len(), want.len(), "no extra or missing rows");
        let truth = sim.state().ground_truth();
        let (mut unknown, mut removals) = (0, 0);
        for user in &truth.users {
            // Any JSM activity on this site: the listing has an entry under NEW_KEY.
            let cloud_id = &sim.config().cloud_id;
            let unattributable = sim
                .state()
                .user(&user.account_id)
                .unwrap()
                .activity
                .iter()
                .any(|a| a.product == Product::JiraServiceDesk && &a.cloud_id == cloud_id);
            for item in items.iter().filter(|i| i.account_id == user.account_id) {
                let category = user.products.get(&sim_product(&item.product));
                assert!(
                    !(category == Some(&Category::Active) && item.decision == "remove"),
                    "an active user planned for removal: {item:?}"
                );
                let wanted = &want[&(item.account_id.clone(), item.product.clone())];
                if unattributable && wanted != "exempt" {
                    assert_eq!(
                        item.decision,
                        "unknown",
                        "{}: {}",
                        db.backend_name(),
                        item.reason
                    );
                    assert!(item.reason.contains(NEW_KEY), "{}", item.reason);
                    unknown += 1;
                } else {
                    assert_eq!(&item.decision, wanted, "{}", item.reason);
                    removals += usize::from(item.decision == "remove");
                }
            }
        }
        assert!(
            unknown > 0 && removals > 0,
            "{unknown} unknown, {removals} removals"
        );
    }
}

/// An access group id that is not a group of the site (a typo, a deleted group) blocks the
/// plan with a finding that names it, before any plan row is written; with the block off,
/// the plan leaves the group out and removes nobody through it.
#[tokio::test]
async fn an_access_group_the_site_does_not_have_blocks_the_plan_and_is_never_removed_through() {
    const MISSING: &str = "00000000-0000-4000-8000-00000000dead";
    for db in TestDb::all().await {
        let sim = seeded(60).await;
        let missing = reseat::atlassian::GroupId::parse(MISSING).unwrap();
        let state = state_with(&sim, &db, Mode::DryRun, |config| {
            let confluence = config.sweep.products.get_mut("confluence").unwrap();
            confluence.access_groups.push(missing.clone());
        })
        .await;
        let error = reseat::sweep::plan(&state, &[Source::Api], state.clock().now(), &hidden())
            .await
            .expect_err("the plan is blocked");
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "group {MISSING} (sweep.products.confluence.access_groups) is not a group of the site"
            )),
            "{}: {text}",
            db.backend_name()
        );
        let plans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plans")
            .fetch_one(state.db.pool())
            .await
            .unwrap();
        assert_eq!(plans, 0, "nothing was planned");

        let state = state_with(&sim, &db, Mode::DryRun, |config| {
            config.sweep.governance.block_on_missing_access_groups = false;
            let confluence = config.sweep.products.get_mut("confluence").unwrap();
            confluence.access_groups.push(missing.clone());
        })
        .await;
        let (_, items) = plan_items(&state, &[Source::Api]).await;
        assert!(!items.is_empty());
        assert!(
            items
                .iter()
                .all(|item| !item.access_groups.contains(MISSING)),
            "no item is billed through the missing group"
        );
    }
}

fn memberships(sim: &SimHandle) -> BTreeSet<(String, String)> {
    sim.state()
        .groups()
        .into_iter()
        .flat_map(|g| {
            sim.state()
                .group_members(&g.name)
                .unwrap()
                .into_iter()
                .map(move |m| (m, g.name.clone()))
        })
        .collect()
}

async fn journal(state: &AppState) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT account_id, product, group_name, run_id FROM journal WHERE action = 'removed' ORDER BY id",
    )
    .fetch_all(state.db.pool())
    .await
    .unwrap()
}

fn live() -> ApplyOptions {
    ApplyOptions {
        confirmed: true,
        ..ApplyOptions::default()
    }
}

#[tokio::test]
async fn apply_removes_exactly_the_planned_memberships_journal_first() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::Live).await;
        let before = memberships(&sim);
        let (plan_id, items) = plan_items(&state, &[Source::Api]).await;
        sim.state().clear_log();
        let report = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap();
        // A plan younger than sweep.recheck_after is applied as planned: only the removals.
        assert_eq!(report.recheck_listing_pages, 0);
        assert_eq!(report.recheck_lookups, 0);
        assert!(
            sim.state()
                .log()
                .iter()
                .all(|e| e.method == "DELETE" || e.path.ends_with("/role-assignments")),
            "only removals, and the read-back that each seat is gone"
        );
        let removals: Vec<&PlanItem> = items.iter().filter(|i| i.decision == "remove").collect();
        assert!(!removals.is_empty());
        assert_eq!(report.removed_users as usize, removals.len());
        assert_eq!(report.failed, 0);
        // Exactly the planned memberships are gone, nothing else changed.
        let mut expected_gone = BTreeSet::new();
        for item in &removals {
            let groups: Vec<serde_json::Value> = serde_json::from_str(&item.access_groups).unwrap();
            for g in groups {
                expected_gone.insert((
                    item.account_id.clone(),
                    g["name"].as_str().unwrap().to_owned(),
                ));
            }
        }
        let after = memberships(&sim);
        let gone: BTreeSet<_> = before.difference(&after).cloned().collect();
        assert_eq!(gone, expected_gone);
        assert!(after.is_subset(&before));
        // One journal row per removed membership, for the plan.
        let rows = journal(&state).await;
        let journaled: BTreeSet<_> = rows
            .iter()
            .map(|(account, _, group, run)| {
                assert_eq!(run, &plan_id);
                (account.clone(), group.clone())
            })
            .collect();
        assert_eq!(journaled, expected_gone);
        assert_eq!(rows.len(), expected_gone.len());
        // The restore side reads them back.
        let first = removals[0];
        let facts = reseat::ledger::taken_groups(
            &state.db,
            &first.account_id,
            &first.product,
            state.site(),
        )
        .await
        .unwrap();
        assert!(!facts.is_empty());
        // Items are done; a second apply changes nothing.
        let again = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap();
        assert_eq!(again.removed_users, 0);
        assert_eq!(journal(&state).await.len(), rows.len());
        // One removal notice per user and product, with a restore link, even after re-runs.
        let notices: Vec<String> =
            sqlx::query_scalar("SELECT text_body FROM email_outbox WHERE template = 'removal'")
                .fetch_all(state.db.pool())
                .await
                .unwrap();
        let unaddressed = audit_actions(&state)
            .await
            .into_iter()
            .filter(|a| a == "sweep.removal_notice")
            .count();
        assert_eq!(notices.len() + unaddressed, removals.len());
        assert!(notices.iter().all(|body| body.contains("/restore/v1.")));
        sim.shutdown().await;
    }
}

/// Writes the simulator's org as an admin "Export users" CSV for the configured site.
pub(crate) fn export_csv(sim: &SimHandle, path: &Path) {
    export_csv_taken(sim, path, chrono::Duration::zero());
}

/// The simulator's export as if it had been taken `age` ago (every date that much older).
pub(crate) fn export_csv_taken(sim: &SimHandle, path: &Path, age: chrono::Duration) {
    let products = [
        ProductKey::JIRA_SOFTWARE,
        ProductKey::JIRA_SERVICE_MANAGEMENT,
        ProductKey::CONFLUENCE,
    ];
    let cloud_id = sim.config().cloud_id.clone();
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer
        .write_record(write::header(&sim.config().site_name, &products))
        .unwrap();
    for seeded in &sim.state().ground_truth().users {
        let user = sim.state().user(&seeded.account_id).unwrap();
        let row = write::Row {
            account_id: &user.account_id,
            name: &user.name,
            email: user.email.as_deref(),
            status: "Active",
            added_to_org: user.added_to_org - age,
            org_admin: seeded.org_admin,
            products: products
                .iter()
                .map(|p| {
                    let sp = sim_product(p.as_str());
                    let access = user.products.contains(&sp);
                    let seen = user
                        .activity
                        .iter()
                        .filter(|a| a.product == sp && a.cloud_id == cloud_id)
                        .map(|a| a.last_active - age)
                        .max();
                    (p.clone(), access, seen)
                })
                .collect(),
        };
        writer.write_record(write::record(&row, &products)).unwrap();
    }
    writer.flush().unwrap();
}

pub(crate) fn assert_same(
    got: &BTreeMap<(String, String), String>,
    want: &BTreeMap<(String, String), String>,
    items: &[PlanItem],
) {
    let diff: Vec<String> = got
        .keys()
        .chain(want.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .take(5)
        .map(|k| {
            let reason = items
                .iter()
                .find(|i| (&i.account_id, &i.product) == (&k.0, &k.1))
                .map(|i| i.reason.clone());
            format!(
                "{k:?}: got {:?}, want {:?} ({reason:?})",
                got.get(k),
                want.get(k)
            )
        })
        .collect();
    assert!(diff.is_empty(), "{diff:#?}");
}

/// Admin API calls of the simulator's log, by kind.
fn admin_reads(sim: &SimHandle) -> (usize, usize, usize) {
    let log = sim.state().log();
    let count =
        |pred: &dyn Fn(&reseat::sim::LogEntry) -> bool| log.iter().filter(|e| pred(e)).count();
    (
        count(&|e| e.method == "POST" && e.path.ends_with("/users/search")),
        count(&|e| {
            e.method == "GET" && e.path.starts_with("/admin/v1/") && e.path.ends_with("/users")
        }),
        count(&|e| e.path.ends_with("/last-active-dates")),
    )
}

#[tokio::test]
async fn both_admin_listings_give_the_same_plan_and_the_directory_needs_no_per_user_call() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let directory = state_for(&sim, &db, Mode::DryRun).await;
        sim.state().clear_log();
        let planned = reseat::sweep::plan(&directory, &[Source::Api], Utc::now(), &hidden())
            .await
            .unwrap();
        let (searches, v1_pages, lookups) = admin_reads(&sim);
        let accounts = sim.state().ground_truth().users.len();
        let holder_pages = planned.summary.roles.as_ref().unwrap().holder_pages as usize;
        assert_eq!(
            searches - holder_pages,
            accounts.div_ceil(100),
            "one search call per 100 accounts (besides the role holders')"
        );
        assert_eq!(
            (v1_pages, lookups),
            (0, 0),
            "no v1 listing, no per-user lookup"
        );
        let api = planned.summary.api.unwrap();
        assert_eq!(
            (api.listing, api.per_user_calls),
            (Some(UserListing::Directory), 0)
        );
        let from_directory = store::items(&directory.db, &planned.plan_id).await.unwrap();
        assert_same(
            &decisions(&from_directory),
            &expected(&sim),
            &from_directory,
        );
        directory.db.close().await;

        // The managed listing reaches the same plan, with per-user lookups for what it lacks.
        let managed = state_reading(&sim, &db, Mode::DryRun, UserListing::Managed).await;
        sim.state().clear_log();
        let (_, from_managed) = plan_items(&managed, &[Source::Api]).await;
        let (searches, v1_pages, lookups) = admin_reads(&sim);
        assert_eq!(searches, holder_pages, "only the role holders' search");
        assert!(
            v1_pages > 0 && lookups > 0,
            "{v1_pages} pages, {lookups} lookups"
        );
        assert_same(
            &decisions(&from_managed),
            &decisions(&from_directory),
            &from_managed,
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn without_the_v2_api_the_plan_falls_back_to_the_managed_listing() {
    let db = TestDb::sqlite();
    let sim = seeded(120).await;
    // A directory id the org does not have: the v2 search answers 404 on its first page.
    let state = state_with(&sim, &db, Mode::DryRun, |config| {
        config.atlassian.directory_id = "not-this-orgs-directory".into();
    })
    .await;
    sim.state().clear_log();
    let planned = reseat::sweep::plan(&state, &[Source::Api], Utc::now(), &hidden())
        .await
        .unwrap();
    let (searches, v1_pages, _) = admin_reads(&sim);
    assert_eq!(
        searches, 2,
        "one refused search for the role holders, one for the listing"
    );
    assert!(v1_pages > 0);
    let api = planned.summary.api.unwrap();
    assert_eq!(api.listing, Some(UserListing::Managed));
    // The same plan as the ground truth: nothing was lost by falling back.
    let items = store::items(&state.db, &planned.plan_id).await.unwrap();
    assert_same(&decisions(&items), &expected(&sim), &items);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_csv_export_gives_the_same_plan_as_the_api() {
    let db = TestDb::sqlite();
    let sim = seeded(USERS).await;
    let state = state_for(&sim, &db, Mode::DryRun).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    export_csv(&sim, &file);
    let (_, from_api) = plan_items(&state, &[Source::Api]).await;
    let (_, from_csv) = plan_items(&state, &[Source::Csv(file.clone())]).await;
    assert_same(&decisions(&from_csv), &decisions(&from_api), &from_csv);
    assert_same(&decisions(&from_csv), &expected(&sim), &from_csv);
    // Both together: still the same decisions.
    let (_, both) = plan_items(&state, &[Source::Api, Source::Csv(file)]).await;
    assert_same(&decisions(&both), &decisions(&from_api), &both);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_csvs_are_reported_by_line_or_refused() {
    let db = TestDb::sqlite();
    let sim = seeded(150).await;
    let mut state = state_for(&sim, &db, Mode::DryRun).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    export_csv(&sim, &good);
    let text = std::fs::read_to_string(&good).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // 5 % garbage rows: refused with the default 1 % limit, line numbers in the message.
    let mut garbage = String::from("\u{feff}");
    let mut bad_lines = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        garbage.push_str(line);
        garbage.push('\n');
        if i > 0 && i % 20 == 0 {
            garbage.push_str("x,\"y\",,Active,31 Feb 2024\n");
            bad_lines.push(garbage.lines().count());
        }
    }
    let file = dir.path().join("garbage.csv");
    std::fs::write(&file, &garbage).unwrap();
    let err = reseat::sweep::plan(&state, &[Source::Csv(file.clone())], Utc::now(), &hidden())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SweepError::Csv(_)), "{message}");
    assert!(message.contains("rows are bad"), "{message}");
    assert!(
        message.contains(&format!("line {}", bad_lines[0])),
        "{message} / {bad_lines:?}"
    );

    // With a 10 % limit the same file plans, the bad rows reported by line.
    let mut config = (*state.config).clone();
    config.sweep.csv.max_bad_row_percent = 10.0;
    state.config = std::sync::Arc::new(config);
    let planned = reseat::sweep::plan(&state, &[Source::Csv(file)], Utc::now(), &hidden())
        .await
        .unwrap();
    assert_eq!(planned.summary.csv_bad_rows as usize, bad_lines.len());
    assert!(
        planned.summary.csv_errors[0].starts_with(&format!("line {}:", bad_lines[0])),
        "{:?}",
        planned.summary.csv_errors
    );

    // Missing columns and unknown headers refuse the file as a whole.
    let missing = dir.path().join("missing.csv");
    std::fs::write(&missing, "User id,User name,email\na,b,c\n").unwrap();
    let err = reseat::sweep::plan(&state, &[Source::Csv(missing)], Utc::now(), &hidden())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing column"), "{err}");
    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "id;name\n1;2\n").unwrap();
    let err = reseat::sweep::plan(&state, &[Source::Csv(unknown)], Utc::now(), &hidden())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no recognisable header"), "{err}");
    sim.shutdown().await;
}

async fn audit_actions(state: &AppState) -> Vec<String> {
    reseat::audit::list(&state.db, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn guards_abort_before_any_change() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let mut state = state_for(&sim, &db, Mode::Live).await;
        let before = memberships(&sim);

        // Blast radius: at most 5 removals per product.
        let mut config = (*state.config).clone();
        config.sweep.limits.max_removals = 5;
        state.config = std::sync::Arc::new(config.clone());
        let (plan_id, _) = plan_items(&state, &[Source::Api]).await;
        let err = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap_err();
        assert!(matches!(err, SweepError::Aborted(_)), "{err}");
        assert!(err.to_string().contains("max_removals"), "{err}");

        // Blast radius in percent.
        config.sweep.limits.max_removals = 10_000;
        config.sweep.limits.max_removal_percent = 5.0;
        state.config = std::sync::Arc::new(config.clone());
        let err = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("max_removal_percent"), "{err}");

        // Stale data: applied a month later, the newest activity is too old.
        config.sweep.limits.max_removal_percent = 100.0;
        state.config = std::sync::Arc::new(config.clone());
        let later = ApplyOptions {
            now: Utc::now() + chrono::Duration::days(40),
            ..live()
        };
        let err = reseat::sweep::apply(&state, Some(&plan_id), &later)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("stale"), "{err}");

        // Nearly everyone inactive.
        config.sweep.limits.max_inactive_percent = 20.0;
        state.config = std::sync::Arc::new(config.clone());
        let err = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("max_inactive_percent"), "{err}");

        assert_eq!(memberships(&sim), before, "nothing changed upstream");
        assert_eq!(sim.state().calls("DELETE", "/rest/api/3/group/user"), 0);
        assert!(journal(&state).await.is_empty());
        let aborted = audit_actions(&state)
            .await
            .into_iter()
            .filter(|a| a == "sweep.aborted")
            .count();
        assert_eq!(aborted, 4);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_stopped_apply_resumes_to_the_same_end_without_duplicates() {
    for db in TestDb::all().await {
        let other_db = TestDb::sqlite();
        let sim_a = seeded(USERS).await;
        let sim_b = seeded(USERS).await;
        let interrupted = state_for(&sim_a, &db, Mode::Live).await;
        let straight = state_for(&sim_b, &other_db, Mode::Live).await;

        let (plan_a, _) = plan_items(&interrupted, &[Source::Api]).await;
        let (plan_b, _) = plan_items(&straight, &[Source::Api]).await;
        let mut stops = 0;
        loop {
            let report = reseat::sweep::apply(
                &interrupted,
                Some(&plan_a),
                &ApplyOptions {
                    stop_after: Some(7),
                    ..live()
                },
            )
            .await
            .unwrap();
            if !report.interrupted {
                break;
            }
            stops += 1;
        }
        assert!(stops >= 2, "the run was really cut: {stops}");
        reseat::sweep::apply(&straight, Some(&plan_b), &live())
            .await
            .unwrap();

        assert_eq!(memberships(&sim_a), memberships(&sim_b));
        let strip = |rows: Vec<(String, String, String, String)>| {
            rows.into_iter()
                .map(|(a, p, g, _)| (a, p, g))
                .collect::<Vec<_>>()
        };
        let rows_a = strip(journal(&interrupted).await);
        let rows_b = strip(journal(&straight).await);
        let set_a: BTreeSet<_> = rows_a.iter().cloned().collect();
        assert_eq!(set_a.len(), rows_a.len(), "no duplicate journal rows");
        assert_eq!(set_a, rows_b.into_iter().collect::<BTreeSet<_>>());
        let plan = store::get_plan(&interrupted.db, &plan_a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(plan.status, "applied");
        sim_a.shutdown().await;
        sim_b.shutdown().await;
    }
}

#[tokio::test]
async fn dry_run_changes_nothing_and_warnings_go_out_once() {
    let db = TestDb::sqlite();
    let sim = seeded(150).await;
    let dry = state_for(&sim, &db, Mode::DryRun).await;
    let before = memberships(&sim);
    let (plan_id, _) = plan_items(&dry, &[Source::Api]).await;
    let report = reseat::sweep::apply(&dry, Some(&plan_id), &ApplyOptions::default())
        .await
        .unwrap();
    assert!(report.dry_run);
    assert!(report.would.iter().any(|w| w.contains("remove from")));
    assert_eq!(memberships(&sim), before);
    assert!(journal(&dry).await.is_empty());

    // Live with the warning step: the plan warns, apply warns once however often it runs.
    let mut config = (*dry.config).clone();
    config.sweep.mode = Mode::Live;
    config.sweep.ladder.warn = true;
    let mut live_state = dry.clone();
    live_state.config = std::sync::Arc::new(config);
    let err = reseat::sweep::apply(&live_state, Some(&plan_id), &ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SweepError::NeedsConfirmation));
    let (warn_plan, items) = plan_items(&live_state, &[Source::Api]).await;
    let warns = items.iter().filter(|i| i.decision == "warn").count();
    assert!(warns > 0);
    assert!(!items.iter().any(|i| i.decision == "remove"));
    let first = reseat::sweep::apply(&live_state, Some(&warn_plan), &live())
        .await
        .unwrap();
    assert_eq!(first.warned as usize, warns);
    let again = reseat::sweep::apply(&live_state, Some(&warn_plan), &live())
        .await
        .unwrap();
    assert_eq!(again.warned, 0);
    // Each warning is one email in the outbox (or, with no visible address, an audit entry).
    let unaddressed = audit_actions(&live_state)
        .await
        .into_iter()
        .filter(|a| a == "sweep.warning")
        .count();
    let emails: Vec<String> =
        sqlx::query_scalar("SELECT text_body FROM email_outbox WHERE template = 'warning'")
            .fetch_all(live_state.db.pool())
            .await
            .unwrap();
    assert_eq!(emails.len() + unaddressed, warns);
    assert!(!emails.is_empty());
    assert!(
        emails
            .iter()
            .all(|body| body.contains("/keep/v1.") && body.contains("/restore/v1.")),
        "{}",
        emails[0]
    );
    assert_eq!(memberships(&sim), before, "warnings remove nothing");
    // A user who asked to keep access is kept in the next plan.
    let kept = items.iter().find(|i| i.decision == "warn").unwrap();
    reseat::ledger::keeps::add_keep(
        &live_state.db,
        &kept.account_id,
        &kept.product,
        live_state.site(),
        Utc::now() + chrono::Duration::days(90),
        "link",
    )
    .await
    .unwrap();
    let (_, next) = plan_items(&live_state, &[Source::Api]).await;
    let row = next
        .iter()
        .find(|i| i.account_id == kept.account_id && i.product == kept.product)
        .unwrap();
    assert_eq!(row.decision, "keep");
    assert!(row.reason.contains("keep access until"), "{}", row.reason);
    sim.shutdown().await;
}

/// The `last-active-dates` calls made for one account.
fn lookups_of(sim: &SimHandle, account: &str) -> usize {
    let org = &sim.config().org_id;
    sim.state().calls(
        "GET",
        &format!("/admin/v1/orgs/{org}/directory/users/{account}/last-active-dates"),
    )
}

#[tokio::test]
async fn a_user_active_again_since_the_plan_is_kept() {
    let mut runs = Vec::new();
    for listing in [UserListing::Managed, UserListing::Directory] {
        runs.extend(TestDb::all().await.into_iter().map(|db| (db, listing)));
    }
    for (db, listing) in runs {
        let sim = seeded(USERS).await;
        let state = state_reading(&sim, &db, Mode::Live, listing).await;
        let (plan_id, items) = plan_items(&state, &[Source::Api]).await;
        let truth = sim.state().ground_truth();
        let removal = |managed: bool| {
            items
                .iter()
                .find(|i| {
                    i.decision == "remove"
                        && truth.users.iter().any(|u| {
                            u.account_id == i.account_id
                                && u.managed == managed
                                && u.products.get(&sim_product(&i.product))
                                    == Some(&Category::Inactive)
                        })
                })
                .unwrap_or_else(|| panic!("a removal of a managed={managed} user"))
                .clone()
        };
        // A managed account is re-checked from the listing, an unmanaged one per user.
        let managed = removal(true);
        let unmanaged = removal(false);
        let now = Utc::now();
        for item in [&managed, &unmanaged] {
            sim.state()
                .set_last_active(
                    &item.account_id,
                    sim_product(&item.product),
                    None,
                    Some(now),
                )
                .unwrap();
        }
        let before = memberships(&sim);
        sim.state().clear_log();

        // Two hours after the plan (sweep.recheck_after is 1h) activity is re-checked.
        let report = reseat::sweep::apply(
            &state,
            Some(&plan_id),
            &ApplyOptions {
                now: now + chrono::Duration::hours(2),
                ..live()
            },
        )
        .await
        .unwrap();
        assert!(report.recheck_listing_pages > 0, "{report:?}");
        assert!(report.skipped >= 2, "{report:?}");
        assert_eq!(lookups_of(&sim, &managed.account_id), 0, "listing answered");
        if listing == UserListing::Managed {
            // The v1 listing has managed accounts only.
            assert!(report.recheck_lookups > 0, "{report:?}");
            assert_eq!(lookups_of(&sim, &unmanaged.account_id), 1, "asked per user");
        } else {
            assert_eq!(report.recheck_lookups, 0, "{report:?}");
            assert_eq!(
                lookups_of(&sim, &unmanaged.account_id),
                0,
                "the directory lists it"
            );
        }
        let after = store::items(&state.db, &plan_id).await.unwrap();
        for item in [&managed, &unmanaged] {
            let row = after.iter().find(|i| i.id == item.id).unwrap();
            assert_eq!(row.state, "skipped", "{row:?}");
            assert!(
                row.outcome
                    .as_deref()
                    .unwrap_or("")
                    .contains("active again"),
                "{row:?}"
            );
            let kept: Vec<_> = before
                .iter()
                .filter(|(account, _)| account == &item.account_id)
                .collect();
            let now_in = memberships(&sim);
            assert!(kept.iter().all(|m| now_in.contains(*m)), "nothing removed");
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_membership_gone_before_apply_is_not_given_back_by_a_restore() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::Live).await;
        let (plan_id, items) = plan_items(&state, &[Source::Api]).await;
        let item = items
            .iter()
            .find(|i| i.decision == "remove")
            .unwrap()
            .clone();
        let groups: Vec<serde_json::Value> = serde_json::from_str(&item.access_groups).unwrap();
        let left = groups[0]["name"].as_str().unwrap().to_owned();
        // Someone else takes the user out of the group between plan and apply.
        assert!(sim.state().remove_member(&left, &item.account_id).unwrap());
        sim.state().clear_log();
        let report = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap();
        assert_eq!(report.failed, 0);
        // No per-user group read before removing.
        assert_eq!(sim.state().calls("GET", "/rest/api/3/user/groups"), 0);
        let actions: Vec<(String, String)> = sqlx::query_as(
            "SELECT group_name, action FROM journal WHERE account_id = $1 AND product = $2 ORDER BY id",
        )
        .bind(&item.account_id)
        .bind(&item.product)
        .fetch_all(state.db.pool())
        .await
        .unwrap();
        // The intent before the call, then "not a member" to the first removal ever sent.
        assert!(
            actions.contains(&(left.clone(), "removing".to_owned())),
            "{actions:?}"
        );
        assert!(
            !actions.contains(&(left.clone(), "removed".to_owned())),
            "{actions:?}"
        );
        assert!(
            actions.contains(&(left.clone(), "not_member".to_owned())),
            "{actions:?}"
        );
        let back =
            reseat::ledger::taken_groups(&state.db, &item.account_id, &item.product, state.site())
                .await
                .unwrap();
        assert!(back.iter().all(|g| g.name != left), "{back:?}");
        assert_eq!(back.len(), groups.len() - 1);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_ladder_suspends_once_and_deletes_after_the_delay() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let base = state_for(&sim, &db, Mode::DryRun).await;
        let mut config = (*base.config).clone();
        config.sweep.ladder.suspend = true;
        config.sweep.ladder.delete_after = Some(Duration::from_secs(30 * 86_400));
        // The test moves the clock a month on; the plan's activity must not look stale.
        config.sweep.limits.stale_after = Duration::from_secs(365 * 86_400);
        config.validate().unwrap();
        let mut dry = base.clone();
        dry.config = std::sync::Arc::new(config.clone());
        config.sweep.mode = Mode::Live;
        let mut state = base.clone();
        state.config = std::sync::Arc::new(config);

        let (plan_id, items) = plan_items(&state, &[Source::Api]).await;
        // Accounts whose every managed product on the site is removed.
        let mut all_removed: BTreeMap<String, bool> = BTreeMap::new();
        for item in &items {
            let entry = all_removed.entry(item.account_id.clone()).or_insert(true);
            *entry &= item.decision == "remove";
        }
        let expected: BTreeSet<String> = all_removed
            .into_iter()
            .filter(|(_, all)| *all)
            .map(|(account, _)| account)
            .collect();
        assert!(!expected.is_empty());
        let partly = items
            .iter()
            .find(|i| i.decision == "remove" && !expected.contains(&i.account_id))
            .map(|i| i.account_id.clone());

        // Dry run: says what would happen, changes nothing.
        let report = reseat::sweep::apply(&dry, Some(&plan_id), &ApplyOptions::default())
            .await
            .unwrap();
        let would: BTreeSet<String> = report
            .would
            .iter()
            .filter(|w| w.contains("suspend org-wide"))
            .map(|w| w.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(would, expected);
        assert!(
            expected
                .iter()
                .all(|a| !sim.state().user(a).unwrap().suspended)
        );

        // Live: removal, then suspension of exactly those accounts.
        let report = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap();
        assert_eq!(report.failed, 0);
        assert_eq!(report.suspended as usize, expected.len());
        for account in &expected {
            assert!(sim.state().user(account).unwrap().suspended, "{account}");
        }
        if let Some(account) = partly {
            assert!(
                !sim.state().user(&account).unwrap().suspended,
                "keeps a product"
            );
        }
        // Once: a second apply suspends nobody and calls nothing.
        sim.state().clear_log();
        let again = reseat::sweep::apply(&state, Some(&plan_id), &live())
            .await
            .unwrap();
        assert_eq!(again.suspended, 0);
        assert!(sim.state().log().is_empty(), "{:?}", sim.state().log());
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sweep_suspensions")
            .fetch_one(state.db.pool())
            .await
            .unwrap();
        assert_eq!(rows as usize, expected.len());

        // Before the delay nobody is deleted; after it, each once. One account is already
        // gone (an answer lost on an earlier try): its 404 counts as deleted.
        let early = reseat::sweep::apply(
            &state,
            Some(&plan_id),
            &ApplyOptions {
                now: Utc::now() + chrono::Duration::days(29),
                ..live()
            },
        )
        .await
        .unwrap();
        assert_eq!(early.deleted, 0);
        let gone = expected.iter().next().unwrap();
        let admin = state.atlassian.admin.as_ref().unwrap();
        let org = state.atlassian.org_id.as_ref().unwrap();
        admin
            .remove_from_directory(
                org,
                &reseat::atlassian::AccountId::parse(gone.clone()).unwrap(),
            )
            .await
            .unwrap();
        let later = ApplyOptions {
            now: Utc::now() + chrono::Duration::days(31),
            ..live()
        };
        let dry_later = reseat::sweep::apply(&dry, Some(&plan_id), &later)
            .await
            .unwrap();
        assert_eq!(
            dry_later
                .would
                .iter()
                .filter(|w| w.contains("remove from the directory"))
                .count(),
            expected.len()
        );
        let late = reseat::sweep::apply(&state, Some(&plan_id), &later)
            .await
            .unwrap();
        assert_eq!(late.failed, 0);
        assert_eq!(late.deleted as usize, expected.len());
        for account in &expected {
            assert!(
                !sim.state().user(account).unwrap().in_directory,
                "{account}"
            );
        }
        let last = reseat::sweep::apply(&state, Some(&plan_id), &later)
            .await
            .unwrap();
        assert_eq!(last.deleted, 0);
        let audited = audit_actions(&state).await;
        assert_eq!(
            audited.iter().filter(|a| *a == "sweep.suspended").count(),
            expected.len()
        );
        assert_eq!(
            audited.iter().filter(|a| *a == "sweep.deleted").count(),
            expected.len()
        );
        sim.shutdown().await;
    }
}
