//! Users (search, one account's timeline) and the audit log (filters, CSV export).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::NaiveDate;
use serde::Deserialize;

use super::auth::AdminSession;
use super::pages::{Layout, PageError, PageResult, date_time, given, ok, secure_headers};
use super::store::{self, AuditFilter, FoundUser};
use crate::app::AppState;
use crate::audit::Record;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    layout: Layout,
    q: String,
    found: Vec<FoundUser>,
    searched: bool,
}

pub async fn search(
    State(state): State<AppState>,
    session: AdminSession,
    Query(query): Query<SearchQuery>,
) -> PageResult {
    let q = given(&query.q).unwrap_or_default().to_string();
    let found = if q.is_empty() {
        Vec::new()
    } else {
        store::search_users(&state.db, &q, 200).await?
    };
    ok(&UsersPage {
        layout: Layout::new(&state, &session, "users"),
        searched: !q.is_empty(),
        q,
        found,
    })
}

pub struct EventView {
    pub at: String,
    pub kind: String,
    pub product: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    layout: Layout,
    account: String,
    name: String,
    email: String,
    events: Vec<EventView>,
}

pub async fn timeline(
    State(state): State<AppState>,
    session: AdminSession,
    Path(account): Path<String>,
) -> PageResult {
    let mut events = store::timeline(&state.db, &account, 500).await?;
    // Only what the admin's scope covers: events about a product outside it are left out.
    let site = state.site();
    events.retain(|e| {
        e.product
            .as_deref()
            .is_none_or(|product| session.grant.covers(site, Some(product)))
    });
    let known = store::search_users(&state.db, &account, 50)
        .await?
        .into_iter()
        .find(|u| u.account_id == account);
    if events.is_empty() && known.is_none() {
        return Err(PageError::NotFound(format!(
            "reseat has no record of the account {account}."
        )));
    }
    let known = known.unwrap_or(FoundUser {
        account_id: account.clone(),
        display_name: None,
        email: None,
    });
    ok(&UserPage {
        layout: Layout::new(&state, &session, "users"),
        account,
        name: known.display_name.unwrap_or_default(),
        email: known.email.unwrap_or_default(),
        events: events
            .into_iter()
            .map(|e| EventView {
                at: date_time(e.at),
                kind: e.kind,
                product: e.product.unwrap_or_default(),
                text: e.text,
            })
            .collect(),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    account: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    from: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    to: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, PageError> {
        let day = |text: Option<&str>, label: &str| -> Result<Option<i64>, PageError> {
            text.map(|t| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .unwrap_or_default()
                            .and_utc()
                            .timestamp_millis()
                    })
                    .map_err(|_| {
                        PageError::BadRequest(format!("{label}: expected a date like 2025-01-31"))
                    })
            })
            .transpose()
        };
        Ok(AuditFilter {
            actor: given(&self.actor).map(str::to_string),
            action: given(&self.action).map(str::to_string),
            account: given(&self.account).map(str::to_string),
            from: day(given(&self.from), "from")?,
            to: day(given(&self.to), "to")?.map(|t| t + 86_400_000),
        })
    }

    fn csv_link(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("account", &self.account),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(value) = given(value) {
                query.append_pair(key, value);
            }
        }
        format!("/admin/audit.csv?{}", query.finish())
    }
}

pub struct AuditView {
    pub at: String,
    pub actor: String,
    /// The role the actor acted with (empty for reseat and the channels).
    pub role: String,
    pub action: String,
    pub account_id: String,
    pub product: String,
    /// The details folded to one line: `key: value` pairs of the JSON, shortened.
    pub summary: String,
    pub details: String,
}

/// One readable line for an entry's JSON details (`plan_id: …, status: …`), at most about
/// 80 characters.
fn details_summary(details: &str) -> String {
    let line = match serde_json::from_str::<serde_json::Value>(details) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}: {text}"),
                other => format!("{key}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => details.to_owned(),
    };
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line
    }
}

impl From<Record> for AuditView {
    fn from(r: Record) -> Self {
        AuditView {
            at: date_time(r.at),
            actor: r.actor,
            role: r.role.unwrap_or_default(),
            action: r.action,
            account_id: r.account_id.unwrap_or_default(),
            product: r.product.unwrap_or_default(),
            summary: details_summary(&r.details),
            details: r.details,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    layout: Layout,
    actor: String,
    action: String,
    account: String,
    from: String,
    to: String,
    entries: Vec<AuditView>,
    limit: i64,
    csv: String,
    /// Refused requests of the last 24 hours, counted per minute, action, source, reason.
    refusals: Vec<RefusalView>,
    refused_total: i64,
}

/// One counted row of refusals as the page shows it.
pub struct RefusalView {
    pub minute: String,
    pub action: String,
    pub source: String,
    pub reason: String,
    pub count: i64,
}

impl From<crate::audit::RefusalCount> for RefusalView {
    fn from(r: crate::audit::RefusalCount) -> Self {
        RefusalView {
            minute: date_time(r.minute_at),
            action: r.action,
            source: r.source,
            reason: r.reason,
            count: r.count,
        }
    }
}

/// Entries the page shows; the CSV has up to [`CSV_LIMIT`].
const PAGE_LIMIT: i64 = 500;
const CSV_LIMIT: i64 = 100_000;

pub async fn audit(
    State(state): State<AppState>,
    session: AdminSession,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let filter = query.filter()?;
    let mut entries = store::audit(&state.db, &filter, PAGE_LIMIT).await?;
    entries.retain(|entry| entry.in_scope(&session.grant, state.site()));
    let since = state.db.now_ms() - 86_400_000;
    let refusals = crate::audit::refusals_since(&state.db, since, PAGE_LIMIT).await?;
    let refused_total = crate::audit::refused_since(&state.db, since).await?;
    let value = |v: &Option<String>| given(v).unwrap_or_default().to_string();
    ok(&AuditPage {
        refusals: refusals.into_iter().map(RefusalView::from).collect(),
        refused_total,
        layout: Layout::new(&state, &session, "audit"),
        actor: value(&query.actor),
        action: value(&query.action),
        account: value(&query.account),
        from: value(&query.from),
        to: value(&query.to),
        entries: entries.into_iter().map(AuditView::from).collect(),
        limit: PAGE_LIMIT,
        csv: query.csv_link(),
    })
}

/// The same filter as a CSV download: `id,at,actor,action,account_id,product,details,role`.
pub async fn audit_csv(
    State(state): State<AppState>,
    session: AdminSession,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let filter = query.filter()?;
    let mut entries = store::audit(&state.db, &filter, CSV_LIMIT).await?;
    entries.retain(|entry| entry.in_scope(&session.grant, state.site()));
    let mut writer = crate::spreadsheet::CsvWriter::in_memory();
    let internal = |e: csv::Error| PageError::Internal(e.into());
    writer
        .row([
            "id",
            "at",
            "actor",
            "action",
            "account_id",
            "product",
            "details",
            "role",
        ])
        .map_err(internal)?;
    for e in entries {
        let at = crate::store::time::from_ms(e.at).to_rfc3339();
        writer
            .row([
                e.id.to_string().as_str(),
                &at,
                &e.actor,
                &e.action,
                e.account_id.as_deref().unwrap_or_default(),
                e.product.as_deref().unwrap_or_default(),
                &e.details,
                e.role.as_deref().unwrap_or_default(),
            ])
            .map_err(internal)?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| PageError::Internal(anyhow::anyhow!("csv: {e}")))?;
    let mut response = (StatusCode::OK, body).into_response();
    secure_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"reseat-audit-{}.csv\"",
        super::pages::today()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
