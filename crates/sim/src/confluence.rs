//! Confluence Cloud REST API v1 (`/wiki/rest/api/...`, Basic auth): groups, group
//! members by group id (`start`/`limit`/`_links.next`), a user's groups, users, and
//! adding/removing members by group id.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, Family, site_admin, site_caller};
use super::model::{AccountType, Gid, Uid, World};
use super::params::Params;
use super::state::SimState;

const F: Family = Family::Confluence;
/// Default and largest `limit` of the group endpoints.
pub const LIMIT_MAX: usize = 200;

pub(crate) fn router() -> Router<SimState> {
    Router::new()
        .route("/wiki/rest/api/group", get(groups))
        .route("/wiki/rest/api/group/by-id", get(group_by_id))
        .route(
            "/wiki/rest/api/group/{group_id}/membersByGroupId",
            get(members),
        )
        .route(
            "/wiki/rest/api/group/userByGroupId",
            axum::routing::post(add_member).delete(remove_member),
        )
        .route("/wiki/rest/api/user", get(user))
        .route("/wiki/rest/api/user/memberof", get(member_of))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(F, msg)
}

fn group_json(sim: &SimState, w: &World, gid: Gid) -> Value {
    let g = w.group(gid);
    json!({
        "type": "group",
        "name": g.name,
        "id": g.id,
        "_links": { "self": format!("{}/wiki/rest/api/group/by-id?id={}", sim.base_url(), g.id) },
    })
}

fn user_json(sim: &SimState, w: &World, uid: Uid) -> Value {
    let u = w.user(uid);
    let account_type = match u.account_type {
        AccountType::Atlassian => "atlassian",
        AccountType::App => "app",
        AccountType::Customer => "",
    };
    json!({
        "type": "known",
        "accountId": u.account_id,
        "accountType": account_type,
        "email": u.email.clone().unwrap_or_default(),
        "publicName": u.name,
        "displayName": u.name,
        "timeZone": "Etc/UTC",
        "isExternalCollaborator": false,
        "externalCollaborator": false,
        "profilePicture": {
            "path": format!("/wiki/aa-avatar/{}", u.account_id),
            "width": 48,
            "height": 48,
            "isDefault": false,
        },
        "_expandable": { "operations": "", "personalSpace": "" },
        "_links": { "self": format!("{}/wiki/rest/api/user?accountId={}", sim.base_url(), u.account_id) },
    })
}

fn start_limit(p: &Params) -> ApiResult<(usize, usize)> {
    let start = p.uint("start", 0).map_err(bad)?;
    let limit = p.uint("limit", LIMIT_MAX).map_err(bad)?;
    if limit > LIMIT_MAX {
        return Err(bad(format!(
            "The limit must not be greater than {LIMIT_MAX}."
        )));
    }
    Ok((start, if limit == 0 { LIMIT_MAX } else { limit }))
}

/// A Confluence page: `results`, `start`, `limit`, `size`, `_links` with `next`
/// relative to `_links.base`.
/// Where a page sits in its list.
struct Window {
    start: usize,
    limit: usize,
    total: usize,
    with_total: bool,
}

fn page(sim: &SimState, path: &str, extra: &str, win: Window, results: Vec<Value>) -> Value {
    let Window {
        start,
        limit,
        total,
        with_total,
    } = win;
    let size = results.len();
    let mut links = json!({
        "base": format!("{}/wiki", sim.base_url()),
        "context": "/wiki",
        "self": format!("{}/wiki{path}{extra}", sim.base_url()),
    });
    if start + size < total {
        let sep = if extra.is_empty() { '?' } else { '&' };
        links["next"] = json!(format!(
            "{path}{extra}{sep}start={}&limit={limit}",
            start + size
        ));
    }
    let mut v = json!({ "results": results, "start": start, "limit": limit, "size": size, "_links": links });
    if with_total {
        v["totalSize"] = json!(total);
    }
    v
}

