//! What an admin does with a request the rules sent to `manual` (or that failed): approve
//! it, optionally naming groups for a user reseat never removed, or deny it with a reason.
//! Both are audited with the admin's name and processed by the same worker as any request,
//! so the reply (JSM comment, email) and the journal work the same way.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rules::{self, Decision, Facts, GroupFact, Verdict};
use super::status::Status;
use super::store::{self, Outcome, PROCESS_JOB, RestoreRequest};
use crate::app::AppState;
use crate::atlassian::{AtlassianError, GroupId, ProductKey};
use crate::audit;
use crate::queue::NewJob;
use crate::web::config::{Action, Grant, Refused};

/// Why an admin action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("request {0} does not exist")]
    NotFound(String),
    #[error("request {id} is {status}; only pending or failed requests can be approved or denied")]
    NotOpen { id: String, status: String },
    /// An approval named groups that do not grant the request's product.
    #[error(
        "refused: {groups} {verb} not among the access groups of {product} (what reseat removed, the configured access groups, the rules' grant groups, the product's groups in Jira); nothing was changed",
        groups = refused.join(", "),
        verb = if refused.len() == 1 { "is" } else { "are" },
    )]
    GroupsNotAllowed {
        product: String,
        refused: Vec<String>,
    },
    /// Groups were named for a request whose product is not known yet.
    #[error("request {0} does not say which product it is for yet; approve it without groups")]
    NoProduct(String),
    #[error("cannot read the product's access groups from Atlassian: {0}")]
    Upstream(#[from] AtlassianError),
    /// Outside the credential's role or scope (audited as a refusal; nothing changed).
    #[error(transparent)]
    Refused(#[from] Refused),
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
    if request.state() != Status::Approved {
        return None;
    }
    let payload: serde_json::Value = serde_json::from_str(&request.payload).ok()?;
    serde_json::from_value(payload.get("approval")?.clone()).ok()
}

/// Who approved a request (`approved by <name>`), from its payload, whatever it is now.
pub fn approval_by(request: &RestoreRequest) -> Option<String> {
    let payload: serde_json::Value = serde_json::from_str(&request.payload).ok()?;
    let by = payload.get("approval")?.get("by")?.as_str()?;
    Some(format!("approved by {by}"))
}

/// Of the groups an admin named, those that do not grant `product`. A group grants it when
/// reseat removed it for this seat (`journal`), or it is one of the product's configured
/// `access_groups`, a rule's grant group for the product, or (Jira) one of the groups of the
/// product's application role. Offboarding groups never do.
pub async fn refused_groups(
    state: &AppState,
    product: &ProductKey,
    journal: &[GroupFact],
    requested: &[GroupId],
) -> Result<Vec<GroupId>, AtlassianError> {
    let offboarding = &state.config.restore.offboarding_groups;
    // (id, name when known)
    let mut allowed: Vec<(GroupId, Option<String>)> = journal
        .iter()
        .map(|g| (g.id.clone(), Some(g.name.clone())))
        .collect();
    if let Some(policy) = state.config.sweep.product(product) {
        allowed.extend(policy.access_groups.iter().map(|id| (id.clone(), None)));
    }
    for rule in &state.config.restore.rules {
        if rule.products.is_empty() || rule.products.contains(product) {
            allowed.extend(rule.grant_groups.iter().map(|id| (id.clone(), None)));
        }
    }
    let outside = |allowed: &[(GroupId, Option<String>)]| -> Vec<GroupId> {
        requested
            .iter()
            .filter(|id| {
                let found = allowed.iter().find(|(a, _)| a == *id);
                let offboarded = |name: Option<&str>| {
                    offboarding.iter().any(|o| {
                        o == id.as_str() || name.is_some_and(|n| o.eq_ignore_ascii_case(n))
                    })
                };
                match found {
                    Some((_, name)) => offboarded(name.as_deref()),
                    None => true,
                }
            })
            .cloned()
            .collect()
    };
    let refused = outside(&allowed);
    if refused.is_empty() || product.jira_application_key().is_none() {
        return Ok(refused);
    }
    let Some(jira) = state.atlassian.jira.as_ref() else {
        return Ok(refused);
    };
    let role = jira.application_role(product).await?;
    allowed.extend(
        role.group_details
            .iter()
            .chain(&role.default_groups_details)
            .map(|g| (g.group_id.clone(), Some(g.name.clone()))),
    );
    Ok(outside(&allowed))
}

/// The verdict for an approved request: guards first, then the journaled groups plus the
/// groups the admin named (`refused` lists the named ones that do not grant the product:
/// the approval then waits for an admin again, saying so).
pub fn approved_verdict(
    facts: &Facts,
    approval: &Approval,
    offboarding_groups: &[String],
    refused: &[GroupId],
) -> Verdict {
    let guarded = rules::evaluate(facts, &[], offboarding_groups);
    if guarded.guard.is_some() {
        return guarded;
    }
    if !refused.is_empty() {
        let names: Vec<&str> = refused.iter().map(GroupId::as_str).collect();
        return Verdict {
            decision: Decision::Manual,
            rule: Some(format!("approved by {}", approval.by)),
            guard: None,
            message: format!(
                "Approved naming groups that do not grant this product ({}); nothing was added. Approve again with the product's access groups.",
                names.join(", ")
            ),
            groups_to_add: Vec::new(),
            approve_for: None,
            trace: Vec::new(),
        };
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
            approve_for: None,
            trace: Vec::new(),
        };
    }
    Verdict {
        decision: Decision::Approve,
        rule: Some(format!("approved by {}", approval.by)),
        guard: None,
        message: "Access restored after an administrator's approval.".into(),
        groups_to_add: groups,
        approve_for: None,
        trace: Vec::new(),
    }
}

