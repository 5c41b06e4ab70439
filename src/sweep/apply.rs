//! `reseat sweep apply`: runs the ladder over a stored plan.
//!
//! Before any change the guards run (blast radius per product, stale data); a tripped guard
//! aborts with an audit entry and changes nothing. Then each actionable item (`warn`,
//! `remove`; state `pending` or `failed`) is re-checked just before acting (a running keep;
//! activity since the plan when the plan is at least `sweep.recheck_after` old, read once
//! per apply from the admin user listing, per user only for accounts it does not list) and:
//! - `warn`: a `sweep_warnings` row (once per plan) and the warning handed to
//!   [`super::notify::notify_warning`], in one transaction;
//! - `remove`: the memberships the plan saw in the product's access groups
//!   (`plan_items.access_groups`, no per-user read) are journaled (`journal`,
//!   `action = 'removed'`, `run_id` = plan id) and committed FIRST, then removed one by one.
//!   When Atlassian answers "not a member" on the first attempt, a `not_member` row of the
//!   same run follows, so a restore does not add a group the user was not in.
//!
//! Items are taken in plan order, 200 at a time, in lanes: the Jira removals and the
//! Confluence removals side by side (Atlassian limits each API family on its own), then the
//! warnings, each lane with up to its family's `atlassian.<family>.concurrency` items in
//! flight, so the run is bound by the busiest family's rate limit rather than by one call's
//! latency after another or by the families' limits one after the other. The admin calls
//! of a removal (role revokes, the read-back) go through the one admin client and its
//! limiter, whichever lane sends them. A dry run takes the lanes one after the other.
//!
//! Progress is the item's `state`: after a crash, `apply` on the same plan continues with
//! the items not done. A journal row is unique per (account, product, site, group, plan), a
//! warning per (account, product, site, plan), and removing a membership already gone is
//! success: running again never journals or warns twice. `mode = "dry-run"` records what
//! would happen in the run summary and changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;

use super::SweepError;
use super::config::Mode;
use super::item::ItemState;
use super::notify::{RemovalNotice, WarningNotice, notify_removal, notify_warning};
use super::plan::PlanSummary;
use super::population::AccessGroup;
use super::store::{self, PlanItem, PlanRecord};
use crate::activity::SiteFilter;
use crate::activity::api::{AdminActivity, ListedActivity, SiteDates};
use crate::app::AppState;
use crate::atlassian::{AccountId, ApiFamily, GroupId, MembershipOutcome, ProductKey};
use crate::audit;
use crate::ledger::{self, JournalEntry};
use crate::store::time::{from_ms, to_ms};

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The time decisions are checked against.
    pub now: DateTime<Utc>,
    /// Live mode changes Atlassian only when confirmed (`--yes`).
    pub confirmed: bool,
    /// Test hook: stop (as if killed) after this many items were handled.
    pub stop_after: Option<usize>,
    /// Advanced by one per item handled (its length is set to the items to apply); the
    /// run's row (`sweep_runs.items_*`) follows too, for the dashboard's progress page.
    pub progress: indicatif::ProgressBar,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            now: Utc::now(),
            confirmed: false,
            stop_after: None,
            progress: indicatif::ProgressBar::hidden(),
        }
    }
}

/// What a run did, stored as `sweep_runs.summary`: THE contract of that column, written by
/// apply and read by the digest, the admin pages and the API ([`ApplyReport::parse`]).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ApplyReport {
    pub plan_id: String,
    pub run_id: String,
    pub dry_run: bool,
    pub warned: u64,
    pub removed_users: u64,
    pub removed_memberships: u64,
    /// Kept at the last moment: active again, or a running keep.
    pub skipped: u64,
    pub failed: u64,
    /// Direct roles revoked on the product's resource.
    pub revoked_roles: u64,
    /// Removals after which a billable role still kept the seat (item state `still_billed`).
    pub still_billed: u64,
    /// Accounts suspended org-wide (`sweep.ladder.suspend`).
    pub suspended: u64,
    /// Accounts removed from the org directory (`sweep.ladder.delete_after`).
    pub deleted: u64,
    /// Stopped before the end (test hook); run `apply` again to continue.
    pub interrupted: bool,
    /// Dry run: what would happen, per item (`account product: action`).
    pub would: Vec<String>,
    /// Re-check before acting: admin users listing pages read (0: the plan was younger
    /// than `sweep.recheck_after`, or nothing to act on).
    pub recheck_listing_pages: u64,
    /// Re-check: per-user `last-active-dates` lookups for items the listing had no date for.
    pub recheck_lookups: u64,
}

/// Checks the blast-radius and stale-data guards over a whole plan.
pub fn check_guards(
    config: &super::config::SweepConfig,
    summary: &PlanSummary,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let limits = &config.limits;
    for (product, counts) in &summary.products {
        let count = |d: &str| counts.decisions.get(d).copied().unwrap_or(0);
        let removals = count("remove");
        if removals > limits.max_removals {
            return Err(format!(
                "{product}: {removals} removals exceed sweep.limits.max_removals ({})",
                limits.max_removals
            ));
        }
        if counts.users > 0 {
            let percent = removals as f64 * 100.0 / counts.users as f64;
            if percent > limits.max_removal_percent {
                return Err(format!(
                    "{product}: {removals} removals are {percent:.1} % of its {} users, more than sweep.limits.max_removal_percent ({} %)",
                    counts.users, limits.max_removal_percent
                ));
            }
        }
        let inactive = removals + count("warn");
        let evaluated = inactive + count("keep");
        if evaluated >= 10 {
            let percent = inactive as f64 * 100.0 / evaluated as f64;
            if percent > limits.max_inactive_percent {
                return Err(format!(
                    "{product}: {inactive} of {evaluated} evaluated users ({percent:.1} %) look inactive, more than sweep.limits.max_inactive_percent ({} %): is the activity data stale?",
                    limits.max_inactive_percent
                ));
            }
        }
    }
    if let Some(stale) = stale_data(config, summary, now) {
        return Err(stale);
    }
    Ok(())
}

