//! Jira platform REST API v3 (`/rest/api/3/...`, Basic auth): application roles,
//! groups and memberships (`startAt`/`maxResults`/`isLast` pages), users and user search.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, Family, site_admin, site_caller};
use super::model::{Gid, JiraRole, Uid, World, products_in};
use super::params::{Params, enc};
use super::state::SimState;

const F: Family = Family::Jira;
/// Largest `maxResults` of `/group/member` and `/group/bulk`.
pub const GROUP_PAGE_MAX: usize = 50;
/// Largest `maxResults` of `/users/search`.
pub const USERS_PAGE_MAX: usize = 1000;

pub(crate) fn router() -> Router<SimState> {
    Router::new()
        .route("/rest/api/3/applicationrole", get(roles))
        .route("/rest/api/3/applicationrole/{key}", get(role))
        .route("/rest/api/3/group/bulk", get(group_bulk))
        .route("/rest/api/3/group/member", get(group_member))
        .route(
            "/rest/api/3/group/user",
            axum::routing::post(add_user).delete(remove_user),
        )
        .route("/rest/api/3/user", get(user))
        .route("/rest/api/3/user/groups", get(user_groups))
        .route("/rest/api/3/user/search", get(user_search))
        .route("/rest/api/3/users/search", get(users_search))
}

/// 404 for any path the simulator does not serve, in Jira's format.
fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(F, msg)
}

pub(crate) fn group_json(sim: &SimState, w: &World, gid: Gid) -> Value {
    let g = w.group(gid);
    json!({
        "name": g.name,
        "groupId": g.id,
        "self": format!("{}/rest/api/3/group?groupId={}", sim.base_url(), g.id),
    })
}

pub(crate) fn user_json(sim: &SimState, w: &World, uid: Uid) -> Value {
    let u = w.user(uid);
    let avatar = format!(
        "https://avatar-management.services.atlassian.example/{}/48",
        u.account_id
    );
    let mut v = json!({
        "self": format!("{}/rest/api/3/user?accountId={}", sim.base_url(), u.account_id),
        "accountId": u.account_id,
        "accountType": u.account_type.as_str(),
        "avatarUrls": { "48x48": avatar, "24x24": avatar, "16x16": avatar, "32x32": avatar },
        "displayName": u.name,
        "active": u.jira_active(),
        "timeZone": "Etc/UTC",
        "locale": "en_US",
    });
    if let Some(e) = &u.email {
        v["emailAddress"] = json!(e);
    }
    v
}

/// A user as a group-member page gives it: the spec's `UserDetails`, which is closed to
/// extra fields, so no `locale` (which `User` has).
fn user_details_json(sim: &SimState, w: &World, uid: Uid) -> Value {
    let mut v = user_json(sim, w, uid);
    if let Some(o) = v.as_object_mut() {
        o.remove("locale");
    }
    v
}

fn role_json(sim: &SimState, w: &World, role: &JiraRole) -> Value {
    let names = |gs: &[Gid]| {
        gs.iter()
            .map(|g| w.group(*g).name.clone())
            .collect::<Vec<_>>()
    };
    let details = |gs: &[Gid]| {
        gs.iter()
            .map(|g| group_json(sim, w, *g))
            .collect::<Vec<_>>()
    };
    let count = w.user_count[role.product.index()];
    json!({
        "key": role.product.jira_app_key(),
        "name": role.product.display_name(),
        "groups": names(&role.groups),
        "groupDetails": details(&role.groups),
        "defaultGroups": names(&role.default_groups),
        "defaultGroupsDetails": details(&role.default_groups),
        "selectedByDefault": false,
        "defined": false,
        "numberOfSeats": role.seats,
        "remainingSeats": role.seats.saturating_sub(count),
        "userCount": count,
        "userCountDescription": format!("{count} users"),
        "hasUnlimitedSeats": false,
        "platform": false,
    })
}

async fn roles(State(sim): State<SimState>, headers: HeaderMap) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let w = sim.read();
    let all: Vec<Value> = w.roles.iter().map(|r| role_json(&sim, &w, r)).collect();
    Ok(Json(all).into_response())
}

async fn role(
    State(sim): State<SimState>,
    headers: HeaderMap,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let w = sim.read();
    let role = w
        .roles
        .iter()
        .find(|r| r.product.jira_app_key() == Some(key.as_str()))
        .ok_or_else(|| {
            ApiError::not_found(
                F,
                format!("The application role with key '{key}' does not exist."),
            )
        })?;
    Ok(Json(role_json(&sim, &w, role)).into_response())
}

/// A `PageBean` of Jira: `startAt`/`maxResults`/`total`/`isLast`/`nextPage`.
fn page_bean(self_url: &str, start: usize, max: usize, total: usize, values: Vec<Value>) -> Value {
    let is_last = start + values.len() >= total;
    let sep = if self_url.contains('?') { '&' } else { '?' };
    let mut v = json!({
        "self": format!("{self_url}{sep}startAt={start}&maxResults={max}"),
        "startAt": start,
        "maxResults": max,
        "total": total,
        "isLast": is_last,
        "values": values,
    });
    if !is_last {
        v["nextPage"] = json!(format!(
            "{self_url}{sep}startAt={}&maxResults={max}",
            start + max
        ));
    }
    v
}

