//! `GET /admin/plans/{id}/still-billed.csv`: the seats a plan's removals could not free,
//! with what keeps each one billed and who must act, for the identity-provider admin.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

use super::auth::AdminSession;
use super::pages::{PageError, PageResult, secure_headers};
use crate::app::AppState;
use crate::sweep::roles::Billing;

pub async fn csv(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> PageResult {
    let mut rows = crate::ledger::roles::still_billed_items(&state.db, &id).await?;
    // Only the products the admin's scope covers, on the plan's site.
    let site = crate::sweep::store::get_plan(&state.db, &id)
        .await?
        .map(|plan| plan.site)
        .unwrap_or_else(|| state.site().to_string());
    rows.retain(|row| session.grant.covers(&site, Some(&row.product)));
    let mut writer = crate::spreadsheet::CsvWriter::in_memory();
    let internal = |e: csv::Error| PageError::Internal(e.into());
    writer
        .row([
            "account_id",
            "email",
            "display_name",
            "product",
            "bills_through",
            "what_keeps_it",
        ])
        .map_err(internal)?;
    for row in rows {
        writer
            .row([
                row.account_id.as_str(),
                row.email.as_deref().unwrap_or_default(),
                row.display_name.as_deref().unwrap_or_default(),
                &row.product,
                &Billing::parse(&row.billing).explain(),
                row.outcome.as_deref().unwrap_or_default(),
            ])
            .map_err(internal)?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| PageError::Internal(anyhow::anyhow!("csv: {e}")))?;
    let mut response = (StatusCode::OK, body).into_response();
    secure_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"reseat-still-billed-{}.csv\"",
        id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
