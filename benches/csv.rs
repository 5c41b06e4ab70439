//! CSV evaluation: a 1,000,000-row admin "Export users" file (directory layout, three
//! products on the configured site plus three on another site) read with
//! `activity::csv::CsvActivityReader` and every row × product decided with
//! `sweep::policy::evaluate`, as `sweep plan --source csv:FILE` does before storing.
//!
//! Peak memory is the `VmHWM` of a child process (this binary re-run with `--evaluate FILE`)
//! that does nothing but the evaluation, so generating the file does not count. Its
//! `VmHWM` at start (before opening the file) is reported beside it.
//!
//! Then **the real CLI**: `reseat sweep plan --source csv:FILE` (the binary, a child process)
//! against a simulator whose site has `RESEAT_BENCH_SITE_USERS` (50,000) accounts, on a file
//! of `RESEAT_BENCH_ROWS` rows: the site's accounts with their activity, the rest of the org
//! on another site. The time is the whole command (start, migrations, the population read
//! from the site's groups, the file, the decisions, storing the plan); peak memory is the
//! child's `VmHWM`, polled until it exits.
//!
//! `cargo bench --bench csv` runs 1,000,000 rows (`RESEAT_BENCH_ROWS`); without `--bench`,
//! 20,000 rows and 2,000 site accounts.

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
                granted: None,
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

/// Writes the simulator's site accounts (with their activity) and `rows` in all, the others
/// on another site only.
fn generate_for_site(path: &Path, sim: &reseat::sim::SimHandle, rows: u64, now: DateTime<Utc>) {
    use reseat::sim::model::Product;
    let products = products();
    let site = sim.config().site_name.clone();
    let cloud_id = sim.config().cloud_id.clone();
    let mut header = write::header(&site, &products);
    header.extend(write::header("acme-labs", &products).into_iter().skip(6));
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(&header).unwrap();
    let none: Vec<_> = products.iter().map(|p| (p.clone(), false, None)).collect();
    let mut written = 0u64;
    for seeded in &sim.state().ground_truth().users {
        let user = sim.state().user(&seeded.account_id).unwrap();
        let here = products
            .iter()
            .map(|p| {
                let sp = Product::from_admin_key(p.as_str()).unwrap();
                let seen = user
                    .activity
                    .iter()
                    .filter(|a| a.product == sp && a.cloud_id == cloud_id)
                    .map(|a| a.last_active)
                    .max();
                (p.clone(), user.products.contains(&sp), seen)
            })
            .collect();
        let row = |products| write::Row {
            account_id: &user.account_id,
            name: &user.name,
            email: user.email.as_deref(),
            status: "Active",
            added_to_org: user.added_to_org,
            org_admin: seeded.org_admin,
            products,
        };
        let mut record = write::record(&row(here), &products);
        record.extend(
            write::record(&row(none.clone()), &products)
                .into_iter()
                .skip(6),
        );
        writer.write_record(&record).unwrap();
        written += 1;
    }
    let mut rng = StdRng::seed_from_u64(7);
    for n in written..rows {
        let id = format!("5b10ac8d82e05b22cc7e{n:08x}");
        let name = format!("Other {n}");
        let email = format!("other{n}@labs.example");
        let added = now - Duration::days(rng.random_range(1..1500));
        let elsewhere = products
            .iter()
            .map(|p| {
                let seen = now - Duration::days(rng.random_range(0..400));
                (p.clone(), rng.random_range(0..3) > 0, Some(seen))
            })
            .collect();
        let row = |products| write::Row {
            account_id: &id,
            name: &name,
            email: Some(&email),
            status: "Active",
            added_to_org: added,
            org_admin: false,
            products,
        };
        let mut record = write::record(&row(none.clone()), &products);
        record.extend(
            write::record(&row(elsewhere), &products)
                .into_iter()
                .skip(6),
        );
        writer.write_record(&record).unwrap();
    }
    writer.flush().unwrap();
}

/// A configuration file for the CLI against `sim` (secrets written in full).
fn cli_config(sim: &reseat::sim::SimHandle, dir: &Path, with_admin: bool) -> std::path::PathBuf {
    cli_config_with(sim, dir, with_admin, |_| {})
}

