//! Organizations admin API (`/admin/v1/...` and `/admin/v2/...`, Bearer key): orgs, the
//! managed-accounts listing with cursor pagination, the v2 directory user search with
//! `productAccess`, last-active dates, and the directory actions: v2 user details,
//! suspend, restore and remove (and their v1 forms).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::Profile;
use super::errors::{ApiError, ApiResult, Family, org_admin};
use super::model::{AccountType, Product, World, products_in};
use super::params::{Params, enc};
use super::seed::FOREIGN_ADMIN_KEY;
use super::state::SimState;

/// Users per page of `GET /orgs/{orgId}/users`.
pub const USERS_PAGE: usize = 100;
/// Default and largest page of the v2 directory user search.
pub const SEARCH_PAGE_DEFAULT: usize = 50;
pub const SEARCH_PAGE_MAX: usize = 100;
/// Products per page of `last-active-dates`.
pub const LAST_ACTIVE_PAGE: usize = 5;

/// The admin routes of a profile: the retired v1 directory actions only for `legacy`.
pub(crate) fn router(profile: Profile) -> Router<SimState> {
    let current = Router::new()
        .route("/admin/v1/orgs", get(orgs))
        .route("/admin/v1/orgs/{org_id}", get(org))
        .route("/admin/v1/orgs/{org_id}/users", get(users))
        .route("/admin/v2/orgs/{org_id}/directories", get(directories))
        .route("/admin/v2/orgs/{org_id}/workspaces", post(workspaces))
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/users/search",
            post(directory_search),
        )
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}",
            get(v2_user_details).delete(v2_remove),
        )
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/suspend",
            post(v2_suspend),
        )
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/restore",
            post(v2_restore),
        )
        .route(
            "/admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates",
            get(last_active_dates),
        );
    match profile {
        Profile::Current => current,
        Profile::Legacy => current
            .route(
                "/admin/v1/orgs/{org_id}/directory/users/{account_id}/suspend-access",
                post(suspend),
            )
            .route(
                "/admin/v1/orgs/{org_id}/directory/users/{account_id}/restore-access",
                post(restore),
            )
            .route(
                "/admin/v1/orgs/{org_id}/directory/users/{account_id}",
                delete(remove),
            ),
    }
}

fn encode_cursor(kind: char, offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{offset}"))
}

fn decode_cursor(kind: char, cursor: Option<&str>) -> ApiResult<usize> {
    let Some(c) = cursor else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix(&format!("{kind}:"))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| {
            ApiError::bad_request(Family::Admin, format!("The cursor '{c}' is not valid."))
                .with_code("ADMIN-400-1")
        })
}

fn check_org(sim: &SimState, headers: &HeaderMap, org_id: &str) -> ApiResult<()> {
    org_admin(sim, headers)?;
    if org_id != sim.config().org_id {
        return Err(ApiError::not_found(
            Family::Admin,
            format!("Organization {org_id} not found."),
        )
        .with_code("ADMIN-404-2"));
    }
    Ok(())
}

/// The org check plus the directory: `-` (every directory) or the org's one directory,
/// whose id the simulator makes the org id.
fn check_directory(
    sim: &SimState,
    headers: &HeaderMap,
    org_id: &str,
    directory_id: &str,
) -> ApiResult<()> {
    check_org(sim, headers, org_id)?;
    if directory_id != "-" && directory_id != sim.config().org_id {
        return Err(ApiError::not_found(
            Family::Admin,
            format!("Directory {directory_id} not found."),
        )
        .with_code("ADMIN-404-3"));
    }
    Ok(())
}

fn org_model(sim: &SimState, w: &World) -> Value {
    let base = format!("{}/admin/v1/orgs/{}", sim.base_url(), w.org_id);
    json!({
        "id": w.org_id,
        "type": "orgs",
        "attributes": { "name": w.org_name },
        "relationships": {
            "domains": { "links": { "related": format!("{base}/domains") } },
            "users": { "links": { "related": format!("{base}/users") } },
        },
        "links": { "self": base },
    })
}

