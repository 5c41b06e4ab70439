//! Whether a credential may act on a plan or on some of its items: the plan's site and the
//! items' products, each asked of [`Grant::covers`] (the one scope check). A refusal is
//! audited (`role.refused`) and changes nothing.

use super::SweepError;
use super::store::PlanRecord;
use crate::store::Db;
use crate::web::config::{Action, Grant};

/// The products that have items in the plan, sorted.
pub async fn plan_products(db: &Db, plan_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT product FROM plan_items WHERE plan_id = $1 ORDER BY product",
    )
    .bind(plan_id)
    .fetch_all(db.pool())
    .await
}

/// `grant` may operate on the whole plan: the role allows operating, the scope covers the
/// plan's site and every product the plan has items of (a plan of no items stands for the
/// whole site).
pub async fn require_plan(db: &Db, grant: &Grant, plan: &PlanRecord) -> Result<(), SweepError> {
    grant.require(db, Action::Operate).await?;
    let products = plan_products(db, &plan.id).await?;
    if products.is_empty() {
        let what = format!("plan {} (site {})", plan.id, plan.site);
        grant.require_scope(db, &plan.site, None, &what).await?;
    }
    for product in &products {
        let what = format!("plan {} (it has {product} items)", plan.id);
        grant
            .require_scope(db, &plan.site, Some(product), &what)
            .await?;
    }
    Ok(())
}

/// `grant` may operate on these items of the plan (ids not in the plan are ignored).
pub async fn require_items(
    db: &Db,
    grant: &Grant,
    plan: &PlanRecord,
    items: &[i64],
) -> Result<(), SweepError> {
    grant.require(db, Action::Operate).await?;
    for item in items {
        let product: Option<String> =
            sqlx::query_scalar("SELECT product FROM plan_items WHERE plan_id = $1 AND id = $2")
                .bind(&plan.id)
                .bind(*item)
                .fetch_optional(db.pool())
                .await?;
        if let Some(product) = product {
            let what = format!("item {item} of plan {} ({product})", plan.id);
            grant
                .require_scope(db, &plan.site, Some(&product), &what)
                .await?;
        }
    }
    Ok(())
}

/// `grant` may plan (or plan and apply) the whole `site`.
pub async fn require_site(db: &Db, grant: &Grant, site: &str) -> Result<(), SweepError> {
    grant.require(db, Action::Operate).await?;
    grant
        .require_scope(db, site, None, &format!("planning site {site}"))
        .await?;
    Ok(())
}