async fn groups(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let (start, limit) = start_limit(&p)?;
    let access = p.get("accessType");
    let w = sim.read();
    let mut all: Vec<Gid> = (0..w.groups.len() as Gid)
        .filter(|g| access.is_none_or(|a| w.group(*g).access_type == Some(a)))
        .collect();
    all.sort_by(|a, b| w.group(*a).name.cmp(&w.group(*b).name));
    let results = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|g| group_json(&sim, &w, *g))
        .collect();
    Ok(Json(page(
        &sim,
        "/rest/api/group",
        "",
        Window {
            start,
            limit,
            total: all.len(),
            with_total: false,
        },
        results,
    ))
    .into_response())
}

fn gid_by_id(w: &World, id: Option<&str>) -> ApiResult<Gid> {
    let id = id.ok_or_else(|| bad("The group id must be provided."))?;
    w.group_by_id
        .get(id)
        .copied()
        .ok_or_else(|| ApiError::not_found(F, format!("No group found with id: {id}")))
}

async fn group_by_id(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let w = sim.read();
    let gid = gid_by_id(&w, p.get("id"))?;
    Ok(Json(group_json(&sim, &w, gid)).into_response())
}

async fn members(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let (start, limit) = start_limit(&p)?;
    let with_total = p.bool("shouldReturnTotalSize", false).map_err(bad)?;
    let w = sim.read();
    let gid = gid_by_id(&w, Some(&group_id))?;
    let list = &w.group(gid).members;
    let results = list
        .get(start.min(list.len())..(start + limit).min(list.len()))
        .unwrap_or_default()
        .iter()
        .map(|u| user_json(&sim, &w, *u))
        .collect();
    let path = format!("/rest/api/group/{group_id}/membersByGroupId");
    Ok(Json(page(
        &sim,
        &path,
        "",
        Window {
            start,
            limit,
            total: list.len(),
            with_total,
        },
        results,
    ))
    .into_response())
}

fn find_user(w: &World, account_id: Option<&str>) -> ApiResult<Uid> {
    let id = account_id.ok_or_else(|| bad("The accountId must be provided."))?;
    w.uid(id)
        .ok_or_else(|| ApiError::not_found(F, format!("No user found with accountId: {id}")))
}

async fn add_member(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("Invalid JSON body: {e}")))?;
    let account_id = v
        .get("accountId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mut w = sim.write();
    let gid = gid_by_id(&w, p.get("groupId"))?;
    let uid = find_user(&w, account_id)?;
    if let Some(refused) = super::roles::membership_refusal(&w, gid, uid) {
        return Err(bad(refused));
    }
    // Adding an existing member is accepted and changes nothing (see docs/simulator.md).
    sim.change_eventually(&mut w, move |w| {
        w.add_member(gid, uid);
    });
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_member(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let mut w = sim.write();
    let gid = gid_by_id(&w, p.get("groupId"))?;
    let uid = find_user(&w, p.get("accountId"))?;
    if let Some(refused) = super::roles::membership_refusal(&w, gid, uid) {
        return Err(bad(refused));
    }
    // The spec: "A 204 is returned if the user is not part of the group."
    sim.change_eventually(&mut w, move |w| {
        w.remove_member(gid, uid);
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn user(State(sim): State<SimState>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let w = sim.read();
    let uid = find_user(&w, p.get("accountId"))?;
    Ok(Json(user_json(&sim, &w, uid)).into_response())
}

async fn member_of(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let (start, limit) = start_limit(&p)?;
    let w = sim.read();
    let uid = find_user(&w, p.get("accountId"))?;
    let account = w.user(uid).account_id.clone();
    let groups = &w.user(uid).groups;
    let results = groups
        .iter()
        .skip(start)
        .take(limit)
        .map(|g| group_json(&sim, &w, *g))
        .collect();
    let extra = format!("?accountId={account}");
    Ok(Json(page(
        &sim,
        "/rest/api/user/memberof",
        &extra,
        Window {
            start,
            limit,
            total: groups.len(),
            with_total: false,
        },
        results,
    ))
    .into_response())
}