async fn orgs(State(sim): State<SimState>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let foreign = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {FOREIGN_ADMIN_KEY}"));
    if !foreign {
        org_admin(&sim, &headers)?;
    }
    let p = Params::parse(q.as_deref());
    if decode_cursor('o', p.get("cursor"))? > 0 {
        return Err(
            ApiError::bad_request(Family::Admin, "The cursor is not valid.")
                .with_code("ADMIN-400-1"),
        );
    }
    let w = sim.read();
    let data = if foreign {
        vec![]
    } else {
        vec![org_model(&sim, &w)]
    };
    Ok(Json(
        json!({ "data": data, "links": { "self": format!("{}/admin/v1/orgs", sim.base_url()) } }),
    )
    .into_response())
}

async fn org(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(org_id): Path<String>,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let w = sim.read();
    Ok(Json(json!({ "data": org_model(&sim, &w) })).into_response())
}

fn admin_user(sim: &SimState, w: &World, uid: u32) -> Value {
    let u = w.user(uid);
    let mut products: Vec<Value> = Vec::new();
    let mut add = |product: Product, site: u8| {
        let s = &w.sites[site as usize];
        let mut e =
            json!({ "key": product.admin_key(), "name": product.display_name(), "url": s.url() });
        if let Some(at) = u.last_active(product, site) {
            e["last_active"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        products.push(e);
    };
    for p in products_in(w.access(uid)) {
        add(p, 0);
    }
    if u.can_use_products() {
        for (site, p) in &u.remote_access {
            add(*p, *site);
        }
    }
    for (url, product, at) in peer_access(sim, &u.account_id) {
        let mut e =
            json!({ "key": product.admin_key(), "name": product.display_name(), "url": url });
        if let Some(at) = at {
            e["last_active"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        products.push(e);
    }
    let billable = u.account_type == AccountType::Atlassian && !products.is_empty();
    let mut v = json!({
        "account_id": u.account_id,
        "account_type": u.account_type.as_str(),
        "account_status": u.status.as_str(),
        "name": u.name,
        "picture": format!("https://avatar-management.services.atlassian.example/{}/128", u.account_id),
        "access_billable": billable,
        "product_access": products,
        "links": { "self": format!("{}/admin/v1/orgs/{}/users/{}", sim.base_url(), w.org_id, u.account_id) },
    });
    if let Some(e) = &u.email {
        v["email"] = json!(e);
    }
    if let Some(at) = w.last_active_any(uid) {
        v["last_active"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    v
}

async fn users(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let p = Params::parse(q.as_deref());
    let offset = decode_cursor('u', p.get("cursor"))?;
    let w = sim.read();
    let total = w.managed.len();
    if offset > total {
        return Err(
            ApiError::bad_request(Family::Admin, "The cursor is past the end.")
                .with_code("ADMIN-400-1"),
        );
    }
    let end = (offset + USERS_PAGE).min(total);
    let data: Vec<Value> = w.managed[offset..end]
        .iter()
        .map(|uid| admin_user(&sim, &w, *uid))
        .collect();
    let base = format!("{}/admin/v1/orgs/{}/users", sim.base_url(), w.org_id);
    let page_url = |o: usize| {
        if o == 0 {
            base.clone()
        } else {
            format!("{base}?cursor={}", enc(&encode_cursor('u', o)))
        }
    };
    let mut links = json!({ "self": page_url(offset) });
    if end < total {
        links["next"] = json!(page_url(end));
    }
    if offset > 0 {
        links["prev"] = json!(page_url(offset.saturating_sub(USERS_PAGE)));
    }
    Ok(Json(json!({ "data": data, "meta": { "total": total }, "links": links })).into_response())
}

/// What a v2 user answer carries beyond the base fields (the search's `expand`).
#[derive(Clone, Copy, Debug, Default)]
struct Expand {
    product_access: bool,
    groups: bool,
    platform_roles: bool,
}

/// `status` and `membershipStatus` of a v2 user. `status` is the composite the model
/// documents: `not_invited` for an account in none of the org's directories (a managed
/// account removed from the directory), `for_deletion` for a closed account (deleted, its
/// data scheduled for deletion), `deactivated`, `suspended`, `active`.
fn v2_statuses(u: &super::model::User) -> (&'static str, &'static str) {
    use super::model::AccountStatus as S;
    let membership = match (u.in_directory, u.suspended) {
        (false, _) => "no_membership",
        (true, true) => "suspended",
        (true, false) => "active",
    };
    let status = match (u.status, membership) {
        (S::Closed, _) => "for_deletion",
        (S::Inactive, _) => "deactivated",
        (S::Active, "no_membership") => "not_invited",
        (S::Active, "suspended") => "suspended",
        (S::Active, _) => "active",
    };
    (status, membership)
}

/// Organization-level admin roles (`platformRoles`): org admins are the members of a
/// group with `accessType` `site-admin` (the seeded `org-admins`).
fn platform_roles(w: &World, uid: u32) -> Vec<&'static str> {
    let admin = w
        .user(uid)
        .groups
        .iter()
        .any(|g| w.group(*g).access_type == Some("site-admin"));
    if admin {
        vec!["atlassian/org-admin"]
    } else {
        Vec::new()
    }
}

/// One user of the v2 directory API (`MultiDirectoryUser`), the search's entries and the
/// details' `data`.
fn directory_user_json(sim: &SimState, w: &World, uid: u32, expand: Expand) -> Value {
    let u = w.user(uid);
    let (status, membership) = v2_statuses(u);
    let management_source = match (u.managed, u.synced) {
        (false, _) => Value::Null,
        (true, true) => json!("synced"),
        (true, false) => json!("invited"),
    };
    let mut v = json!({
        "accountId": u.account_id,
        "accountType": u.account_type.as_str(),
        "accountStatus": u.status.as_str(),
        "membershipStatus": membership,
        "status": status,
        "addedToOrg": u.added_to_org.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "name": u.name,
        "claimStatus": if u.managed { "managed" } else { "unmanaged" },
        "managementSource": management_source,
        "picture": format!("https://avatar-management.services.atlassian.example/{}/128", u.account_id),
    });
    if u.status == super::model::AccountStatus::Closed {
        v["forDeletion"] = json!(true);
    }
    if let Some(e) = &u.email {
        v["email"] = json!(e);
    }
    if expand.product_access {
        let jsm_key = &sim.config().jsm_key;
        v["productAccess"] = org_activity(sim, w, uid)
            .iter()
            .map(|a| {
                json!({
                    "key": a.product.v2_key(jsm_key),
                    "id": format!("ari:cloud:{}::site/{}", a.product.ari_family(), a.cloud_id),
                    "lastActiveTimestamp": a.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                })
            })
            .collect();
    }
    if expand.groups {
        v["groups"] = u
            .groups
            .iter()
            .map(|g| json!({ "id": w.group(*g).id, "name": w.group(*g).name }))
            .collect();
    }
    if expand.platform_roles {
        v["platformRoles"] = json!(platform_roles(w, uid));
    }
    v
}

/// The search body's filters the simulator applies (every one given must match):
/// `accountIds`, `emails` (exact, any case), `searchTerm` (in the name or email, any case;
/// not together with `emails`), `claimStatus`, and lists of `status`, `accountStatus`,
/// `membershipStatus`. The other filters of the model are accepted and not applied.
#[derive(Default)]
struct SearchFilter {
    account_ids: Option<Vec<String>>,
    emails: Option<Vec<String>>,
    search_term: Option<String>,
    claim_status: Option<String>,
    status: Option<Vec<String>>,
    account_status: Option<Vec<String>>,
    membership_status: Option<Vec<String>>,
}

impl SearchFilter {
    fn parse(request: &Value) -> Result<SearchFilter, String> {
        let list = |name: &str| -> Result<Option<Vec<String>>, String> {
            match request.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{name} must list strings."))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(format!("{name} must be an array.")),
            }
        };
        let text = |name: &str| -> Result<Option<String>, String> {
            match request.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(t)) => Ok(Some(t.clone())),
                Some(_) => Err(format!("{name} must be a string.")),
            }
        };
        let f = SearchFilter {
            account_ids: list("accountIds")?,
            emails: list("emails")?.map(|e| e.iter().map(|x| x.to_lowercase()).collect()),
            search_term: text("searchTerm")?.map(|t| t.to_lowercase()),
            claim_status: text("claimStatus")?,
            status: list("status")?,
            account_status: list("accountStatus")?,
            membership_status: list("membershipStatus")?,
        };
        if f.emails.is_some() && f.search_term.is_some() {
            return Err("searchTerm and emails cannot be used together.".to_owned());
        }
        Ok(f)
    }

    fn matches(&self, u: &super::model::User) -> bool {
        let (status, membership) = v2_statuses(u);
        let email = u.email.as_deref().map(str::to_lowercase);
        let within = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|x| x == v))
        };
        within(&self.account_ids, &u.account_id)
            && self
                .emails
                .as_ref()
                .is_none_or(|l| email.as_ref().is_some_and(|e| l.contains(e)))
            && self.search_term.as_ref().is_none_or(|t| {
                u.name.to_lowercase().contains(t.as_str())
                    || email.as_ref().is_some_and(|e| e.contains(t.as_str()))
            })
            && self
                .claim_status
                .as_ref()
                .is_none_or(|c| c == if u.managed { "managed" } else { "unmanaged" })
            && within(&self.status, status)
            && within(&self.account_status, u.status.as_str())
            && within(&self.membership_status, membership)
    }
}

