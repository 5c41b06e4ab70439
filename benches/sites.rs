//! Several sites from one install: an org of `RESEAT_BENCH_USERS` (default 100,000) users
//! with `RESEAT_BENCH_SITES` (default 5) managed sites of `USERS / SITES` users each (the
//! same accounts on every site), planned and applied side by side from one org listing.
//!
//! One simulator serves the org's admin API and its directory of every user (a site reseat
//! does not manage), limited to `RESEAT_BENCH_ADMIN_RATE` (default 500) requests/s for the
//! whole org; each managed site is its own simulator with its own Jira and Confluence
//! limits (`RESEAT_BENCH_SITE_RATE`, default 500). Counts every call in the simulators'
//! logs against the minimum (one listing for the org; per site: discovery, group-member
//! pages, one call per change, the role reads), compares the listing with one site planned
//! alone, and times plan + apply against the bound of the busiest limit.
//!
//! Without `--bench` (the test run): 600 users over 3 sites at 200/s.

#![allow(clippy::unwrap_used)]

#[path = "common/calls.rs"]
mod calls;
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use calls::{Calls, kind};
use chrono::Utc;
use reseat::app::AppState;
use reseat::atlassian::{AtlassianConfig, FamilyLimits};
use reseat::config::Secret;
use reseat::config::sites::SiteEntry;
use reseat::sim::{SimConfig, SimHandle};
use reseat::sweep::config::{Mode, ProductPolicy};
use reseat::sweep::{ApplyOptions, Source};

fn limits(rate: u32, concurrency: u32) -> FamilyLimits {
    FamilyLimits {
        requests_per_second: rate,
        concurrency,
    }
}