/// The open request `id`, if `grant` may decide it: the role allows deciding and the scope
/// covers the request's site and product (a request whose product is not known yet is only
/// covered by a grant limited to no product). A refusal is audited and changes nothing.
async fn open_request(
    state: &AppState,
    id: &str,
    grant: &Grant,
) -> Result<RestoreRequest, AdminError> {
    grant.require(&state.db, Action::Decide).await?;
    let request = store::get(&state.db, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_string()))?;
    grant
        .require_scope(
            &state.db,
            request.site_or(state.site()),
            request.product.as_deref(),
            &format!("request {id}"),
        )
        .await?;
    if !request.state().is_open() {
        return Err(AdminError::NotOpen {
            id: id.to_string(),
            status: request.status,
        });
    }
    Ok(request)
}

/// Approves a request for an admin, an API token or the CLI (`grant`: who, with which role
/// and scope); the worker restores and replies.
pub async fn approve(
    state: &AppState,
    id: &str,
    grant: &Grant,
    groups: Vec<GroupId>,
) -> Result<(), AdminError> {
    let request = open_request(state, id, grant).await?;
    let site_view = request.site_view(state).unwrap_or_else(|| state.clone());
    let state = &site_view;
    if !groups.is_empty() {
        let product = request
            .product
            .as_deref()
            .and_then(|p| ProductKey::parse(p).ok())
            .ok_or_else(|| AdminError::NoProduct(id.to_string()))?;
        let journal = match request.account_id.as_deref() {
            Some(account) => {
                crate::ledger::taken_groups(&state.db, account, product.as_str(), state.site())
                    .await?
            }
            None => Vec::new(),
        };
        let refused = refused_groups(state, &product, &journal, &groups).await?;
        if !refused.is_empty() {
            let _ = audit::record(
                &state.db,
                audit::Entry {
                    actor: &grant.actor,
                    role: Some(grant.role_name()),
                    action: "restore.approval_refused",
                    account_id: request.account_id.as_deref(),
                    product: request.product.as_deref(),
                    details: json!({
                        "request_id": id,
                        "groups": refused.iter().map(GroupId::as_str).collect::<Vec<_>>(),
                    }),
                },
            )
            .await;
            return Err(AdminError::GroupsNotAllowed {
                product: product.as_str().to_string(),
                refused: refused.iter().map(|g| g.to_string()).collect(),
            });
        }
    }
    let mut payload: serde_json::Value =
        serde_json::from_str(&request.payload).unwrap_or_else(|_| json!({}));
    payload["approval"] = json!(Approval {
        by: grant.label().to_string(),
        groups: groups.clone()
    });
    let mut tx = state.db.pool().begin().await?;
    let group_ids: Vec<&str> = groups.iter().map(GroupId::as_str).collect();
    let details = json!({ "request_id": id, "groups": group_ids });
    let job = audit_and_enqueue(state, &mut tx, &request, grant, "approved", details).await?;
    if !store::reopen_in(
        &mut tx,
        state.db.now_ms(),
        id,
        request.state(),
        Status::Approved,
        &payload.to_string(),
        job,
    )
    .await?
    {
        // A second click, or another admin: the first decision stands, nothing is written.
        return Err(not_open(state, id).await);
    }
    tx.commit().await?;
    Ok(())
}

/// The refusal for a request that is no longer open, with the status it is in now.
async fn not_open(state: &AppState, id: &str) -> AdminError {
    match store::get(&state.db, id).await {
        Ok(Some(request)) => AdminError::NotOpen {
            id: id.to_string(),
            status: request.status,
        },
        Ok(None) => AdminError::NotFound(id.to_string()),
        Err(error) => AdminError::Db(error),
    }
}

/// Audits the admin's action and queues the request for the worker, in the caller's
/// transaction.
async fn audit_and_enqueue(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    request: &RestoreRequest,
    grant: &Grant,
    verb: &str,
    details: serde_json::Value,
) -> Result<i64, AdminError> {
    let action = format!("restore.{verb}");
    audit::record_in(
        tx,
        state.db.now_ms(),
        audit::Entry {
            actor: &grant.actor,
            role: Some(grant.role_name()),
            action: &action,
            account_id: request.account_id.as_deref(),
            product: request.product.as_deref(),
            details,
        },
    )
    .await?;
    let id = &request.id;
    let job = state
        .queue
        .enqueue_in(
            tx,
            NewJob::new(PROCESS_JOB, json!({ "request_id": id }))
                .dedupe_key(format!("restore:{id}:{verb}:{}", uuid::Uuid::new_v4())),
        )
        .await?;
    Ok(job)
}

/// Denies a request for an admin, an API token or the CLI; the worker replies.
pub async fn deny(
    state: &AppState,
    id: &str,
    grant: &Grant,
    reason: &str,
) -> Result<(), AdminError> {
    let request = open_request(state, id, grant).await?;
    let mut tx = state.db.pool().begin().await?;
    let rule = format!("denied by {}", grant.label());
    let details = json!({ "request_id": id, "reason": reason });
    let job = audit_and_enqueue(state, &mut tx, &request, grant, "denied", details).await?;
    let denied = store::set_outcome_in(
        &mut tx,
        state.db.now_ms(),
        id,
        request.state(),
        &Outcome {
            decision: Some("deny"),
            matched_rule: Some(&rule),
            reason: Some("denied by an administrator"),
            message: Some(reason),
            ..Outcome::status(Status::Denied)
        },
    )
    .await?;
    if !denied {
        return Err(not_open(state, id).await);
    }
    sqlx::query("UPDATE restore_requests SET replied_at = NULL, job_id = $1 WHERE id = $2")
        .bind(job)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
