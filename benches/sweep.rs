//! The sweep against a simulated org with a request-rate limit: `sweep plan` (api source)
//! and a live `apply`, counting every upstream call in the simulator's log against the
//! minimum (listing pages + group-member pages + one call per membership removed, plus the
//! few discovery calls), and timing both against the rate-limit bound (calls / limit). The
//! plan reads activity from the v2 directory user search (the default). In the same run,
//! on the same org: a plan through the v1 managed listing with per-user `last-active-dates`
//! where it falls short (`user_listing = "managed"`), and the naive approach (the v1
//! listing, then `last-active-dates` for every seat holder), with the same client and limit.
//!
//! The client's own `requests_per_second` is set to the simulator's limit for every family.
//! `cargo bench --bench sweep`: `RESEAT_BENCH_USERS` (default 10,000) users,
//! `RESEAT_BENCH_RATE` (default 500) requests/s, `RESEAT_BENCH_CLIENT_RATE` (default: the
//! same) and `RESEAT_BENCH_CONCURRENCY` (default: each family's) for the client; without
//! `--bench`, 600 users at 200/s and no comparison runs. `RESEAT_BENCH_RECHECK_AFTER=0`
//! makes apply re-check activity (default: the configuration's 1h, so the apply right after
//! the plan does not).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use reseat::app::AppState;
use reseat::atlassian::{AccountId, AtlassianConfig, FamilyLimits, UserListing};
use reseat::sim::{LogEntry, SimConfig, SimHandle};
use reseat::sweep::config::{Mode, ProductPolicy};
use reseat::sweep::{ApplyOptions, Source};

fn atlassian_for(sim: &SimHandle, rate: u32) -> AtlassianConfig {
    let c = sim.config();
    let url = url::Url::parse(&sim.base_url()).unwrap();
    // `RESEAT_BENCH_CLIENT_RATE` (default: the simulator's limit) and
    // `RESEAT_BENCH_CONCURRENCY` (default: each family's default) set the client side.
    let client_rate = common::knob("CLIENT_RATE", u64::from(rate)) as u32;
    let limit = |f: FamilyLimits| FamilyLimits {
        requests_per_second: client_rate,
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
        admin: limit(FamilyLimits::admin_default()),
        jira: limit(FamilyLimits::site_default()),
        confluence: limit(FamilyLimits::site_default()),
        jsm: limit(FamilyLimits::jsm_default()),
        ..AtlassianConfig::default()
    }
}

fn group_id(sim: &SimHandle, name: &str) -> reseat::atlassian::GroupId {
    reseat::atlassian::GroupId::parse(sim.state().group(name).unwrap().id).unwrap()
}

/// The configuration of the sweep tests: three products, the protected group, no warning
/// step (inactive means remove), guards wide open.
async fn state_for(sim: &SimHandle, db_url: &str, rate: u32, listing: UserListing) -> AppState {
    let mut config = reseat::config::Config::default();
    config.database.url = db_url.to_owned();
    config.atlassian = atlassian_for(sim, rate);
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

/// What a logged call was, by method and path shape.
fn kind(e: &LogEntry) -> &'static str {
    let p = e.path.as_str();
    match e.method.as_str() {
        "GET" if p.ends_with("/last-active-dates") => "admin last-active-dates",
        "GET" if p.starts_with("/admin/v1/orgs/") && p.ends_with("/users") => "admin users listing",
        "POST" if p.starts_with("/admin/v2/orgs/") && p.ends_with("/users/search") => {
            "admin directory user search"
        }
        "GET" if p == "/rest/api/3/group/member" && e.status == 404 => {
            "jira group/member 404 (configured group not on the site)"
        }
        "GET" if p == "/rest/api/3/group/member" => "jira group/member pages",
        "GET" if p.starts_with("/rest/api/3/applicationrole") => "jira applicationrole",
        "GET" if p.starts_with("/wiki/rest/api/group") => "confluence group listing",
        "GET" if p == "/rest/api/3/user/groups" => "jira user/groups",
        "DELETE" if p == "/rest/api/3/group/user" => "jira DELETE group/user",
        "DELETE" if p == "/wiki/rest/api/group/userByGroupId" => "confluence DELETE userByGroupId",
        _ => "other",
    }
}

#[derive(Default)]
struct Calls {
    ok: BTreeMap<&'static str, u64>,
    limited: u64,
    other_errors: u64,
}