async fn spawn(users: usize, name: String, cloud: String, admin: u32, site: u32) -> SimHandle {
    reseat::sim::spawn(SimConfig {
        users,
        site_name: name,
        cloud_id: cloud,
        family_rate_limits: reseat::sim::FamilyLimits {
            admin: Some(admin),
            jira: Some(site),
            confluence: Some(site),
            jsm: Some(site),
        },
        validate_responses: false,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn config_for(
    directory: &SimHandle,
    sites: &[SimHandle],
    db_url: &str,
    admin: u32,
    site: u32,
) -> reseat::config::Config {
    let mut config = reseat::config::Config::default();
    config.database.url = db_url.to_owned();
    let c = directory.config();
    config.atlassian = AtlassianConfig {
        org_id: Some(c.org_id.clone()),
        admin_base_url: url::Url::parse(&directory.base_url()).unwrap(),
        admin_api_key: Some(Secret::new(c.admin_key.clone())),
        site_email: Some(c.site_email.clone()),
        site_api_token: Some(Secret::new(c.site_token.clone())),
        admin: limits(admin, 2),
        jira: limits(site, 4),
        confluence: limits(site, 4),
        jsm: limits(site, 2),
        ..AtlassianConfig::default()
    };
    let group = |name: &str| {
        reseat::atlassian::GroupId::parse(sites[0].state().group(name).unwrap().id).unwrap()
    };
    let sweep = &mut config.sweep;
    sweep.mode = Mode::Live;
    for key in ["jira-software", "jira-service-desk"] {
        sweep.products.insert(key.into(), ProductPolicy::default());
    }
    sweep.products.insert(
        "confluence".into(),
        ProductPolicy {
            access_groups: vec![group("confluence-users"), group("jira-confluence-bundle")],
            ..ProductPolicy::default()
        },
    );
    sweep.protect.groups = vec!["reseat-protected".into()];
    sweep.governance.block_on_multi_product_groups = false;
    sweep.ladder.warn = false;
    sweep.limits.max_removals = u64::MAX / 2;
    sweep.limits.max_removal_percent = 100.0;
    sweep.limits.max_inactive_percent = 100.0;
    config.links.signing_key = Some("bench".into());
    config.links.keys.insert(
        "bench".into(),
        "a-bench-signing-key-of-at-least-32-chars".into(),
    );
    config.sites = sites
        .iter()
        .map(|sim| SiteEntry {
            name: sim.config().site_name.clone(),
            base_url: Some(sim.base_url()),
            cloud_id: Some(sim.config().cloud_id.clone()),
            site_email: None,
            site_api_token: None,
            products: None,
            jira: None,
            confluence: None,
            jsm: None,
            // Each site's Confluence is granted by groups of its own.
            sweep: Some(
                toml::from_str(&format!(
                    "[products.confluence]\naccess_groups = [\"{}\", \"{}\"]\n",
                    sim.state().group("confluence-users").unwrap().id,
                    sim.state().group("jira-confluence-bundle").unwrap().id
                ))
                .unwrap(),
            ),
            restore: None,
            links: None,
        })
        .collect();
    config.resolve_sites().unwrap();
    config
}

/// Calls logged by the directory simulator and every site's, since the last clear.
fn logged(directory: &SimHandle, sites: &[SimHandle]) -> (Calls, Vec<Calls>, usize) {
    let admin = Calls::of(&directory.state().log());
    let mut pages = 0;
    let per_site = sites
        .iter()
        .map(|sim| {
            let log = sim.state().log();
            let distinct: HashSet<(String, Option<String>)> = log
                .iter()
                .filter(|e| e.status == 200 && kind(e) == "jira group/member pages")
                .map(|e| (e.path.clone(), e.query.clone()))
                .collect();
            pages += distinct.len();
            Calls::of(&log)
        })
        .collect();
    (admin, per_site, pages)
}

fn clear(directory: &SimHandle, sites: &[SimHandle]) {
    directory.state().clear_log();
    for sim in sites {
        sim.state().clear_log();
    }
}

#[tokio::main]
async fn main() {
    let full = common::full();
    let (users, site_count, default_rate) = if full {
        (
            common::knob("USERS", 100_000) as usize,
            common::knob("SITES", 5) as usize,
            500,
        )
    } else {
        (600, 3, 200)
    };
    let admin_rate = common::knob("ADMIN_RATE", default_rate) as u32;
    let site_rate = common::knob("SITE_RATE", default_rate) as u32;
    let per_site = users / site_count;
    println!(
        "# sites bench: {users} users in the org, {site_count} sites of {per_site}, admin {admin_rate}/s for the org, Jira and Confluence {site_rate}/s per site ({})",
        if full { "full" } else { "smoke" }
    );
    let directory = spawn(
        users,
        "acme-directory".into(),
        "d0000000-0000-4000-8000-000000000000".into(),
        admin_rate,
        site_rate,
    )
    .await;
    let mut sites = Vec::new();
    for i in 0..site_count {
        let sim = spawn(
            per_site,
            format!("acme-{i}"),
            format!("c{i:07}-0000-4000-8000-000000000000"),
            admin_rate,
            site_rate,
        )
        .await;
        directory.state().add_site(sim.state().clone());
        sites.push(sim);
    }
    // The same seed gives every site the first accounts of the directory.
    for seeded in sites[0].state().ground_truth().users.iter().take(200) {
        assert!(
            directory.state().user(&seeded.account_id).is_some(),
            "a site's account is not in the directory"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let hidden = indicatif::ProgressBar::hidden();

    // One site planned alone: the org listing it reads.
    let alone_url = format!("sqlite://{}", dir.path().join("alone.db").display());
    let alone = AppState::open(config_for(
        &directory, &sites, &alone_url, admin_rate, site_rate,
    ))
    .await
    .unwrap();
    clear(&directory, &sites);
    let planned = reseat::sweep::plan(&alone, &[Source::Api], Utc::now(), &hidden)
        .await
        .unwrap();
    let (alone_admin, _, _) = logged(&directory, &sites);
    let alone_roles = planned.summary.roles.clone().unwrap_or_default();
    let alone_listing = alone_admin.get("admin directory user search") - alone_roles.holder_pages;
    alone.db.close().await;

    // Every site: plans side by side over one listing, then the applies side by side.
    let db_url = format!("sqlite://{}", dir.path().join("reseat.db").display());
    let state = AppState::open(config_for(
        &directory, &sites, &db_url, admin_rate, site_rate,
    ))
    .await
    .unwrap();
    let views = state.each_site();
    clear(&directory, &sites);
    let started = Instant::now();
    let plans: Vec<_> = reseat::sweep::plan_sites(&views, &[Source::Api], Utc::now(), &hidden)
        .await
        .into_iter()
        .map(|(site, planned)| planned.unwrap_or_else(|e| panic!("{site}: {e}")))
        .collect();
    let plan_time = started.elapsed();
    let (plan_admin, plan_sites, member_pages) = logged(&directory, &sites);
    clear(&directory, &sites);
    let options = ApplyOptions {
        confirmed: true,
        ..ApplyOptions::default()
    };
    let started = Instant::now();
    let reports = futures_util::future::join_all(
        views
            .iter()
            .zip(&plans)
            .map(|(view, planned)| reseat::sweep::apply(view, Some(&planned.plan_id), &options)),
    )
    .await;
    let apply_time = started.elapsed();
    let apply_log = directory.state().log();
    let (apply_admin, apply_sites, _) = logged(&directory, &sites);
    let mut removed = 0;
    for report in reports {
        let report = report.unwrap();
        assert_eq!(report.failed, 0, "apply failed items");
        removed += report.removed_users;
    }
    let read_backs: HashSet<(String, Option<String>)> = apply_log
        .iter()
        .filter(|e| e.status == 200 && kind(e) == "admin user role-assignments")
        .map(|e| (e.path.clone(), e.query.clone()))
        .collect();

    // The minimum: one listing for the org, and per site what one site needs.
    let holder_pages: u64 = plans
        .iter()
        .map(|p| p.summary.roles.clone().unwrap_or_default().holder_pages)
        .sum();
    let listing = plan_admin.get("admin directory user search") - holder_pages;
    let sum = |calls: &[Calls], k: &str| calls.iter().map(|c| c.get(k)).sum::<u64>();
    let discovery = sum(&plan_sites, "jira applicationrole")
        + sum(&plan_sites, "confluence group listing")
        + holder_pages
        + plan_admin.get("admin group details");
    let changes = sum(&apply_sites, "jira DELETE group/user")
        + sum(&apply_sites, "confluence DELETE userByGroupId")
        + apply_admin.get("admin roles/revoke");
    let role_reads = plan_admin.get("admin user role-assignments") + read_backs.len() as u64;
    let minimum = listing + discovery + member_pages as u64 + changes + role_reads;
    let made = plan_admin.total()
        + apply_admin.total()
        + plan_sites
            .iter()
            .chain(&apply_sites)
            .map(Calls::total)
            .sum::<u64>();

    // The bound: the busiest limit's calls over it (the org's admin limit, or one site's
    // Jira or Confluence limit).
    let mut bounds = vec![(
        "admin (the org's)".to_owned(),
        plan_admin.family("admin") + apply_admin.family("admin"),
        admin_rate,
    )];
    for (i, (p, a)) in plan_sites.iter().zip(&apply_sites).enumerate() {
        for family in ["jira", "confluence"] {
            bounds.push((
                format!("{family} of acme-{i}"),
                p.family(family) + a.family(family),
                site_rate,
            ));
        }
    }
    let (busiest, busiest_calls, busiest_rate) = bounds
        .iter()
        .max_by(|a, b| (a.1 as f64 / a.2 as f64).total_cmp(&(b.1 as f64 / b.2 as f64)))
        .cloned()
        .unwrap();
    let bound = Duration::from_secs_f64(busiest_calls as f64 / busiest_rate as f64);
    let wall = plan_time + apply_time;
    let limited = plan_admin.limited
        + apply_admin.limited
        + plan_sites
            .iter()
            .chain(&apply_sites)
            .map(|c| c.limited)
            .sum::<u64>();

    println!("| measure | value |\n|---|---|");
    println!(
        "| org listing pages: one site alone; {site_count} sites together | {alone_listing}; {listing} |"
    );
    println!(
        "| minimum (listing {listing} + discovery {discovery} + member pages {member_pages} + changes {changes} + role reads {role_reads}) | {minimum} |"
    );
    println!(
        "| calls made (429 answers: {limited}) | {made} = {:.4}× the minimum |",
        made as f64 / minimum as f64
    );
    println!("| seats removed (users × site) | {removed} |");
    println!(
        "| busiest limit: {busiest} | {busiest_calls} calls / {busiest_rate}/s = {:.1} s |",
        bound.as_secs_f64()
    );
    println!(
        "| wall time: plan {:.1} s + apply {:.1} s | {:.1} s = {:.3}× the bound |",
        plan_time.as_secs_f64(),
        apply_time.as_secs_f64(),
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64()
    );
    assert_eq!(
        listing, alone_listing,
        "the org listing is read once for every site"
    );
    state.db.close().await;
    for sim in sites {
        sim.shutdown().await;
    }
    directory.shutdown().await;
}
