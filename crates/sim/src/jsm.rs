//! Jira Service Management REST API (`/rest/servicedeskapi/...`, Basic auth): customer
//! requests, their comments (`public` required) and transitions, request types.
//! Pages are `PagedDTO`s: `start`/`limit`/`size`/`isLastPage`/`_links.next`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, Family, site_admin, site_caller};
use super::jsm_model::{
    Comment, JUSTIFICATION_FIELD_ID, PRODUCT_FIELD_ID, RESTORE_REQUEST_TYPE_ID, SERVICE_DESK_ID,
    STATUSES, TRANSITIONS, transitions_from,
};
use super::model::{Product, Uid, World};
use super::params::Params;
use super::state::SimState;

const F: Family = Family::Jsm;
/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;
/// Longest comment body accepted.
pub const MAX_COMMENT: usize = 32_767;

pub(crate) fn router() -> Router<SimState> {
    Router::new()
        .route("/rest/servicedeskapi/request/{id}", get(request))
        .route(
            "/rest/servicedeskapi/request/{id}/comment",
            get(comments).post(add_comment),
        )
        .route(
            "/rest/servicedeskapi/request/{id}/transition",
            get(transitions).post(transition),
        )
        .route(
            "/rest/servicedeskapi/servicedesk/{desk}/requesttype",
            get(request_types),
        )
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(F, msg)
}

fn date(at: DateTime<Utc>) -> Value {
    json!({
        "iso8601": at.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
        "jira": at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        "friendly": at.format("%d/%b/%y %I:%M %p").to_string(),
        "epochMillis": at.timestamp_millis(),
    })
}

fn user_dto(sim: &SimState, w: &World, uid: Uid) -> Value {
    let u = w.user(uid);
    let mut v = json!({
        "accountId": u.account_id,
        "displayName": u.name,
        "active": u.jira_active(),
        "timeZone": "Etc/UTC",
        "_links": {
            "jiraRest": format!("{}/rest/api/2/user?accountId={}", sim.base_url(), u.account_id),
            "self": format!("{}/rest/api/2/user?accountId={}", sim.base_url(), u.account_id),
        },
    });
    if let Some(e) = &u.email {
        v["emailAddress"] = json!(e);
    }
    v
}

fn find(w: &World, id: &str) -> ApiResult<usize> {
    w.desk
        .find(id)
        .ok_or_else(|| ApiError::not_found(F, format!("The request '{id}' does not exist.")))
}

fn paged(sim: &SimState, path: &str, p: &Params, items: Vec<Value>) -> ApiResult<Value> {
    let start = p.uint("start", 0).map_err(bad)?;
    let limit = p.uint("limit", DEFAULT_LIMIT).map_err(bad)?;
    let limit = if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    let total = items.len();
    let values: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let size = values.len();
    let base = format!("{}/rest/servicedeskapi", sim.base_url());
    let mut links = json!({ "base": base, "context": "", "self": format!("{base}{path}?start={start}&limit={limit}") });
    let is_last = start + size >= total;
    if !is_last {
        links["next"] = json!(format!("{base}{path}?start={}&limit={limit}", start + size));
    }
    if start > 0 {
        links["prev"] = json!(format!(
            "{base}{path}?start={}&limit={limit}",
            start.saturating_sub(limit)
        ));
    }
    Ok(json!({
        "_expands": [], "size": size, "start": start, "limit": limit, "isLastPage": is_last,
        "values": values, "_links": links,
    }))
}

fn request_json(sim: &SimState, w: &World, i: usize) -> Value {
    let r = &w.desk.requests[i];
    let base = sim.base_url();
    let status = STATUSES.get(r.status).copied().unwrap_or(STATUSES[0]);
    let mut fields = vec![
        json!({ "fieldId": "summary", "label": "Summary", "value": r.summary }),
        json!({ "fieldId": "description", "label": "Description", "value": r.description,
                "renderedValue": { "html": format!("<p>{}</p>", html_escape(&r.description)) } }),
    ];
    if r.request_type_id == RESTORE_REQUEST_TYPE_ID
        && let Some(p) = r.product
    {
        fields.push(json!({
            "fieldId": PRODUCT_FIELD_ID,
            "label": "Product",
            "value": { "id": product_option_id(p), "value": p.display_name() },
        }));
    }
    if r.request_type_id == RESTORE_REQUEST_TYPE_ID
        && let Some(why) = &r.justification
    {
        fields.push(json!({
            "fieldId": JUSTIFICATION_FIELD_ID,
            "label": "Why do you need it?",
            "value": why,
        }));
    }
    json!({
        "_expands": ["participant", "status", "sla", "requestType", "serviceDesk", "attachment", "action", "comment"],
        "issueId": r.issue_id,
        "issueKey": r.key,
        "requestTypeId": r.request_type_id,
        "serviceDeskId": SERVICE_DESK_ID,
        "createdDate": date(r.created),
        "reporter": user_dto(sim, w, r.reporter),
        "requestFieldValues": fields,
        "currentStatus": { "status": status.name, "statusCategory": status.category, "statusDate": date(r.status_date) },
        "_links": {
            "jiraRest": format!("{base}/rest/api/2/issue/{}", r.issue_id),
            "web": format!("{base}/servicedesk/customer/portal/{SERVICE_DESK_ID}/{}", r.key),
            "self": format!("{base}/rest/servicedeskapi/request/{}", r.issue_id),
            "agent": format!("{base}/browse/{}", r.key),
        },
    })
}

