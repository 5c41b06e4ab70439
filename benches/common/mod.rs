//! Helpers shared by the bench binaries: full or smoke mode, process memory, latency
//! histograms, and a uniquely named PostgreSQL database per run.
//!
//! Every bench is a plain `fn main()`: under `cargo bench` cargo passes `--bench` and the
//! full measurement runs; without it (`cargo test --all-targets` runs bench targets too) a
//! smoke run of a few seconds checks that the bench still works.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

/// Whether this is a real measurement (`cargo bench`) rather than a smoke run.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// An integer knob from the environment (`RESEAT_BENCH_<NAME>`), else `default`.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(format!("RESEAT_BENCH_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`); 0 where there is none.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Latencies in microseconds.
pub struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    pub fn new() -> Latencies {
        Latencies(hdrhistogram::Histogram::new_with_bounds(1, 120_000_000, 3).unwrap())
    }

    pub fn record(&mut self, d: Duration) {
        let _ = self.0.record((d.as_micros() as u64).max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// The PostgreSQL server the benches use (`RESEAT_BENCH_DATABASE_URL`, default the local
/// trust server); `None` when it cannot be reached.
pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> Option<PgDb> {
        let admin_url = std::env::var("RESEAT_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("reseat_bench_{}", uuid::Uuid::new_v4().simple());
        if let Err(error) = admin_exec(&admin_url, &format!("CREATE DATABASE {name}")).await {
            eprintln!("PostgreSQL unavailable at {admin_url}: {error}; skipping PostgreSQL runs");
            return None;
        }
        let mut url = url::Url::parse(&admin_url).ok()?;
        url.set_path(&name);
        Some(PgDb {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// Drops the database (call it after every pool on it is closed).
    pub async fn drop_db(self) {
        if let Err(error) = admin_exec(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
        {
            eprintln!("could not drop {}: {error}", self.name);
        }
    }
}

async fn admin_exec(admin_url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    conn.execute(sql).await?;
    conn.close().await
}