fn cli_config_with(
    sim: &reseat::sim::SimHandle,
    dir: &Path,
    with_admin: bool,
    edit: impl FnOnce(&mut toml::Table),
) -> std::path::PathBuf {
    let mut config = reseat::demo::config_for(sim, dir);
    config.database.url = format!("sqlite://{}", dir.join("reseat.db").display());
    config.log.level = "warn".into();
    for family in [
        &mut config.atlassian.admin,
        &mut config.atlassian.jira,
        &mut config.atlassian.confluence,
    ] {
        family.requests_per_second = 100_000;
        family.concurrency = 8;
    }
    let mut value = toml::Value::try_from(&config).unwrap();
    let table = value.as_table_mut().unwrap();
    let atlassian = table["atlassian"].as_table_mut().unwrap();
    if with_admin {
        atlassian.insert(
            "admin_api_key".into(),
            sim.config().admin_key.clone().into(),
        );
    } else {
        for key in ["admin_api_key", "org_id", "cloud_id"] {
            atlassian.remove(key);
        }
    }
    atlassian.insert(
        "site_api_token".into(),
        sim.config().site_token.clone().into(),
    );
    let links = table["links"].as_table_mut().unwrap();
    links.insert(
        "keys".into(),
        toml::Value::Table(toml::map::Map::from_iter([(
            "demo".to_owned(),
            "a-link-signing-key-of-more-than-32-chars".into(),
        )])),
    );
    table.remove("restore");
    edit(table);
    let path = dir.join(if with_admin {
        "admin.toml"
    } else {
        "site.toml"
    });
    std::fs::write(&path, toml::to_string(&value).unwrap()).unwrap();
    path
}

