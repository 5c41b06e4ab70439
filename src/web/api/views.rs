//! What the API answers with: its own types, so that the contract (and the OpenAPI schema
//! derived from them) does not move when a table does. Times are RFC 3339 in UTC; JSON kept
//! as text in the database is returned as JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::ledger::JournalRecord;
use crate::restore::rules::Verdict;
use crate::restore::store::RestoreRequest;
use crate::store::time::from_ms;
use crate::sweep::store::{PlanItem, PlanRecord};

fn json_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// A stored sweep plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Where activity came from: `api`, `csv:FILE`, ….
    pub source: String,
    pub site: String,
    /// `planned`, `applying` or `applied`.
    pub status: String,
    /// Counts per product and decision, access groups, governance findings, API calls.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
}

impl From<PlanRecord> for Plan {
    fn from(plan: PlanRecord) -> Plan {
        Plan {
            summary: json_text(&plan.summary),
            id: plan.id,
            created_at: from_ms(plan.created_at),
            source: plan.source,
            site: plan.site,
            status: plan.status,
        }
    }
}

/// One user × product row of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanItemView {
    pub id: i64,
    pub plan_id: String,
    pub account_id: String,
    pub product: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// `keep`, `warn`, `remove`, `suspend`, `delete`, `exempt` or `unknown`.
    pub decision: String,
    pub reason: String,
    pub last_active: Option<DateTime<Utc>>,
    pub threshold_days: Option<i64>,
    /// `pending`, `done`, `skipped`, `failed` or `still_billed` (removed what reseat could,
    /// but a billable role keeps the seat).
    pub state: String,
    pub applied_at: Option<DateTime<Utc>>,
    /// The user's access groups of the product when planned: `[{"id", "name"}]`.
    #[schema(value_type = Vec<Object>)]
    pub access_groups: serde_json::Value,
    pub added_to_org: Option<DateTime<Utc>>,
    /// What apply did (or, in dry-run, would do); for `still_billed`, what keeps the seat
    /// and who must act.
    pub outcome: Option<String>,
    /// Why the seat bills: `{checked, resource, groups: [{id, name, modifiable}], roles:
    /// [{role, methods}], account_synced, note}`.
    #[schema(value_type = Object)]
    pub billing: serde_json::Value,
    /// The same in words: the groups and roles that grant the seat.
    pub bills_through: String,
}

impl From<PlanItem> for PlanItemView {
    fn from(item: PlanItem) -> PlanItemView {
        PlanItemView {
            billing: json_text(&item.billing),
            bills_through: crate::sweep::roles::Billing::parse(&item.billing).explain(),
            access_groups: json_text(&item.access_groups),
            id: item.id,
            plan_id: item.plan_id,
            account_id: item.account_id,
            product: item.product,
            email: item.email,
            display_name: item.display_name,
            decision: item.decision,
            reason: item.reason,
            last_active: item.last_active.map(from_ms),
            threshold_days: item.threshold_days,
            state: item.state,
            applied_at: item.applied_at.map(from_ms),
            added_to_org: item.added_to_org.map(from_ms),
            outcome: item.outcome,
        }
    }
}

/// A restore request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Request {
    pub id: String,
    /// `jsm`, `automation`, `webhook`, `link` or `slack`.
    pub channel: String,
    /// The channel's own key (JSM issue key, webhook id, …); unique.
    pub idempotency_key: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    /// The site the request is for; null on requests stored before sites were recorded
    /// (they are the configured site's).
    pub site: Option<String>,
    pub status: RequestStatus,
    /// The rules' decision: `approve`, `manual` or `deny`.
    pub decision: Option<String>,
    pub matched_rule: Option<String>,
    pub reason: Option<String>,
    /// What the requester is (or was) told.
    pub message: Option<String>,
    /// The request as it arrived.
    pub payload: serde_json::Value,
    /// The rule engine's full verdict, once decided.
    pub verdict: Option<serde_json::Value>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the requester was answered.
    pub replied_at: Option<DateTime<Utc>>,
    /// Why the requester says they need the access (the JSM field, the Slack text, the
    /// `justification` of an automation or webhook call, the restore page's text box).
    pub justification: Option<String>,
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Stored, waiting for the worker.
    Received,
    /// Approved by an admin, waiting for the worker.
    Approved,
    /// Waiting for an admin (the rules said manual).
    Pending,
    Restored,
    Denied,
    /// Not a restore request (another request type, a duplicate of a settled one, …).
    Ignored,
    /// Could not be completed; an admin can approve or deny it.
    Failed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Received => "received",
            RequestStatus::Approved => "approved",
            RequestStatus::Pending => "pending",
            RequestStatus::Restored => "restored",
            RequestStatus::Denied => "denied",
            RequestStatus::Ignored => "ignored",
            RequestStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RequestStatus> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

