//! Sweep plans and their items.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiPath, ApiQuery, id_cursor, limit, next_cursor, number_cursor};
use super::views::{Plan, PlanItemPage, PlanPage};
use crate::app::AppState;
use crate::sweep::policy::Decision;
use crate::sweep::store;
use crate::web::config::Grant;
use crate::web::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPlans {
    /// Only plans of this site.
    site: Option<String>,
    /// Plans per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z-]{1,64}$")]
    cursor: Option<String>,
}

/// Plans, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/plans",
    tag = "plans",
    params(ListPlans),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of plans", body = PlanPage),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(query): ApiQuery<ListPlans>,
) -> Result<Json<PlanPage>, ApiError> {
    let limit = limit(query.limit)?;
    let before = id_cursor(query.cursor.as_deref())?;
    let site = super::extract::site_filter(&state, query.site.as_deref())?;
    let mut plans = store::list_plans(
        &state.db,
        site.as_ref().map(|s| s.name.as_str()),
        before,
        limit,
    )
    .await?;
    let next_cursor = next_cursor(&plans, limit, |plan| plan.id.clone());
    plans.retain(|plan| grant.sees_site(&plan.site));
    Ok(Json(PlanPage {
        items: plans.into_iter().map(Plan::from).collect(),
        next_cursor,
    }))
}

/// One plan with its summary.
#[utoipa::path(
    get,
    path = "/api/v1/plans/{id}",
    tag = "plans",
    params(("id" = String, Path, description = "The plan id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 403, description = "The plan's site is outside the token's scope", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Plan>, ApiError> {
    Ok(Json(scoped_plan(&state, &grant, &id).await?.into()))
}

/// The plan `id`, when the token's scope reaches its site (else 403, audited).
async fn scoped_plan(
    state: &AppState,
    grant: &Grant,
    id: &str,
) -> Result<store::PlanRecord, ApiError> {
    let plan = store::get_plan(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no plan {id:?}")))?;
    if !grant.sees_site(&plan.site) {
        grant
            .require_scope(&state.db, &plan.site, None, &format!("plan {id}"))
            .await?;
    }
    Ok(plan)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListItems {
    /// Only items of this product (`jira-software`, `confluence`, …).
    product: Option<String>,
    /// Only items with this decision.
    #[param(inline)]
    decision: Option<ItemDecision>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// A plan item's decision, as a filter.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemDecision {
    Keep,
    Warn,
    Remove,
    Suspend,
    Delete,
    Exempt,
    Unknown,
}

impl ItemDecision {
    fn as_str(self) -> &'static str {
        let decision = match self {
            ItemDecision::Keep => Decision::Keep,
            ItemDecision::Warn => Decision::Warn,
            ItemDecision::Remove => Decision::Remove,
            ItemDecision::Suspend => Decision::Suspend,
            ItemDecision::Delete => Decision::Delete,
            ItemDecision::Exempt => Decision::Exempt,
            ItemDecision::Unknown => Decision::Unknown,
        };
        decision.as_str()
    }
}

/// A plan's items (one per user and product), in plan order.
#[utoipa::path(
    get,
    path = "/api/v1/plans/{id}/items",
    tag = "plans",
    params(("id" = String, Path, description = "The plan id"), ListItems),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the plan's items", body = PlanItemPage),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 403, description = "The plan's site is outside the token's scope", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
    )
)]
pub async fn items(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListItems>,
) -> Result<Json<PlanItemPage>, ApiError> {
    let limit = limit(query.limit)?;
    let after = number_cursor(query.cursor.as_deref())?.unwrap_or(0);
    let plan = scoped_plan(&state, &grant, &id).await?;
    let mut items = store::items_page(
        &state.db,
        &id,
        query.product.as_deref(),
        query.decision.map(ItemDecision::as_str),
        after,
        limit,
    )
    .await?;
    // The cursor follows every row read: a page may hold fewer items for a scoped token.
    let next_cursor = next_cursor(&items, limit, |item| item.id.to_string());
    items.retain(|item| grant.covers(&plan.site, Some(&item.product)));
    Ok(Json(PlanItemPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
