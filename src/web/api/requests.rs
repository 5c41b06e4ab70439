//! Restore requests: list, read, approve, deny.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery, OptionalJson, id_cursor, limit, next_cursor};
use super::views::{Request, RequestPage, RequestStatus};
use crate::app::AppState;
use crate::atlassian::GroupId;
use crate::restore::admin::{self, AdminError};
use crate::restore::store;
use crate::web::config::Grant;
use crate::web::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRequests {
    /// Only requests in this status.
    #[param(inline)]
    status: Option<RequestStatus>,
    /// Only requests for this site.
    site: Option<String>,
    /// Requests per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z-]{1,64}$")]
    cursor: Option<String>,
}

/// Restore requests, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/requests",
    tag = "requests",
    params(ListRequests),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of requests", body = RequestPage),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(query): ApiQuery<ListRequests>,
) -> Result<Json<RequestPage>, ApiError> {
    let limit = limit(query.limit)?;
    let before = id_cursor(query.cursor.as_deref())?;
    let status = query.status.map(RequestStatus::as_str);
    let site = super::extract::site_filter(&state, query.site.as_deref())?;
    let mut requests = store::list_page(&state.db, status, site.as_ref(), before, limit).await?;
    // The cursor follows every row read, so paging goes on past rows outside the scope.
    let next_cursor = next_cursor(&requests, limit, |request| request.id.clone());
    requests.retain(|request| request.in_scope(&grant, state.site()));
    let items = requests
        .into_iter()
        .map(Request::try_from)
        .collect::<Result<_, _>>()
        .map_err(ApiError::Internal)?;
    Ok(Json(RequestPage { items, next_cursor }))
}

/// One request.
#[utoipa::path(
    get,
    path = "/api/v1/requests/{id}",
    tag = "requests",
    params(("id" = String, Path, description = "The request id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = Request),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 403, description = "The request is outside the token's sites or products", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Request>, ApiError> {
    let request = store::get(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no request {id:?}")))?;
    grant
        .require_scope(
            &state.db,
            request.site_or(state.site()),
            request.product.as_deref(),
            &format!("request {id}"),
        )
        .await?;
    Ok(Json(
        Request::try_from(request).map_err(ApiError::Internal)?,
    ))
}

async fn load(state: &AppState, id: &str) -> Result<Request, ApiError> {
    let request = store::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no request {id:?}")))?;
    Request::try_from(request).map_err(ApiError::Internal)
}

/// Groups to add besides the ones reseat removed (for a user reseat never removed).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Group ids.
    #[serde(default)]
    pub groups: Vec<GroupIdText>,
}

/// A group id: letters, digits and `- _ : .`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_:.-]{1,128}$")]
pub struct GroupIdText(String);

/// Approves a request waiting for an admin (`pending`) or one that `failed`; the worker then
/// restores the journaled groups plus `groups` and answers the requester.
#[utoipa::path(
    post,
    path = "/api/v1/requests/{id}/approve",
    tag = "requests",
    params(("id" = String, Path, description = "The request id")),
    request_body(content = Option<ApproveBody>, description = "Optional; an empty body approves with the journaled groups only", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Approved; the worker restores and replies", body = Request),
        (status = 400, description = "The body or a parameter is malformed", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "The request is not pending or failed", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "A group named is not among the product's access groups (what reseat removed, the configured access groups, the rules' grant groups, the product's groups in Jira); nothing was changed", body = ErrorBody),
        (status = 502, description = "The product's access groups cannot be read from Atlassian now", body = ErrorBody),
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Option<ApproveBody>>,
) -> Result<(StatusCode, Json<Request>), ApiError> {
    let groups = body
        .flatten()
        .unwrap_or_default()
        .groups
        .into_iter()
        .map(|GroupIdText(text)| GroupId::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ApiError::BadRequest(format!("groups: {error}")))?;
    admin::approve(&state, &id, &grant, groups)
        .await
        .map_err(admin_error)?;
    Ok((StatusCode::ACCEPTED, Json(load(&state, &id).await?)))
}

/// Why the request is denied; the requester is told.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    /// At least one character other than a space, tab or line break; at most 2000.
    #[schema(min_length = 1, max_length = 2000, pattern = "[^ \\t\\r\\n]")]
    pub reason: String,
}

/// Denies a request waiting for an admin (`pending`) or one that `failed`, with a reason
/// the requester is told.
#[utoipa::path(
    post,
    path = "/api/v1/requests/{id}/deny",
    tag = "requests",
    params(("id" = String, Path, description = "The request id")),
    request_body(content = DenyBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Denied; the worker replies", body = Request),
        (status = 400, description = "The body or a parameter is malformed", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "The request is not pending or failed", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    )
)]
pub async fn deny(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<DenyBody>,
) -> Result<(StatusCode, Json<Request>), ApiError> {
    let reason = body
        .ok_or_else(|| ApiError::BadRequest("a JSON body with \"reason\" is required".into()))?
        .reason;
    let blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    if reason.chars().all(blank) || reason.chars().count() > 2000 {
        return Err(ApiError::BadRequest(
            "reason must have 1 to 2000 characters, not only spaces".into(),
        ));
    }
    let reason = reason.trim_matches(blank);
    admin::deny(&state, &id, &grant, reason)
        .await
        .map_err(admin_error)?;
    Ok((StatusCode::ACCEPTED, Json(load(&state, &id).await?)))
}

fn admin_error(error: AdminError) -> ApiError {
    match error {
        AdminError::NotFound(id) => ApiError::NotFound(format!("no request {id:?}")),
        error @ AdminError::NotOpen { .. } => ApiError::Conflict(error.to_string()),
        error @ (AdminError::GroupsNotAllowed { .. } | AdminError::NoProduct(_)) => {
            ApiError::Unprocessable(error.to_string())
        }
        AdminError::Refused(refused) => refused.into(),
        AdminError::Upstream(error) => ApiError::BadGateway(error.into()),
        AdminError::Db(error) => error.into(),
    }
}
