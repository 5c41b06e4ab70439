//! What an admin does with a request the rules sent to `manual` (or that failed): approve
//! it, optionally naming groups for a user reseat never removed, or deny it with a reason.
//! Both are audited with the admin's name and processed by the same worker as any request,
//! so the reply (JSM comment, email) and the journal work the same way.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rules::{self, Decision, Facts, GroupFact, Verdict};
use super::store::{self, Outcome, PROCESS_JOB, RestoreRequest};
use crate::app::AppState;
use crate::atlassian::GroupId;
use crate::audit;
use crate::queue::NewJob;
use crate::store::time::now_ms;

/// Who decides: a person signed in to the admin pages, or a holder of an API token.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    Admin(&'a str),
    ApiToken(&'a str),
}

impl By<'_> {
    /// The audit actor: `admin:<name>` or `api:<token name>`.
    pub fn actor(&self) -> String {
        match self {
            By::Admin(name) => format!("admin:{name}"),
            By::ApiToken(name) => format!("api:{name}"),
        }
    }

    /// How the decision is credited on the request (`approved by …`).
    pub fn label(&self) -> String {
        match self {
            By::Admin(name) => (*name).to_string(),
            By::ApiToken(name) => format!("api:{name}"),
        }
    }
}

/// Why an admin action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("request {0} does not exist")]
    NotFound(String),
    #[error("request {id} is {status}; only pending or failed requests can be approved or denied")]
    NotOpen { id: String, status: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// An admin's approval, kept in the request's payload for the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    /// Groups to add besides the journaled ones (for users reseat never removed).
    #[serde(default)]
    pub groups: Vec<GroupId>,
}

/// The approval recorded on a request awaiting processing, if any.
pub fn approval(request: &RestoreRequest) -> Option<Approval> {
    if request.status != "approved" {
        return None;
    }
    let payload: serde_json::Value = serde_json::from_str(&request.payload).ok()?;
    serde_json::from_value(payload.get("approval")?.clone()).ok()
}

/// The verdict for an approved request: guards first, then the journaled groups plus the
/// groups the admin named.
pub fn approved_verdict(
    facts: &Facts,
    approval: &Approval,
    offboarding_groups: &[String],
) -> Verdict {
    let guarded = rules::evaluate(facts, &[], offboarding_groups);
    if guarded.guard.is_some() {
        return guarded;
    }
    let mut groups = facts.journal_groups.clone();
    for id in &approval.groups {
        if !groups.iter().any(|g| &g.id == id) {
            groups.push(GroupFact {
                id: id.clone(),
                name: id.to_string(),
            });
        }
    }
    if groups.is_empty() && facts.journal_roles.is_empty() {
        return Verdict {
            decision: Decision::Manual,
            rule: Some(format!("approved by {}", approval.by)),
            guard: None,
            message: "Approved, but reseat has no record of removing this access and no groups were named; approve again naming the groups.".into(),
            groups_to_add: Vec::new(),
            trace: Vec::new(),
        };
    }
    Verdict {
        decision: Decision::Approve,
        rule: Some(format!("approved by {}", approval.by)),
        guard: None,
        message: "Access restored after an administrator's approval.".into(),
        groups_to_add: groups,
        trace: Vec::new(),
    }
}

async fn open_request(state: &AppState, id: &str) -> Result<RestoreRequest, AdminError> {
    let request = store::get(&state.db, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_string()))?;
    if !matches!(request.status.as_str(), "pending" | "failed") {
        return Err(AdminError::NotOpen {
            id: id.to_string(),
            status: request.status,
        });
    }
    Ok(request)
}

/// Approves a request; the worker restores and replies.
pub async fn approve(
    state: &AppState,
    id: &str,
    admin: &str,
    groups: Vec<GroupId>,
) -> Result<(), AdminError> {
    approve_by(state, id, By::Admin(admin), groups).await
}

/// Approves a request for an admin or an API token; the worker restores and replies.
pub async fn approve_by(
    state: &AppState,
    id: &str,
    by: By<'_>,
    groups: Vec<GroupId>,
) -> Result<(), AdminError> {
    let request = open_request(state, id).await?;
    let mut payload: serde_json::Value =
        serde_json::from_str(&request.payload).unwrap_or_else(|_| json!({}));
    payload["approval"] = json!(Approval {
        by: by.label(),
        groups: groups.clone()
    });
    let mut tx = state.db.pool().begin().await?;
    sqlx::query(
        "UPDATE restore_requests SET status = 'approved', payload = $1, replied_at = NULL, updated_at = $2 \
         WHERE id = $3 AND status IN ('pending', 'failed')",
    )
    .bind(payload.to_string())
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let group_ids: Vec<&str> = groups.iter().map(GroupId::as_str).collect();
    let details = json!({ "request_id": id, "groups": group_ids });
    audit_and_enqueue(state, &mut tx, &request, by, "approved", details).await?;
    tx.commit().await?;
    Ok(())
}

/// Audits the admin's action and queues the request for the worker, in the caller's
/// transaction.
async fn audit_and_enqueue(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    request: &RestoreRequest,
    by: By<'_>,
    verb: &str,
    details: serde_json::Value,
) -> Result<(), AdminError> {
    let actor = by.actor();
    let action = format!("restore.{verb}");
    audit::record_in(
        tx,
        audit::Entry {
            actor: &actor,
            action: &action,
            account_id: request.account_id.as_deref(),
            product: request.product.as_deref(),
            details,
        },
    )
    .await?;
    let id = &request.id;
    state
        .queue
        .enqueue_in(
            tx,
            NewJob::new(PROCESS_JOB, json!({ "request_id": id }))
                .dedupe_key(format!("restore:{id}:{verb}:{}", now_ms())),
        )
        .await?;
    Ok(())
}

/// Denies a request with a reason the requester is told; the worker replies.
pub async fn deny(state: &AppState, id: &str, admin: &str, reason: &str) -> Result<(), AdminError> {
    deny_by(state, id, By::Admin(admin), reason).await
}

/// Denies a request for an admin or an API token; the worker replies.
pub async fn deny_by(
    state: &AppState,
    id: &str,
    by: By<'_>,
    reason: &str,
) -> Result<(), AdminError> {
    let request = open_request(state, id).await?;
    let mut tx = state.db.pool().begin().await?;
    let rule = format!("denied by {}", by.label());
    store::set_outcome_in(
        &mut tx,
        id,
        &Outcome {
            status: "denied",
            decision: Some("deny"),
            matched_rule: Some(&rule),
            reason: Some("denied by an administrator"),
            message: Some(reason),
            ..Outcome::default()
        },
    )
    .await?;
    sqlx::query("UPDATE restore_requests SET replied_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let details = json!({ "request_id": id, "reason": reason });
    audit_and_enqueue(state, &mut tx, &request, by, "denied", details).await?;
    tx.commit().await?;
    Ok(())
}