impl TryFrom<RestoreRequest> for Request {
    type Error = anyhow::Error;

    fn try_from(request: RestoreRequest) -> Result<Request, anyhow::Error> {
        let status = RequestStatus::parse(&request.status).ok_or_else(|| {
            anyhow::anyhow!(
                "request {} has the unknown status {:?}",
                request.id,
                request.status
            )
        })?;
        Ok(Request {
            payload: json_text(&request.payload),
            verdict: request.verdict.as_deref().map(json_text),
            id: request.id,
            channel: request.channel,
            idempotency_key: request.idempotency_key,
            account_id: request.account_id,
            product: request.product,
            site: request.site,
            status,
            decision: request.decision,
            matched_rule: request.matched_rule,
            reason: request.reason,
            message: request.message,
            email: request.email,
            display_name: request.display_name,
            created_at: from_ms(request.created_at),
            updated_at: from_ms(request.updated_at),
            replied_at: request.replied_at.map(from_ms),
            justification: request.justification,
        })
    }
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `reseat`, `admin:<name>`, `api:<token name>`, `jsm:<issue>`, `webhook`, ….
    pub actor: String,
    /// The role the actor acted with (`viewer`, `approver`, `operator`, `owner`); null for
    /// reseat itself, the restore channels, and entries written before roles were recorded.
    pub role: Option<String>,
    /// A dotted verb: `restore.received`, `restore.approved`, `sweep.removed`, ….
    pub action: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    pub details: serde_json::Value,
}

impl From<audit::Record> for AuditEntry {
    fn from(record: audit::Record) -> AuditEntry {
        AuditEntry {
            details: json_text(&record.details),
            id: record.id,
            at: from_ms(record.at),
            actor: record.actor,
            role: record.role,
            action: record.action,
            account_id: record.account_id,
            product: record.product,
        }
    }
}

/// A membership reseat took away or gave back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JournalEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub account_id: String,
    pub product: String,
    pub site: String,
    pub group_id: String,
    pub group_name: String,
    /// `removed` or `restored`.
    pub action: String,
    /// The sweep run that removed it.
    pub run_id: Option<String>,
    /// The request that restored it.
    pub request_id: Option<String>,
    pub reason: String,
}

impl From<JournalRecord> for JournalEntry {
    fn from(row: JournalRecord) -> JournalEntry {
        JournalEntry {
            id: row.id,
            at: from_ms(row.created_at),
            account_id: row.account_id,
            product: row.product,
            site: row.site,
            group_id: row.group_id,
            group_name: row.group_name,
            action: row.action,
            run_id: row.run_id,
            request_id: row.request_id,
            reason: row.reason,
        }
    }
}

macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

page!(
    /// A page of plans, newest first.
    PlanPage,
    Plan
);
page!(
    /// A page of plan items, in plan order.
    PlanItemPage,
    PlanItemView
);
page!(
    /// A page of restore requests, newest first.
    RequestPage,
    Request
);
page!(
    /// A page of audit entries, newest first.
    AuditPage,
    AuditEntry
);

/// What happened to one account, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Timeline {
    pub account_id: String,
    pub events: Vec<TimelineEvent>,
    /// True when a source had more rows than the timeline shows (the oldest are shown).
    pub truncated: bool,
}

/// One event: exactly one of `journal`, `request`, `audit` is set, as `kind` says.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineEvent {
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// One line for a person.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimelineKind {
    Journal,
    Request,
    Audit,
}

/// What the restore rules would decide now, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    /// `approve`, `manual` or `deny`.
    pub decision: String,
    /// The rule that decided; `null` for a guard or the default.
    pub rule: Option<String>,
    /// The guard that refused before any rule was looked at.
    pub guard: Option<String>,
    /// What the user (deny) or the admin (manual) is told.
    pub message: String,
    /// The groups an approval adds.
    pub groups_to_add: Vec<Group>,
    /// Each rule in order: whether it matched, and each condition checked.
    pub trace: Vec<RuleTrace>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    pub conditions: Vec<String>,
}