/// The stale-data check: why a plan that acts on anybody has activity data too old (or none)
/// to trust. Apply refuses such a plan; the plan reports it when it is made.
pub fn stale_data(
    config: &super::config::SweepConfig,
    summary: &PlanSummary,
    now: DateTime<Utc>,
) -> Option<String> {
    let acting = summary
        .products
        .values()
        .flat_map(|counts| {
            ["remove", "warn"].map(|d| counts.decisions.get(d).copied().unwrap_or(0))
        })
        .sum::<u64>();
    if acting == 0 {
        return None;
    }
    let stale =
        chrono::Duration::from_std(config.limits.stale_after).unwrap_or(chrono::Duration::MAX);
    match summary.newest_activity.map(from_ms) {
        None => Some("the plan has no activity at all: the activity data looks broken".to_owned()),
        Some(newest) if now - newest > stale => Some(format!(
            "the newest activity in the whole plan is {} ({} days old), older than sweep.limits.stale_after: is the activity data stale?",
            newest.format("%Y-%m-%d"),
            (now - newest).num_days()
        )),
        Some(_) => None,
    }
}

/// Applies a plan (the newest when `plan_id` is `None`), holding the site's apply lease for
/// the whole run ([`super::run_lease`]): a second apply meanwhile stops with
/// [`SweepError::Busy`].
#[tracing::instrument(skip_all, fields(plan = plan_id.unwrap_or("latest")))]
pub async fn apply(
    state: &AppState,
    plan_id: Option<&str>,
    options: &ApplyOptions,
) -> Result<ApplyReport, SweepError> {
    // A plan is applied on its own site, whichever site's view the caller holds.
    let site_state;
    let state = match plan_id {
        Some(id) => match store::get_plan(&state.db, id).await? {
            Some(plan) if plan.site != state.site() => {
                site_state = state.for_site(&plan.site).ok_or_else(|| {
                    SweepError::Config(format!(
                        "plan {id} is for site {}, which this configuration does not manage",
                        plan.site
                    ))
                })?;
                &site_state
            }
            _ => state,
        },
        None => state,
    };
    let lease = super::run_lease::acquire(&state.db, state.site()).await?;
    let result = apply_leased(state, &lease, plan_id, options).await;
    lease.release().await;
    result
}

/// [`apply`] under a lease the caller holds (`reseat sweep` holds it from the plan on).
pub async fn apply_leased(
    state: &AppState,
    lease: &super::run_lease::ApplyLease,
    plan_id: Option<&str>,
    options: &ApplyOptions,
) -> Result<ApplyReport, SweepError> {
    let config = &state.config.sweep;
    let dry_run = config.mode == Mode::DryRun;
    if !dry_run && !options.confirmed {
        return Err(SweepError::NeedsConfirmation);
    }
    let plan = match plan_id {
        Some(id) => store::get_plan(&state.db, id).await?,
        None => store::latest_plan(&state.db, state.site()).await?,
    }
    .ok_or_else(|| SweepError::NoPlan(plan_id.map(str::to_owned)))?;
    // The summary's counts feed the guards: one that does not parse, or does not match the
    // plan's items, stops the run before any change.
    let summary = PlanSummary::parse(&plan.id, &plan.summary)?;
    check_summary_matches_items(state, &plan, &summary).await?;
    let mode = if dry_run { "dry-run" } else { "live" };
    let run_id = lease.run_id().to_owned();
    store::start_run(
        &state.db,
        &run_id,
        "apply",
        Some(&plan.id),
        mode,
        &plan.site,
    )
    .await?;
    let mut report = ApplyReport {
        plan_id: plan.id.clone(),
        run_id: run_id.clone(),
        dry_run,
        ..ApplyReport::default()
    };
    if let Err(message) = check_guards(config, &summary, options.now) {
        audit::record(
            &state.db,
            audit::Entry {
                actor: "reseat",
                role: None,
                action: "sweep.aborted",
                account_id: None,
                product: None,
                details: serde_json::json!({ "plan_id": plan.id, "run_id": run_id, "reason": message }),
            },
        )
        .await?;
        store::finish_run(
            &state.db,
            &run_id,
            "aborted",
            &serde_json::json!({}),
            Some(&message),
        )
        .await?;
        return Err(SweepError::Aborted(message));
    }
    if plan.site != state.site() {
        return Err(SweepError::Config(format!(
            "plan {} is for site {}, this configuration manages {}",
            plan.id,
            plan.site,
            state.site()
        )));
    }
    if !dry_run {
        store::set_plan_status(&state.db, &plan.id, "applying").await?;
    }
    let recheck = if dry_run {
        None
    } else {
        recheck_listing(state, &plan, options, &mut report).await?
    }
    .map(std::sync::Mutex::new);
    let total = store::actionable_pairs(&state.db, &plan.id).await?.len() as u64;
    options.progress.set_length(total);
    options.progress.set_position(0);
    store::set_run_progress(&state.db, &run_id, total, 0, 0).await?;
    // The Jira and Confluence lanes side by side (each family has its own upstream limit
    // and its own `concurrency`), then the warnings.
    let run = LaneRun {
        state,
        plan: &plan,
        summary: &summary,
        recheck: recheck.as_ref(),
        options,
        run_id: &run_id,
        total,
        dry_run,
        shared: std::sync::Mutex::new(LaneProgress {
            report,
            handled: 0,
            progressed: 0,
        }),
        progress_write: tokio::sync::Mutex::new(()),
    };
    if dry_run {
        // One item at a time, in plan order: the report's `would` list reads the same
        // every time.
        run.lane(Lane::Jira).await?;
        run.lane(Lane::Confluence).await?;
    } else {
        let (jira, confluence) =
            futures_util::join!(run.lane(Lane::Jira), run.lane(Lane::Confluence));
        jira?;
        confluence?;
    }
    if !run.interrupted() {
        run.lane(Lane::Local).await?;
    }
    let mut report = run
        .shared
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .report;
    if !report.interrupted {
        suspend_step(state, &plan, options, &mut report).await?;
        delete_step(state, &plan, options, &mut report).await?;
    }
    let status = if report.interrupted {
        "interrupted"
    } else {
        if !dry_run && report.failed == 0 {
            store::set_plan_status(&state.db, &plan.id, "applied").await?;
        }
        "completed"
    };
    let details = serde_json::to_value(&report).unwrap_or_default();
    store::finish_run(&state.db, &run_id, status, &details, None).await?;
    audit::record(
        &state.db,
        audit::Entry {
            actor: "reseat",
            role: None,
            action: if dry_run {
                "sweep.dry_run"
            } else {
                "sweep.applied"
            },
            account_id: None,
            product: None,
            details: serde_json::json!({
                "plan_id": plan.id, "run_id": run_id, "status": status,
                "warned": report.warned, "removed_users": report.removed_users,
                "removed_memberships": report.removed_memberships,
                "revoked_roles": report.revoked_roles, "still_billed": report.still_billed,
                "skipped": report.skipped, "failed": report.failed,
                "suspended": report.suspended, "deleted": report.deleted,
            }),
        },
    )
    .await?;
    Ok(report)
}

