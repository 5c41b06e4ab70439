//! Restore requests (pending with the rules' explanation, approve, deny, history) and the
//! rules with a tester.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::auth::{AdminForm, AdminSession};
use super::pages::{Layout, PageError, PageResult, date_time, given, ok};
use crate::app::AppState;
use crate::atlassian::{AccountId, GroupId, ProductKey};
use crate::restore::admin::{self, AdminError};
use crate::restore::rules::Channel;
use crate::restore::store::{self, RestoreRequest};
use crate::restore::worker;

/// How long approving waits for the restore before showing the page.
const INLINE_WAIT: Duration = Duration::from_secs(15);

pub struct RequestView {
    pub id: String,
    /// The site the request is for (empty: the first site, from before sites were kept).
    pub site: String,
    pub created: String,
    pub channel: String,
    pub account_id: String,
    pub name: String,
    pub email: String,
    pub product: String,
    pub status: String,
    pub rule: String,
    pub reason: String,
    pub message: String,
    /// Why the requester says they need the access (empty: none given).
    pub justification: String,
    /// The rules' explanation, one line each.
    pub explanation: Vec<String>,
}

/// The explanation stored with the verdict: each rule tried and its conditions (the admin
/// pages and the Slack approval message show it).
pub fn explanation(verdict: Option<&str>) -> Vec<String> {
    let Some(value) = verdict.and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
    else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    if let Some(guard) = value.get("guard").filter(|g| !g.is_null()) {
        lines.push(format!("guard: {}", text(guard)));
    }
    for step in value
        .get("trace")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let matched = step.get("matched").and_then(|m| m.as_bool()) == Some(true);
        lines.push(format!(
            "rule {:?}: {}",
            step.get("rule").map(text).unwrap_or_default(),
            if matched { "MATCHED" } else { "no match" }
        ));
        for condition in step
            .get("conditions")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            lines.push(format!("  {}", text(condition)));
        }
    }
    if let Some(decision) = value.get("decision") {
        lines.push(format!("decision: {}", text(decision)));
    }
    lines
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl From<RestoreRequest> for RequestView {
    fn from(r: RestoreRequest) -> Self {
        RequestView {
            explanation: explanation(r.verdict.as_deref()),
            id: r.id,
            site: r.site.unwrap_or_default(),
            created: date_time(r.created_at),
            channel: r.channel,
            account_id: r.account_id.unwrap_or_default(),
            name: r.display_name.unwrap_or_default(),
            email: r.email.unwrap_or_default(),
            product: r.product.unwrap_or_default(),
            status: r.status,
            rule: r.matched_rule.unwrap_or_default(),
            reason: r.reason.unwrap_or_default(),
            message: r.message.unwrap_or_default(),
            justification: r.justification.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/requests.html")]
struct RequestsPage {
    layout: Layout,
    open: Vec<RequestView>,
    history: Vec<RequestView>,
    done: Option<RequestView>,
    /// Every site, and the one the lists are narrowed to (`?site=`).
    sites: Vec<String>,
    site: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RequestsQuery {
    done: Option<String>,
    site: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    Query(query): Query<RequestsQuery>,
) -> PageResult {
    let site = state
        .named_site(query.site.as_deref())
        .map_err(PageError::NotFound)?
        .map(|view| view.site().to_owned());
    let first = state.site().to_owned();
    let in_scope = |request: &RestoreRequest| {
        request.in_scope(&session.grant, &first)
            && site
                .as_deref()
                .is_none_or(|name| request.site.as_deref().unwrap_or(&first) == name)
    };
    let mut open = store::list_by_status(&state.db, "pending", 200).await?;
    open.extend(store::list_by_status(&state.db, "failed", 200).await?);
    open.retain(in_scope);
    let mut history = store::list_recent(&state.db, 200).await?;
    history.retain(in_scope);
    let done = match given(&query.done) {
        Some(id) => store::get(&state.db, id)
            .await?
            .filter(in_scope)
            .map(RequestView::from),
        None => None,
    };
    let view = |request: RestoreRequest| {
        let mut view = RequestView::from(request);
        if view.site.is_empty() {
            view.site.clone_from(&first);
        }
        view
    };
    ok(&RequestsPage {
        layout: Layout::new(&state, &session, "requests"),
        open: open.into_iter().map(view).collect(),
        history: history.into_iter().map(view).collect(),
        done,
        sites: state.site_names(),
        site,
    })
}

fn admin_error(error: AdminError) -> PageError {
    match error {
        AdminError::NotFound(_) => PageError::NotFound(error.to_string()),
        AdminError::NotOpen { .. }
        | AdminError::GroupsNotAllowed { .. }
        | AdminError::NoProduct(_) => PageError::BadRequest(error.to_string()),
        AdminError::Refused(refused) => refused.into(),
        AdminError::Upstream(error) => PageError::Internal(error.into()),
        AdminError::Db(error) => PageError::Internal(error.into()),
    }
}

/// A second click on a button whose first click already took effect shows the outcome
/// rather than an error; any other refusal is an error.
fn repeated(error: &AdminError, verb: &str) -> bool {
    let AdminError::NotOpen { status, .. } = error else {
        return false;
    };
    match verb {
        "approve" => matches!(status.as_str(), "approved" | "verifying" | "restored"),
        _ => status == "denied",
    }
}

fn after(id: &str) -> axum::response::Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", id)
        .finish();
    Redirect::to(&format!("/admin/requests?{query}")).into_response()
}

/// Runs the request's job now (under the queue's lease) so the admin sees the outcome.
async fn process_now(state: &AppState, id: &str) {
    match worker::run_now(state, id, INLINE_WAIT).await {
        Ok(Some(request)) if request.is_decided() => {}
        Ok(_) => tracing::warn!(request_id = %id, "still running; the queue finishes it"),
        Err(error) => tracing::warn!(request_id = %id, %error, "the queue will retry"),
    }
}

/// `POST /admin/requests/{id}/approve` (optional `groups`: ids, comma-separated).
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> PageResult {
    let groups = form
        .get("groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| GroupId::parse(g).map_err(|e| PageError::BadRequest(format!("groups: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    match admin::approve(&state, &id, &form.session.grant, groups).await {
        Ok(()) => {}
        Err(error) if repeated(&error, "approve") => {}
        Err(error) => return Err(admin_error(error)),
    }
    process_now(&state, &id).await;
    Ok(after(&id))
}

/// `POST /admin/requests/{id}/deny` with the `reason` the requester is told.
pub async fn deny(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> PageResult {
    let reason = form.get("reason").unwrap_or_default().trim().to_string();
    if reason.is_empty() {
        return Err(PageError::BadRequest(
            "Tell the requester why: the reason is required.".into(),
        ));
    }
    match admin::deny(&state, &id, &form.session.grant, &reason).await {
        Ok(()) => {}
        Err(error) if repeated(&error, "deny") => {}
        Err(error) => return Err(admin_error(error)),
    }
    process_now(&state, &id).await;
    Ok(after(&id))
}

pub struct RuleView {
    pub name: String,
    pub decision: String,
    pub conditions: Vec<String>,
    pub message: String,
}

#[derive(Template)]
#[template(path = "admin/rules.html")]
struct RulesPage {
    layout: Layout,
    rules: Vec<RuleView>,
    offboarding: String,
    account: String,
    product: String,
    channel: String,
    channels: Vec<String>,
    products: Vec<String>,
    explanation: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RulesQuery {
    account: Option<String>,
    product: Option<String>,
    channel: Option<String>,
}

fn rule_view(rule: &crate::restore::rules::Rule) -> RuleView {
    let mut conditions = Vec::new();
    let mut list = |label: &str, values: Vec<String>| {
        if !values.is_empty() {
            conditions.push(format!("{label}: {}", values.join(", ")));
        }
    };
    list(
        "products",
        rule.products
            .iter()
            .map(|p| p.as_str().to_string())
            .collect(),
    );
    list(
        "channels",
        rule.channels
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
    );
    list("email domains", rule.email_domains.clone());
    list("member of any", rule.member_of_any.clone());
    list("member of none", rule.member_of_none.clone());
    list(
        "grant groups",
        rule.grant_groups.iter().map(ToString::to_string).collect(),
    );
    if let Some(removed) = rule.removed_by_reseat {
        conditions.push(format!("removed by reseat: {removed}"));
    }
    if let Some(reserve) = rule.seat_reserve {
        conditions.push(format!("more than {reserve} seats free"));
    }
    if conditions.is_empty() {
        conditions.push("matches every request".into());
    }
    RuleView {
        name: rule.name.clone(),
        decision: rule.decision.as_str().to_string(),
        conditions,
        message: rule.message.clone().unwrap_or_default(),
    }
}

/// `GET /admin/rules[?account=&product=&channel=]`: the rules, and what they decide for one
/// account (reads Atlassian, changes nothing).
pub async fn rules(
    State(state): State<AppState>,
    session: AdminSession,
    Query(query): Query<RulesQuery>,
) -> PageResult {
    let account = given(&query.account).unwrap_or_default().to_string();
    let product = given(&query.product)
        .unwrap_or(ProductKey::JIRA_SOFTWARE.as_str())
        .to_string();
    let channel = given(&query.channel).unwrap_or("jsm").to_string();
    let (mut explanation, mut error) = (None, None);
    if !account.is_empty() {
        let parsed = (
            AccountId::parse(&account).map_err(|e| format!("account: {e}")),
            ProductKey::parse(&product).map_err(|e| format!("product: {e}")),
            <Channel as clap::ValueEnum>::from_str(&channel, true)
                .map_err(|_| format!("channel: unknown channel {channel:?}")),
        );
        match parsed {
            (Ok(a), Ok(p), Ok(c)) => match worker::explain(&state, &a, &p, c, false).await {
                Ok(verdict) => explanation = Some(verdict.explain()),
                Err(e) => error = Some(format!("Cannot read the account from Atlassian: {e}")),
            },
            (a, p, c) => {
                error = [a.err(), p.err(), c.err()].into_iter().flatten().next();
            }
        }
    }
    let restore = &state.config.restore;
    ok(&RulesPage {
        layout: Layout::new(&state, &session, "rules"),
        rules: restore.rules.iter().map(rule_view).collect(),
        offboarding: restore.offboarding_groups.join(", "),
        account,
        product,
        channel,
        channels: ["jsm", "automation", "webhook", "link", "teams", "signin"]
            .map(String::from)
            .to_vec(),
        products: state
            .config
            .sweep
            .product_keys()
            .iter()
            .map(|p| p.as_str().to_string())
            .collect(),
        explanation,
        error,
    })
}
