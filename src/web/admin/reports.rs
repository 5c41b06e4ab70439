//! `GET /admin/reports/savings.csv` and `.json`: the monthly savings report (one row per
//! site × product × month), the same file `reseat report savings` writes.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

use super::auth::AdminSession;
use super::pages::{PageError, PageResult, secure_headers};
use crate::app::AppState;
use crate::billing::report::Format;

pub async fn savings_csv(State(state): State<AppState>, _session: AdminSession) -> PageResult {
    savings(&state, Format::Csv).await
}

pub async fn savings_json(State(state): State<AppState>, _session: AdminSession) -> PageResult {
    savings(&state, Format::Json).await
}

async fn savings(state: &AppState, format: Format) -> PageResult {
    let savings = crate::billing::savings(state).await?;
    let body = format
        .render(&savings)
        .map_err(|e| PageError::Internal(anyhow::anyhow!(e)))?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let mut response = (StatusCode::OK, body).into_response();
    secure_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"reseat-savings-{}.{extension}\"",
        crate::store::time::from_ms(state.db.now_ms()).format("%Y-%m-%d")
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