/// One apply's lanes: what they share (the report, the `stop_after` budget, the progress).
struct LaneRun<'a> {
    state: &'a AppState,
    plan: &'a PlanRecord,
    summary: &'a PlanSummary,
    recheck: Option<&'a std::sync::Mutex<Recheck>>,
    options: &'a ApplyOptions,
    run_id: &'a str,
    total: u64,
    dry_run: bool,
    shared: std::sync::Mutex<LaneProgress>,
    /// Serializes the run row's progress writes, so that it never goes backwards.
    progress_write: tokio::sync::Mutex<()>,
}

struct LaneProgress {
    report: ApplyReport,
    /// Items taken so far (the `stop_after` budget).
    handled: usize,
    progressed: u64,
}

impl LaneRun<'_> {
    fn shared(&self) -> std::sync::MutexGuard<'_, LaneProgress> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn interrupted(&self) -> bool {
        self.shared().report.interrupted
    }

    /// Applies the lane's items in plan order, 200 at a time, up to the family's
    /// `concurrency` in flight.
    async fn lane(&self, lane: Lane) -> Result<(), SweepError> {
        let (state, options) = (self.state, self.options);
        let concurrency = if self.dry_run {
            1
        } else {
            lane.concurrency(state)
        };
        let mut after = 0i64;
        loop {
            if self.interrupted() {
                return Ok(());
            }
            let batch = store::actionable_items(&state.db, &self.plan.id, after, 200).await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = last.id;
            let mut items: Vec<PlanItem> = batch
                .into_iter()
                .filter(|item| Lane::of(item) == lane)
                .collect();
            {
                let mut shared = self.shared();
                if let Some(n) = options.stop_after {
                    let room = n.saturating_sub(shared.handled);
                    if items.len() > room {
                        items.truncate(room);
                        shared.report.interrupted = true;
                    }
                }
                shared.handled += items.len();
            }
            let results = futures_util::stream::iter(items.into_iter().map(|item| async move {
                let mut delta = ApplyReport::default();
                let result = apply_item(
                    state,
                    self.plan,
                    self.summary,
                    self.recheck,
                    &item,
                    options,
                    &mut delta,
                )
                .await;
                (item, result, delta)
            }))
            .buffer_unordered(concurrency);
            futures_util::pin_mut!(results);
            while let Some((item, result, delta)) = results.next().await {
                {
                    let mut shared = self.shared();
                    shared.report.absorb(delta);
                    shared.progressed += 1;
                    if result.is_err() {
                        shared.report.failed += 1;
                    }
                }
                options.progress.inc(1);
                if let Err(error) = result {
                    tracing::warn!(account = %item.account_id, product = %item.product, %error, "sweep item failed");
                    if !self.dry_run {
                        let mut conn = state.db.pool().acquire().await?;
                        store::set_item_state_in(
                            &mut conn,
                            state.db.now_ms(),
                            item.id,
                            ItemState::Failed,
                            &error.to_string(),
                        )
                        .await?;
                    }
                }
            }
            let _write = self.progress_write.lock().await;
            let (progressed, failed) = {
                let shared = self.shared();
                (shared.progressed, shared.report.failed)
            };
            store::set_run_progress(&state.db, self.run_id, self.total, progressed, failed).await?;
        }
    }
}

/// The API family an item's action goes through. The Jira and Confluence lanes run side by
/// side, each with up to its family's `concurrency` items in flight, so that each family's
/// own rate limit (not the latency of one call after another) bounds the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    Jira,
    Confluence,
    /// Warnings: the database and the outbox only.
    Local,
}

impl Lane {
    fn of(item: &PlanItem) -> Lane {
        if item.decision != "remove" {
            Lane::Local
        } else {
            match ProductKey::parse(&item.product)
                .ok()
                .and_then(|p| p.family())
            {
                Some(ApiFamily::Confluence) => Lane::Confluence,
                // A product without a family is refused when its removal is sent.
                Some(ApiFamily::Jira) | None => Lane::Jira,
            }
        }
    }