/// Option id of a product in the "Product" select field.
fn product_option_id(p: Product) -> String {
    (10_200 + p.index()).to_string()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn comment_json(sim: &SimState, w: &World, issue_id: &str, c: &Comment) -> Value {
    json!({
        "_expands": ["attachment", "renderedBody"],
        "id": c.id,
        "body": c.body,
        "public": c.public,
        "author": user_dto(sim, w, c.author),
        "created": date(c.created),
        "_links": { "self": format!("{}/rest/servicedeskapi/request/{issue_id}/comment/{}", sim.base_url(), c.id) },
    })
}

async fn request(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let w = sim.read();
    let i = find(&w, &id)?;
    Ok(Json(request_json(&sim, &w, i)).into_response())
}

async fn comments(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let public = p.bool("public", true).map_err(bad)?;
    let internal = p.bool("internal", true).map_err(bad)?;
    let w = sim.read();
    let i = find(&w, &id)?;
    let r = &w.desk.requests[i];
    let items = r
        .comments
        .iter()
        .filter(|c| (c.public && public) || (!c.public && internal))
        .map(|c| comment_json(&sim, &w, &r.issue_id, c))
        .collect();
    Ok(Json(paged(
        &sim,
        &format!("/request/{}/comment", r.issue_id),
        &p,
        items,
    )?)
    .into_response())
}

fn site_admin_uid(sim: &SimState, w: &World) -> Uid {
    w.by_email
        .get(&sim.config().site_email.to_ascii_lowercase())
        .copied()
        .unwrap_or(0)
}

fn push_comment(w: &mut World, i: usize, author: Uid, body: String, public: bool) -> Comment {
    w.desk.next_comment_id += 1;
    let c = Comment {
        id: w.desk.next_comment_id.to_string(),
        body,
        public,
        author,
        created: Utc::now(),
    };
    w.desk.requests[i].comments.push(c.clone());
    c
}

async fn add_comment(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("The request body is not valid JSON: {e}")))?;
    let public = v
        .get("public")
        .and_then(Value::as_bool)
        .ok_or_else(|| bad("The 'public' field is required and must be true or false."))?;
    let text = v
        .get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| bad("The comment body must not be empty."))?;
    if text.len() > MAX_COMMENT {
        return Err(bad("The comment is too long."));
    }
    let mut w = sim.write();
    let i = find(&w, &id)?;
    let author = site_admin_uid(&sim, &w);
    let c = push_comment(&mut w, i, author, text.to_owned(), public);
    let issue_id = w.desk.requests[i].issue_id.clone();
    Ok((
        StatusCode::CREATED,
        Json(comment_json(&sim, &w, &issue_id, &c)),
    )
        .into_response())
}

async fn transitions(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    let p = Params::parse(q.as_deref());
    let w = sim.read();
    let i = find(&w, &id)?;
    let r = &w.desk.requests[i];
    let items = transitions_from(r.status)
        .map(|t| json!({ "id": t.id, "name": t.name }))
        .collect();
    Ok(Json(paged(
        &sim,
        &format!("/request/{}/transition", r.issue_id),
        &p,
        items,
    )?)
    .into_response())
}

async fn transition(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    site_admin(&sim, &headers, F)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("The request body is not valid JSON: {e}")))?;
    let tid = v
        .get("id")
        .and_then(|x| {
            x.as_str()
                .map(str::to_owned)
                .or_else(|| x.as_u64().map(|n| n.to_string()))
        })
        .ok_or_else(|| bad("The transition id must be provided."))?;
    let comment = v
        .get("additionalComment")
        .and_then(|c| c.get("body"))
        .and_then(Value::as_str);
    if comment.is_some_and(|c| c.len() > MAX_COMMENT) {
        return Err(bad("The comment is too long."));
    }
    let mut w = sim.write();
    let i = find(&w, &id)?;
    let status = w.desk.requests[i].status;
    let t = transitions_from(status)
        .find(|t| t.id == tid)
        .ok_or_else(|| {
            let known = TRANSITIONS.iter().any(|t| t.id == tid);
            bad(if known {
                format!("The transition '{tid}' is not available from the current status.")
            } else {
                format!("The transition id '{tid}' is not valid.")
            })
        })?;
    let r = &mut w.desk.requests[i];
    r.status = t.to;
    r.status_date = Utc::now();
    if let Some(text) = comment.filter(|c| !c.trim().is_empty()) {
        let author = site_admin_uid(&sim, &w);
        push_comment(&mut w, i, author, text.to_owned(), true);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn request_types(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path(desk): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    site_caller(&sim, &headers, F)?;
    if desk != SERVICE_DESK_ID {
        return Err(ApiError::not_found(
            F,
            format!("The service desk '{desk}' does not exist."),
        ));
    }
    let p = Params::parse(q.as_deref());
    let search = p.get("searchQuery").map(str::to_lowercase);
    let w = sim.read();
    let items = w
        .desk
        .request_types
        .iter()
        .filter(|t| search.as_ref().is_none_or(|s| t.name.to_lowercase().contains(s)))
        .map(|t| {
            json!({
                "_expands": [],
                "id": t.id,
                "name": t.name,
                "description": t.description,
                "helpText": t.help_text,
                "issueTypeId": "10100",
                "serviceDeskId": SERVICE_DESK_ID,
                "portalId": SERVICE_DESK_ID,
                "groupIds": ["1"],
                "_links": { "self": format!("{}/rest/servicedeskapi/servicedesk/{SERVICE_DESK_ID}/requesttype/{}", sim.base_url(), t.id) },
            })
        })
        .collect();
    Ok(Json(paged(
        &sim,
        &format!("/servicedesk/{SERVICE_DESK_ID}/requesttype"),
        &p,
        items,
    )?)
    .into_response())
}
