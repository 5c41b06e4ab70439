//! Counts for a dashboard.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;

use super::views::{JournalCounts, QueueDepth, SavingsView, Stats};
use crate::app::AppState;
use crate::ledger;
use crate::restore::store;
use crate::web::error::ApiError;

/// Requests by status, seats reclaimed and memberships restored per product, the queue's
/// depth, and the money saved (realised to date, run rate, per site and product) with the
/// seat forecast at the next renewal.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "stats",
    security(("bearer" = [])),
    responses((status = 200, description = "The counts", body = Stats))
)]
pub async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let requests_by_status = store::count_by_status(&state.db)
        .await?
        .into_iter()
        .collect();
    let mut journal: BTreeMap<String, JournalCounts> = BTreeMap::new();
    for (product, action, count) in ledger::journal_counts(&state.db).await? {
        if action == "restored" {
            journal.entry(product).or_default().restored += count;
        }
    }
    let mut conn = state.db.pool().acquire().await?;
    for (product, seats) in ledger::journal::reclaimed_per_product(&mut conn, 0).await? {
        journal.entry(product).or_default().removed = i64::try_from(seats).unwrap_or(i64::MAX);
    }
    drop(conn);
    let queue = state.queue.stats().await?;
    let savings = crate::billing::savings(&state).await?;
    let forecast = crate::billing::forecasts(&state).await?;
    Ok(Json(Stats {
        savings: SavingsView::new(&savings, forecast),
        requests_by_status,
        journal,
        queue: QueueDepth {
            queued: queue.queued,
            running: queue.running,
            done: queue.done,
            dead: queue.dead,
        },
    }))
}
