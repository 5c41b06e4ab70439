//! Counts for a dashboard.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;

use super::views::{JournalCounts, QueueDepth, Stats};
use crate::app::AppState;
use crate::restore::store;
use crate::web::error::ApiError;

/// Requests by status, journaled removals and restores per product, and the queue's depth.
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
    for (product, action, count) in store::journal_counts(&state.db).await? {
        let counts = journal.entry(product).or_default();
        match action.as_str() {
            "removed" => counts.removed += count,
            "restored" => counts.restored += count,
            _ => {}
        }
    }
    let queue = state.queue.stats().await?;
    Ok(Json(Stats {
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
