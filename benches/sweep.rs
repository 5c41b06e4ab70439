//! The sweep against a simulated org on the simulator's default (`current`) profile with a
//! request-rate limit per API family (admin, Jira, Confluence, JSM each their own, as
//! Atlassian limits them): `sweep plan` (api source) and a live `apply`, counting every
//! upstream call in the simulator's log, per family, against the minimum (listing pages +
//! discovery + group-member pages + one call per change, memberships and role revokes,
//! and the per-user role-assignment reads: one per removal candidate in the plan, one
//! read-back per seat acted on), and timing plan + apply against the bound of the busiest
//! family (its calls / its limit). Every 10th holder of each product also holds it by a
//! direct role, every 200th by an inferred one.
//!
//! In the same run, on a second simulator seeded the same way: the group-only approach
//! (the same plan's memberships removed, no role reads, no revokes, no read-back), with the
//! same client and limits, and the seats each approach leaves billed.
//!
//! The client's own `requests_per_second` is set to the simulator's limit of each family.
//! `cargo bench --bench sweep`: `RESEAT_BENCH_USERS` (default 10,000) users,
//! `RESEAT_BENCH_RATE` (default 500) requests/s for every family, overridden per family by
//! `RESEAT_BENCH_ADMIN_RATE`, `_JIRA_RATE`, `_CONFLUENCE_RATE`; `RESEAT_BENCH_CLIENT_RATE`
//! (default: each family's limit) and `RESEAT_BENCH_CONCURRENCY` (default: each family's)
//! for the client; `RESEAT_BENCH_SHARED_RATE` adds one limit over all families together
//! (default none). `RESEAT_BENCH_DIRECT_EVERY` / `_INFERRED_EVERY` (0 = none) set the
//! role holders. `RESEAT_BENCH_ACTIVITY=1` adds the activity comparisons (the v1 managed
//! listing, and `last-active-dates` for every seat holder). Without `--bench`, 600 users at
//! 200/s per family and no comparison runs. `RESEAT_BENCH_RECHECK_AFTER=0` makes apply
//! re-check activity (default: the configuration's 1h, so the apply right after the plan
//! does not).

#![allow(clippy::unwrap_used)]

#[path = "common/calls.rs"]
mod calls;
mod common;

use calls::{Calls, kind};

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use reseat::app::AppState;
use reseat::atlassian::{AccountId, AtlassianConfig, FamilyLimits, UserListing};
use reseat::sim::{Product, SimConfig, SimHandle};
use reseat::sweep::config::{Mode, ProductPolicy};
use reseat::sweep::{ApplyOptions, Source};

/// The simulator's limit of each family (requests/s).
#[derive(Clone, Copy)]
struct Rates {
    admin: u32,
    jira: u32,
    confluence: u32,
}

impl Rates {
    fn of(&self, family: &str) -> u32 {
        match family {
            "admin" => self.admin,
            "confluence" => self.confluence,
            _ => self.jira,
        }
    }
}

fn atlassian_for(sim: &SimHandle, rates: Rates) -> AtlassianConfig {
    let c = sim.config();
    let url = url::Url::parse(&sim.base_url()).unwrap();
    // `RESEAT_BENCH_CLIENT_RATE` (default: the family's simulator limit) and
    // `RESEAT_BENCH_CONCURRENCY` (default: each family's default) set the client side.
    let limit = |f: FamilyLimits, rate: u32| FamilyLimits {
        requests_per_second: common::knob("CLIENT_RATE", u64::from(rate)) as u32,
        concurrency: common::knob("CONCURRENCY", u64::from(f.concurrency)) as u32,
    };
    AtlassianConfig {
        org_id: Some(c.org_id.clone()),
        cloud_id: Some(c.cloud_id.clone()),
        site_name: Some(c.site_name.clone()),
        admin_base_url: url.clone(),
        site_base_url: Some(url),
        admin_api_key: Some(c.admin_key.clone().into()),
        site_email: Some(c.site_email.clone()),
        site_api_token: Some(c.site_token.clone().into()),
        admin: limit(FamilyLimits::admin_default(), rates.admin),
        jira: limit(FamilyLimits::site_default(), rates.jira),
        confluence: limit(FamilyLimits::site_default(), rates.confluence),
        jsm: limit(FamilyLimits::jsm_default(), rates.jira),
        ..AtlassianConfig::default()
    }
}

