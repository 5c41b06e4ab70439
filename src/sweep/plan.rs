//! `reseat sweep plan`: read the site and the activity sources, decide per user × product,
//! store the plan. Nothing changes upstream.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::SweepError;
use super::policy::{self, Decision, Exemption, Facts};
use super::population::{self, Member, Population};
use super::store::{self, NewItem, PlanItem};
use crate::activity::api::ApiStats;
use crate::activity::csv::{CsvActivityReader, CsvReport};
use crate::activity::{ActivitySet, Seen, SiteFilter};
use crate::app::AppState;
use crate::atlassian::{AccountId, AccountType, ProductKey};
use crate::audit;
use crate::store::time::to_ms;

/// Where last-active data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The Organizations admin API.
    Api,
    /// An admin "Export users" CSV file.
    Csv(PathBuf),
}

impl Source {
    /// `api` or `csv:FILE`.
    pub fn parse(text: &str) -> Result<Source, String> {
        match text.split_once(':') {
            None if text == "api" => Ok(Source::Api),
            Some(("csv", path)) if !path.is_empty() => Ok(Source::Csv(PathBuf::from(path))),
            _ => Err(format!(
                "--source: expected `api` or `csv:FILE`, got {text:?}"
            )),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Source::Api => "api".to_owned(),
            Source::Csv(path) => format!("csv:{}", path.display()),
        }
    }
}

/// Counts of one product in a plan.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ProductSummary {
    /// Users holding the product on the site.
    pub users: u64,
    /// Count per decision.
    pub decisions: BTreeMap<String, u64>,
}

/// What a plan found, stored as `plans.summary`: THE contract of that column, written by
/// the plan and read by apply (its guards), the admin pages and the API. A stored summary
/// that does not parse ([`PlanSummary::parse`]) is an error that stops its reader; it never
/// reads as empty counts.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PlanSummary {
    pub products: BTreeMap<String, ProductSummary>,
    pub findings: Vec<String>,
    pub access_groups: BTreeMap<String, Vec<population::AccessGroup>>,
    pub api: Option<ApiStats>,
    pub csv_rows: u64,
    pub csv_bad_rows: u64,
    pub csv_errors: Vec<String>,
    /// Accounts the bad rows may have held (the physical lines they span).
    pub csv_lost_accounts: u64,
    /// What reading the files noticed besides bad rows: merged columns, skipped
    /// separator-only rows, ignored values, the separator.
    pub csv_notes: Vec<String>,
    /// The stale-data check of apply, run when the plan was made: why the plan's activity
    /// looks stale (the plan is stored all the same; apply refuses it).
    pub stale: Option<String>,
    /// Newest activity seen anywhere in the plan (stale-data check), UTC ms.
    pub newest_activity: Option<i64>,
    /// Admin API calls spent on how seats are held (absent: roles not checked).
    #[serde(default)]
    pub roles: Option<super::roles::RoleStats>,
}

impl PlanSummary {
    /// Parses a stored `plans.summary`.
    pub fn parse(plan_id: &str, text: &str) -> Result<PlanSummary, SweepError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            SweepError::Summary(format!(
                "plan {plan_id}: the stored summary does not parse at `{}`: {}",
                error.path(),
                error.inner()
            ))
        })
    }

    /// Decision counts summed over products.
    pub fn decision_totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for counts in self.products.values() {
            for (decision, n) in &counts.decisions {
                *totals.entry(decision.clone()).or_insert(0) += n;
            }
        }
        totals
    }
}

/// A stored plan.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan_id: String,
    pub summary: PlanSummary,
}

