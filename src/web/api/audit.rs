//! The audit log: filtered pages as JSON, and the same filters as a CSV download.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiQuery, limit, next_cursor, number_cursor};
use super::views::{AuditEntry, AuditPage};
use crate::app::AppState;
use crate::audit::{self, Filter};
use crate::store::time::{from_ms, to_ms};
use crate::web::config::Grant;
use crate::web::error::{ApiError, ErrorBody};

/// The filters both the JSON and the CSV form take.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only entries by this actor (`api:ci`, `admin:alice`, `reseat`, …).
    actor: Option<String>,
    /// Only entries with this action (`restore.approved`, …).
    action: Option<String>,
    /// Only entries about this account id.
    account: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
}

impl AuditFilter {
    fn filter(&self) -> Result<Filter<'_>, ApiError> {
        Ok(Filter {
            actor: self.actor.as_deref(),
            action: self.action.as_deref(),
            account: self.account.as_deref(),
            from: self.from.as_deref().map(|t| time("from", t)).transpose()?,
            to: self.to.as_deref().map(|t| time("to", t)).transpose()?,
        })
    }
}

/// An RFC 3339 time as stored milliseconds.
fn time(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(to_ms(at.with_timezone(&Utc)));
    }
    // RFC 3339 allows a space for `T`; read both forms, in any case.
    let upper = text.to_ascii_uppercase().replacen(' ', "T", 1);
    if let Ok(at) = DateTime::parse_from_rfc3339(&upper) {
        return Ok(to_ms(at.with_timezone(&Utc)));
    }
    // Without an offset: UTC.
    NaiveDateTime::parse_from_str(&upper, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|at| to_ms(at.and_utc()))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} must be an RFC 3339 time like 2025-01-31T00:00:00Z, got {text:?}"
            ))
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPaging {
    /// Entries per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// Audit entries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditFilter, AuditPaging),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditPage),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(filter): ApiQuery<AuditFilter>,
    ApiQuery(paging): ApiQuery<AuditPaging>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = limit(paging.limit)?;
    let before = number_cursor(paging.cursor.as_deref())?;
    let mut records = audit::search(&state.db, &filter.filter()?, before, limit).await?;
    // The cursor follows every row read: a page may hold fewer entries for a scoped token.
    let next_cursor = next_cursor(&records, limit, |record| record.id.to_string());
    records.retain(|record| record.in_scope(&grant, state.site()));
    Ok(Json(AuditPage {
        items: records.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    }))
}

/// Rows read from the database per chunk of the CSV download.
const CSV_CHUNK: i64 = 1000;

/// Every audit entry matching the filters as CSV, newest first, streamed in chunks:
/// `id,at,actor,action,account_id,product,details,role`.
#[utoipa::path(
    get,
    path = "/api/v1/audit.csv",
    tag = "audit",
    params(AuditFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entries as CSV", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
    )
)]
pub async fn csv(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(query): ApiQuery<AuditFilter>,
) -> Result<Response, ApiError> {
    // Checked before the first byte goes out: afterwards only the connection can fail.
    query.filter()?;
    let header = csv_rows(&[]).map_err(ApiError::Internal)?;
    struct Cursor {
        state: AppState,
        grant: Grant,
        query: AuditFilter,
        before: Option<i64>,
        done: bool,
    }
    let start = Cursor {
        state,
        grant,
        query,
        before: None,
        done: false,
    };
    let rows = futures_util::stream::unfold(start, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let filter = match cursor.query.filter() {
            Ok(filter) => filter,
            Err(error) => return Some((Err(std::io::Error::other(error.to_string())), cursor)),
        };
        let page = audit::search(&cursor.state.db, &filter, cursor.before, CSV_CHUNK).await;
        let chunk = match page {
            Ok(mut records) => {
                cursor.done = i64::try_from(records.len()).unwrap_or(0) < CSV_CHUNK;
                cursor.before = records.last().map(|record| record.id);
                let site = cursor.state.site();
                records.retain(|record| record.in_scope(&cursor.grant, site));
                if records.is_empty() {
                    return Some((Ok(Vec::new()), cursor));
                }
                csv_rows(&records).map_err(std::io::Error::other)
            }
            Err(error) => {
                tracing::error!(%error, "audit CSV export failed");
                cursor.done = true;
                Err(std::io::Error::other(error))
            }
        };
        Some((chunk, cursor))
    });
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(header)]);
    let body = futures_util::StreamExt::chain(body, rows);
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"reseat-audit.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The CSV header (for no records) or the rows of `records`.
fn csv_rows(records: &[audit::Record]) -> Result<Vec<u8>, anyhow::Error> {
    let mut writer = crate::spreadsheet::CsvWriter::in_memory();
    if records.is_empty() {
        writer.row([
            "id",
            "at",
            "actor",
            "action",
            "account_id",
            "product",
            "details",
            "role",
        ])?;
    }
    for record in records {
        writer.row([
            record.id.to_string().as_str(),
            &from_ms(record.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            &record.actor,
            &record.action,
            record.account_id.as_deref().unwrap_or_default(),
            record.product.as_deref().unwrap_or_default(),
            &record.details,
            record.role.as_deref().unwrap_or_default(),
        ])?;
    }
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc3339_times() {
        assert_eq!(time("from", "1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(time("from", "1970-01-01t00:00:01z").unwrap(), 1000);
        assert_eq!(time("from", "1970-01-01T01:00:01+01:00").unwrap(), 1000);
        assert_eq!(time("from", "1970-01-01T00:00:01.5").unwrap(), 1500);
        assert!(time("from", "yesterday").is_err());
    }

    #[test]
    fn cells_never_start_a_formula() {
        let record = audit::Record {
            id: 1,
            at: 0,
            actor: "=HYPERLINK(\"x\")".into(),
            action: "api:ci".into(),
            account_id: Some("-1".into()),
            product: None,
            details: "{}".into(),
            role: None,
        };
        let text = String::from_utf8(csv_rows(&[record]).unwrap()).unwrap();
        assert!(
            text.starts_with(
                "1,1970-01-01T00:00:00.000Z,\"'=HYPERLINK(\"\"x\"\")\",api:ci,'-1,,{}"
            ),
            "{text}"
        );
    }
}