/// `POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/search`: every account in
/// the directory, managed or not, and the managed accounts in none (`not_invited`), in a
/// stable order; `links.next` is the next cursor. Above [`SEARCH_PAGE_MAX`], and for any
/// other bad body, 400 `ADMIN-UAM-400-1`.
async fn directory_search(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    check_directory(&sim, &headers, &org_id, &directory_id)?;
    let bad = |message: String| {
        ApiError::bad_request(Family::Admin, message)
            .with_code("ADMIN-UAM-400-1")
            .with_title("Bad Request")
    };
    let w = sim.read();
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad(format!("The request body is not valid JSON: {e}")))?
    };
    if !request.is_object() {
        return Err(bad("The request body must be a JSON object.".to_owned()));
    }
    let limit = match request.get("limit") {
        None | Some(Value::Null) => SEARCH_PAGE_DEFAULT,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=SEARCH_PAGE_MAX as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| bad(format!("limit must be between 1 and {SEARCH_PAGE_MAX}.")))?,
    };
    let mut expand = Expand::default();
    match request.get("expand") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for i in items {
                match i.as_str() {
                    Some("productAccess") => expand.product_access = true,
                    Some("groups") => expand.groups = true,
                    Some("platformRoles") => expand.platform_roles = true,
                    // Counted resources are not modelled; asking for them is allowed.
                    Some("counts.resources") => {}
                    Some(other) => return Err(bad(format!("expand: unknown value '{other}'."))),
                    None => return Err(bad("expand must list strings.".to_owned())),
                }
            }
        }
        Some(_) => return Err(bad("expand must be an array.".to_owned())),
    }
    let cursor = match request.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.as_str()),
        Some(_) => return Err(bad("cursor must be a string.".to_owned())),
    };
    let strings = |name: &str| -> Vec<String> {
        match request.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let (resources, role_ids) = (strings("resourceIds"), strings("roleIds"));
    let start = decode_cursor('d', cursor)?;
    if start > w.users.len() {
        return Err(
            ApiError::bad_request(Family::Admin, "The cursor is past the end.")
                .with_code("ADMIN-400-1"),
        );
    }
    let filter = SearchFilter::parse(&request).map_err(bad)?;
    let listed = |u: &super::model::User| (u.in_directory || u.managed) && filter.matches(u);
    // Scan from the cursor's index: O(page) without filters, whatever the org's size.
    let mut data = Vec::with_capacity(limit);
    let mut next = start;
    while next < w.users.len() && data.len() < limit {
        let uid = next as u32;
        next += 1;
        if listed(w.user(uid)) && super::roles::search_keeps(&w, uid, &resources, &role_ids) {
            data.push(directory_user_json(&sim, &w, uid, expand));
        }
    }
    let more = (next..w.users.len()).any(|i| {
        listed(&w.users[i]) && super::roles::search_keeps(&w, i as u32, &resources, &role_ids)
    });
    let mut links = json!({ "self": cursor });
    if more {
        links["next"] = json!(encode_cursor('d', next));
    }
    Ok(Json(json!({ "data": data, "links": links })).into_response())
}

