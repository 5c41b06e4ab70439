//! One account's timeline: what reseat took away and gave back, what was asked, and every
//! audited action about it.

use axum::extract::State;
use axum::{Extension, Json};

use super::extract::ApiPath;
use super::views::{AuditEntry, JournalEntry, Request, Timeline, TimelineEvent, TimelineKind};
use crate::app::AppState;
use crate::audit;
use crate::restore::store;
use crate::web::config::Grant;
use crate::web::error::{ApiError, ErrorBody};

/// Rows read from each source; a timeline longer than this shows the oldest and says so.
const PER_SOURCE: i64 = 1000;

/// Journal rows, requests and audit entries about one account, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{account_id}/timeline",
    tag = "users",
    params(("account_id" = String, Path, description = "The Atlassian account id", pattern = "^[A-Za-z0-9_:-]{1,128}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account's timeline (empty when reseat has no record of it)", body = Timeline),
        (status = 400, description = "The account id is malformed", body = ErrorBody),
    )
)]
pub async fn timeline(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiPath(account): ApiPath<String>,
) -> Result<Json<Timeline>, ApiError> {
    let account = crate::atlassian::AccountId::parse(account)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let account = account.as_str();
    let journal = crate::ledger::journal_of(&state.db, account, PER_SOURCE).await?;
    let requests = store::list_for_account(&state.db, account, PER_SOURCE).await?;
    let entries = audit::list(&state.db, Some(account), PER_SOURCE).await?;
    let truncated = [journal.len(), requests.len(), entries.len()]
        .iter()
        .any(|&n| i64::try_from(n).unwrap_or(i64::MAX) >= PER_SOURCE);
    // Only what the token's scope covers.
    let site = state.site();
    let journal: Vec<_> = journal
        .into_iter()
        .filter(|row| grant.covers(&row.site, Some(&row.product)))
        .collect();
    let requests: Vec<_> = requests
        .into_iter()
        .filter(|request| request.in_scope(&grant, site))
        .collect();
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|entry| entry.in_scope(&grant, site))
        .collect();
    let mut events = Vec::with_capacity(journal.len() + requests.len() + entries.len());
    for row in journal {
        let row = JournalEntry::from(row);
        events.push(TimelineEvent {
            at: row.at,
            kind: TimelineKind::Journal,
            summary: format!(
                "{} {} ({}) on {}: {}",
                row.action, row.group_name, row.product, row.site, row.reason
            ),
            journal: Some(row),
            request: None,
            audit: None,
        });
    }
    for request in requests {
        let request = Request::try_from(request).map_err(ApiError::Internal)?;
        events.push(TimelineEvent {
            at: request.created_at,
            kind: TimelineKind::Request,
            summary: format!(
                "asked for {} via {}: {}",
                request.product.as_deref().unwrap_or("a product"),
                request.channel,
                request.status.as_str()
            ),
            journal: None,
            request: Some(request),
            audit: None,
        });
    }
    for entry in entries {
        let entry = AuditEntry::from(entry);
        events.push(TimelineEvent {
            at: entry.at,
            kind: TimelineKind::Audit,
            summary: format!("{} by {}", entry.action, entry.actor),
            journal: None,
            request: None,
            audit: Some(entry),
        });
    }
    // Stable: at the same millisecond, journal before request before audit.
    events.sort_by_key(|event| event.at);
    Ok(Json(Timeline {
        account_id: account.to_string(),
        events,
        truncated,
    }))
}
