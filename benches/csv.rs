//! CSV evaluation: a 1,000,000-row admin "Export users" file (directory layout, three
//! products on the configured site plus three on another site) read with
//! `activity::csv::CsvActivityReader` and every row × product decided with
//! `sweep::policy::evaluate`, as `sweep plan --source csv:FILE` does before storing.
//!
//! Peak memory is the `VmHWM` of a child process (this binary re-run with `--evaluate FILE`)
//! that does nothing but the evaluation, so generating the file does not count. Its
//! `VmHWM` at start (before opening the file) is reported beside it.
//!
//! `cargo bench --bench csv` runs 1,000,000 rows (`RESEAT_BENCH_ROWS`); without `--bench`,
//! 20,000.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reseat::activity::SiteFilter;
use reseat::activity::csv::{CsvActivityReader, write};
use reseat::atlassian::ProductKey;
use reseat::sweep::config::{ProductPolicy, SweepConfig};
use reseat::sweep::policy::{self, Facts};

fn products() -> Vec<ProductKey> {
    vec![
        ProductKey::JIRA_SOFTWARE,
        ProductKey::JIRA_SERVICE_MANAGEMENT,
        ProductKey::CONFLUENCE,
    ]
}

/// Writes `rows` users: the configured site `acme` and another site `acme-labs`.
fn generate(path: &Path, rows: u64, now: DateTime<Utc>) {
    let products = products();
    let mut header = write::header("acme", &products);
    header.extend(write::header("acme-labs", &products).into_iter().skip(6));
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(&header).unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    let pick = |rng: &mut StdRng| -> (bool, Option<DateTime<Utc>>) {
        match rng.random_range(0..10) {
            0..=2 => (false, None),
            3 => (true, None),
            4..=6 => (true, Some(now - Duration::days(rng.random_range(0..30)))),
            _ => (true, Some(now - Duration::days(rng.random_range(90..700)))),
        }
    };
    for n in 0..rows {
        let id = format!("5b10ac8d82e05b22cc7d{n:08x}");
        let name = format!("User {n}");
        let email = format!("user{n}@acme.example");
        let added = now - Duration::days(rng.random_range(1..1500));
        let here: Vec<_> = products
            .iter()
            .map(|p| {
                let (access, seen) = pick(&mut rng);
                (p.clone(), access, seen)
            })
            .collect();
        let elsewhere: Vec<_> = products
            .iter()
            .map(|p| {
                let (access, seen) = pick(&mut rng);
                (p.clone(), access, seen)
            })
            .collect();
        let row = |products| write::Row {
            account_id: &id,
            name: &name,
            email: Some(&email),
            status: "Active",
            added_to_org: added,
            org_admin: n % 1000 == 0,
            products,
        };
        let mut record = write::record(&row(here), &products);
        record.extend(
            write::record(&row(elsewhere), &products)
                .into_iter()
                .skip(6),
        );
        writer.write_record(&record).unwrap();
    }
    writer.flush().unwrap();
}

/// The child: reads and decides; prints `rows decisions seconds hwm_start_kib hwm_end_kib`.
fn evaluate(path: &Path) {
    let hwm_start = common::status_kib("VmHWM");
    let mut config = SweepConfig::default();
    for p in products() {
        config
            .products
            .insert(p.as_str().to_owned(), ProductPolicy::default());
    }
    let site = SiteFilter {
        cloud_id: None,
        site_name: Some("acme".to_owned()),
    };
    let now = Utc::now();
    let started = Instant::now();
    let mut reader = CsvActivityReader::open(path, site).unwrap();
    let mut decided = 0u64;
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let products = products();
    while let Some(activity) = reader.next_activity().unwrap() {
        for product in &products {
            let Some(seen) = activity
                .products
                .iter()
                .find(|p| &p.product == product && p.access == Some(true))
                .map(|p| p.seen)
            else {
                continue;
            };
            let facts = Facts {
                exemption: None,
                seen,
                added_to_org: activity.added_to_org,
                kept_until: None,
                warned_at: None,
                active_elsewhere: None,
                unattributed: activity.unattributed(),
            };
            let policy = config.product(product).unwrap();
            let verdict = policy::evaluate(&config, policy, &facts, now);
            *counts.entry(verdict.decision.as_str()).or_default() += 1;
            decided += 1;
        }
    }
    let report = reader.finish(1.0).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let hwm_end = common::status_kib("VmHWM");
    eprintln!("decisions: {counts:?}");
    println!("{} {decided} {seconds} {hwm_start} {hwm_end}", report.rows);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--evaluate") {
        evaluate(Path::new(&args[i + 1]));
        return;
    }
    let rows = if common::full() {
        common::knob("ROWS", 1_000_000)
    } else {
        20_000
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.csv");
    let started = Instant::now();
    generate(&path, rows, Utc::now());
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "# csv bench: {rows} rows, {:.1} MiB file, generated in {:.1} s",
        size as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    let runs = if common::full() { 3 } else { 1 };
    println!(
        "| run | rows | row × product decisions | time | rows/s | peak RSS (VmHWM) | VmHWM before reading |"
    );
    println!("|---|---|---|---|---|---|---|");
    for run in 1..=runs {
        let out = Command::new(std::env::current_exe().unwrap())
            .arg("--evaluate")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let f: Vec<f64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let (read, decided, seconds, hwm_start, hwm_end) = (f[0], f[1], f[2], f[3], f[4]);
        assert_eq!(read as u64, rows);
        println!(
            "| {run} | {read} | {decided} | {seconds:.2} s | {:.0} | {:.1} MiB | {:.1} MiB |",
            read / seconds,
            hwm_end / 1024.0,
            hwm_start / 1024.0
        );
        if run == 1 {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