fn exemption(
    config: &super::config::SweepConfig,
    population: &Population,
    member: &Member,
    product: &ProductKey,
    csv_admin: bool,
    email: Option<&str>,
) -> Option<Exemption> {
    let protect = &config.protect;
    match &member.account_type {
        Some(AccountType::App) => return Some(Exemption::App),
        Some(AccountType::Customer) => return Some(Exemption::Customer),
        _ => {}
    }
    if protect
        .accounts
        .iter()
        .any(|a| a == member.account_id.as_str())
    {
        return Some(Exemption::ProtectedAccount);
    }
    if let Some(email) = email
        && protect.emails.iter().any(|e| e.eq_ignore_ascii_case(email))
    {
        return Some(Exemption::ProtectedEmail);
    }
    if let Some(group) = &member.protected_group {
        return Some(Exemption::ProtectedGroup(group.clone()));
    }
    if !protect.include_org_admins {
        if let Some(group) = &member.admin_group {
            return Some(Exemption::OrgAdmin(group.clone()));
        }
        if csv_admin {
            return Some(Exemption::OrgAdmin("the CSV's Org role".to_owned()));
        }
    }
    if let Some(group) = population
        .member_groups(member, product)
        .find(|g| !g.other_sites.is_empty())
    {
        return Some(Exemption::SharedWithSites {
            group: group.name.clone(),
            sites: group.other_sites.join(", "),
        });
    }
    population
        .member_groups(member, product)
        .find(|g| g.products.len() > 1)
        .map(|g| Exemption::MultiProductGroup {
            group: g.name.clone(),
            products: g
                .products
                .iter()
                .filter(|p| *p != product)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Reads one CSV into `set`, keeping only the site's seat holders (memory stays bounded by
/// the population, not the file).
fn read_csv(
    path: &Path,
    site: &SiteFilter,
    population: &Population,
    products: &[ProductKey],
    max_bad_row_percent: f64,
    set: &mut ActivitySet,
    progress: &indicatif::ProgressBar,
) -> Result<CsvReport, SweepError> {
    let mut reader = CsvActivityReader::open(path, site.clone())?.sweeping(products);
    let mut rows = 0u64;
    while let Some(activity) = reader.next_activity()? {
        rows += 1;
        if rows.is_multiple_of(10_000) {
            progress.set_position(rows);
        }
        if population.members.contains_key(&activity.account_id) {
            set.insert(activity);
        }
    }
    progress.set_position(rows);
    Ok(reader.finish(max_bad_row_percent)?)
}

/// Notes the access groups that also grant on other sites of the org, whose members are then
/// exempt. From the org's record of each group (its role assignments, every site of the org,
/// managed or not) when the admin API can be read; else, with several sites configured, from
/// the other managed sites' access groups.
async fn mark_shared_groups(
    state: &AppState,
    reader: Option<&super::roles::AccessReader<'_>>,
    population: &mut Population,
) -> Result<(), SweepError> {
    let name_of = |cloud: &str| {
        state
            .each_site()
            .iter()
            .find(|site| site.config.atlassian.cloud_id.as_deref() == Some(cloud))
            .map_or_else(
                || format!("another site of the org (cloud id {cloud})"),
                |site| site.site().to_owned(),
            )
    };
    if let Some(reader) = reader {
        let mut read = Vec::with_capacity(population.groups.len());
        let mut refused = None;
        for group in &population.groups {
            match reader.group_elsewhere(&group.id).await {
                Ok(clouds) => read.push(clouds.iter().map(|c| name_of(c)).collect::<Vec<_>>()),
                Err(
                    error @ (crate::atlassian::AtlassianError::NotFound { .. }
                    | crate::atlassian::AtlassianError::Forbidden { .. }),
                ) => {
                    refused = Some(error);
                    break;
                }
                Err(error) => return Err(error.into()),
            }
        }
        if refused.is_none() {
            for (group, sites) in population.groups.iter_mut().zip(read) {
                group.other_sites = sites;
            }
            population::shared_findings(population);
            return Ok(());
        }
        tracing::warn!(error = ?refused, "group role assignments cannot be read; shared groups are checked among the configured sites only");
        population.findings.push(population::Finding::SharingNotChecked {
            reason: match &refused {
                Some(error) if state.is_multi_site() => format!(
                    "the admin API refused the groups' role assignments ({error}); only the configured sites were compared"
                ),
                Some(error) => {
                    format!("the admin API refused the groups' role assignments ({error})")
                }
                None => String::new(),
            },
        });
    } else {
        population
            .findings
            .push(population::Finding::SharingNotChecked {
                reason: if state.is_multi_site() {
                    "no admin API or atlassian.cloud_id; only the configured sites were compared"
                        .to_owned()
                } else {
                    "no admin API or atlassian.cloud_id".to_owned()
                },
            });
    }
    if state.is_multi_site() {
        let sites = state.each_site();
        let others: Vec<_> = sites
            .iter()
            .filter(|other| other.site() != state.site())
            .map(|other| {
                (
                    other.site().to_owned(),
                    &other.atlassian,
                    &other.config.sweep,
                )
            })
            .collect();
        population::mark_shared(population, &others).await?;
        population::shared_findings(population);
    }
    Ok(())
}

/// Plans: reads the site, the sources, decides, and stores the plan.
#[tracing::instrument(skip_all, fields(sources = sources.len()))]
pub async fn plan(
    state: &AppState,
    sources: &[Source],
    now: DateTime<Utc>,
    progress: &indicatif::ProgressBar,
) -> Result<Planned, SweepError> {
    plan_sharing(state, sources, now, progress, None).await
}

/// [`plan`] for one site of several planned together: the admin API's directory listing is
/// read through `listing`, once for all of them.
#[tracing::instrument(skip_all, fields(site = state.site()))]
pub async fn plan_sharing(
    state: &AppState,
    sources: &[Source],
    now: DateTime<Utc>,
    progress: &indicatif::ProgressBar,
    listing: Option<&crate::activity::api::OrgListing>,
) -> Result<Planned, SweepError> {
    let config = &state.config.sweep;
    let products = config.product_keys();
    if products.is_empty() {
        return Err(SweepError::Config(
            "no product to sweep: add a [sweep.products.<key>] section".to_owned(),
        ));
    }
    let site_name = state.site().to_owned();
    let site = SiteFilter::of(&state.config.atlassian);
    progress.set_message("reading access groups and members");
    let population = population::read(
        &state.atlassian,
        config,
        state.config.atlassian.jira.concurrency as usize,
    )
    .await?;
    let mut population = population;
    let mut reader = super::roles::AccessReader::of(state);
    progress.set_message("checking which access groups grant on other sites too");
    mark_shared_groups(state, reader.as_ref(), &mut population).await?;
    let mut role_stats = super::roles::RoleStats::default();
    let mut holders = super::roles::Holders::default();
    let mut modifiable: HashMap<String, bool> = HashMap::new();
    let mut roles_note = None;
    if let Some(r) = &reader {
        progress.set_message("reading who holds each product by a role");
        match read_holdings(r, &products, &mut population, &mut role_stats).await {
            Ok((h, m)) => (holders, modifiable) = (h, m),
            // No role model on this org (or the key may not read it): the plan says so and
            // goes on with the groups alone.
            Err(
                error @ (crate::atlassian::AtlassianError::NotFound { .. }
                | crate::atlassian::AtlassianError::Forbidden { .. }),
            ) => {
                tracing::warn!(%error, "role assignments cannot be read; seats are checked by group only");
                roles_note = Some(format!(
                    "roles not checked: the admin API refused ({error})"
                ));
                reader = None;
            }
            Err(error) => return Err(error.into()),
        }
    }
    let reader = reader;
    let population = population;
    let mut summary = PlanSummary {
        findings: population
            .findings
            .iter()
            .map(ToString::to_string)
            .collect(),
        access_groups: population.groups_by_product(&products),
        ..PlanSummary::default()
    };
    let blocking: Vec<String> = population
        .findings
        .iter()
        .filter(|f| f.blocks(&config.governance))
        .map(ToString::to_string)
        .collect();
    for finding in &summary.findings {
        tracing::warn!(%finding, "governance");
    }
    if !blocking.is_empty() {
        audit::record(
            &state.db,
            audit::Entry {
                actor: "reseat",
                role: None,
                action: "sweep.governance_blocked",
                account_id: None,
                product: None,
                details: serde_json::json!({ "findings": blocking }),
            },
        )
        .await?;
        return Err(SweepError::Governance(blocking));
    }

    // Who needs activity data: seat holders not exempt before any activity is read.
    let mut wanted: HashMap<AccountId, Vec<ProductKey>> = HashMap::new();
    for member in population.members.values() {
        for product in &products {
            if (population.member_groups(member, product).next().is_some()
                || holders.holds(&member.account_id, product))
                && exemption(
                    config,
                    &population,
                    member,
                    product,
                    false,
                    member.email.as_deref(),
                )
                .is_none()
            {
                wanted
                    .entry(member.account_id.clone())
                    .or_default()
                    .push(product.clone());
            }
        }
    }

    let mut activity = ActivitySet::new();
    for source in sources {
        match source {
            Source::Api => {
                progress.set_message("reading last-active dates from the admin API");
                let admin = state.atlassian.admin.as_ref().ok_or_else(|| {
                    SweepError::Config(
                        "--source api needs atlassian.admin_api_key and atlassian.org_id"
                            .to_owned(),
                    )
                })?;
                let org = state.atlassian.org_id.as_ref().ok_or_else(|| {
                    SweepError::Config("--source api needs atlassian.org_id".to_owned())
                })?;
                let mut source = crate::activity::api::AdminActivity::new(
                    admin,
                    org,
                    &site,
                    &state.config.atlassian,
                );
                if let Some(listing) = listing {
                    source = source.sharing(listing);
                }
                let (set, stats) = source.collect(&wanted).await?;
                activity.merge(set);
                summary.api = Some(stats);
            }
            Source::Csv(path) => {
                progress.set_message(format!("reading {}", path.display()));
                let report = read_csv(
                    path,
                    &site,
                    &population,
                    &products,
                    config.csv.max_bad_row_percent,
                    &mut activity,
                    progress,
                )?;
                summary.csv_rows += report.rows;
                summary.csv_bad_rows += report.bad_rows;
                summary.csv_lost_accounts += report.lost_accounts;
                let label = if sources.len() > 1 {
                    format!("{}: ", path.display())
                } else {
                    String::new()
                };
                summary.csv_notes.extend(
                    report
                        .notes()
                        .into_iter()
                        .map(|note| format!("{label}{note}")),
                );
                summary
                    .csv_errors
                    .extend(report.errors.iter().take(20).map(ToString::to_string));
            }
        }
    }

    progress.set_message("deciding");
    let warnings = store::latest_warnings(&state.db, &site_name).await?;
    let keeps = crate::ledger::keeps::active_keeps(&state.db, &site_name, now).await?;
    let grants = crate::ledger::grants::open_grants(&state.db, &site_name).await?;
    let mut items = Vec::new();
    let mut billings: Vec<super::roles::Billing> = Vec::new();
    let mut role_wanted = Vec::new();
    let mut members: Vec<&Member> = population.members.values().collect();
    members.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    for member in members {
        let seen_user = activity.get(&member.account_id);
        let email = member
            .email
            .clone()
            .or_else(|| seen_user.and_then(|u| u.email.clone()));
        let name = member
            .display_name
            .clone()
            .or_else(|| seen_user.and_then(|u| u.name.clone()));
        for product in &products {
            let groups: Vec<_> = population.member_groups(member, product).collect();
            if groups.is_empty() && !holders.holds(&member.account_id, product) {
                continue;
            }
            let Some(product_policy) = config.product(product) else {
                continue;
            };
            let key = (member.account_id.to_string(), product.as_str().to_owned());
            let seen = seen_user.map_or(Seen::Unknown, |u| u.seen(product));
            let last_activity = seen.at();
            let warned_at = warnings
                .get(&key)
                .copied()
                .filter(|w| last_activity.is_none_or(|at| *w > at));
            let facts = Facts {
                exemption: exemption(
                    config,
                    &population,
                    member,
                    product,
                    seen_user.is_some_and(|u| u.org_admin),
                    email.as_deref(),
                ),
                seen,
                added_to_org: seen_user.and_then(|u| u.added_to_org),
                kept_until: keeps.get(&key).copied(),
                granted: grants.get(&key).copied(),
                warned_at,
                active_elsewhere: seen_user.and_then(|u| u.elsewhere(product)),
                unattributed: seen_user.and_then(|u| u.unattributed()),
            };
            let verdict = policy::evaluate(config, product_policy, &facts, now);
            if let Some(at) = verdict.last_active {
                let ms = to_ms(at);
                summary.newest_activity = Some(summary.newest_activity.map_or(ms, |n| n.max(ms)));
            }
            let entry = summary
                .products
                .entry(product.as_str().to_owned())
                .or_default();
            entry.users += 1;
            *entry
                .decisions
                .entry(verdict.decision.as_str().to_owned())
                .or_default() += 1;
            let group_json: Vec<_> = groups
                .iter()
                .map(|g| serde_json::json!({ "id": g.id, "name": g.name }))
                .collect();
            let billing = super::roles::Billing {
                checked: false,
                resource: reader.as_ref().and_then(|r| r.resource(product)),
                groups: groups
                    .iter()
                    .map(|g| super::roles::BillingGroup {
                        id: g.id.to_string(),
                        name: g.name.clone(),
                        modifiable: modifiable.get(g.id.as_str()).copied().unwrap_or(true),
                    })
                    .collect(),
                roles: Vec::new(),
                account_synced: holders.synced.contains(&member.account_id),
                note: match &reader {
                    None => Some(roles_note.clone().unwrap_or_else(|| {
                        "roles not checked: the admin API or atlassian.cloud_id is not configured"
                            .to_owned()
                    })),
                    Some(_) if groups.is_empty() => {
                        Some("holds a role on the product, through no access group".to_owned())
                    }
                    Some(_) => None,
                },
            };
            if reader.is_some() && verdict.decision == Decision::Remove {
                role_wanted.push((items.len(), member.account_id.clone(), product.clone()));
            }
            billings.push(billing);
            items.push(NewItem {
                account_id: key.0,
                product: key.1,
                email: email.clone(),
                display_name: name.clone(),
                decision: verdict.decision.as_str().to_owned(),
                reason: verdict.reason,
                last_active: verdict.last_active.map(to_ms),
                threshold_days: verdict.threshold_days,
                access_groups: serde_json::Value::from(group_json).to_string(),
                added_to_org: facts.added_to_org.map(to_ms),
                billing: String::new(),
            });
        }
    }
    if let Some(reader) = &reader {
        progress.set_message("reading the removal candidates' roles");
        let mut read = super::roles::read_roles(reader, role_wanted, &mut role_stats).await?;
        for (i, billing) in billings.iter_mut().enumerate() {
            if let Some(roles) = read.remove(&i) {
                billing.checked = true;
                billing.note = None;
                billing.roles = roles;
            }
        }
        summary.roles = Some(role_stats);
    }
    for (item, billing) in items.iter_mut().zip(&billings) {
        item.billing = billing.to_json();
    }

    summary.stale = super::apply::stale_data(config, &summary, now);
    if let Some(stale) = &summary.stale {
        tracing::warn!(%stale, "the plan's activity data looks stale");
    }

    let plan_id = uuid::Uuid::now_v7().to_string();
    let source_label = sources
        .iter()
        .map(Source::label)
        .collect::<Vec<_>>()
        .join("+");
    let summary_json = serde_json::to_value(&summary).unwrap_or_default();
    let mut tx = state.db.pool().begin().await?;
    store::create_plan_in(
        &mut tx,
        state.db.now_ms(),
        &plan_id,
        &source_label,
        &site_name,
        &summary_json,
    )
    .await?;
    store::insert_items_in(&mut tx, &plan_id, &items).await?;
    audit::record_in(
        &mut tx,
        state.db.now_ms(),
        audit::Entry {
            actor: "reseat",
            role: None,
            action: "sweep.planned",
            account_id: None,
            product: None,
            details: serde_json::json!({ "plan_id": plan_id, "source": source_label, "products": summary.products }),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%plan_id, items = items.len(), "plan stored");
    Ok(Planned { plan_id, summary })
}

/// The role holders of every product (added to the population when no access group lists
/// them) and whether each access group may be changed.
async fn read_holdings(
    reader: &super::roles::AccessReader<'_>,
    products: &[ProductKey],
    population: &mut Population,
    stats: &mut super::roles::RoleStats,
) -> Result<(super::roles::Holders, HashMap<String, bool>), crate::atlassian::AtlassianError> {
    let mut holders = super::roles::Holders::default();
    for product in products {
        for holder in reader.holders(product, stats).await? {
            holders
                .by_product
                .entry(product.clone())
                .or_default()
                .insert(holder.account_id.clone());
            if holder.management_source.as_deref() == Some("synced") {
                holders.synced.insert(holder.account_id.clone());
            }
            population
                .members
                .entry(holder.account_id.clone())
                .or_insert_with(|| Member {
                    account_id: holder.account_id.clone(),
                    display_name: holder.name.clone().filter(|n| !n.is_empty()),
                    email: holder.email.clone(),
                    account_type: holder.account_type.clone(),
                    groups: Vec::new(),
                    protected_group: None,
                    admin_group: None,
                });
            holders.people.insert(holder.account_id.clone(), holder);
        }
    }
    let mut modifiable = HashMap::new();
    for group in &population.groups {
        let ok = reader.group_modifiable(group.id.as_str(), stats).await?;
        modifiable.insert(group.id.to_string(), ok);
    }
    Ok((holders, modifiable))
}

/// One exported row.
#[derive(Debug, Serialize)]
struct ExportRow<'a> {
    account_id: &'a str,
    product: &'a str,
    email: Option<&'a str>,
    display_name: Option<&'a str>,
    decision: &'a str,
    last_active: Option<String>,
    threshold_days: Option<i64>,
    reason: &'a str,
    state: &'a str,
    /// Why the seat bills: the groups and roles that grant it.
    bills_through: String,
    outcome: Option<&'a str>,
}

fn export_rows(items: &[PlanItem]) -> impl Iterator<Item = ExportRow<'_>> {
    items.iter().map(|item| ExportRow {
        account_id: &item.account_id,
        product: &item.product,
        email: item.email.as_deref(),
        display_name: item.display_name.as_deref(),
        decision: &item.decision,
        last_active: item
            .last_active
            .map(|ms| crate::store::time::from_ms(ms).to_rfc3339()),
        threshold_days: item.threshold_days,
        reason: &item.reason,
        state: &item.state,
        bills_through: super::roles::Billing::parse(&item.billing).explain(),
        outcome: item.outcome.as_deref(),
    })
}

/// Writes a plan as CSV (`.csv`) or JSON (anything else).
/// Whether `--out` names a format reseat writes (`.csv` or `.json`); checked before the
/// plan is made, so a typo costs nothing.
pub fn check_out_path(out: &Path) -> Result<(), SweepError> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(ext) if ext == "csv" || ext == "json" => Ok(()),
        _ => Err(SweepError::Config(format!(
            "--out {}: write a .csv (a spreadsheet) or a .json file; the name ends neither way",
            out.display()
        ))),
    }
}