fn max_results(p: &Params, cap: usize) -> ApiResult<usize> {
    let m = p.uint("maxResults", 50).map_err(bad)?;
    Ok(if m == 0 { 50.min(cap) } else { m.min(cap) })
}

async fn group_bulk(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let start = p.uint("startAt", 0).map_err(bad)?;
    let max = max_results(&p, GROUP_PAGE_MAX)?;
    let w = sim.read();
    let role_groups: Option<Vec<Gid>> = match p.get("applicationKey") {
        None => None,
        Some(k @ ("jira-software" | "jira-servicedesk")) => Some(
            w.roles
                .iter()
                .filter(|r| r.product.jira_app_key() == Some(k))
                .flat_map(|r| r.groups.clone())
                .collect(),
        ),
        Some("jira-core" | "jira-product-discovery") => Some(vec![]),
        Some(k) => return Err(bad(format!("The application key '{k}' is not valid."))),
    };
    let access = p.get("accessType");
    if let Some(a) = access
        && !matches!(a, "site-admin" | "admin" | "user")
    {
        return Err(bad(format!("The access type '{a}' is not valid.")));
    }
    let ids = p.all("groupId");
    let names = p.all("groupName");
    let mut matched: Vec<Gid> = (0..w.groups.len() as Gid)
        .filter(|g| role_groups.as_ref().is_none_or(|r| r.contains(g)))
        .filter(|g| access.is_none_or(|a| w.group(*g).access_type == Some(a)))
        .filter(|g| ids.is_empty() || ids.contains(&w.group(*g).id.as_str()))
        .filter(|g| names.is_empty() || names.contains(&w.group(*g).name.as_str()))
        .collect();
    matched.sort_by(|a, b| w.group(*a).name.cmp(&w.group(*b).name));
    let values: Vec<Value> = matched
        .iter()
        .skip(start)
        .take(max)
        .map(|g| json!({ "name": w.group(*g).name, "groupId": w.group(*g).id }))
        .collect();
    let mut self_url = format!("{}/rest/api/3/group/bulk", sim.base_url());
    if let Some(k) = p.get("applicationKey") {
        self_url.push_str(&format!("?applicationKey={}", enc(k)));
    }
    Ok(Json(page_bean(&self_url, start, max, matched.len(), values)).into_response())
}

fn find_group(w: &World, p: &Params) -> ApiResult<Gid> {
    match (p.get("groupId"), p.get("groupname").or(p.get("groupName"))) {
        (Some(_), Some(_)) => Err(bad("Only one of 'groupId' and 'groupname' may be given.")),
        (None, None) => Err(bad(
            "Either the 'groupId' or the 'groupname' parameter must be provided.",
        )),
        (Some(id), None) => {
            w.group_by_id.get(id).copied().ok_or_else(|| {
                ApiError::not_found(F, format!("Group with id '{id}' does not exist."))
            })
        }
        (None, Some(name)) => w.group_by_name.get(name).copied().ok_or_else(|| {
            ApiError::not_found(F, format!("Group with name '{name}' does not exist."))
        }),
    }
}

async fn group_member(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let start = p.uint("startAt", 0).map_err(bad)?;
    let max = max_results(&p, GROUP_PAGE_MAX)?;
    let inactive = p.bool("includeInactiveUsers", false).map_err(bad)?;
    let w = sim.read();
    let gid = find_group(&w, &p)?;
    let g = w.group(gid);
    let list = if inactive {
        &g.members
    } else {
        &g.active_members
    };
    let values: Vec<Value> = list
        .get(start.min(list.len())..(start + max).min(list.len()))
        .unwrap_or_default()
        .iter()
        .map(|u| user_details_json(&sim, &w, *u))
        .collect();
    let self_url = format!(
        "{}/rest/api/3/group/member?groupId={}&includeInactiveUsers={inactive}",
        sim.base_url(),
        g.id
    );
    Ok(Json(page_bean(&self_url, start, max, list.len(), values)).into_response())
}

fn account_from_body(body: &Bytes) -> ApiResult<String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("Request body is not valid JSON: {e}")))?;
    v.get("accountId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad("The 'accountId' in the request body must be provided."))
}

fn find_user(w: &World, account_id: &str) -> ApiResult<Uid> {
    w.uid(account_id).ok_or_else(|| {
        ApiError::not_found(
            F,
            "Specified user does not exist or you do not have required permissions",
        )
    })
}

async fn add_user(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let account_id = account_from_body(&body)?;
    let mut w = sim.write();
    let gid = find_group(&w, &p)?;
    let uid = find_user(&w, &account_id)?;
    if let Some(refused) = super::roles::membership_refusal(&w, gid, uid) {
        return Err(bad(refused));
    }
    if w.group(gid).members.binary_search(&uid).is_ok() {
        let name = &w.group(gid).name;
        return Err(bad(format!(
            "Cannot add user '{account_id}', user is already a member of '{name}'"
        )));
    }
    sim.change_eventually(&mut w, move |w| {
        w.add_member(gid, uid);
    });
    let mut g = group_json(&sim, &w, gid);
    g["expand"] = json!("users");
    Ok((StatusCode::CREATED, Json(g)).into_response())
}

