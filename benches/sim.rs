//! The simulator at scale: `reseat sim --users N` start time and memory (the real binary, in
//! a child process), the full admin user listing through reseat's `AdminClient`, and the
//! same seeding in-process for comparison.
//!
//! `cargo bench --bench sim` measures 100,000 users (`RESEAT_BENCH_USERS` to change);
//! without `--bench` a 2,000-user smoke run.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reseat::atlassian::{AtlassianClients, AtlassianConfig, FamilyLimits};
use reseat::sim::SimConfig;

fn child_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn client_for(base: &str) -> AtlassianClients {
    let url = url::Url::parse(base).unwrap();
    let fast = FamilyLimits {
        requests_per_second: 100_000,
        concurrency: 4,
    };
    let config = AtlassianConfig {
        org_id: Some(reseat::sim::DEFAULT_ORG_ID.to_owned()),
        cloud_id: Some(reseat::sim::DEFAULT_CLOUD_ID.to_owned()),
        site_name: Some(reseat::sim::DEFAULT_SITE_NAME.to_owned()),
        admin_base_url: url.clone(),
        site_base_url: Some(url),
        admin_api_key: Some(reseat::sim::DEFAULT_ADMIN_KEY.to_owned().into()),
        site_email: Some(reseat::sim::DEFAULT_SITE_EMAIL.to_owned()),
        site_api_token: Some(reseat::sim::DEFAULT_SITE_TOKEN.to_owned().into()),
        admin: fast,
        jira: fast,
        ..AtlassianConfig::default()
    };
    AtlassianClients::new(&config).unwrap()
}

/// Lists every managed user page by page; (users, pages, time).
async fn list_all(base: &str) -> (u64, u64, Duration) {
    let clients = client_for(base);
    let admin = clients.admin.as_ref().unwrap();
    let org = clients.org_id.clone().unwrap();
    let started = Instant::now();
    let mut pages = admin.users(&org);
    let (mut users, mut count) = (0u64, 0u64);
    while let Some(page) = pages.next_page().await.unwrap() {
        count += 1;
        users += page.len() as u64;
    }
    (users, count, started.elapsed())
}

#[tokio::main]
async fn main() {
    let full = common::full();
    let users = if full {
        common::knob("USERS", 100_000) as usize
    } else {
        2_000
    };
    println!(
        "# sim bench: {users} users ({})",
        if full { "full" } else { "smoke" }
    );

    // 1. The real binary: launch to the last banner line, then its memory.
    let bin = env!("CARGO_BIN_EXE_reseat");
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["sim", "--port", "0", "--users", &users.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("reseat sim starts");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut base = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("listening: ") {
            base = url.trim().to_owned();
        }
        if line.starts_with("site-auth:") {
            break;
        }
    }
    let start_time = started.elapsed();
    let rss_seeded = child_kib(pid, "VmRSS");
    let (listed, pages, list_time) = list_all(&base).await;
    let rss_listed = child_kib(pid, "VmRSS");
    let hwm = child_kib(pid, "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    assert!(listed > 0, "the listing returned users");

    // 2. In-process: seeding alone (no process start, no banner).
    let before = common::status_kib("VmRSS");
    let seeded_at = Instant::now();
    let sim = reseat::sim::spawn(SimConfig {
        users,
        // Benchmarks measure the simulator without the test suite's spec checks.
        validate_responses: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let seed_time = seeded_at.elapsed();
    let in_process_delta = common::status_kib("VmRSS").saturating_sub(before);
    let (listed_again, _, list_again) = list_all(&sim.base_url()).await;
    sim.shutdown().await;
    assert_eq!(listed, listed_again, "same seed, same org");

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| `reseat sim --users {users}`: launch to banner | {:.2} s |",
        start_time.as_secs_f64()
    );
    println!(
        "| in-process `sim::spawn` (seed + bind) | {:.2} s |",
        seed_time.as_secs_f64()
    );
    println!(
        "| full admin listing via `AdminClient::users` | {listed} users, {pages} pages, {:.2} s ({:.0} users/s); in-process run {:.2} s |",
        list_time.as_secs_f64(),
        listed as f64 / list_time.as_secs_f64(),
        list_again.as_secs_f64()
    );
    println!(
        "| RSS of `reseat sim` after seeding | {:.1} MiB |",
        common::mib(rss_seeded)
    );
    println!(
        "| RSS after the listing / peak (VmHWM) | {:.1} MiB / {:.1} MiB |",
        common::mib(rss_listed),
        common::mib(hwm)
    );
    println!(
        "| in-process RSS growth from seeding | {:.1} MiB |",
        common::mib(in_process_delta)
    );
}
