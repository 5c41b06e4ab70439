//! What every admin page shares (the layout, headers, errors, dates) and the overview.

use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use super::auth::AdminSession;
use super::charts::{self, Chart};
use super::store;
use crate::app::AppState;
use crate::store::time::from_ms;

/// What the layout shows around every signed-in page.
pub struct Layout {
    pub admin: String,
    pub csrf: String,
    pub section: &'static str,
    pub organisation: String,
    /// The admin may see the configuration (owners): the nav links it.
    pub configure: bool,
}

impl Layout {
    pub fn new(state: &AppState, session: &AdminSession, section: &'static str) -> Layout {
        Layout {
            admin: session.admin.clone(),
            csrf: session.csrf.clone(),
            section,
            organisation: state.config.mail.organisation.clone(),
            configure: session.grant.allows(crate::web::config::Action::Configure),
        }
    }
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 400
    #[error("{0}")]
    BadRequest(String),
    /// 403: outside the admin's role or scope (audited; nothing was changed).
    #[error("{0}")]
    Forbidden(String),
    /// 500: the cause goes to the log only.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::web::config::Refused> for PageError {
    fn from(refused: crate::web::config::Refused) -> Self {
        PageError::Forbidden(refused.to_string())
    }
}

impl From<sqlx::Error> for PageError {
    fn from(error: sqlx::Error) -> Self {
        PageError::Internal(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::NotFound(message) => error_page(StatusCode::NOT_FOUND, &message),
            PageError::BadRequest(message) => error_page(StatusCode::BAD_REQUEST, &message),
            PageError::Forbidden(message) => error_page(StatusCode::FORBIDDEN, &message),
            PageError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "admin page failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong; the details are in reseat's log.",
                )
            }
        }
    }
}

pub type PageResult = Result<Response, PageError>;

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

/// A plain page for a refusal or failure.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        ErrorPage {
            status: status.as_u16(),
            message,
        }
        .render(),
    )
}

/// A rendered page with the headers every admin page carries: never cached, never framed,
/// no scripts at all, no referrer.
pub fn render(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let mut response = match html {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render an admin page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    secure_headers(&mut response);
    response
}

pub fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}

/// A page that rendered fine.
pub fn ok(template: &impl Template) -> PageResult {
    Ok(render(StatusCode::OK, template.render()))
}

/// `2025-01-31 14:05 UTC`.
pub fn date_time(ms: i64) -> String {
    from_ms(ms).format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A product key as the pages name it: the product table's display name ("Jira",
/// "Confluence"), the key itself for one reseat does not know. Templates call it as
/// `crate::web::admin::pages::product_label(key)`.
pub fn product_label(key: &str) -> String {
    crate::atlassian::ProductKey::parse(key)
        .map(|product| product.display_name().to_owned())
        .unwrap_or_else(|_| key.to_owned())
}

/// `2025-01-31`.
pub fn date(ms: i64) -> String {
    from_ms(ms).format("%Y-%m-%d").to_string()
}

/// An optional query value, trimmed; empty means absent.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Seats of one product, from its Jira application role.
pub struct SeatRow {
    pub site: String,
    pub product: String,
    pub used: i64,
    pub total: String,
    /// 0–100, for the bar.
    pub percent: i64,
}

pub struct UpcomingRow {
    pub site: String,
    pub account_id: String,
    pub product: String,
    pub email: String,
    pub remove_after: String,
}

pub struct RunView {
    pub kind: String,
    pub status: String,
    pub mode: String,
    pub started: String,
    pub finished: String,
    pub plan_id: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    layout: Layout,
    /// Every site reseat manages (a choice is shown when there are several).
    sites: Vec<String>,
    /// The site the page is narrowed to (`?site=NAME`); `None`: every site.
    site: Option<String>,
    seats: Vec<SeatRow>,
    seats_error: Option<String>,
    requests_chart: Chart,
    removals_chart: Chart,
    upcoming_count: i64,
    upcoming: Vec<UpcomingRow>,
    queue: crate::queue::QueueStats,
    request_counts: Vec<(String, i64)>,
    last_run: Option<RunView>,
    /// The newest plan whose removals left seats billed, and how many.
    still_billed: Option<(String, i64)>,
    savings: SavingsPanel,
}

/// Money saved, from the ledger and the configured prices (`crate::billing`).
pub struct SavingsPanel {
    /// Any price configured.
    pub priced: bool,
    /// `USD 1234.50`.
    pub saved: String,
    pub run_rate: String,
    pub free_now: u64,
    pub rows: Vec<SavingsRow>,
    /// Seats reclaimed and given back per day, one chart per site and product.
    pub charts: Vec<Chart>,
    /// The renewal date, when configured.
    pub renewal: Option<String>,
    pub forecasts: Vec<ForecastRow>,
}

pub struct SavingsRow {
    pub site: String,
    pub product: String,
    pub reclaimed: u64,
    pub restored: u64,
    pub free_now: u64,
    pub seat_days: u64,
    pub saved: String,
    pub run_rate: String,
}

pub struct ForecastRow {
    pub site: String,
    pub product: String,
    pub current: u64,
    pub at_renewal: u64,
    pub readings: u64,
}

/// Days the overview charts cover.
pub const CHART_DAYS: i64 = 30;

#[derive(Template)]
#[template(path = "admin/config.html")]
struct ConfigPage {
    layout: Layout,
    effective: String,
    keys: Vec<(String, String)>,
}

/// `GET /admin/config`: the effective configuration, redacted, and which keys are set
/// (owners only: the session extractor refuses every other role).
pub async fn config(State(state): State<AppState>, session: AdminSession) -> PageResult {
    let view = crate::web::keys::ConfigView::of(&state.org_config);
    ok(&ConfigPage {
        layout: Layout::new(&state, &session, "config"),
        effective: view.effective,
        keys: view.keys.lines(),
    })
}

/// `?site=NAME` on a page or API list: narrows it to one site of the org.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SiteQuery {
    pub site: Option<String>,
}