fn group_id(sim: &SimHandle, name: &str) -> reseat::atlassian::GroupId {
    reseat::atlassian::GroupId::parse(sim.state().group(name).unwrap().id).unwrap()
}

/// The configuration of the sweep tests: three products, the protected group, no warning
/// step (inactive means remove), guards wide open.
async fn state_for(sim: &SimHandle, db_url: &str, rates: Rates, listing: UserListing) -> AppState {
    let mut config = reseat::config::Config::default();
    config.database.url = db_url.to_owned();
    config.atlassian = atlassian_for(sim, rates);
    config.atlassian.user_listing = listing;
    let sweep = &mut config.sweep;
    sweep.mode = Mode::Live;
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
    // `RESEAT_BENCH_RECHECK_AFTER` (seconds; default the configuration's 1h, so the apply
    // right after the plan does not re-check; 0 forces the re-check).
    sweep.recheck_after = Duration::from_secs(common::knob("RECHECK_AFTER", 3_600));
    sweep.limits.max_removals = u64::MAX / 2;
    sweep.limits.max_removal_percent = 100.0;
    sweep.limits.max_inactive_percent = 100.0;
    config.links.signing_key = Some("bench".into());
    config.links.keys.insert(
        "bench".into(),
        "a-bench-signing-key-of-at-least-32-chars".into(),
    );
    config.validate().unwrap();
    AppState::open(config).await.unwrap()
}

/// Gives every `direct_every`-th holder of each product a direct role on it too (both ways
/// then), and every `inferred_every`-th an inferred admin role (a seat reseat cannot free).
fn seed_roles(sim: &SimHandle, direct_every: usize, inferred_every: usize) -> (u64, u64) {
    use reseat::sim::roles::{ROLE_ADMIN, ROLE_USER};
    let truth = sim.state().ground_truth();
    let (mut direct, mut inferred) = (0, 0);
    for product in Product::ALL {
        let holders = truth
            .users
            .iter()
            .filter(|u| u.products.contains_key(&product) && !u.suspended);
        for (n, user) in holders.enumerate() {
            if direct_every > 0 && n % direct_every == 0 {
                sim.state()
                    .set_direct_role(&user.account_id, product, ROLE_USER, true)
                    .unwrap();
                direct += 1;
            } else if inferred_every > 0 && n % inferred_every == 1 {
                sim.state()
                    .add_inferred_role(&user.account_id, product, ROLE_ADMIN, "site-admin")
                    .unwrap();
                inferred += 1;
            }
        }
    }
    (direct, inferred)
}

fn sim_product(key: &str) -> Option<Product> {
    match key {
        "jira-software" => Some(Product::JiraSoftware),
        "jira-service-desk" => Some(Product::JiraServiceDesk),
        "confluence" => Some(Product::Confluence),
        _ => None,
    }
}

/// Removal items whose seat the simulator still bills.
fn left_billed(sim: &SimHandle, items: &[reseat::sweep::store::PlanItem]) -> u64 {
    items
        .iter()
        .filter(|i| i.decision == "remove")
        .filter(|i| {
            sim_product(&i.product).is_some_and(|p| sim.state().holds_seat(&i.account_id, p))
        })
        .count() as u64
}