pub fn export(items: &[PlanItem], out: &Path) -> Result<(), SweepError> {
    check_out_path(out)?;
    let io = |e: std::io::Error| SweepError::Config(format!("--out {}: {e}", out.display()));
    if out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let failed = |e: csv::Error| SweepError::Config(format!("--out {}: {e}", out.display()));
        let mut writer = crate::spreadsheet::CsvWriter::create(out).map_err(io)?;
        writer
            .row([
                "account_id",
                "product",
                "email",
                "display_name",
                "decision",
                "last_active",
                "threshold_days",
                "reason",
                "state",
                "bills_through",
                "outcome",
            ])
            .map_err(failed)?;
        for row in export_rows(items) {
            writer
                .row([
                    row.account_id,
                    row.product,
                    row.email.unwrap_or_default(),
                    row.display_name.unwrap_or_default(),
                    row.decision,
                    row.last_active.as_deref().unwrap_or_default(),
                    &row.threshold_days
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    row.reason,
                    row.state,
                    &row.bills_through,
                    row.outcome.unwrap_or_default(),
                ])
                .map_err(failed)?;
        }
        writer.into_inner().map_err(io)?;
    } else {
        let file = std::fs::File::create(out).map_err(io)?;
        let rows: Vec<_> = export_rows(items).collect();
        serde_json::to_writer_pretty(std::io::BufWriter::new(file), &rows)
            .map_err(|e| SweepError::Config(format!("--out {}: {e}", out.display())))?;
    }
    Ok(())
}

