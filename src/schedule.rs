//! Work that runs at the times of a cron expression (UTC) inside `serve`, on one replica at
//! a time: each turn first takes a named lease in the shared database.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio_util::sync::CancellationToken;

/// Parses a cron expression (`"0 3 * * *"`: five fields, or six with seconds).
pub fn parse(expression: &str) -> Result<Cron, String> {
    Cron::from_str(expression.trim())
        .map_err(|e| format!("expected a cron expression like \"0 3 * * 1-5\": {e}"))
}

/// The next time of `cron` after `now`.
pub fn next_after(cron: &Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&now, false).ok()
}

/// Calls `turn` at each time of `cron` until `cancel` fires.
pub async fn run<F, Fut>(name: &str, cron: Cron, cancel: CancellationToken, mut turn: F)
where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let now = Utc::now();
        let Some(next) = next_after(&cron, now) else {
            tracing::error!(schedule = name, "the schedule has no next time; it stops");
            return;
        };
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        tracing::info!(schedule = name, %next, "next scheduled run");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        turn(next).await;
    }
}