async fn remove_user(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let account_id = p
        .get("accountId")
        .map(str::to_owned)
        .ok_or_else(|| bad("The 'accountId' query parameter needs to be provided."))?;
    let mut w = sim.write();
    let gid = find_group(&w, &p)?;
    let uid = find_user(&w, &account_id)?;
    if let Some(refused) = super::roles::membership_refusal(&w, gid, uid) {
        return Err(bad(refused));
    }
    if w.group(gid).members.binary_search(&uid).is_err() {
        let name = &w.group(gid).name;
        return Err(bad(format!(
            "Cannot remove user '{account_id}' from group '{name}' since user is not a member of '{name}'"
        )));
    }
    sim.change_eventually(&mut w, move |w| {
        w.remove_member(gid, uid);
    });
    Ok(StatusCode::OK.into_response())
}

async fn user(State(sim): State<SimState>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let account_id = p
        .get("accountId")
        .ok_or_else(|| bad("The 'accountId' query parameter needs to be provided."))?;
    let w = sim.read();
    let uid = w.uid(account_id).ok_or_else(|| {
        ApiError::not_found(
            F,
            format!("User with accountId '{account_id}' does not exist."),
        )
    })?;
    let expand = p.all("expand");
    let u = w.user(uid);
    let mut v = user_json(&sim, &w, uid);
    let groups: Vec<Value> = u.groups.iter().map(|g| group_json(&sim, &w, *g)).collect();
    let roles: Vec<Value> = products_in(w.access(uid))
        .filter_map(|p| w.role(p))
        .map(|r| json!({ "key": r.product.jira_app_key(), "name": r.product.display_name() }))
        .collect();
    let (gs, rs) = (groups.len(), roles.len());
    v["groups"] =
        json!({ "size": gs, "items": if expand.contains(&"groups") { groups } else { vec![] } });
    v["applicationRoles"] = json!({ "size": rs, "items": if expand.contains(&"applicationRoles") { roles } else { vec![] } });
    v["expand"] = json!("groups,applicationRoles");
    Ok(Json(v).into_response())
}

async fn user_groups(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let account_id = p
        .get("accountId")
        .ok_or_else(|| bad("The 'accountId' query parameter needs to be provided."))?;
    let w = sim.read();
    let uid = w.uid(account_id).ok_or_else(|| {
        ApiError::not_found(
            F,
            format!("User with accountId '{account_id}' does not exist."),
        )
    })?;
    let groups: Vec<Value> = w
        .user(uid)
        .groups
        .iter()
        .map(|g| group_json(&sim, &w, *g))
        .collect();
    Ok(Json(groups).into_response())
}

async fn user_search(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let start = p.uint("startAt", 0).map_err(bad)?;
    let max = p.uint("maxResults", 50).map_err(bad)?.min(USERS_PAGE_MAX);
    let w = sim.read();
    let hits: Vec<Uid> = match (p.get("query"), p.get("accountId")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "The 'query' and 'accountId' parameters cannot be used together.",
            ));
        }
        (None, None) => {
            return Err(bad(
                "One of 'accountId', 'query' or 'property' must be provided.",
            ));
        }
        (None, Some(id)) => w.uid(id).into_iter().collect(),
        (Some(query), None) => {
            let needle = query.to_lowercase();
            // Exact email is the common case (and O(1)); otherwise a prefix scan that stops
            // at Jira's 1000-match cap.
            match w.by_email.get(&needle) {
                Some(uid) => vec![*uid],
                None => (0..w.users.len() as Uid)
                    .filter(|u| {
                        let user = w.user(*u);
                        user.name
                            .to_lowercase()
                            .split(' ')
                            .any(|part| part.starts_with(&needle))
                            || user.name.to_lowercase().starts_with(&needle)
                            || user
                                .email
                                .as_ref()
                                .is_some_and(|e| e.to_lowercase().starts_with(&needle))
                    })
                    .take(1000)
                    .collect(),
            }
        }
    };
    let values: Vec<Value> = hits
        .into_iter()
        .filter(|u| w.user(*u).jira_active())
        .skip(start)
        .take(max)
        .map(|u| user_json(&sim, &w, u))
        .collect();
    Ok(Json(values).into_response())
}

async fn users_search(
    State(sim): State<SimState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let start = p.uint("startAt", 0).map_err(bad)?;
    let max = p.uint("maxResults", 50).map_err(bad)?.min(USERS_PAGE_MAX);
    let w = sim.read();
    let n = w.users.len();
    let values: Vec<Value> = (start.min(n)..(start + max).min(n))
        .map(|u| user_json(&sim, &w, u as Uid))
        .collect();
    Ok(Json(values).into_response())
}