async fn last_active_dates(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, account_id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let p = Params::parse(q.as_deref());
    let offset = decode_cursor('p', p.get("cursor"))?;
    let w = sim.read();
    let uid = w
        .uid(&account_id)
        .filter(|u| w.user(*u).in_directory)
        .ok_or_else(|| {
            ApiError::not_found(
                Family::Admin,
                format!("User {account_id} not found in the directory."),
            )
        })?;
    let u = w.user(uid);
    let acts = org_activity(&sim, &w, uid);
    let end = (offset + LAST_ACTIVE_PAGE).min(acts.len());
    let entries: Vec<Value> = acts
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            json!({
                "id": format!("ari:cloud:{}::site/{}", a.product.ari_family(), a.cloud_id),
                "key": a.product.admin_key(),
                "name": a.product.display_name(),
                "url": a.url,
                "last_active": a.at.format("%Y-%m-%d").to_string(),
                "last_active_timestamp": a.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
        })
        .collect();
    // `links.next` is the bare next cursor (`CursorNextPageModel`) on today's platform; the
    // legacy profile gives the URL of the next page, as the API used to.
    let mut links = json!({});
    if end < acts.len() {
        let cursor = encode_cursor('p', end);
        links["next"] = match sim.config().profile {
            Profile::Current => json!(cursor),
            Profile::Legacy => json!(format!(
                "{}/admin/v1/orgs/{}/directory/users/{}/last-active-dates?cursor={}",
                sim.base_url(),
                w.org_id,
                u.account_id,
                enc(&cursor)
            )),
        };
    }
    Ok(Json(json!({
        "data": {
            "product_access": entries,
            "added_to_org": u.added_to_org.format("%Y-%m-%d").to_string(),
            "added_to_org_timestamp": u.added_to_org.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
        "links": links,
    }))
    .into_response())
}

fn directory_user(w: &World, account_id: &str) -> ApiResult<u32> {
    w.uid(account_id)
        .filter(|u| w.user(*u).in_directory)
        .ok_or_else(|| {
            ApiError::not_found(
                Family::Admin,
                format!("User {account_id} not found in the directory."),
            )
        })
}

async fn suspend(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, account_id)): Path<(String, String)>,
) -> ApiResult {
    set_suspended(sim, headers, org_id, account_id, true).await
}