impl SiteQuery {
    /// The named site as reseat keys it, checked: an unknown site is a clear 404.
    pub fn checked(&self, state: &AppState) -> Result<Option<String>, PageError> {
        Ok(state
            .named_site(self.site.as_deref())
            .map_err(PageError::NotFound)?
            .map(|site| site.site().to_owned()))
    }
}

pub async fn overview(
    State(state): State<AppState>,
    session: AdminSession,
    axum::extract::Query(query): axum::extract::Query<SiteQuery>,
) -> PageResult {
    let site = query.checked(&state)?;
    let page = overview_page(&state, &session, site).await?;
    ok(&page)
}

/// Renders the overview (the benchmark calls this).
pub async fn render_overview(state: &AppState, admin: &str) -> Result<String, PageError> {
    let session = AdminSession {
        grant: state
            .config
            .admin
            .user_grant(admin)
            .unwrap_or_else(crate::web::config::Grant::cli),
        admin: admin.to_string(),
        csrf: String::new(),
        key: String::new(),
    };
    overview_page(state, &session, None)
        .await?
        .render()
        .map_err(|e| PageError::Internal(e.into()))
}

async fn overview_page(
    state: &AppState,
    session: &AdminSession,
    site: Option<String>,
) -> Result<OverviewPage, PageError> {
    let now = state.db.now_ms();
    let today = now.div_euclid(86_400_000);
    let since = (today - CHART_DAYS + 1) * 86_400_000;
    // Seats per site, each site's Jira asked side by side.
    let shown: Vec<AppState> = match &site {
        Some(name) => state.for_site(name).into_iter().collect(),
        None => state.each_site(),
    };
    let per_site = futures_util::future::join_all(shown.iter().map(seats)).await;
    let mut seats = Vec::new();
    let mut seat_errors = Vec::new();
    for ((rows, error), view) in per_site.into_iter().zip(&shown) {
        seats.extend(rows);
        if let Some(error) = error {
            seat_errors.push(if state.is_multi_site() {
                format!("{}: {error}", view.site())
            } else {
                error
            });
        }
    }
    let seats_error = (!seat_errors.is_empty()).then(|| seat_errors.join(" "));
    let requests = store::requests_per_day(&state.db, since).await?;
    let removals = store::removals_per_day(&state.db, since).await?;
    let (upcoming_count, upcoming) =
        store::upcoming_removals(&state.db, site.as_deref(), now, 10).await?;
    let queue = state.queue.stats().await?;
    let request_counts = store::request_counts(&state.db).await?;
    let last_run = store::last_run(&state.db).await?.map(|run| RunView {
        kind: run.kind,
        status: run.status,
        mode: run.mode,
        started: date_time(run.started_at),
        finished: run.finished_at.map(date_time).unwrap_or_else(|| "-".into()),
        plan_id: run.plan_id.unwrap_or_default(),
        error: run.error.unwrap_or_default(),
    });
    let mut savings = savings_panel(state, today, since).await?;
    if let Some(name) = &site {
        savings.rows.retain(|row| &row.site == name);
        savings.forecasts.retain(|row| &row.site == name);
    }
    Ok(OverviewPage {
        layout: Layout::new(state, session, "overview"),
        sites: state.site_names(),
        site,
        seats,
        seats_error,
        requests_chart: charts::daily("Restore requests per day", today, CHART_DAYS, &requests),
        removals_chart: charts::daily("Seats reclaimed per day", today, CHART_DAYS, &removals),
        upcoming_count,
        upcoming: upcoming
            .into_iter()
            .map(|u| UpcomingRow {
                site: u.site,
                account_id: u.account_id,
                product: u.product,
                email: u.email.unwrap_or_default(),
                remove_after: date(u.remove_after),
            })
            .collect(),
        queue,
        request_counts,
        last_run,
        still_billed: crate::ledger::roles::latest_still_billed(&state.db).await?,
        savings,
    })
}

