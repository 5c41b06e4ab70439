//! Plans: the list, one plan's rows with filters and exclusion, applying with a
//! confirmation step, and planning from an uploaded admin export CSV.

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::json;

use super::auth::{AdminForm, AdminSession, csrf_refused, same_secret};
use super::pages::{Layout, PageError, PageResult, date, date_time, given, ok, render};
use super::store::{self, ItemRow, PlanCount};
use crate::app::AppState;
use crate::audit;
use crate::sweep::config::Mode;
use crate::sweep::{Source, SweepError};

/// Rows per page of a plan.
const PAGE_SIZE: i64 = 100;

pub struct PlanRow {
    pub id: String,
    pub site: String,
    pub created: String,
    pub source: String,
    pub status: String,
    /// `remove 3 · warn 5 · keep 120`
    pub counts: String,
}

#[derive(Template)]
#[template(path = "admin/plans.html")]
struct PlansPage {
    layout: Layout,
    plans: Vec<PlanRow>,
    /// Every site reseat manages, and the one the list is narrowed to.
    sites: Vec<String>,
    site: Option<String>,
}

/// The decision counts of a stored plan summary, summed over products, as one line; a
/// summary that does not parse says so (apply refuses that plan).
fn decision_counts(id: &str, summary: &str) -> String {
    match crate::sweep::plan::PlanSummary::parse(id, summary) {
        Ok(summary) => summary
            .decision_totals()
            .iter()
            .map(|(decision, count)| format!("{decision} {count}"))
            .collect::<Vec<_>>()
            .join(" · "),
        Err(_) => "the stored summary does not parse: apply refuses this plan".to_owned(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    Query(query): Query<super::pages::SiteQuery>,
) -> PageResult {
    let site = query.checked(&state)?;
    let plans = crate::sweep::store::list_plans(&state.db, site.as_deref(), None, 100)
        .await?
        .into_iter()
        .filter(|plan| session.grant.sees_site(&plan.site))
        .map(PlanRow::from)
        .collect();
    ok(&PlansPage {
        layout: Layout::new(&state, &session, "plans"),
        plans,
        sites: state.site_names(),
        site,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct PlanQuery {
    product: Option<String>,
    decision: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

pub struct ItemView {
    pub id: i64,
    pub account_id: String,
    pub name: String,
    pub email: String,
    pub product: String,
    pub decision: String,
    pub reason: String,
    pub last_active: String,
    pub state: String,
    /// The groups and roles the seat bills through.
    pub bills_through: String,
    pub excluded: bool,
    /// Still open to exclusion (pending or failed).
    pub selectable: bool,
}

impl From<ItemRow> for ItemView {
    fn from(row: ItemRow) -> Self {
        ItemView {
            selectable: matches!(row.state.as_str(), "pending" | "failed"),
            id: row.id,
            account_id: row.account_id,
            name: row.display_name.unwrap_or_default(),
            email: row.email.unwrap_or_default(),
            product: row.product,
            decision: row.decision,
            reason: row.reason,
            last_active: row.last_active.map(date).unwrap_or_else(|| "never".into()),
            state: match row.outcome {
                Some(outcome) if !outcome.is_empty() => format!("{} ({outcome})", row.state),
                _ => row.state,
            },
            bills_through: crate::sweep::roles::Billing::parse(&row.billing).explain(),
            excluded: row.excluded != 0,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/plan.html")]
struct PlanPage {
    layout: Layout,
    plan: PlanRow,
    counts: Vec<PlanCount>,
    products: Vec<String>,
    decisions: Vec<String>,
    product: String,
    decision: String,
    items: Vec<ItemView>,
    /// Seats still billed after apply (state `still_billed`).
    still_billed: i64,
    previous: Option<String>,
    next: Option<String>,
    notice: Option<String>,
}

/// `/admin/plans/{id}?product=&decision=&page=`.
fn plan_url(id: &str, product: &str, decision: &str, page: i64) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if !product.is_empty() {
        query.append_pair("product", product);
    }
    if !decision.is_empty() {
        query.append_pair("decision", decision);
    }
    if page > 0 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    let path = format!(
        "/admin/plans/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

async fn plan_record(
    state: &AppState,
    id: &str,
) -> Result<crate::sweep::store::PlanRecord, PageError> {
    crate::sweep::store::get_plan(&state.db, id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no plan {id}.")))
}

impl From<crate::sweep::store::PlanRecord> for PlanRow {
    fn from(plan: crate::sweep::store::PlanRecord) -> PlanRow {
        PlanRow {
            counts: decision_counts(&plan.id, &plan.summary),
            site: plan.site,
            id: plan.id,
            created: date_time(plan.created_at),
            source: plan.source,
            status: plan.status,
        }
    }
}

/// The plan, if the admin's scope reaches its site (else a 403, audited).
async fn plan_row(
    state: &AppState,
    session: &AdminSession,
    id: &str,
) -> Result<PlanRow, PageError> {
    let plan = plan_record(state, id).await?;
    if !session.grant.sees_site(&plan.site) {
        let what = format!("plan {id}");
        session
            .grant
            .require_scope(&state.db, &plan.site, None, &what)
            .await?;
    }
    Ok(PlanRow::from(plan))
}

/// A refusal of the sweep (outside the admin's role or scope) as a 403, anything else 500.
fn sweep_error(error: SweepError) -> PageError {
    match error {
        SweepError::Refused(refused) => refused.into(),
        SweepError::NoPlan(_) => PageError::NotFound(error.to_string()),
        other => PageError::Internal(other.into()),
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Query(query): Query<PlanQuery>,
) -> PageResult {
    let plan = plan_row(&state, &session, &id).await?;
    let site = plan_record(&state, &id).await?.site;
    let grant = &session.grant;
    let product = given(&query.product).unwrap_or_default().to_string();
    let decision = given(&query.decision).unwrap_or_default().to_string();
    let page = query.page.unwrap_or(0).max(0);
    let mut counts = store::plan_counts(&state.db, &id).await?;
    counts.retain(|c| grant.covers(&site, Some(&c.product)));
    let mut products: Vec<String> = counts.iter().map(|c| c.product.clone()).collect();
    products.dedup();
    let mut decisions: Vec<String> = counts.iter().map(|c| c.decision.clone()).collect();
    decisions.sort();
    decisions.dedup();
    let mut items: Vec<ItemView> = store::plan_rows(
        &state.db,
        &id,
        Some(product.as_str()).filter(|p| !p.is_empty()),
        Some(decision.as_str()).filter(|d| !d.is_empty()),
        page * PAGE_SIZE,
        PAGE_SIZE + 1,
    )
    .await?
    .into_iter()
    .map(ItemView::from)
    .collect();
    let more = items.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));
    // A page may hold fewer rows for a scoped admin: the paging counts every row.
    items.retain(|item| grant.covers(&site, Some(&item.product)));
    let notice = match given(&query.notice) {
        Some("excluded") => Some("The selected rows are excluded: apply leaves them alone.".into()),
        Some("included") => Some("The selected rows are included again.".into()),
        Some("none") => Some("Nothing changed: select rows that are not applied yet.".into()),
        _ => None,
    };
    ok(&PlanPage {
        layout: Layout::new(&state, &session, "plans"),
        previous: (page > 0).then(|| plan_url(&id, &product, &decision, page - 1)),
        next: more.then(|| plan_url(&id, &product, &decision, page + 1)),
        plan,
        counts,
        products,
        decisions,
        product,
        decision,
        items,
        still_billed: crate::ledger::roles::still_billed_count(&state.db, &id).await?,
        notice,
    })
}

/// `POST /admin/plans/{id}/items`: `action=exclude|include` and the selected `item` ids.
pub async fn exclude(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> PageResult {
    let plan = plan_record(&state, &id).await?;
    let exclude = match form.get("action") {
        Some("exclude") => true,
        Some("include") => false,
        _ => return Err(PageError::BadRequest("Choose exclude or include.".into())),
    };
    let ids: Vec<i64> = form.all("item").filter_map(|v| v.parse().ok()).collect();
    let grant = &form.session.grant;
    crate::sweep::scope::require_items(&state.db, grant, &plan, &ids)
        .await
        .map_err(sweep_error)?;
    let mut tx = state.db.pool().begin().await?;
    let changed = crate::sweep::store::set_items_excluded_in(&mut tx, &id, &ids, exclude).await?;
    if changed > 0 {
        let actor = form.session.actor();
        audit::record_in(
            &mut tx,
            state.db.now_ms(),
            audit::Entry {
                actor: &actor,
                role: Some(grant.role_name()),
                action: if exclude {
                    "plan.items_excluded"
                } else {
                    "plan.items_included"
                },
                account_id: None,
                product: None,
                details: json!({ "plan_id": id, "items": ids, "changed": changed }),
            },
        )
        .await?;
        // One entry per account too, so each user's timeline shows it.
        let accounts: Vec<(String, String)> = {
            let mut rows = Vec::new();
            for item in &ids {
                let row: Option<(String, String)> = sqlx::query_as(
                    "SELECT account_id, product FROM plan_items WHERE plan_id = $1 AND id = $2",
                )
                .bind(&id)
                .bind(*item)
                .fetch_optional(&mut *tx)
                .await?;
                rows.extend(row);
            }
            rows
        };
        for (account, product) in &accounts {
            audit::record_in(
                &mut tx,
                state.db.now_ms(),
                audit::Entry {
                    actor: &actor,
                    role: Some(grant.role_name()),
                    action: if exclude {
                        "plan.item_excluded"
                    } else {
                        "plan.item_included"
                    },
                    account_id: Some(account),
                    product: Some(product),
                    details: json!({ "plan_id": id }),
                },
            )
            .await?;
        }
    }
    tx.commit().await?;
    let notice = match (changed, exclude) {
        (0, _) => "none",
        (_, true) => "excluded",
        (_, false) => "included",
    };
    let back = plan_url(
        &id,
        form.get("product").unwrap_or_default(),
        form.get("decision").unwrap_or_default(),
        0,
    );
    let separator = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{separator}notice={notice}")).into_response())
}

#[derive(Template)]
#[template(path = "admin/apply.html")]
struct ApplyPage {
    layout: Layout,
    plan: PlanRow,
    live: bool,
    to_warn: i64,
    to_remove: i64,
    excluded: i64,
    /// The queued or running apply of this plan, or the last one.
    progress: Option<Progress>,
    /// Another apply holds the site's lease: its run id.
    running_elsewhere: Option<String>,
    /// While the apply is queued or running the page reloads itself.
    refresh: bool,
}

/// How far an apply of the plan is.
struct Progress {
    /// queued | running | completed | interrupted | aborted | refused | failed
    status: String,
    run_id: Option<String>,
    done: i64,
    total: i64,
    failed: i64,
    /// Time left at the rate limit of the API the removals go through.
    eta: Option<String>,
    message: Option<String>,
    report: Option<crate::sweep::ApplyReport>,
}

async fn apply_counts(state: &AppState, id: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT decision, SUM(CASE WHEN excluded = 0 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN excluded <> 0 THEN 1 ELSE 0 END) FROM plan_items \
         WHERE plan_id = $1 AND state IN ('pending', 'failed') AND decision IN ('warn', 'remove') \
         GROUP BY decision",
    )
    .bind(id)
    .fetch_all(state.db.pool())
    .await?;
    let mut counts = (0, 0, 0);
    for (decision, included, excluded) in rows {
        match decision.as_str() {
            "warn" => counts.0 += included,
            _ => counts.1 += included,
        }
        counts.2 += excluded;
    }
    Ok(counts)
}

/// Seconds left for `remaining` items at the slowest removal family's rate limit.
fn eta(state: &AppState, remaining: i64) -> Option<String> {
    if remaining <= 0 {
        return None;
    }
    let limits = &state.config.atlassian;
    let rate = limits
        .jira
        .requests_per_second
        .min(limits.confluence.requests_per_second)
        .max(1);
    let seconds = remaining.unsigned_abs().div_ceil(u64::from(rate));
    Some(if seconds < 120 {
        format!("about {seconds} s")
    } else {
        format!("about {} min", seconds.div_ceil(60))
    })
}

#[derive(Debug, Deserialize, Default)]
pub struct ApplyQuery {
    job: Option<i64>,
}

async fn progress_of(
    state: &AppState,
    plan_id: &str,
    job_id: Option<i64>,
) -> Result<Option<Progress>, PageError> {
    let job = match job_id {
        Some(id) => state.queue.get(id).await?.filter(|job| {
            job.kind == crate::sweep::job::APPLY_JOB && job.payload.contains(plan_id)
        }),
        None => None,
    };
    let run = crate::sweep::store::latest_run_of(&state.db, plan_id).await?;
    let holder = crate::sweep::run_lease::running(&state.db, state.site()).await?;
    // A run marked `running` that no longer holds the site's lease lost its process.
    let run = run.map(|mut run| {
        if run.status == "running" && holder.as_ref().is_none_or(|(id, _)| *id != run.id) {
            run.status = "interrupted".into();
            run.error = Some(crate::sweep::store::STOPPED_RUN.into());
        }
        run
    });
    let run = run.filter(|run| {
        job.as_ref()
            .is_none_or(|job| run.started_at >= job.created_at)
    });
    let mut progress = match (&job, run) {
        (None, None) => return Ok(None),
        (_, Some(run)) => {
            let report = if run.status == "running" {
                None
            } else {
                crate::sweep::ApplyReport::parse(&run.id, &run.summary).ok()
            };
            Progress {
                eta: if run.status == "running" {
                    eta(state, run.items_total - run.items_done)
                } else {
                    None
                },
                status: run.status,
                run_id: Some(run.id),
                done: run.items_done,
                total: run.items_total,
                failed: run.items_failed,
                message: run.error,
                report,
            }
        }
        (Some(_), None) => Progress {
            status: "queued".into(),
            run_id: None,
            done: 0,
            total: 0,
            failed: 0,
            eta: None,
            message: None,
            report: None,
        },
    };
    if let Some(job) = job {
        match job.state.as_str() {
            "dead" => {
                progress.status = if job
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("another apply is running"))
                {
                    "refused".into()
                } else {
                    "failed".into()
                };
                progress.message = job.last_error;
            }
            "queued" | "running" if progress.status != "running" => {
                progress.status = "queued".into();
                progress.report = None;
                progress.message = job.last_error;
            }
            _ => {}
        }
    }
    Ok(Some(progress))
}

/// `GET /admin/plans/{id}/apply`: what applying will do and the button, or the progress of
/// the apply queued (`?job=`) or running.
pub async fn confirm_apply(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Query(query): Query<ApplyQuery>,
) -> PageResult {
    let plan = plan_row(&state, &session, &id).await?;
    let (to_warn, to_remove, excluded) = apply_counts(&state, &id).await?;
    let progress = progress_of(&state, &id, query.job).await?;
    let running = crate::sweep::run_lease::running(&state.db, state.site()).await?;
    let refresh = progress
        .as_ref()
        .is_some_and(|p| matches!(p.status.as_str(), "queued" | "running"));
    let running_elsewhere = running
        .map(|(run, _)| run)
        .filter(|run| progress.as_ref().and_then(|p| p.run_id.as_ref()) != Some(run));
    ok(&ApplyPage {
        layout: Layout::new(&state, &session, "plans"),
        plan,
        live: state.config.sweep.mode == Mode::Live,
        to_warn,
        to_remove,
        excluded,
        progress,
        running_elsewhere,
        refresh,
    })
}

/// `POST /admin/plans/{id}/apply`: queues the apply of the plan (once, however often the
/// button is pressed) and shows its progress page.
pub async fn apply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> PageResult {
    let plan = plan_record(&state, &id).await?;
    let grant = &form.session.grant;
    crate::sweep::scope::require_plan(&state.db, grant, &plan)
        .await
        .map_err(sweep_error)?;
    let job = crate::sweep::job::enqueue_apply(&state, &id).await?;
    let actor = form.session.actor();
    audit::record(
        &state.db,
        audit::Entry {
            actor: &actor,
            role: Some(grant.role_name()),
            action: "plan.apply_requested",
            account_id: None,
            product: None,
            details: json!({ "plan_id": id, "job_id": job }),
        },
    )
    .await?;
    let to = format!("/admin/plans/{}/apply?job={job}", urlencoding(&id));
    Ok(Redirect::to(&to).into_response())
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Template)]
#[template(path = "admin/import.html")]
struct ImportPage {
    layout: Layout,
    result: Option<ImportResult>,
    progress: Option<ImportProgress>,
    error: Option<String>,
}

pub struct ImportResult {
    pub plan_id: String,
    pub rows: u64,
    pub bad_rows: u64,
    /// Accounts the refused rows may have held (the lines they span).
    pub lost_accounts: u64,
    pub errors: Vec<String>,
    /// Merged columns, skipped rows, ignored values.
    pub notes: Vec<String>,
    /// The stale-data warning.
    pub stale: Option<String>,
    pub products: Vec<(String, String)>,
}

pub async fn import_page(State(state): State<AppState>, session: AdminSession) -> PageResult {
    ok(&ImportPage {
        layout: Layout::new(&state, &session, "import"),
        result: None,
        progress: None,
        error: None,
    })
}

/// `POST /admin/import`: a multipart form with `csrf` and `file` (an admin "Export users"
/// CSV, streamed to disk under `admin.import_max_bytes`); plans from it and shows the parse
/// report.
pub async fn import(
    State(state): State<AppState>,
    session: AdminSession,
    mut multipart: Multipart,
) -> PageResult {
    let upload =
        match super::upload::receive(&mut multipart, state.config.admin.import_max_bytes).await {
            Ok(upload) => upload,
            Err(refused) => return Ok(refused.0),
        };
    if !same_secret(&upload.csrf, &session.csrf) {
        return Ok(csrf_refused(&session.admin));
    }
    // An import plans the whole site: a grant limited to some products may not.
    crate::sweep::scope::require_site(&state.db, &session.grant, state.site())
        .await
        .map_err(sweep_error)?;
    let layout = Layout::new(&state, &session, "import");
    let Some(file) = upload.file.filter(|f| f.bytes > 0) else {
        return Ok(render(
            StatusCode::BAD_REQUEST,
            ImportPage {
                layout,
                result: None,
                progress: None,
                error: Some("Choose a CSV file to upload.".into()),
            }
            .render(),
        ));
    };
    // Planned in the background on this server (it holds the file); the page follows it.
    let id = uuid::Uuid::now_v7().to_string();
    let now = state.db.now_ms();
    sqlx::query(
        "INSERT INTO imports (id, admin, status, phase, rows_read, bytes, created_at, updated_at) \
         VALUES ($1, $2, 'running', 'received the file', 0, $3, $4, $4)",
    )
    .bind(&id)
    .bind(&session.admin)
    .bind(i64::try_from(file.bytes).unwrap_or(i64::MAX))
    .bind(now)
    .execute(state.db.pool())
    .await?;
    tokio::spawn(run_import(
        state.clone(),
        id.clone(),
        (session.actor(), session.grant.role_name()),
        file,
    ));
    Ok(axum::response::Redirect::to(&format!("/admin/import/{id}")).into_response())
}

/// How often a running import writes its progress (and proves it is alive).
const IMPORT_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// A running import whose row has not moved for this long lost its server.
const IMPORT_STALLED_MS: i64 = 60_000;

/// Plans from an uploaded file, writing its progress to the import's row.
async fn run_import(
    state: AppState,
    id: String,
    (actor, role): (String, &'static str),
    file: super::upload::StoredFile,
) {
    let bar = indicatif::ProgressBar::hidden();
    let ticker = {
        let (state, id, bar) = (state.clone(), id.clone(), bar.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(IMPORT_TICK);
            loop {
                every.tick().await;
                let message = bar.message();
                // The server's own temporary path means nothing to the admin.
                let phase = if message.starts_with("reading /") {
                    "reading the file".to_owned()
                } else if message.is_empty() {
                    "starting".to_owned()
                } else {
                    message
                };
                let written = sqlx::query(
                    "UPDATE imports SET phase = $1, rows_read = $2, updated_at = $3 \
                     WHERE id = $4 AND status = 'running'",
                )
                .bind(phase)
                .bind(i64::try_from(bar.position()).unwrap_or(i64::MAX))
                .bind(state.db.now_ms())
                .bind(&id)
                .execute(state.db.pool())
                .await;
                if let Err(error) = written {
                    tracing::warn!(%error, "cannot record an import's progress");
                }
            }
        })
    };
    let planned = crate::sweep::plan(
        &state,
        &[Source::Csv(file.path.clone())],
        state.clock().now(),
        &bar,
    )
    .await;
    ticker.abort();
    drop(file);
    let (status, plan_id, error) = match planned {
        Ok(planned) => {
            let audited = audit::record(
                &state.db,
                audit::Entry {
                    actor: &actor,
                    role: Some(role),
                    action: "plan.imported",
                    account_id: None,
                    product: None,
                    details: json!({
                        "plan_id": planned.plan_id,
                        "csv_rows": planned.summary.csv_rows,
                        "csv_bad_rows": planned.summary.csv_bad_rows,
                    }),
                },
            )
            .await;
            if let Err(error) = audited {
                tracing::error!(%error, "cannot audit an import");
            }
            ("done", Some(planned.plan_id), None)
        }
        Err(error) => {
            if !matches!(
                error,
                SweepError::Csv(_) | SweepError::Config(_) | SweepError::Governance(_)
            ) {
                tracing::error!(%error, "planning from an uploaded CSV failed");
            }
            ("failed", None, Some(error.to_string()))
        }
    };
    let finished = sqlx::query(
        "UPDATE imports SET status = $1, plan_id = $2, error = $3, rows_read = $4, \
         phase = 'finished', updated_at = $5 WHERE id = $6",
    )
    .bind(status)
    .bind(plan_id)
    .bind(error)
    .bind(i64::try_from(bar.position()).unwrap_or(i64::MAX))
    .bind(state.db.now_ms())
    .bind(&id)
    .execute(state.db.pool())
    .await;
    if let Err(error) = finished {
        tracing::error!(%error, "cannot record the end of an import");
    }
}

/// An `imports` row.
#[derive(sqlx::FromRow)]
struct ImportRow {
    status: String,
    phase: String,
    rows_read: i64,
    bytes: i64,
    plan_id: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// An import's progress as the page shows it.
pub struct ImportProgress {
    pub phase: String,
    pub rows: i64,
    pub megabytes: String,
    pub seconds: i64,
}

/// `GET /admin/import/{id}`: an import's progress (the page refreshes itself), then its
/// summary, or why it failed.
pub async fn import_progress(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> PageResult {
    let row: Option<ImportRow> = sqlx::query_as(
        "SELECT status, phase, rows_read, bytes, plan_id, error, created_at, updated_at \
         FROM imports WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(state.db.pool())
    .await?;
    let Some(ImportRow {
        status,
        phase,
        rows_read: rows,
        bytes,
        plan_id,
        error,
        created_at: created,
        updated_at: updated,
    }) = row
    else {
        return Err(PageError::NotFound(format!("no import {id}")));
    };
    let layout = Layout::new(&state, &session, "import");
    let now = state.db.now_ms();
    let page = match (status.as_str(), plan_id) {
        ("running", _) if now - updated > IMPORT_STALLED_MS => ImportPage {
            layout,
            result: None,
            progress: None,
            error: Some(
                "The server planning this file stopped before it finished (it restarted). Upload the file again.".into(),
            ),
        },
        ("running", _) => ImportPage {
            layout,
            result: None,
            progress: Some(ImportProgress {
                phase,
                rows,
                megabytes: format!("{:.1}", bytes as f64 / 1e6),
                seconds: (now - created) / 1000,
            }),
            error: None,
        },
        ("done", Some(plan_id)) => {
            let plan = crate::sweep::store::get_plan(&state.db, &plan_id)
                .await?
                .ok_or_else(|| PageError::NotFound(format!("no plan {plan_id}")))?;
            let summary = crate::sweep::plan::PlanSummary::parse(&plan.id, &plan.summary)
                .map_err(|e| PageError::Internal(e.into()))?;
            ImportPage {
                layout,
                result: Some(import_result(plan_id, summary)),
                progress: None,
                error: None,
            }
        }
        _ => {
            return Ok(render(
                StatusCode::UNPROCESSABLE_ENTITY,
                ImportPage {
                    layout,
                    result: None,
                    progress: None,
                    error: Some(error.unwrap_or_else(|| "The import failed.".into())),
                }
                .render(),
            ));
        }
    };
    ok(&page)
}

fn import_result(plan_id: String, summary: crate::sweep::plan::PlanSummary) -> ImportResult {
    ImportResult {
        plan_id,
        rows: summary.csv_rows,
        bad_rows: summary.csv_bad_rows,
        lost_accounts: summary.csv_lost_accounts,
        errors: summary.csv_errors,
        notes: summary.csv_notes,
        stale: summary.stale,
        products: summary
            .products
            .iter()
            .map(|(product, counts)| {
                (
                    product.clone(),
                    counts
                        .decisions
                        .iter()
                        .map(|(d, n)| format!("{d} {n}"))
                        .collect::<Vec<_>>()
                        .join(" · "),
                )
            })
            .collect(),
    }
}