impl From<Verdict> for Explanation {
    fn from(verdict: Verdict) -> Explanation {
        Explanation {
            decision: verdict.decision.as_str().to_string(),
            rule: verdict.rule,
            guard: verdict.guard.map(|guard| guard.to_string()),
            message: verdict.message,
            groups_to_add: verdict
                .groups_to_add
                .into_iter()
                .map(|group| Group {
                    id: group.id.to_string(),
                    name: group.name,
                })
                .collect(),
            trace: verdict
                .trace
                .into_iter()
                .map(|trace| RuleTrace {
                    rule: trace.rule,
                    matched: trace.matched,
                    conditions: trace.conditions,
                })
                .collect(),
        }
    }
}

/// Counts for a dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Restore requests per status (statuses with none are left out).
    pub requests_by_status: BTreeMap<String, i64>,
    /// Per product: seats reclaimed (the ledger's one count) and memberships restored.
    pub journal: BTreeMap<String, JournalCounts>,
    pub queue: QueueDepth,
    /// Money saved, from the ledger and `[billing]` prices (see docs/api.md for the rule).
    pub savings: SavingsView,
}

/// Savings to date and the run rate. Amounts are exact decimal strings in `currency`
/// (`"1234.50"`), and `_minor` integers in its minor unit (cents); all are null when no
/// price is configured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SavingsView {
    /// ISO 4217 code of every price.
    pub currency: Option<String>,
    /// Realised savings to date: the sum of the monthly report's rounded cells.
    pub saved: Option<String>,
    pub saved_minor: Option<i64>,
    /// Seats free now × their monthly price (an annual price over 12).
    pub run_rate_per_month: Option<String>,
    pub run_rate_per_month_minor: Option<i64>,
    /// Seats reclaimed and not given back.
    pub free_now: u64,
    /// Per site and product.
    pub by_site_product: Vec<SiteProductSavings>,
    /// Seats used at the next renewal (`billing.renewal`), per site and product.
    pub forecast: Vec<crate::billing::SeatForecast>,
}

/// The figures of one site and product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SiteProductSavings {
    pub site: String,
    pub product: String,
    /// Times a seat became free (a seat given back and reclaimed again counts twice).
    pub reclaimed: u64,
    /// Times a free seat was given back.
    pub restored: u64,
    pub free_now: u64,
    /// Whole days seats were free, summed.
    pub seat_days: u64,
    /// Null without a price for this site and product.
    pub saved: Option<String>,
    pub saved_minor: Option<i64>,
    pub run_rate_per_month: Option<String>,
    pub run_rate_per_month_minor: Option<i64>,
}

impl SavingsView {
    pub fn new(
        savings: &crate::billing::Savings,
        forecast: Vec<crate::billing::SeatForecast>,
    ) -> SavingsView {
        let priced = savings.currency.is_some();
        let amount = |minor: Option<crate::billing::Minor>| {
            (priced && minor.is_some()).then(|| savings.format(minor))
        };
        let minor = |value: Option<crate::billing::Minor>| value.filter(|_| priced).map(|m| m.0);
        SavingsView {
            currency: savings.currency.map(|c| c.code().to_string()),
            saved: amount(Some(savings.saved())),
            saved_minor: minor(Some(savings.saved())),
            run_rate_per_month: amount(Some(savings.run_rate())),
            run_rate_per_month_minor: minor(Some(savings.run_rate())),
            free_now: savings.free_now(),
            by_site_product: savings
                .totals
                .iter()
                .map(|t| SiteProductSavings {
                    site: t.site.clone(),
                    product: t.product.clone(),
                    reclaimed: t.reclaimed,
                    restored: t.restored,
                    free_now: t.free_now,
                    seat_days: t.seat_days,
                    saved: amount(t.saved),
                    saved_minor: minor(t.saved),
                    run_rate_per_month: amount(t.run_rate),
                    run_rate_per_month_minor: minor(t.run_rate),
                })
                .collect(),
            forecast,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct JournalCounts {
    pub removed: i64,
    pub restored: i64,
}

/// Jobs by state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueDepth {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
}