impl Calls {
    fn of(log: &[LogEntry]) -> Calls {
        let mut calls = Calls::default();
        for e in log {
            match e.status {
                429 => calls.limited += 1,
                s if s >= 500 || s == 0 => calls.other_errors += 1,
                _ => *calls.ok.entry(kind(e)).or_default() += 1,
            }
        }
        calls
    }
    fn get(&self, k: &str) -> u64 {
        self.ok.get(k).copied().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.ok.values().sum()
    }
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
    println!(
        "# sweep bench: {users} users, simulator limit {rate} requests/s ({})",
        if full { "full" } else { "smoke" }
    );
    let sim = reseat::sim::spawn(SimConfig {
        users,
        rate_limit: Some(rate),
        // Benchmarks measure the simulator without the test suite's spec checks.
        validate_responses: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("reseat.db").display());
    let state = state_for(&sim, &db_url, rate, UserListing::Directory).await;
    let hidden = indicatif::ProgressBar::hidden();

    // The v1 managed listing with per-user lookups where it falls short, on the same org
    // before anything changes (plan only, its own database): the other way to read activity.
    let managed = if full {
        let db_url = format!("sqlite://{}", dir.path().join("managed.db").display());
        let managed = state_for(&sim, &db_url, rate, UserListing::Managed).await;
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
    let apply_calls = Calls::of(&sim.state().log());
    assert_eq!(report.failed, 0, "apply failed items");

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

    let listing =
        plan_calls.get("admin users listing") + plan_calls.get("admin directory user search");
    // Each distinct page once: a page fetched twice is not part of the minimum.
    let member_pages = distinct_pages.len() as u64;
    let discovery =
        plan_calls.get("jira applicationrole") + plan_calls.get("confluence group listing");
    let changes = apply_calls.get("jira DELETE group/user")
        + apply_calls.get("confluence DELETE userByGroupId");
    let minimum = listing + member_pages + discovery + changes;
    let made = plan_calls.total() + apply_calls.total();
    let bound = |calls: u64| Duration::from_secs_f64(calls as f64 / rate as f64);
    let total_time = plan_time + apply_time;

    // The naive approach, with the same client: listing + one lookup per seat holder.
    let naive = if full {
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
        "listing: {} users listed; {} per-user lookups for {} wanted users ({} not found); group/member pages distinct: {member_pages} of {}",
        api.listed_users,
        api.per_user_calls,
        wanted.len(),
        api.not_found,
        plan_calls.get("jira group/member pages")
    );
    println!(
        "## apply (removed users, memberships, skipped: {:?}; re-check: {} listing pages, {} per-user lookups)",
        (
            report.removed_users,
            report.removed_memberships,
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
    println!("## summary");
    println!("| measure | value |\n|---|---|");
    println!(
        "| minimum calls (listing {listing} + group-member pages {member_pages} + discovery {discovery} + membership removals {changes}) | {minimum} |"
    );
    println!(
        "| calls made (plan {} + apply {}) | {made} = {:.4}× the minimum |",
        plan_calls.total(),
        apply_calls.total(),
        made as f64 / minimum as f64
    );
    println!(
        "| plan wall time vs its bound ({} calls / {rate}/s = {:.1} s) | {:.1} s = {:.2}× |",
        plan_calls.total(),
        bound(plan_calls.total()).as_secs_f64(),
        plan_time.as_secs_f64(),
        plan_time.as_secs_f64() / bound(plan_calls.total()).as_secs_f64()
    );
    println!(
        "| apply wall time vs its bound ({} calls / {rate}/s = {:.1} s) | {:.1} s = {:.2}× |",
        apply_calls.total(),
        bound(apply_calls.total()).as_secs_f64(),
        apply_time.as_secs_f64(),
        apply_time.as_secs_f64() / bound(apply_calls.total()).as_secs_f64()
    );
    println!(
        "| plan + apply wall time vs the bound of the calls made ({:.1} s) | {:.1} s = {:.2}× |",
        bound(made).as_secs_f64(),
        total_time.as_secs_f64(),
        total_time.as_secs_f64() / bound(made).as_secs_f64()
    );
    println!(
        "| plan + apply wall time vs the bound of the minimum ({:.1} s) | {:.2}× |",
        bound(minimum).as_secs_f64(),
        total_time.as_secs_f64() / bound(minimum).as_secs_f64()
    );
    let reseat_reads = listing + api.per_user_calls;
    // The naive reads as executed (the v1 listing's pages + one lookup per seat holder).
    let naive_count = naive.map_or(listing + wanted.len() as u64, |(calls, _, _)| calls);
    println!(
        "| activity reads: reseat (listing + per-user lookups) vs naive (listing + one per seat holder) | {reseat_reads} vs {naive_count} ({:.1}× fewer) |",
        naive_count as f64 / reseat_reads as f64
    );
    if let Some((calls, limited, lookups, time)) = managed {
        println!(
            "| managed listing plan (v1 + per-user lookups), same org: calls ({lookups} lookups), 429s, wall time (bound {:.1} s) | {calls}, {limited}, {:.1} s |",
            bound(calls).as_secs_f64(),
            time.as_secs_f64()
        );
    }
    if let Some((calls, limited, time)) = naive {
        println!(
            "| naive run, executed: calls, 429s, wall time (bound {:.1} s) | {calls}, {limited}, {:.1} s |",
            bound(calls).as_secs_f64(),
            time.as_secs_f64()
        );
    }
    state.db.close().await;
    sim.shutdown().await;
}