async fn restore(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, account_id)): Path<(String, String)>,
) -> ApiResult {
    set_suspended(sim, headers, org_id, account_id, false).await
}

async fn set_suspended(
    sim: SimState,
    headers: HeaderMap,
    org_id: String,
    account_id: String,
    on: bool,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let mut w = sim.write();
    let uid = directory_user(&w, &account_id)?;
    w.update_user(uid, |u| u.suspended = on);
    let message = if on {
        format!("User {account_id} access to all products in the organization is suspended.")
    } else {
        format!("User {account_id} access to products in the organization is restored.")
    };
    Ok(Json(json!({ "message": message })).into_response())
}

async fn remove(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, account_id)): Path<(String, String)>,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let mut w = sim.write();
    let uid = directory_user(&w, &account_id)?;
    remove_from_directory(&mut w, uid);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removal from the directory takes every product away; group memberships go too.
fn remove_from_directory(w: &mut World, uid: u32) {
    let groups = w.user(uid).groups.clone();
    for g in groups {
        w.remove_member(g, uid);
    }
    w.update_user(uid, |u| u.in_directory = false);
}

/// The v2 directory API's answer for an account that is not in the directory: 404 with the
/// user-management error `ADMIN-UAM-404-1` "Unknown Resource" (the body the live API gives,
/// as clients of it record). A route that does not exist answers differently (see
/// `errors::route_not_found`), so a client can tell "this user is gone" from "this call is gone".
fn unknown_directory_user() -> ApiError {
    ApiError::not_found(Family::Admin, "One or more user not found in the directory")
        .with_code("ADMIN-UAM-404-1")
        .with_title("Unknown Resource")
}