    fn concurrency(self, state: &AppState) -> usize {
        let limits = &state.config.atlassian;
        let n = match self {
            Lane::Jira | Lane::Local => limits.jira.concurrency,
            Lane::Confluence => limits.confluence.concurrency,
        };
        (n as usize).max(1)
    }
}

impl ApplyReport {
    /// Parses a stored `sweep_runs.summary` (`{}` for a run that stopped before acting).
    pub fn parse(run_id: &str, text: &str) -> Result<ApplyReport, SweepError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            SweepError::Summary(format!(
                "run {run_id}: the stored summary does not parse at `{}`: {}",
                error.path(),
                error.inner()
            ))
        })
    }

    /// Adds what one item did.
    fn absorb(&mut self, item: ApplyReport) {
        self.warned += item.warned;
        self.removed_users += item.removed_users;
        self.removed_memberships += item.removed_memberships;
        self.skipped += item.skipped;
        self.failed += item.failed;
        self.recheck_lookups += item.recheck_lookups;
        self.revoked_roles += item.revoked_roles;
        self.still_billed += item.still_billed;
        self.would.extend(item.would);
    }
}

/// The summary's per-product decision counts must be the plan's items' (the guards read
/// the summary).
async fn check_summary_matches_items(
    state: &AppState,
    plan: &PlanRecord,
    summary: &PlanSummary,
) -> Result<(), SweepError> {
    let counted = store::decision_counts(&state.db, &plan.id).await?;
    let mut summarized: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (product, counts) in &summary.products {
        for (decision, n) in &counts.decisions {
            if *n > 0 {
                summarized.insert((product.clone(), decision.clone()), *n);
            }
        }
    }
    if counted != summarized {
        return Err(SweepError::Summary(format!(
            "plan {}: the stored summary's counts do not match its items; nothing changed",
            plan.id
        )));
    }
    Ok(())
}

async fn finish_item(
    state: &AppState,
    item: &PlanItem,
    item_state: ItemState,
    outcome: &str,
) -> Result<(), SweepError> {
    let mut conn = state.db.pool().acquire().await?;
    set_state_in(&mut conn, state.db.now_ms(), item, item_state, outcome).await
}

/// Moves an item on (a compare-and-set): an item that changed meanwhile is an error, and
/// the surrounding transaction, if any, is not committed.
async fn set_state_in(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    item: &PlanItem,
    item_state: ItemState,
    outcome: &str,
) -> Result<(), SweepError> {
    if store::set_item_state_in(conn, now, item.id, item_state, outcome).await? {
        Ok(())
    } else {
        Err(SweepError::Config(format!(
            "plan item {} changed while it was applied; not marked {item_state}",
            item.id
        )))
    }
}

/// Activity re-read once per apply from the admin users listing, for the re-check before
/// acting.
struct Recheck {
    listed: ListedActivity,
    /// Per-user answers for accounts the listing does not cover (unmanaged accounts with the
    /// managed listing), one call per account however many of its items need one.
    looked_up: HashMap<AccountId, Option<SiteDates>>,
}

impl Recheck {
    /// Activity of `account` in `product` on the site since the listing, when known without
    /// another call (`Err(())`: ask per user).
    fn known(
        &self,
        account: &AccountId,
        product: &ProductKey,
    ) -> Result<Option<DateTime<Utc>>, ()> {
        if let Some(at) = self.listed.newest.get(&(account.clone(), product.clone())) {
            return Ok(Some(*at));
        }
        if self.listed.listed.contains(account) {
            return Ok(None);
        }
        match self.looked_up.get(account) {
            Some(dates) => Ok(dates.as_ref().and_then(|dates| {
                dates
                    .iter()
                    .filter(|(key, _)| key == product)
                    .map(|(_, at)| *at)
                    .max()
            })),
            None => Err(()),
        }
    }
}

fn admin_activity<'a>(state: &'a AppState, site: &'a SiteFilter) -> Option<AdminActivity<'a>> {
    let (Some(admin), Some(org)) = (&state.atlassian.admin, &state.atlassian.org_id) else {
        return None;
    };
    Some(AdminActivity::new(
        admin,
        org,
        site,
        &state.config.atlassian,
    ))
}