async fn savings_panel(
    state: &AppState,
    today: i64,
    since: i64,
) -> Result<SavingsPanel, PageError> {
    let savings = crate::billing::savings(state).await?;
    let forecasts = crate::billing::forecasts(state).await?;
    let mut charts = Vec::new();
    for total in &savings.totals {
        let mut reclaimed = std::collections::BTreeMap::<i64, i64>::new();
        let mut restored = std::collections::BTreeMap::<i64, i64>::new();
        for period in savings
            .free_periods
            .iter()
            .filter(|p| p.site == total.site && p.product == total.product)
        {
            if period.from >= since {
                *reclaimed.entry(period.from / 86_400_000).or_default() += 1;
            }
            if let Some(to) = period.to.filter(|to| *to >= since) {
                *restored.entry(to / 86_400_000).or_default() += 1;
            }
        }
        let counts = |days: std::collections::BTreeMap<i64, i64>| -> Vec<store::DayCount> {
            days.into_iter()
                .map(|(day, count)| store::DayCount { day, count })
                .collect()
        };
        charts.push(charts::daily_pair(
            &format!("{} on {}", product_label(&total.product), total.site),
            today,
            CHART_DAYS,
            [
                ("reclaimed", &counts(reclaimed)),
                ("restored", &counts(restored)),
            ],
        ));
    }
    let money = |amount: Option<crate::billing::Minor>| match amount {
        Some(amount) => savings.label(amount),
        None => "no price".to_string(),
    };
    Ok(SavingsPanel {
        priced: savings.currency.is_some(),
        saved: savings.label(savings.saved()),
        run_rate: savings.label(savings.run_rate()),
        free_now: savings.free_now(),
        rows: savings
            .totals
            .iter()
            .map(|t| SavingsRow {
                site: t.site.clone(),
                product: product_label(&t.product),
                reclaimed: t.reclaimed,
                restored: t.restored,
                free_now: t.free_now,
                seat_days: t.seat_days,
                saved: money(t.saved),
                run_rate: money(t.run_rate),
            })
            .collect(),
        charts,
        renewal: state
            .config
            .billing
            .renewal_date()
            .ok()
            .flatten()
            .map(|d| d.to_string()),
        forecasts: forecasts
            .into_iter()
            .map(|f| ForecastRow {
                site: f.site,
                product: product_label(&f.product),
                current: f.current,
                at_renewal: f.at_renewal,
                readings: f.readings,
            })
            .collect(),
    })
}

/// Seats per Jira application; an unreachable or unconfigured Jira is a message, not an
/// error page.
async fn seats(state: &AppState) -> (Vec<SeatRow>, Option<String>) {
    let Some(jira) = state.atlassian.jira.as_ref() else {
        return (
            Vec::new(),
            Some(
                "The Jira site API is not configured (atlassian.site_email, site_api_token)."
                    .into(),
            ),
        );
    };
    match tokio::time::timeout(Duration::from_secs(5), jira.application_roles()).await {
        Ok(Ok(roles)) => (
            roles
                .into_iter()
                .map(|role| {
                    let used = role.user_count.unwrap_or(0);
                    let (total, percent) = match role.number_of_seats {
                        Some(seats) if !role.has_unlimited_seats && seats > 0 => {
                            (seats.to_string(), (used * 100 / seats).clamp(0, 100))
                        }
                        _ => ("unlimited".to_string(), 0),
                    };
                    SeatRow {
                        site: state.site().to_owned(),
                        // The product table's name, as on every other page and email.
                        product: role.key.display_name().to_string(),
                        used,
                        total,
                        percent,
                    }
                })
                .collect(),
            None,
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "overview: cannot read application roles");
            (
                Vec::new(),
                Some(format!("Cannot read seats from Jira: {error}")),
            )
        }
        Err(_) => (
            Vec::new(),
            Some("Jira did not answer within 5 seconds; seats are not shown.".into()),
        ),
    }
}

/// Today's date, for page footers and file names.
pub fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}