/// The per-product summary as text lines.
pub fn summary_lines(summary: &PlanSummary) -> Vec<String> {
    let mut lines = Vec::new();
    for (product, counts) in &summary.products {
        let decisions = Decision::ALL
            .iter()
            .filter_map(|d| {
                counts
                    .decisions
                    .get(d.as_str())
                    .map(|n| format!("{} {n}", d.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!("{product}: {} users: {decisions}", counts.users));
    }
    for finding in &summary.findings {
        lines.push(format!("governance: {finding}"));
    }
    if let Some(api) = &summary.api {
        lines.push(format!(
            "admin API: {} {} listing pages, {} per-user lookups",
            api.listing_pages,
            match api.listing {
                Some(crate::atlassian::UserListing::Managed) => "managed-user",
                Some(crate::atlassian::UserListing::Directory) => "directory",
                // A plan stored before the listing was recorded.
                None => "user",
            },
            api.per_user_calls
        ));
    }
    if let Some(roles) = &summary.roles {
        lines.push(format!(
            "admin API roles: {} role-holder pages, {} group reads, {} per-user role reads",
            roles.holder_pages, roles.group_reads, roles.role_reads
        ));
    }
    if summary.csv_rows > 0 {
        let lost = if summary.csv_lost_accounts > summary.csv_bad_rows {
            format!(" (costing up to {} accounts)", summary.csv_lost_accounts)
        } else {
            String::new()
        };
        lines.push(format!(
            "csv: {} rows, {} bad{lost}",
            summary.csv_rows, summary.csv_bad_rows
        ));
        for error in summary.csv_errors.iter().take(5) {
            lines.push(format!("csv: {error}"));
        }
    }
    for note in &summary.csv_notes {
        lines.push(format!("csv: {note}"));
    }
    if let Some(stale) = &summary.stale {
        lines.push(format!("warning: {stale}; apply will refuse this plan"));
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_written_plan_never_starts_a_formula() {
        let item = PlanItem {
            id: 1,
            plan_id: "p".into(),
            account_id: "a1".into(),
            product: "jira-software".into(),
            email: Some("=HYPERLINK(\"https://evil.example\")@acme.example".into()),
            display_name: Some("@SUM(A1)".into()),
            decision: "remove".into(),
            reason: "-inactive on +site".into(),
            last_active: None,
            threshold_days: Some(90),
            state: "pending".into(),
            applied_at: None,
            access_groups: "[]".into(),
            added_to_org: None,
            outcome: Some("\tTab".into()),
            billing: String::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("plan.csv");
        export(&[item], &out).unwrap();
        let mut reader = csv::Reader::from_path(&out).unwrap();
        let headers = reader.headers().unwrap().clone();
        let row = reader.records().next().unwrap().unwrap();
        let cell = |name: &str| &row[headers.iter().position(|h| h == name).unwrap()];
        assert_eq!(
            cell("email"),
            "'=HYPERLINK(\"https://evil.example\")@acme.example"
        );
        assert_eq!(cell("display_name"), "'@SUM(A1)");
        assert_eq!(cell("reason"), "'-inactive on +site");
        assert_eq!(cell("outcome"), "'\tTab");
        assert_eq!(cell("threshold_days"), "90");
        assert_eq!(cell("account_id"), "a1");
    }
}