async fn spawn_sim(users: usize, rates: Rates, shared: Option<u32>) -> SimHandle {
    let sim = reseat::sim::spawn(SimConfig {
        users,
        rate_limit: shared,
        family_rate_limits: reseat::sim::FamilyLimits {
            admin: Some(rates.admin),
            jira: Some(rates.jira),
            confluence: Some(rates.confluence),
            jsm: Some(rates.jira),
        },
        // Benchmarks measure the simulator without the test suite's spec checks.
        validate_responses: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let direct_every = common::knob("DIRECT_EVERY", 10) as usize;
    let inferred_every = common::knob("INFERRED_EVERY", 200) as usize;
    let (direct, inferred) = seed_roles(&sim, direct_every, inferred_every);
    println!("seeded roles: {direct} direct, {inferred} inferred");
    sim
}

/// The group-only approach on `sim`: the plan's memberships removed, families side by side,
/// each with the client's concurrency; no role read, no revoke, no read-back.
async fn group_only_apply(state: &AppState, items: &[reseat::sweep::store::PlanItem]) {
    #[derive(serde::Deserialize)]
    struct G {
        id: reseat::atlassian::GroupId,
    }
    let mut jira_work = Vec::new();
    let mut confluence_work = Vec::new();
    for item in items.iter().filter(|i| i.decision == "remove") {
        let groups: Vec<G> = serde_json::from_str(&item.access_groups).unwrap();
        let account = AccountId::parse(item.account_id.clone()).unwrap();
        for g in groups {
            if item.product == "confluence" {
                confluence_work.push((g.id, account.clone()));
            } else {
                jira_work.push((g.id, account.clone()));
            }
        }
    }
    let jira = state.atlassian.jira.as_ref().unwrap();
    let confluence = state.atlassian.confluence.as_ref().unwrap();
    let jc = state.config.atlassian.jira.concurrency as usize;
    let cc = state.config.atlassian.confluence.concurrency as usize;
    let jira_lane = futures_util::stream::iter(jira_work.iter().map(|(g, a)| async move {
        jira.remove_from_group(g, a).await.unwrap();
    }))
    .buffer_unordered(jc.max(1))
    .collect::<Vec<_>>();
    let confluence_lane =
        futures_util::stream::iter(confluence_work.iter().map(|(g, a)| async move {
            confluence.remove_from_group(g, a).await.unwrap();
        }))
        .buffer_unordered(cc.max(1))
        .collect::<Vec<_>>();
    futures_util::join!(jira_lane, confluence_lane);
}

#[tokio::main]
async fn main() {
    let full = common::full();
    let (users, rate) = if full {
        (
            common::knob("USERS", 10_000) as usize,
            common::knob("RATE", 500) as u32,
        )
    } else {
        (600, 200)
    };
    let rates = Rates {
        admin: common::knob("ADMIN_RATE", u64::from(rate)) as u32,
        jira: common::knob("JIRA_RATE", u64::from(rate)) as u32,
        confluence: common::knob("CONFLUENCE_RATE", u64::from(rate)) as u32,
    };
    let shared = match common::knob("SHARED_RATE", 0) {
        0 => None,
        n => Some(n as u32),
    };
    println!(
        "# sweep bench: {users} users, per-family limits admin {} / Jira {} / Confluence {} requests/s, shared limit {shared:?} ({})",
        rates.admin,
        rates.jira,
        rates.confluence,
        if full { "full" } else { "smoke" }
    );
    let sim = spawn_sim(users, rates, shared).await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("reseat.db").display());
    let state = state_for(&sim, &db_url, rates, UserListing::Directory).await;
    let hidden = indicatif::ProgressBar::hidden();
    let activity = full && common::knob("ACTIVITY", 0) == 1;

    // The v1 managed listing with per-user lookups where it falls short, on the same org
    // before anything changes (plan only, its own database): the other way to read activity.
    let managed = if activity {
        let db_url = format!("sqlite://{}", dir.path().join("managed.db").display());
        let managed = state_for(&sim, &db_url, rates, UserListing::Managed).await;
        sim.state().clear_log();
        let started = Instant::now();
        let planned = reseat::sweep::plan(&managed, &[Source::Api], Utc::now(), &hidden)
            .await
            .unwrap();
        let time = started.elapsed();
        let calls = Calls::of(&sim.state().log());
        let api = planned.summary.api.unwrap_or_default();
        managed.db.close().await;
        Some((calls.total(), calls.limited, api.per_user_calls, time))
    } else {
        None
    };

    // Plan.
    sim.state().clear_log();
    let started = Instant::now();
    let planned = reseat::sweep::plan(&state, &[Source::Api], Utc::now(), &hidden)
        .await
        .unwrap();
    let plan_time = started.elapsed();
    let plan_log = sim.state().log();
    let plan_calls = Calls::of(&plan_log);
    let api = planned.summary.api.unwrap_or_default();
    let roles = planned.summary.roles.clone().unwrap_or_default();
    // Pages of each group fetched once?
    let mut distinct_pages: HashSet<(String, Option<String>)> = HashSet::new();
    for e in plan_log
        .iter()
        .filter(|e| e.status == 200 && kind(e) == "jira group/member pages")
    {
        if !distinct_pages.insert((e.path.clone(), e.query.clone())) {
            println!("fetched again: {} {:?}", e.path, e.query);
        }
    }

    // Apply.
    sim.state().clear_log();
    let started = Instant::now();
    let report = reseat::sweep::apply(
        &state,
        Some(&planned.plan_id),
        &ApplyOptions {
            confirmed: true,
            ..ApplyOptions::default()
        },
    )
    .await
    .unwrap();
    let apply_time = started.elapsed();
    let apply_log = sim.state().log();
    let apply_calls = Calls::of(&apply_log);
    assert_eq!(report.failed, 0, "apply failed items");
    // Read-backs: one per seat is the minimum; a second read of the same user's roles
    // (waiting out eventual consistency) is not.
    let read_backs: HashSet<(String, Option<String>)> = apply_log
        .iter()
        .filter(|e| e.status == 200 && kind(e) == "admin user role-assignments")
        .map(|e| (e.path.clone(), e.query.clone()))
        .collect();

    // Seat holders whose activity the plan needed: the naive approach asks for each.
    let items = reseat::sweep::store::items(&state.db, &planned.plan_id)
        .await
        .unwrap();
    let wanted: BTreeSet<String> = items
        .iter()
        .filter(|i| i.decision != "exempt")
        .map(|i| i.account_id.clone())
        .collect();
    let mut decisions: BTreeMap<String, u64> = BTreeMap::new();
    for i in &items {
        *decisions.entry(i.decision.clone()).or_default() += 1;
    }
    let reseat_left = left_billed(&sim, &items);

    // The group-only approach, on a second simulator seeded the same way: the same plan's
    // memberships removed and nothing else. Its plan would make the same calls as reseat's
    // without the role model's (role-holder pages, group details, per-user role reads).
    let group_only = if full {
        let sim_b = spawn_sim(users, rates, shared).await;
        let db_b = format!("sqlite://{}", dir.path().join("group-only.db").display());
        let state_b = state_for(&sim_b, &db_b, rates, UserListing::Directory).await;
        let planned_b = reseat::sweep::plan(&state_b, &[Source::Api], Utc::now(), &hidden)
            .await
            .unwrap();
        let items_b = reseat::sweep::store::items(&state_b.db, &planned_b.plan_id)
            .await
            .unwrap();
        let plan_b = Calls::of(&sim_b.state().log());
        sim_b.state().clear_log();
        let started = Instant::now();
        group_only_apply(&state_b, &items_b).await;
        let time = started.elapsed();
        let apply_b = Calls::of(&sim_b.state().log());
        let left = left_billed(&sim_b, &items_b);
        let removals = items_b.iter().filter(|i| i.decision == "remove").count() as u64;
        state_b.db.close().await;
        sim_b.shutdown().await;
        Some((plan_b, apply_b, time, left, removals))
    } else {
        None
    };

    // The naive approach, with the same client: listing + one lookup per seat holder.
    let naive = if activity {
        sim.state().clear_log();
        let admin = state.atlassian.admin.as_ref().unwrap();
        let org = state.atlassian.org_id.clone().unwrap();
        let started = Instant::now();
        let mut pages = admin.users(&org);
        while pages.next_page().await.unwrap().is_some() {}
        let concurrency = state.config.atlassian.admin.concurrency as usize;
        let lookups = futures_util::stream::iter(wanted.iter().map(|id| {
            let org = &org;
            async move {
                let account = AccountId::parse(id.clone()).unwrap();
                let _ = admin.last_active_dates(org, &account).await;
            }
        }))
        .buffer_unordered(concurrency.max(1));
        lookups.collect::<Vec<_>>().await;
        let time = started.elapsed();
        let calls = Calls::of(&sim.state().log());
        Some((calls.total(), calls.limited, time))
    } else {
        None
    };

    println!("## plan ({} items: {decisions:?})", items.len());
    println!("| calls | count |\n|---|---|");
    for (k, v) in &plan_calls.ok {
        println!("| {k} | {v} |");
    }
    println!(
        "| 429 answers (retried) | {} |\n| 5xx / dropped | {} |",
        plan_calls.limited, plan_calls.other_errors
    );
    println!(
        "listing: {} users listed; {} per-user lookups for {} wanted users ({} not found); group/member pages distinct: {member_pages} of {}; roles: {} role-holder pages, {} group reads, {} per-user role reads",
        api.listed_users,
        api.per_user_calls,
        wanted.len(),
        api.not_found,
        plan_calls.get("jira group/member pages"),
        roles.holder_pages,
        roles.group_reads,
        roles.role_reads,
        member_pages = distinct_pages.len(),
    );
    println!(
        "## apply (removed users, memberships, revoked roles, still billed, skipped: {:?}; re-check: {} listing pages, {} per-user lookups)",
        (
            report.removed_users,
            report.removed_memberships,
            report.revoked_roles,
            report.still_billed,
            report.skipped
        ),
        report.recheck_listing_pages,
        report.recheck_lookups
    );
    println!("| calls | count |\n|---|---|");
    for (k, v) in &apply_calls.ok {
        println!("| {k} | {v} |");
    }
    println!(
        "| 429 answers (retried) | {} |\n| 5xx / dropped | {} |",
        apply_calls.limited, apply_calls.other_errors
    );

    // The minimum: listing pages (directory user search, less the role-holder pages) +
    // discovery (Jira application roles, Confluence group listing, role-holder pages,
    // group details) + distinct group-member pages + one call per change (memberships,
    // revokes) + the role reads (the plan's, and one read-back per seat acted on).
    let listing = plan_calls.get("admin users listing")
        + plan_calls.get("admin directory user search")
        - roles
            .holder_pages
            .min(plan_calls.get("admin directory user search"));
    let member_pages = distinct_pages.len() as u64;
    let discovery = plan_calls.get("jira applicationrole")
        + plan_calls.get("confluence group listing")
        + roles.holder_pages
        + plan_calls.get("admin group details");
    let changes = apply_calls.get("jira DELETE group/user")
        + apply_calls.get("confluence DELETE userByGroupId")
        + apply_calls.get("admin roles/revoke");
    let role_reads = plan_calls.get("admin user role-assignments") + read_backs.len() as u64;
    let minimum = listing + member_pages + discovery + changes + role_reads;
    let made = plan_calls.total() + apply_calls.total();
    let total_time = plan_time + apply_time;
    // The bound of the busiest family over plan + apply (its calls / its limit).
    let families = ["admin", "jira", "confluence", "jsm"];
    let family_bound = |calls: &dyn Fn(&str) -> u64| {
        families
            .iter()
            .map(|f| (*f, calls(f), calls(f) as f64 / rates.of(f) as f64))
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .unwrap()
    };
    let (busiest, busiest_calls, bound) =
        family_bound(&|f| plan_calls.family(f) + apply_calls.family(f));
    let (_, _, plan_bound) = family_bound(&|f| plan_calls.family(f));
    let (apply_busiest, _, apply_bound) = family_bound(&|f| apply_calls.family(f));
    println!("## summary");
    println!("| measure | value |\n|---|---|");
    for f in families {
        println!(
            "| {f} calls: plan + apply (limit {}/s) | {} + {} = {} ({:.1} s at the limit) |",
            rates.of(f),
            plan_calls.family(f),
            apply_calls.family(f),
            plan_calls.family(f) + apply_calls.family(f),
            (plan_calls.family(f) + apply_calls.family(f)) as f64 / rates.of(f) as f64
        );
    }
    println!(
        "| minimum calls (listing {listing} + discovery {discovery} + group-member pages {member_pages} + changes {changes} + role reads {role_reads}) | {minimum} |"
    );
    println!(
        "| calls made (plan {} + apply {}) | {made} = {:.4}× the minimum |",
        plan_calls.total(),
        apply_calls.total(),
        made as f64 / minimum as f64
    );
    println!(
        "| plan wall time vs its busiest family's bound ({plan_bound:.2} s) | {:.2} s = {:.2}× |",
        plan_time.as_secs_f64(),
        plan_time.as_secs_f64() / plan_bound
    );
    println!(
        "| apply wall time vs its busiest family's bound ({apply_busiest}, {apply_bound:.2} s) | {:.2} s = {:.2}× |",
        apply_time.as_secs_f64(),
        apply_time.as_secs_f64() / apply_bound
    );
    println!(
        "| plan + apply wall time vs the busiest family's bound ({busiest}: {busiest_calls} calls / {}/s = {bound:.2} s) | {:.2} s = {:.3}× |",
        rates.of(busiest),
        total_time.as_secs_f64(),
        total_time.as_secs_f64() / bound
    );
    println!(
        "| removal items; seats left billed after apply (simulator) | {}; {reseat_left} (still_billed items: {}) |",
        decisions.get("remove").copied().unwrap_or(0),
        report.still_billed
    );
    if let Some((plan_b, apply_b, time, left, removals)) = &group_only {
        let role_calls = plan_b.get("admin user role-assignments")
            + plan_b.get("admin group details")
            + roles.holder_pages;
        let plan_calls_b = plan_b.total() - role_calls;
        let calls_b = plan_calls_b + apply_b.total();
        // Its busiest family: the plan's calls without the role model's, plus its removals.
        let (gb, gb_calls, gb_bound) = family_bound(&|f| {
            let role_part = if f == "admin" { role_calls } else { 0 };
            plan_b.family(f) - role_part + apply_b.family(f)
        });
        let (_, _, gb_plan_bound) = family_bound(&|f| {
            let role_part = if f == "admin" { role_calls } else { 0 };
            plan_b.family(f) - role_part
        });
        println!(
            "| group-only approach, same plan on a second simulator: calls (plan without the role model {plan_calls_b} + removals {}) | {calls_b} = {:.3}× reseat's |",
            apply_b.total(),
            calls_b as f64 / made as f64
        );
        println!(
            "| group-only: its removals' wall time (executed) + its plan's bound ({gb_plan_bound:.2} s, counted) vs its busiest family's bound ({gb}: {gb_calls} calls = {gb_bound:.2} s) | {:.2} s + {gb_plan_bound:.2} s = {:.3}× |",
            time.as_secs_f64(),
            (time.as_secs_f64() + gb_plan_bound) / gb_bound
        );
        println!(
            "| group-only: seats left billed after its removals (simulator), of {removals} removal items; 429s | {left}; {} |",
            apply_b.limited
        );
    }
    println!(
        "| 429 answers, plan + apply | {} |",
        plan_calls.limited + apply_calls.limited
    );
    if let Some((calls, limited, lookups, time)) = managed {
        println!(
            "| managed listing plan (v1 + per-user lookups), same org: calls ({lookups} lookups), 429s, wall time | {calls}, {limited}, {:.1} s |",
            time.as_secs_f64()
        );
    }
    if let Some((calls, limited, time)) = naive {
        println!(
            "| naive activity reads (v1 listing + one `last-active-dates` per seat holder), executed: calls, 429s, wall time (bound {:.1} s) | {calls}, {limited}, {:.1} s |",
            calls as f64 / rates.admin as f64,
            time.as_secs_f64()
        );
    }
    state.db.close().await;
    sim.shutdown().await;
}
