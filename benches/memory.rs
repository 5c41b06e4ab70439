//! Memory of `reseat serve` (the real binary, a child process, SQLite, default
//! configuration): idle after start, then under a steady load of `RESEAT_BENCH_RATE` (300)
//! requests/s for `RESEAT_BENCH_SECONDS` (60) — health and metrics, the sign-in page, refused
//! restore links and refused webhooks (both counted in the audit) — then idle again.
//! `VmRSS` is read every 5 s from `/proc/<pid>/status`; growth shows as a rising RSS across
//! the load or an RSS after it above the one during it.
//!
//! `cargo bench --bench memory`; without `--bench`, 3 s at 100 requests/s.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap()
}

fn main() {
    let (rate, seconds) = if common::full() {
        (common::knob("RATE", 300), common::knob("SECONDS", 60))
    } else {
        (100, 3)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseat"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("RESEAT_DATABASE__URL")
        .env("RESEAT_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().strip_prefix("listening: ").unwrap().to_string();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(if common::full() { 5 } else { 1 }));
    let idle = rss_kib(pid, "VmRSS");
    println!("# memory bench: `reseat serve`, {rate} requests/s for {seconds} s");
    println!("| when | VmRSS |");
    println!("|---|---|");
    println!("| idle, 5 s after start | {:.1} MiB |", common::mib(idle));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (answered, failed, samples) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0u64;
        let mut samples = Vec::new();
        let mut next_sample = Duration::from_secs(5);
        let (mut answered, mut failed) = (0u64, 0u64);
        while started.elapsed() < Duration::from_secs(seconds) {
            every.tick().await;
            let url = match n % 5 {
                0 => format!("{base}/healthz"),
                1 => format!("{base}/metrics"),
                2 => format!("{base}/admin/login"),
                3 => format!("{base}/restore/not-a-token-{n}"),
                _ => format!("{base}/hooks/webhook"),
            };
            let post = n % 5 == 4;
            let client = client.clone();
            tasks.spawn(async move {
                let request = if post {
                    client
                        .post(url)
                        .header("content-type", "application/json")
                        .body("{}")
                } else {
                    client.get(url)
                };
                request.send().await.map(|r| r.status().as_u16())
            });
            n += 1;
            while let Some(done) = tasks.try_join_next() {
                match done.unwrap() {
                    Ok(status) if status < 500 => answered += 1,
                    _ => failed += 1,
                }
            }
            if started.elapsed() >= next_sample {
                samples.push((next_sample.as_secs(), rss_kib(pid, "VmRSS")));
                next_sample += Duration::from_secs(5);
            }
        }
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                Ok(status) if status < 500 => answered += 1,
                _ => failed += 1,
            }
        }
        (answered, failed, samples)
    });
    for (at, kib) in &samples {
        println!("| {at} s into the load | {:.1} MiB |", common::mib(*kib));
    }
    std::thread::sleep(Duration::from_secs(if common::full() { 10 } else { 1 }));
    let after = rss_kib(pid, "VmRSS");
    let peak = rss_kib(pid, "VmHWM");
    println!(
        "| idle, 10 s after the load | {:.1} MiB |",
        common::mib(after)
    );
    println!("| peak (VmHWM) | {:.1} MiB |", common::mib(peak));
    println!(
        "answered {answered} (none 5xx), failed {failed}; first sample to last: {:+.1} MiB",
        samples
            .first()
            .zip(samples.last())
            .map(|((_, a), (_, b))| common::mib(*b) - common::mib(*a))
            .unwrap_or(0.0)
    );
    assert_eq!(failed, 0, "every request answered without a server error");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}