fn v2_directory_user(w: &World, account_id: &str) -> ApiResult<u32> {
    w.uid(account_id)
        .filter(|u| w.user(*u).in_directory)
        .ok_or_else(unknown_directory_user)
}

/// `GET /admin/v2/orgs/{orgId}/directories` (`MultiDirectoryUserDirectoryPage`): the org's
/// one directory, whose id is the org id; with `accountId`, only if it holds that account.
async fn directories(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let p = Params::parse(q.as_deref());
    let w = sim.read();
    let holds = p
        .get("accountId")
        .is_none_or(|account| w.uid(account).is_some_and(|u| w.user(u).in_directory));
    let data: Vec<Value> = if holds {
        vec![json!({ "directoryId": w.org_id, "name": w.org_name })]
    } else {
        Vec::new()
    };
    Ok(Json(json!({ "data": data, "links": {} })).into_response())
}

/// `POST /admin/v2/orgs/{orgId}/workspaces`: one workspace per product of each site of the
/// org (this simulator's site and every site added to it), `hostUrl` the address the
/// site's APIs answer on. One page: the simulated org has a handful.
async fn workspaces(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(org_id): Path<String>,
) -> ApiResult {
    check_org(&sim, &headers, &org_id)?;
    let mut data = Vec::new();
    for site in std::iter::once(sim.clone()).chain(sim.peers()) {
        let w = site.read();
        let own = &w.sites[0];
        for product in Product::ALL {
            data.push(json!({
                "id": format!("ari:cloud:{}::site/{}", product.ari_family(), own.cloud_id),
                "type": "workspace",
                "attributes": {
                    "name": own.name,
                    "typeKey": product.admin_key(),
                    "type": product.ari_family(),
                    "status": "online",
                    "hostUrl": site.base_url(),
                },
                "links": {},
            }));
        }
    }
    let total = data.len();
    Ok(Json(json!({
        "data": data,
        "links": {},
        "meta": { "pageSize": total, "startIndex": 0, "endIndex": total, "total": total },
    }))
    .into_response())
}

/// `GET /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}`:
/// `{"data": MultiDirectoryUserDetailsData}`.
async fn v2_user_details(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, account_id)): Path<(String, String, String)>,
) -> ApiResult {
    check_directory(&sim, &headers, &org_id, &directory_id)?;
    let w = sim.read();
    let uid = v2_directory_user(&w, &account_id)?;
    let all = Expand {
        product_access: false,
        groups: false,
        platform_roles: true,
    };
    Ok(Json(json!({ "data": directory_user_json(&sim, &w, uid, all) })).into_response())
}

