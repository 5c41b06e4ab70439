//! `GET /api/v1/me`: what the calling token may do.

use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::config::Grant;

/// A credential's name, role, scope and allowed actions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `api:<name>`, `admin:<name>` or `cli`, as audit entries name it.
    pub actor: String,
    /// `viewer`, `approver`, `operator` or `owner`.
    pub role: String,
    /// Site names the credential is limited to; empty: every site.
    pub sites: Vec<String>,
    /// Product keys the credential is limited to; empty: every product.
    pub products: Vec<String>,
    /// What it may do: `read`, `decide` (approve or deny requests), `operate` (plan,
    /// exclude, import, apply), `configure` (config and key status).
    pub actions: Vec<String>,
}

impl From<&Grant> for Me {
    fn from(grant: &Grant) -> Me {
        Me {
            actor: grant.actor.clone(),
            role: grant.role.as_str().into(),
            sites: grant.sites.clone(),
            products: grant.products.clone(),
            actions: grant
                .role
                .actions()
                .into_iter()
                .filter(|a| grant.allows(*a))
                .map(|a| a.as_str().to_string())
                .collect(),
        }
    }
}

/// The calling token's role, scope and allowed actions.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "What the token may do", body = Me))
)]
pub async fn me(Extension(grant): Extension<Grant>) -> Json<Me> {
    Json(Me::from(&grant))
}