/// Runs `reseat sweep plan --source csv:FILE`; returns (seconds, peak KiB, stdout).
fn run_cli(config: &Path, file: &Path) -> (f64, u64, String) {
    // The database is made once by `reseat migrate`, as an admin would (not timed).
    let migrated = Command::new(env!("CARGO_BIN_EXE_reseat"))
        .arg("--config")
        .arg(config)
        .arg("migrate")
        .env_remove("RESEAT_DATABASE__URL")
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseat"))
        .arg("--config")
        .arg(config)
        .args(["sweep", "plan", "--source"])
        .arg(format!("csv:{}", file.display()))
        .env_remove("RESEAT_DATABASE__URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (seconds, peak, String::from_utf8(out.stdout).unwrap())
}

/// The CLI on a file of `rows` rows for a site of `site_users` accounts.
fn cli(rows: u64, site_users: u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(reseat::sim::spawn(reseat::sim::SimConfig {
            users: usize::try_from(site_users).unwrap(),
            ..reseat::sim::SimConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    generate_for_site(&file, &sim, rows, Utc::now());
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "# the CLI: {rows} rows ({:.1} MiB), a site of {site_users} accounts",
        size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "| run | admin API | wall time (whole command) | rows/s | peak RSS (VmHWM) | upstream calls | plan |"
    );
    println!("|---|---|---|---|---|---|---|");
    let runs = if common::full() { 2 } else { 1 };
    for with_admin in [false, true] {
        for run in 1..=runs {
            let run_dir = tempfile::tempdir().unwrap();
            let config = cli_config(&sim, run_dir.path(), with_admin);
            sim.state().clear_log();
            let (seconds, peak, stdout) = run_cli(&config, &file);
            let calls = sim.state().log().len();
            let plan_line = stdout
                .lines()
                .filter(|l| l.contains("users:"))
                .collect::<Vec<_>>()
                .join("; ");
            println!(
                "| {run} | {} | {seconds:.2} s | {:.0} | {:.1} MiB | {calls} | {} |",
                if with_admin {
                    "configured (role reads)"
                } else {
                    "not configured"
                },
                rows as f64 / seconds,
                peak as f64 / 1024.0,
                plan_line.trim()
            );
        }
    }
    runtime.block_on(sim.shutdown());
}

/// The `name="csrf" value="…"` of a page.
fn csrf_in(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

fn cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap()
}

/// The child's `VmHWM` in KiB.
fn hwm_of(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        .unwrap()
}

/// The import page of a running `reseat serve` (a child process) takes files of growing size;
/// its peak memory is read after each.
fn import(site_users: u64, sizes_rows: &[u64]) {
    use std::io::BufRead as _;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(reseat::sim::spawn(reseat::sim::SimConfig {
            users: usize::try_from(site_users).unwrap(),
            ..reseat::sim::SimConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hash = reseat::web::admin::auth::hash_password("bench-password").unwrap();
    let config = cli_config_with(&sim, dir.path(), false, |table| {
        let server = table["server"].as_table_mut().unwrap();
        server.insert("listen".into(), "127.0.0.1:0".into());
        server.insert("request_timeout".into(), "10m".into());
        let admin = table["admin"].as_table_mut().unwrap();
        let mut user = toml::Table::new();
        user.insert("name".into(), "ana".into());
        user.insert("password_hash".into(), hash.into());
        admin.insert(
            "users".into(),
            toml::Value::Array(vec![toml::Value::Table(user)]),
        );
        table["queue"]
            .as_table_mut()
            .unwrap()
            .insert("workers".into(), 0.into());
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseat"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("RESEAT_DATABASE__URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().strip_prefix("listening: ").unwrap().to_string();
    let pid = child.id();
    println!("# the import page: `reseat serve` (a child), a site of {site_users} accounts");
    println!("| file | rows | upload + plan | VmHWM after (peak so far) | VmRSS after |");
    println!("|---|---|---|---|---|");
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http.get(format!("{base}/admin/login")).send().await.unwrap();
        let login_cookie = cookie_of(&page, "reseat_admin_login");
        let csrf = csrf_in(&page.text().await.unwrap());
        let signed = http
            .post(format!("{base}/admin/login"))
            .header("cookie", login_cookie)
            .form(&[("csrf", csrf.as_str()), ("name", "ana"), ("password", "bench-password")])
            .send()
            .await
            .unwrap();
        let session = cookie_of(&signed, "reseat_admin");
        let page = http
            .get(format!("{base}/admin/import"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        let csrf = csrf_in(&page.text().await.unwrap());
        println!(
            "| (signed in, before any upload) | | | {:.1} MiB | |",
            hwm_of(pid) as f64 / 1024.0
        );
        for &rows in sizes_rows {
            let file = dir.path().join("upload.csv");
            generate_for_site(&file, &sim, rows, Utc::now());
            let csv = std::fs::read(&file).unwrap();
            let boundary = "reseatbenchboundary";
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(&csv);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let size = body.len();
            let started = Instant::now();
            let response = http
                .post(format!("{base}/admin/import"))
                .header("cookie", &session)
                .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                .body(body)
                .send()
                .await
                .unwrap();
            // Answered at once; the progress page refreshes until the plan is made.
            assert_eq!(response.status(), 303);
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let text = loop {
                let page = http
                    .get(format!("{base}{location}"))
                    .header("cookie", &session)
                    .send()
                    .await
                    .unwrap();
                let status = page.status();
                let text = page.text().await.unwrap();
                if !text.contains("id=\"progress\"") {
                    assert_eq!(status, 200, "{text}");
                    break text;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            assert!(text.contains("created from the file"), "{text}");
            let seconds = started.elapsed().as_secs_f64();
            let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
                .unwrap();
            println!(
                "| {:.0} MB | {rows} | {seconds:.1} s | {:.1} MiB | {rss} |",
                size as f64 / 1e6,
                hwm_of(pid) as f64 / 1024.0
            );
        }
    });
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    runtime.block_on(sim.shutdown());
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
    drop(dir);
    let site_users = if common::full() {
        common::knob("SITE_USERS", 50_000)
    } else {
        2_000
    };
    cli(rows, site_users);
    // 20 MB, then 200 MB (about 115,000 and 1,150,000 rows).
    let per_mb = 1_000_000.0 / 182.0;
    let sizes = if common::full() {
        vec![(20.0 * per_mb) as u64, (200.0 * per_mb) as u64]
    } else {
        vec![5_000, 20_000]
    };
    import(site_users, &sizes);
}
