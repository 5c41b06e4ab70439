//! The `/_sim/` control and inspection API (JSON, no auth; not part of Atlassian's API):
//! read and change users, groups, memberships, last-active dates and portal requests,
//! change faults, reset, and read or clear the request log.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State, rejection::JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::faults::FaultPatch;
use super::model::Product;
use super::state::{SimError, SimState};
use super::views::{NewRequest, NewUser, UserPatch};

pub(crate) fn router() -> Router<SimState> {
    Router::new()
        .route("/info", get(info))
        .route("/ground-truth", get(ground_truth))
        .route("/users", post(create_user))
        .route("/users/{account_id}", get(user).patch(update_user))
        .route("/users/{account_id}/last-active", put(set_last_active))
        .route("/groups", get(groups).post(create_group))
        .route("/groups/{group}/members", get(members).post(add_member))
        .route(
            "/groups/{group}/members/{account_id}",
            axum::routing::delete(remove_member),
        )
        .route("/products", get(products))
        .route("/jsm/requests", post(create_request))
        .route("/jsm/requests/{key}", get(request))
        .route("/faults", get(faults).put(set_faults))
        .route("/reset", post(reset))
        .route("/log", get(log).delete(clear_log))
}

/// Control API error: `{"error": "..."}` with 400, 404 or 409.
struct ControlError(StatusCode, String);

impl From<SimError> for ControlError {
    fn from(e: SimError) -> Self {
        let status = match e {
            SimError::UnknownUser(_)
            | SimError::UnknownGroup(_)
            | SimError::UnknownSite(_)
            | SimError::UnknownRequest(_) => StatusCode::NOT_FOUND,
            SimError::Conflict(_) => StatusCode::CONFLICT,
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ControlError(status, e.to_string())
    }
}

impl From<JsonRejection> for ControlError {
    fn from(e: JsonRejection) -> Self {
        ControlError(StatusCode::BAD_REQUEST, e.body_text())
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Result<T = Response> = std::result::Result<T, ControlError>;

async fn info(State(sim): State<SimState>) -> Json<serde_json::Value> {
    let c = sim.config();
    Json(json!({
        "base_url": sim.base_url(),
        "profile": c.profile,
        "jsm_key": c.jsm_key,
        "org_id": c.org_id,
        "cloud_id": c.cloud_id,
        "other_cloud_id": sim.other_cloud_id(),
        "site_name": c.site_name,
        "admin_key": c.admin_key,
        "site_email": c.site_email,
        "site_token": c.site_token,
        "viewer_email": super::seed::VIEWER_EMAIL,
        "viewer_token": super::seed::VIEWER_TOKEN,
        "foreign_admin_key": super::seed::FOREIGN_ADMIN_KEY,
        "users": c.users,
        "seed": c.seed,
    }))
}

async fn ground_truth(State(sim): State<SimState>) -> Response {
    Json(&*sim.ground_truth()).into_response()
}

async fn user(State(sim): State<SimState>, Path(account_id): Path<String>) -> Result {
    let u = sim
        .user(&account_id)
        .ok_or(SimError::UnknownUser(account_id))?;
    Ok(Json(u).into_response())
}

async fn create_user(
    State(sim): State<SimState>,
    body: std::result::Result<Json<NewUser>, JsonRejection>,
) -> Result {
    let Json(new) = body?;
    Ok((StatusCode::CREATED, Json(sim.create_user(new)?)).into_response())
}

async fn update_user(
    State(sim): State<SimState>,
    Path(account_id): Path<String>,
    body: std::result::Result<Json<UserPatch>, JsonRejection>,
) -> Result {
    let Json(patch) = body?;
    Ok(Json(sim.update_user(&account_id, patch)?).into_response())
}

#[derive(Deserialize)]
struct LastActive {
    product: Product,
    #[serde(default)]
    cloud_id: Option<String>,
    /// `null` clears the record ("never accessed").
    last_active: Option<DateTime<Utc>>,
}

async fn set_last_active(
    State(sim): State<SimState>,
    Path(account_id): Path<String>,
    body: std::result::Result<Json<LastActive>, JsonRejection>,
) -> Result {
    let Json(b) = body?;
    sim.set_last_active(&account_id, b.product, b.cloud_id.as_deref(), b.last_active)?;
    let u = sim
        .user(&account_id)
        .ok_or(SimError::UnknownUser(account_id))?;
    Ok(Json(u).into_response())
}

async fn groups(State(sim): State<SimState>) -> Response {
    Json(sim.groups()).into_response()
}

#[derive(Deserialize)]
struct NewGroup {
    name: String,
    #[serde(default)]
    grants: Vec<Product>,
}

async fn create_group(
    State(sim): State<SimState>,
    body: std::result::Result<Json<NewGroup>, JsonRejection>,
) -> Result {
    let Json(g) = body?;
    Ok((
        StatusCode::CREATED,
        Json(sim.create_group(&g.name, &g.grants)?),
    )
        .into_response())
}

async fn members(State(sim): State<SimState>, Path(group): Path<String>) -> Result {
    Ok(Json(sim.group_members(&group)?).into_response())
}

#[derive(Deserialize)]
struct Member {
    account_id: String,
}

async fn add_member(
    State(sim): State<SimState>,
    Path(group): Path<String>,
    body: std::result::Result<Json<Member>, JsonRejection>,
) -> Result {
    let Json(m) = body?;
    let added = sim.add_member(&group, &m.account_id)?;
    Ok(Json(json!({ "changed": added })).into_response())
}

async fn remove_member(
    State(sim): State<SimState>,
    Path((group, account_id)): Path<(String, String)>,
) -> Result {
    let removed = sim.remove_member(&group, &account_id)?;
    Ok(Json(json!({ "changed": removed })).into_response())
}

async fn products(State(sim): State<SimState>) -> Response {
    let list: Vec<_> = Product::ALL
        .into_iter()
        .map(|p| json!({ "product": p, "user_count": sim.user_count(p), "seats": sim.seats(p) }))
        .collect();
    Json(list).into_response()
}

async fn create_request(
    State(sim): State<SimState>,
    body: std::result::Result<Json<NewRequest>, JsonRejection>,
) -> Result {
    let Json(new) = body?;
    Ok((StatusCode::CREATED, Json(sim.create_request(new)?)).into_response())
}

async fn request(State(sim): State<SimState>, Path(key): Path<String>) -> Result {
    let r = sim.request(&key).ok_or(SimError::UnknownRequest(key))?;
    Ok(Json(r).into_response())
}

async fn faults(State(sim): State<SimState>) -> Response {
    Json(sim.faults_settings()).into_response()
}

async fn set_faults(
    State(sim): State<SimState>,
    body: std::result::Result<Json<FaultPatch>, JsonRejection>,
) -> Result {
    let Json(patch) = body?;
    Ok(Json(sim.set_faults(patch)?).into_response())
}

async fn reset(State(sim): State<SimState>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct LogFilter {
    method: Option<String>,
    path: Option<String>,
}

async fn log(State(sim): State<SimState>, Query(f): Query<LogFilter>) -> Response {
    let entries: Vec<_> = sim
        .log()
        .into_iter()
        .filter(|e| {
            f.method
                .as_ref()
                .is_none_or(|m| e.method.eq_ignore_ascii_case(m))
        })
        .filter(|e| {
            f.path
                .as_ref()
                .is_none_or(|p| e.path.starts_with(p.as_str()))
        })
        .collect();
    Json(json!({ "count": entries.len(), "entries": entries })).into_response()
}

async fn clear_log(State(sim): State<SimState>) -> StatusCode {
    sim.clear_log();
    StatusCode::NO_CONTENT
}