/// `POST .../users/{accountId}/suspend`: 204; access to every app goes, memberships stay.
async fn v2_suspend(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, account_id)): Path<(String, String, String)>,
) -> ApiResult {
    check_directory(&sim, &headers, &org_id, &directory_id)?;
    {
        let mut w = sim.write();
        let uid = v2_directory_user(&w, &account_id)?;
        w.update_user(uid, |u| u.suspended = true);
    }
    // The account is the org's: every site of the org sees the change.
    for peer in sim.peers() {
        let mut w = peer.write();
        if let Ok(uid) = v2_directory_user(&w, &account_id) {
            w.update_user(uid, |u| u.suspended = true);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST .../users/{accountId}/restore`: 204; the account regains its memberships' access.
async fn v2_restore(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, account_id)): Path<(String, String, String)>,
) -> ApiResult {
    check_directory(&sim, &headers, &org_id, &directory_id)?;
    {
        let mut w = sim.write();
        let uid = v2_directory_user(&w, &account_id)?;
        w.update_user(uid, |u| u.suspended = false);
    }
    // The account is the org's: every site of the org sees the change.
    for peer in sim.peers() {
        let mut w = peer.write();
        if let Ok(uid) = v2_directory_user(&w, &account_id) {
            w.update_user(uid, |u| u.suspended = false);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE .../users/{accountId}`: 204; the account leaves the directory and every group.
async fn v2_remove(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, account_id)): Path<(String, String, String)>,
) -> ApiResult {
    check_directory(&sim, &headers, &org_id, &directory_id)?;
    {
        let mut w = sim.write();
        let uid = v2_directory_user(&w, &account_id)?;
        remove_from_directory(&mut w, uid);
    }
    // The account is the org's: every site of the org sees the change.
    for peer in sim.peers() {
        let mut w = peer.write();
        if let Ok(uid) = v2_directory_user(&w, &account_id) {
            remove_from_directory(&mut w, uid);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One activity record as the admin API reports it, with its site.
struct SiteActivity {
    cloud_id: String,
    url: String,
    product: Product,
    at: chrono::DateTime<chrono::Utc>,
}

/// A user's activity on every site of the org: this simulator's sites (its own first), then
/// each other site added with [`SimState::add_site`] (that site's own records).
fn org_activity(sim: &SimState, w: &World, uid: u32) -> Vec<SiteActivity> {
    let u = w.user(uid);
    let mut acts: Vec<_> = u.activity.iter().collect();
    acts.sort_by_key(|a| (a.site, a.product));
    let mut out: Vec<SiteActivity> = acts
        .into_iter()
        .map(|a| {
            let site = &w.sites[a.site as usize];
            SiteActivity {
                cloud_id: site.cloud_id.clone(),
                url: site.url(),
                product: a.product,
                at: a.at,
            }
        })
        .collect();
    for peer in sim.peers() {
        let pw = peer.read();
        let Some(puid) = pw.uid(&u.account_id) else {
            continue;
        };
        let site = &pw.sites[0];
        let mut acts: Vec<_> = pw
            .user(puid)
            .activity
            .iter()
            .filter(|a| a.site == 0)
            .collect();
        acts.sort_by_key(|a| a.product);
        out.extend(acts.into_iter().map(|a| SiteActivity {
            cloud_id: site.cloud_id.clone(),
            url: site.url(),
            product: a.product,
            at: a.at,
        }));
    }
    out
}

/// The products a user can use on the org's other sites (site URL, product, last active
/// there), for the v1 listing.
fn peer_access(
    sim: &SimState,
    account_id: &str,
) -> Vec<(String, Product, Option<chrono::DateTime<chrono::Utc>>)> {
    let mut out = Vec::new();
    for peer in sim.peers() {
        let pw = peer.read();
        let Some(puid) = pw.uid(account_id) else {
            continue;
        };
        let pu = pw.user(puid);
        if !pu.can_use_products() {
            continue;
        }
        let url = pw.sites[0].url();
        for p in products_in(pw.access(puid)) {
            out.push((url.clone(), p, pu.last_active(p, 0)));
        }
    }
    out
}