/// Reads the listing for the re-check, unless the plan is younger than
/// `sweep.recheck_after`, nothing is left to act on, or there is no admin API.
async fn recheck_listing(
    state: &AppState,
    plan: &PlanRecord,
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<Option<Recheck>, SweepError> {
    let config = &state.config.sweep;
    let age = options.now - from_ms(plan.created_at);
    let after = chrono::Duration::from_std(config.recheck_after).unwrap_or(chrono::Duration::MAX);
    if age < after {
        return Ok(None);
    }
    let site = SiteFilter::of(&state.config.atlassian);
    let Some(source) = admin_activity(state, &site) else {
        return Ok(None);
    };
    let products = config.product_keys();
    let pairs: Vec<(AccountId, ProductKey)> = store::actionable_pairs(&state.db, &plan.id)
        .await?
        .into_iter()
        .filter_map(|(a, p)| Some((AccountId::parse(a).ok()?, ProductKey::parse(&p).ok()?)))
        .filter(|(_, p)| products.contains(p))
        .collect();
    let accounts: HashSet<AccountId> = pairs.iter().map(|(a, _)| a.clone()).collect();
    if accounts.is_empty() {
        return Ok(None);
    }
    let listed = source.listed_activity(&accounts, &products).await?;
    report.recheck_listing_pages = listed.pages;
    // Accounts the listing does not cover: one lookup each, concurrently, up to
    // `atlassian.admin.concurrency`.
    let missing: HashSet<AccountId> = accounts
        .into_iter()
        .filter(|account| !listed.listed.contains(account))
        .collect();
    let concurrency = (state.config.atlassian.admin.concurrency as usize).max(1);
    let source = &source;
    let lookups = futures_util::stream::iter(missing.into_iter().map(|account| async move {
        let dates = source.site_dates(&account).await;
        (account, dates)
    }))
    .buffer_unordered(concurrency);
    futures_util::pin_mut!(lookups);
    let mut looked_up = HashMap::new();
    while let Some((account, dates)) = lookups.next().await {
        report.recheck_lookups += 1;
        looked_up.insert(account, dates?.map(|(dates, _)| dates));
    }
    Ok(Some(Recheck { listed, looked_up }))
}

/// Newest activity per product on the site for one account, straight from the admin API
/// (`last-active-dates`; `None` when the API does not know the account).
async fn current_activity(
    state: &AppState,
    account: &AccountId,
) -> Result<Option<SiteDates>, SweepError> {
    let site = SiteFilter::of(&state.config.atlassian);
    let Some(source) = admin_activity(state, &site) else {
        return Ok(None);
    };
    Ok(source.site_dates(account).await?.map(|(dates, _)| dates))
}

async fn apply_item(
    state: &AppState,
    plan: &PlanRecord,
    summary: &PlanSummary,
    recheck: Option<&std::sync::Mutex<Recheck>>,
    item: &PlanItem,
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    let config = &state.config.sweep;
    let dry_run = config.mode == Mode::DryRun;
    let account = AccountId::parse(item.account_id.as_str())
        .map_err(|e| SweepError::Config(e.to_string()))?;
    let product =
        ProductKey::parse(&item.product).map_err(|e| SweepError::Config(e.to_string()))?;
    let site = plan.site.as_str();
    let now = options.now;

    // A keep recorded since the plan wins.
    if let Some(until) =
        ledger::keeps::kept_until(&state.db, &item.account_id, &item.product, site, now).await?
    {
        report.skipped += 1;
        let outcome = format!(
            "kept: the user asked to keep access until {}",
            until.format("%Y-%m-%d")
        );
        if dry_run {
            report.would.push(format!(
                "{} {}: skip ({outcome})",
                item.account_id, item.product
            ));
        } else {
            finish_item(state, item, ItemState::Skipped, &outcome).await?;
        }
        return Ok(());
    }
    // Activity since the plan wins: re-checked before acting (live runs of a plan at least
    // `sweep.recheck_after` old), from the listing read once per apply, else per user.
    let current = match recheck {
        Some(recheck) if !dry_run && config.product(&product).is_some() => {
            let lock = || {
                recheck
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            let known = lock().known(&account, &product);
            match known {
                Ok(at) => at,
                Err(()) => {
                    report.recheck_lookups += 1;
                    let dates = current_activity(state, &account).await?;
                    let mut recheck = lock();
                    recheck.looked_up.insert(account.clone(), dates);
                    recheck.known(&account, &product).ok().flatten()
                }
            }
        }
        _ => None,
    };
    if let Some(policy) = config.product(&product)
        && let Some(at) = current
        && item.last_active.is_none_or(|planned| to_ms(at) > planned)
    {
        let lag = chrono::Duration::from_std(config.lag_margin).unwrap_or_default();
        let limit = chrono::Duration::from_std(policy.inactive_after).unwrap_or_default();
        if now - at - lag <= limit {
            report.skipped += 1;
            let outcome = format!("kept: active again on {}", at.format("%Y-%m-%d"));
            finish_item(state, item, ItemState::Skipped, &outcome).await?;
            return Ok(());
        }
    }
    match item.decision.as_str() {
        "warn" => warn(state, plan, item, options, report).await,
        "remove" => remove(state, plan, summary, item, &account, &product, report).await,
        _ => Ok(()),
    }
}

async fn warn(
    state: &AppState,
    plan: &PlanRecord,
    item: &PlanItem,
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    let config = &state.config.sweep;
    let warn_before = chrono::Duration::from_std(config.ladder.warn_before).unwrap_or_default();
    let last_active = item.last_active.map(from_ms);
    let mut earlier =
        store::latest_warnings_of(&state.db, &item.account_id, &item.product, &plan.site)
            .await?
            .filter(|w| last_active.is_none_or(|at| *w > at));
    // A warning before the seat was given back warned of a removal that happened: the
    // seat's next removal (a time-bound grant's end) gets its own.
    if let Some(w) = earlier
        && ledger::journal::seat_restored_since(
            &state.db,
            &item.account_id,
            &item.product,
            &plan.site,
            w.timestamp_millis(),
        )
        .await?
    {
        earlier = None;
    }
    if config.mode == Mode::DryRun {
        let what = match earlier {
            Some(w) => format!("already warned {}", w.format("%Y-%m-%d")),
            None => "warn".to_owned(),
        };
        report
            .would
            .push(format!("{} {}: {what}", item.account_id, item.product));
        return Ok(());
    }
    let mut tx = state.db.pool().begin().await?;
    let outcome = if let Some(w) = earlier {
        format!("already warned {}", w.format("%Y-%m-%d"))
    } else {
        let remove_after = options.now + warn_before;
        let recorded = store::record_warning_in(
            &mut tx,
            &store::Warning {
                account_id: &item.account_id,
                product: &item.product,
                site: &plan.site,
                plan_id: &plan.id,
                email: item.email.as_deref(),
                warned_at: options.now,
                remove_after,
            },
        )
        .await?;
        if recorded {
            notify_warning(
                state,
                &mut tx,
                &WarningNotice {
                    plan_id: &plan.id,
                    account_id: &item.account_id,
                    product: &item.product,
                    site: &plan.site,
                    email: item.email.as_deref(),
                    display_name: item.display_name.as_deref(),
                    last_active,
                    remove_after,
                    reason: &item.reason,
                },
            )
            .await?;
            report.warned += 1;
        }
        format!("warned; removal from {}", remove_after.format("%Y-%m-%d"))
    };
    set_state_in(&mut tx, state.db.now_ms(), item, ItemState::Done, &outcome).await?;
    tx.commit().await?;
    Ok(())
}

/// One of an item's access groups as the plan stored it (`plan_items.access_groups`).
#[derive(Debug, serde::Deserialize)]
struct PlannedGroup {
    id: GroupId,
    name: String,
}

async fn remove(
    state: &AppState,
    plan: &PlanRecord,
    summary: &PlanSummary,
    item: &PlanItem,
    account: &AccountId,
    product: &ProductKey,
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    let dry_run = state.config.sweep.mode == Mode::DryRun;
    let product_groups = summary
        .access_groups
        .get(product.as_str())
        .cloned()
        .unwrap_or_default();
    // The memberships the plan saw (from the group-member pages), with the products each
    // group grants: no per-user read before acting.
    // Unreadable: an error (the item fails and stays to apply), never "nothing to remove".
    let planned: Vec<PlannedGroup> =
        serde_json::from_str(&item.access_groups).map_err(|error| {
            SweepError::Summary(format!(
                "plan item {}: access_groups does not parse ({error}); nothing removed",
                item.id
            ))
        })?;
    let taken: Vec<AccessGroup> = planned
        .into_iter()
        .map(|g| {
            product_groups
                .iter()
                .find(|known| known.id == g.id)
                .cloned()
                .unwrap_or(AccessGroup {
                    id: g.id,
                    name: g.name,
                    products: vec![product.clone()],
                    other_sites: Vec::new(),
                })
        })
        .collect();
    if let Some(shared) = taken.iter().find(|g| g.products.len() > 1) {
        return Err(SweepError::Config(format!(
            "not removed: {} also grants another product",
            shared.name
        )));
    }
    if let Some(shared) = taken.iter().find(|g| !g.other_sites.is_empty()) {
        return Err(SweepError::Config(format!(
            "not removed: {} also grants access on {}",
            shared.name,
            shared.other_sites.join(", ")
        )));
    }
    let names: Vec<&str> = taken.iter().map(|g| g.name.as_str()).collect();
    // How the seat is held (`plan_items.billing`): what reseat cannot change keeps the seat
    // billed whatever it takes, so it takes nothing and says who must act.
    let billing = super::roles::Billing::parse(&item.billing);
    let blockers = if billing.checked {
        billing.blockers()
    } else {
        Vec::new()
    };
    if dry_run {
        report.would.push(format!(
            "{} {}: remove from {}{}",
            item.account_id,
            item.product,
            if names.is_empty() {
                "(no access group left)".to_owned()
            } else {
                names.join(", ")
            },
            if blockers.is_empty() {
                String::new()
            } else {
                format!(" (would stay billed: {})", blockers.join("; "))
            }
        ));
        return Ok(());
    }
    if !blockers.is_empty() {
        let outcome = format!("still billed: {}", blockers.join("; "));
        return still_billed(state, plan, item, &outcome, report).await;
    }
    let taken: Vec<AccessGroup> = taken
        .into_iter()
        .filter(|g| {
            !billing.account_synced
                && billing
                    .groups
                    .iter()
                    .find(|b| b.id == g.id.as_str())
                    .is_none_or(|b| b.modifiable)
        })
        .collect();
    if taken.is_empty() && billing.direct_roles().is_empty() {
        finish_item(
            state,
            item,
            ItemState::Done,
            "no access group membership left",
        )
        .await?;
        return Ok(());
    }
    // Taking and giving back this seat never interleave: hold its claim from the last
    // check to the removal email.
    let seat = ledger::Seat::new(&item.account_id, &item.product, &plan.site);
    let claim = match ledger::seat::try_claim(
        &state.db,
        &seat,
        &ledger::seat::removal_holder(&plan.id),
        ledger::seat::CLAIM_TTL,
    )
    .await?
    {
        Ok(claim) => claim,
        Err(busy) if busy.is_restore() => {
            report.skipped += 1;
            finish_item(
                state,
                item,
                ItemState::Skipped,
                "kept: the user asked for access, a restore is running",
            )
            .await?;
            return Ok(());
        }
        Err(busy) => {
            return Err(SweepError::Config(format!(
                "the seat is being changed by {}; applying again later continues",
                busy.holder
            )));
        }
    };
    let result = remove_claimed(state, plan, item, account, product, &seat, &taken, report).await;
    claim.release().await;
    result
}

/// Sends one removal through the product's API family (the product table says which).
async fn remove_membership(
    state: &AppState,
    product: &ProductKey,
    group: &GroupId,
    account: &AccountId,
) -> Result<MembershipOutcome, SweepError> {
    Ok(
        match (
            product.family(),
            &state.atlassian.jira,
            &state.atlassian.confluence,
        ) {
            (Some(ApiFamily::Jira), Some(jira), _) => {
                jira.remove_from_group(group, account).await?
            }
            (Some(ApiFamily::Confluence), _, Some(confluence)) => {
                confluence.remove_from_group(group, account).await?
            }
            (Some(family), _, _) => {
                return Err(SweepError::Config(format!(
                    "removing {product} access needs the {family:?} site API credentials"
                )));
            }
            (None, _, _) => {
                return Err(SweepError::Config(format!(
                    "reseat cannot change access to {product}: it is neither a Jira application nor Confluence"
                )));
            }
        },
    )
}

#[allow(clippy::too_many_arguments)]
async fn remove_claimed(
    state: &AppState,
    plan: &PlanRecord,
    item: &PlanItem,
    account: &AccountId,
    product: &ProductKey,
    seat: &ledger::Seat,
    taken: &[AccessGroup],
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    // The owner asked for access, or to keep it, after the plan was made: the plan is out
    // of date for this seat.
    if let Some(why) = ledger::seat::asked_since(&state.db, seat, plan.created_at).await? {
        report.skipped += 1;
        finish_item(state, item, ItemState::Skipped, &format!("kept: {why}")).await?;
        return Ok(());
    }
    // The intent first, committed before any membership changes (`removing`).
    let entries: Vec<JournalEntry<'_>> = taken
        .iter()
        .map(|group| JournalEntry {
            account_id: &item.account_id,
            product: &item.product,
            site: &plan.site,
            group_id: group.id.as_str(),
            group_name: &group.name,
            run_id: Some(&plan.id),
            request_id: None,
            reason: &item.reason,
        })
        .collect();
    let mut intents = Vec::with_capacity(entries.len());
    let mut tx = state.db.pool().begin().await?;
    for entry in &entries {
        intents.push(ledger::journal::begin_removal_in(&mut tx, state.db.now_ms(), entry).await?);
    }
    // The direct roles, journaled as roles, in the same commit.
    let billing = super::roles::Billing::parse(&item.billing);
    let direct_roles = billing.direct_roles();
    super::roles::journal_revokes_in(
        &mut tx,
        state.db.now_ms(),
        &billing,
        &item.account_id,
        &item.product,
        &plan.site,
        &plan.id,
        &item.reason,
    )
    .await?;
    tx.commit().await?;
    let mut removed_names: Vec<&str> = Vec::new();
    let mut not_member: Vec<&str> = Vec::new();
    for ((group, entry), mut intent) in taken.iter().zip(&entries).zip(intents) {
        // The client gave up after a transient failure (no answer, 5xx) that may have taken
        // effect: re-sent here, and from then on "not a member" proves nothing
        // (`first_send` is off).
        let retry = &state.config.atlassian.retry;
        let mut attempt = 1u32;
        let outcome = loop {
            match remove_membership(state, product, &group.id, account).await {
                Ok(outcome) => break outcome,
                Err(SweepError::Atlassian(error))
                    if error.is_temporary() && attempt < retry.max_attempts.max(1) =>
                {
                    tracing::debug!(attempt, %error, "removal unanswered; sending it again");
                    intent.first_send = false;
                    tokio::time::sleep(retry.base_delay.saturating_mul(attempt)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        };
        let answer = match outcome {
            MembershipOutcome::Changed => ledger::journal::RemovalAnswer::Removed,
            MembershipOutcome::AlreadyInPlace => ledger::journal::RemovalAnswer::NotMember,
        };
        let mut conn = state.db.pool().acquire().await?;
        match ledger::journal::removal_answered_in(
            &mut conn,
            state.db.now_ms(),
            entry,
            intent,
            answer,
        )
        .await?
        {
            // Left the group since the plan, and no removal was ever sent: reseat took
            // nothing, a restore adds nothing.
            ledger::journal::Recorded::NotMember => not_member.push(&group.name),
            ledger::journal::Recorded::Removed => {
                report.removed_memberships += 1;
                removed_names.push(&group.name);
            }
        }
    }
    let revoked = super::roles::revoke_direct(state, &billing, account).await?;
    report.revoked_roles += revoked as u64;
    // The seat is gone only when no billable role is left on the resource.
    if billing.checked
        && let Some(reader) = super::roles::AccessReader::of(state)
        && let super::roles::Verified::StillBilled(left) =
            super::roles::verify_gone(&reader, account, product, state.config.sweep.verify_window)
                .await?
    {
        let outcome = super::roles::still_billed_reason(&billing, &left);
        return still_billed(state, plan, item, &outcome, report).await;
    }
    if removed_names.is_empty() && revoked == 0 {
        let outcome = format!("not a member of {} any more", not_member.join(", "));
        finish_item(state, item, ItemState::Done, &outcome).await?;
        return Ok(());
    }
    let names = removed_names;
    report.removed_users += 1;
    // A time-bound grant of this seat ends with it.
    {
        let mut conn = state.db.pool().acquire().await?;
        ledger::grants::end_open_in(
            &mut conn,
            state.db.now_ms(),
            &item.account_id,
            &item.product,
            &plan.site,
            ledger::grants::GrantEnd::Taken,
        )
        .await?;
    }
    let mut taken_away: Vec<String> = Vec::new();
    if !names.is_empty() {
        taken_away.push(format!("removed from {}", names.join(", ")));
    }
    if revoked > 0 {
        taken_away.push(format!("revoked role {}", direct_roles.join(", ")));
    }
    let outcome = taken_away.join("; ");
    let mut tx = state.db.pool().begin().await?;
    set_state_in(&mut tx, state.db.now_ms(), item, ItemState::Done, &outcome).await?;
    notify_removal(
        state,
        &mut tx,
        &RemovalNotice {
            plan_id: &plan.id,
            account_id: &item.account_id,
            product: &item.product,
            site: &plan.site,
            email: item.email.as_deref(),
            display_name: item.display_name.as_deref(),
            last_active: item.last_active.map(from_ms),
            removed_at: state.clock().now(),
        },
    )
    .await?;
    audit::record_in(
        &mut tx,
        state.db.now_ms(),
        audit::Entry {
            actor: "reseat",
            role: None,
            action: "sweep.removed",
            account_id: Some(&item.account_id),
            product: Some(&item.product),
            details: serde_json::json!({ "plan_id": plan.id, "groups": names, "roles": direct_roles, "reason": item.reason }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends an item `still_billed`: the seat still bills after what reseat could take. The user
/// is not told "removed"; the plan, the overview and the API show the reason.
async fn still_billed(
    state: &AppState,
    plan: &PlanRecord,
    item: &PlanItem,
    outcome: &str,
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    report.still_billed += 1;
    let mut tx = state.db.pool().begin().await?;
    set_state_in(
        &mut tx,
        state.db.now_ms(),
        item,
        ItemState::StillBilled,
        outcome,
    )
    .await?;
    audit::record_in(
        &mut tx,
        state.db.now_ms(),
        audit::Entry {
            actor: "reseat",
            role: None,
            action: "sweep.still_billed",
            account_id: Some(&item.account_id),
            product: Some(&item.product),
            details: serde_json::json!({ "plan_id": plan.id, "reason": outcome }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The ladder's suspension step (`sweep.ladder.suspend`): accounts the plan's removals left
/// with no managed product on the site are suspended org-wide, once (a
/// `sweep_suspensions` row, an audit entry). A failure counts as a failed item and is tried
/// again by the next apply of the plan.
async fn suspend_step(
    state: &AppState,
    plan: &PlanRecord,
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    let config = &state.config.sweep;
    if !config.ladder.suspend {
        return Ok(());
    }
    let dry_run = config.mode == Mode::DryRun;
    let candidates =
        ledger::suspensions::suspension_candidates(&state.db, &plan.id, dry_run).await?;
    if candidates.is_empty() {
        return Ok(());
    }
    let reason = "no managed product left on the site after the sweep's removals";
    if dry_run {
        for account in candidates {
            report
                .would
                .push(format!("{account}: suspend org-wide ({reason})"));
        }
        return Ok(());
    }
    let (Some(admin), Some(org)) = (&state.atlassian.admin, &state.atlassian.org_id) else {
        return Err(SweepError::Config(
            "sweep.ladder.suspend needs the admin API (atlassian.org_id and admin_api_key)"
                .to_owned(),
        ));
    };
    for account_id in candidates {
        let Ok(account) = AccountId::parse(account_id.as_str()) else {
            continue;
        };
        if let Err(error) = admin.suspend(org, &account).await {
            report.failed += 1;
            tracing::warn!(account = %account_id, %error, "suspension failed");
            audit::record(
                &state.db,
                audit::Entry {
                    actor: "reseat",
                    role: None,
                    action: "sweep.suspend_failed",
                    account_id: Some(&account_id),
                    product: None,
                    details: serde_json::json!({ "plan_id": plan.id, "error": error.to_string() }),
                },
            )
            .await?;
            continue;
        }
        let mut tx = state.db.pool().begin().await?;
        ledger::suspensions::record_suspension_in(
            &mut tx,
            &account_id,
            &plan.site,
            &plan.id,
            reason,
            options.now,
        )
        .await?;
        audit::record_in(
            &mut tx,
            state.db.now_ms(),
            audit::Entry {
                actor: "reseat",
                role: None,
                action: "sweep.suspended",
                account_id: Some(&account_id),
                product: None,
                details: serde_json::json!({ "plan_id": plan.id, "reason": reason }),
            },
        )
        .await?;
        tx.commit().await?;
        report.suspended += 1;
    }
    Ok(())
}

/// The ladder's last step (`sweep.ladder.delete_after`): accounts reseat suspended at least
/// that long ago, not restored since, are removed from the org directory. A 404 means the
/// account is already gone (a retry after a lost answer): recorded as deleted.
async fn delete_step(
    state: &AppState,
    plan: &PlanRecord,
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<(), SweepError> {
    let config = &state.config.sweep;
    let Some(after) = config.ladder.delete_after else {
        return Ok(());
    };
    let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    let Some(before) = options.now.checked_sub_signed(after) else {
        return Ok(());
    };
    let dry_run = config.mode == Mode::DryRun;
    let due = ledger::suspensions::suspensions_due(&state.db, &plan.site, before).await?;
    for (id, account_id, suspended_at) in due {
        if ledger::journal::restored_since(&state.db, &account_id, suspended_at).await? {
            // A restore gave access back since: the account stays; the suspension is over
            // for the ladder.
            if !dry_run {
                let mut conn = state.db.pool().acquire().await?;
                ledger::suspensions::close_suspension_in(
                    &mut conn,
                    id,
                    ledger::SuspensionEnd::Restored,
                    options.now,
                )
                .await?;
            }
            continue;
        }
        if dry_run {
            report.would.push(format!(
                "{account_id}: remove from the directory (suspended {})",
                suspended_at.format("%Y-%m-%d")
            ));
            continue;
        }
        let (Some(admin), Some(org)) = (&state.atlassian.admin, &state.atlassian.org_id) else {
            return Err(SweepError::Config(
                "sweep.ladder.delete_after needs the admin API (atlassian.org_id and admin_api_key)"
                    .to_owned(),
            ));
        };
        let Ok(account) = AccountId::parse(account_id.as_str()) else {
            continue;
        };
        // Only the API's own word that the account is not in the directory counts as gone;
        // a 404 from a route that does not exist is a failure, never a deletion.
        let already_gone = match admin.remove_from_directory(org, &account).await {
            Ok(crate::atlassian::DirectoryRemoval::Removed) => false,
            Ok(crate::atlassian::DirectoryRemoval::AlreadyGone) => true,
            Err(error) => {
                report.failed += 1;
                tracing::warn!(account = %account_id, %error, "removal from the directory failed");
                continue;
            }
        };
        let mut tx = state.db.pool().begin().await?;
        ledger::suspensions::close_suspension_in(
            &mut tx,
            id,
            ledger::SuspensionEnd::Deleted,
            options.now,
        )
        .await?;
        audit::record_in(
            &mut tx,
            state.db.now_ms(),
            audit::Entry {
                actor: "reseat",
                role: None,
                action: "sweep.deleted",
                account_id: Some(&account_id),
                product: None,
                details: serde_json::json!({
                    "plan_id": plan.id,
                    "suspended_at": suspended_at.to_rfc3339(),
                    "already_gone": already_gone,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        report.deleted += 1;
    }
    Ok(())
}
