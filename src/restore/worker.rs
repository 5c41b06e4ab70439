//! Processing a stored restore request: resolve who asks for what (from Atlassian, never
//! from the request body), gather the facts, let the rules decide, re-add exactly the
//! journaled groups, verify, journal, audit, and answer where the request came from.
//!
//! Every step is safe to repeat: a job that dies half-way runs again and re-adding a group
//! the user is already in is success; journal rows are unique per group and request; a
//! request already decided only gets its missing reply.

use std::sync::Arc;

use serde_json::json;

use super::rules::{self, Channel, Decision, Facts, GroupFact, Seats, Verdict};
use super::store::{self, Outcome, RestoreRequest};
use crate::app::AppState;
use crate::atlassian::{AccountId, ApiFamily, AtlassianError, IssueKey, JiraUser, ProductKey};
use crate::audit;
use crate::ledger::{self, JournalEntry};
use crate::queue::{HandlerFuture, Job, JobError, JobHandler};

/// The `restore.process` job handler.
pub struct RestoreProcessor {
    state: AppState,
}

impl RestoreProcessor {
    pub fn new(state: AppState) -> Arc<RestoreProcessor> {
        Arc::new(RestoreProcessor { state })
    }
}

impl JobHandler for RestoreProcessor {
    fn handle<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(async move {
            #[derive(serde::Deserialize)]
            struct Payload {
                request_id: String,
            }
            let payload: Payload = job
                .payload()
                .map_err(|e| JobError::Permanent(format!("bad job payload: {e}")))?;
            let last_attempt = job.attempts >= job.max_attempts;
            process(&self.state, &payload.request_id, last_attempt).await
        })
    }
}

/// Who asks for which product, once resolved.
struct Subject {
    account: AccountId,
    product: ProductKey,
}

/// Why a request is not processed further.
enum Stop {
    /// Not a restore request at all (another JSM request type): left alone.
    Ignore(String),
    /// Refused before the rules (unknown account, unknown product, …).
    Deny { reason: String, message: String },
}

enum Failure {
    Stop(Stop),
    /// The seat is being changed (a removal of it runs): try again after this wait.
    Busy(std::time::Duration),
    Upstream(AtlassianError),
    Db(sqlx::Error),
}

impl From<AtlassianError> for Failure {
    fn from(error: AtlassianError) -> Self {
        Failure::Upstream(error)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Db(error)
    }
}

#[tracing::instrument(skip_all, fields(request_id = %id))]
pub async fn process(state: &AppState, id: &str, last_attempt: bool) -> Result<(), JobError> {
    let db_error = |e: sqlx::Error| JobError::retry(format!("database: {e}"));
    let Some(request) = store::get(&state.db, id).await.map_err(db_error)? else {
        return Err(JobError::Permanent(format!(
            "restore request {id} does not exist"
        )));
    };
    if request.is_decided() {
        if request.replied_at.is_none() {
            reply_and_mark(state, &request).await?;
        }
        return Ok(());
    }
    let channel = Channel::parse(&request.channel)
        .ok_or_else(|| JobError::Permanent(format!("unknown channel {:?}", request.channel)))?;
    match decide_and_apply(state, &request, channel).await {
        Ok(()) => {}
        Err(Failure::Stop(Stop::Ignore(reason))) => {
            finish(
                state,
                &request,
                Outcome {
                    status: "ignored",
                    reason: Some(&reason),
                    ..Outcome::default()
                },
                "restore.ignored",
            )
            .await?;
        }
        Err(Failure::Stop(Stop::Deny { reason, message })) => {
            let outcome = Outcome {
                status: "denied",
                decision: Some("deny"),
                reason: Some(&reason),
                message: Some(&message),
                ..Outcome::default()
            };
            finish(state, &request, outcome, "restore.denied").await?;
        }
        Err(Failure::Db(error)) => return Err(db_error(error)),
        Err(Failure::Busy(after)) => {
            return Err(JobError::Retry {
                message: "a removal of this seat is running".into(),
                after: Some(after),
            });
        }
        Err(Failure::Upstream(error)) if error.is_temporary() && !last_attempt => {
            let after = match &error {
                AtlassianError::RateLimited { retry_after } => *retry_after,
                _ => None,
            };
            return Err(JobError::Retry {
                message: error.to_string(),
                after,
            });
        }
        Err(Failure::Upstream(error)) => {
            // Permanent (or out of attempts): the requester hears an admin will look at it.
            let reason = error.to_string();
            let outcome = Outcome {
                status: "failed",
                reason: Some(&reason),
                message: Some(
                    "We could not restore your access automatically. An administrator will look at your request.",
                ),
                ..Outcome::default()
            };
            tracing::error!(error = %reason, "restore failed permanently");
            finish(state, &request, outcome, "restore.failed").await?;
        }
    }
    let request = store::get(&state.db, id).await.map_err(db_error)?;
    if let Some(request) = request.filter(|r| r.replied_at.is_none()) {
        reply_and_mark(state, &request).await?;
    }
    Ok(())
}

async fn finish(
    state: &AppState,
    request: &RestoreRequest,
    outcome: Outcome<'_>,
    action: &str,
) -> Result<(), JobError> {
    let run = async {
        let mut tx = state.db.pool().begin().await?;
        store::set_outcome_in(&mut tx, &request.id, &outcome).await?;
        audit::record_in(
            &mut tx,
            audit::Entry {
                actor: "reseat",
                action,
                account_id: outcome.account_id.or(request.account_id.as_deref()),
                product: outcome.product.or(request.product.as_deref()),
                details: json!({ "request_id": request.id, "reason": outcome.reason }),
            },
        )
        .await?;
        tx.commit().await
    };
    run.await
        .map_err(|e| JobError::retry(format!("database: {e}")))
}

async fn decide_and_apply(
    state: &AppState,
    request: &RestoreRequest,
    channel: Channel,
) -> Result<(), Failure> {
    let subject = resolve(state, request, channel).await?;
    // Taking and giving back a seat never interleave: a removal of this seat that runs now
    // ends first, and what the journal says was taken is read only once it has.
    let seat = ledger::Seat::new(
        subject.account.as_str(),
        subject.product.as_str(),
        state.site(),
    );
    let claim = match ledger::seat::claim(
        &state.db,
        &seat,
        &ledger::seat::restore_holder(&request.id),
        ledger::seat::CLAIM_TTL,
        ledger::seat::RESTORE_PATIENCE,
    )
    .await?
    {
        Ok(claim) => claim,
        Err(busy) => return Err(Failure::Busy(busy.retry_in())),
    };
    let result = decide_and_apply_claimed(state, request, channel, subject).await;
    claim.release().await;
    result
}

async fn decide_and_apply_claimed(
    state: &AppState,
    request: &RestoreRequest,
    channel: Channel,
    subject: Subject,
) -> Result<(), Failure> {
    let jira = state.atlassian.jira.as_ref().ok_or_else(|| {
        AtlassianError::Invalid(
            "the Jira site API is not configured (atlassian.site_email, site_api_token)".into(),
        )
    })?;
    let user = match jira.user(&subject.account).await {
        Ok(user) => user,
        Err(AtlassianError::NotFound { .. }) => {
            return Err(Failure::Stop(Stop::Deny {
                reason: format!("account {} does not exist on the site", subject.account),
                message: "We could not find your account.".into(),
            }));
        }
        Err(error) => return Err(error.into()),
    };
    let facts = gather_facts(state, &subject, channel, &user).await?;
    let offboarding = &state.config.restore.offboarding_groups;
    let verdict = match super::admin::approval(request) {
        // An admin approved: the guards still hold, the rules are not asked again.
        Some(approval) => super::admin::approved_verdict(&facts, &approval, offboarding),
        None => rules::evaluate(&facts, &state.config.restore.rules, offboarding),
    };
    let account = subject.account.as_str();
    let product = subject.product.as_str();
    let verdict_json = serde_json::to_value(&verdict).ok();
    match verdict.decision {
        Decision::Approve => {
            // The sweep's ladder suspended the account org-wide: lift that first.
            let suspension = ledger::suspensions::open_suspension(&state.db, account).await?;
            if suspension.is_some() {
                let (Some(admin), Some(org)) = (&state.atlassian.admin, &state.atlassian.org_id)
                else {
                    return Err(AtlassianError::Invalid(
                        "the account is suspended and the admin API is not configured".into(),
                    )
                    .into());
                };
                admin.restore(org, &subject.account).await?;
            }
            add_groups(state, &subject, &verdict).await?;
            // The direct roles the sweep revoked come back too (journaled per request).
            crate::sweep::roles::regrant(state, &subject.account, &subject.product, &request.id)
                .await
                .map_err(|e| match e {
                    crate::sweep::roles::RoleError::Upstream(e) => Failure::Upstream(e),
                    crate::sweep::roles::RoleError::Db(e) => Failure::Db(e),
                })?;
            verify_groups(state, &subject, &verdict).await?;
            let mut tx = state.db.pool().begin().await?;
            if let Some(id) = suspension {
                ledger::suspensions::close_suspension_in(
                    &mut tx,
                    id,
                    ledger::SuspensionEnd::Restored,
                    chrono::Utc::now(),
                )
                .await?;
                audit::record_in(
                    &mut tx,
                    audit::Entry {
                        actor: "reseat",
                        action: "restore.unsuspended",
                        account_id: Some(account),
                        product: Some(product),
                        details: json!({ "request_id": request.id }),
                    },
                )
                .await?;
            }
            for group in &verdict.groups_to_add {
                ledger::journal::journal_restored_in(
                    &mut tx,
                    &JournalEntry {
                        account_id: account,
                        product,
                        site: state.site(),
                        group_id: group.id.as_str(),
                        group_name: &group.name,
                        run_id: None,
                        request_id: Some(&request.id),
                        reason: verdict.rule.as_deref().unwrap_or("approved"),
                    },
                )
                .await?;
            }
            let groups: Vec<&str> = verdict
                .groups_to_add
                .iter()
                .map(|g| g.id.as_str())
                .collect();
            audit::record_in(
                &mut tx,
                audit::Entry {
                    actor: "reseat",
                    action: "restore.groups_added",
                    account_id: Some(account),
                    product: Some(product),
                    details: json!({ "request_id": request.id, "groups": groups, "rule": verdict.rule }),
                },
            )
            .await?;
            store::set_outcome_in(
                &mut tx,
                &request.id,
                &outcome("restored", &subject, &user, &verdict, verdict_json),
            )
            .await?;
            tx.commit().await?;
        }
        Decision::Manual | Decision::Deny => {
            let (status, action) = match verdict.decision {
                Decision::Manual => ("pending", "restore.pending"),
                _ => ("denied", "restore.denied"),
            };
            let mut tx = state.db.pool().begin().await?;
            audit::record_in(
                &mut tx,
                audit::Entry {
                    actor: "reseat",
                    action,
                    account_id: Some(account),
                    product: Some(product),
                    details: json!({
                        "request_id": request.id,
                        "rule": verdict.rule,
                        "guard": verdict.guard.as_ref().map(|g| g.to_string()),
                    }),
                },
            )
            .await?;
            store::set_outcome_in(
                &mut tx,
                &request.id,
                &outcome(status, &subject, &user, &verdict, verdict_json),
            )
            .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

fn outcome<'a>(
    status: &'a str,
    subject: &'a Subject,
    user: &'a JiraUser,
    verdict: &'a Verdict,
    json: Option<serde_json::Value>,
) -> Outcome<'a> {
    Outcome {
        email: user.email_address.as_deref(),
        display_name: Some(user.display_name.as_str()).filter(|name| !name.is_empty()),
        status,
        account_id: Some(subject.account.as_str()),
        product: Some(subject.product.as_str()),
        decision: Some(verdict.decision.as_str()),
        matched_rule: verdict.rule.as_deref(),
        reason: Some(
            verdict
                .guard
                .as_ref()
                .map(|_| "guard")
                .unwrap_or(verdict.rule.as_deref().unwrap_or("no rule matched")),
        ),
        message: Some(&verdict.message),
        verdict: json,
    }
}

async fn resolve(
    state: &AppState,
    request: &RestoreRequest,
    channel: Channel,
) -> Result<Subject, Failure> {
    let payload: serde_json::Value = serde_json::from_str(&request.payload).unwrap_or_default();
    let text = |key: &str| payload.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let deny = |reason: String| {
        Failure::Stop(Stop::Deny {
            reason,
            message: "This request cannot be processed.".into(),
        })
    };
    let product = || -> Result<ProductKey, Failure> {
        let key = text("product").ok_or_else(|| deny("no product in the request".into()))?;
        ProductKey::from_request_text(&key).map_err(|e| deny(e.to_string()))
    };
    match channel {
        Channel::Jsm => resolve_jsm(state, &text("issueKey").unwrap_or_default()).await,
        Channel::Automation | Channel::Link => {
            let account =
                text("accountId").ok_or_else(|| deny("no account in the request".into()))?;
            let account = AccountId::parse(account).map_err(|e| deny(e.to_string()))?;
            Ok(Subject {
                account,
                product: product()?,
            })
        }
        Channel::Webhook => {
            let product = product()?;
            if let Some(account) = text("accountId") {
                let account = AccountId::parse(account).map_err(|e| deny(e.to_string()))?;
                return Ok(Subject { account, product });
            }
            let email =
                text("email").ok_or_else(|| deny("no account or email in the request".into()))?;
            let account = find_by_email(state, &email).await?.ok_or_else(|| {
                Failure::Stop(Stop::Deny {
                    reason: format!("no account with the email {email}"),
                    message: "We could not find your account.".into(),
                })
            })?;
            Ok(Subject { account, product })
        }
    }
}

async fn resolve_jsm(state: &AppState, issue: &str) -> Result<Subject, Failure> {
    let config = &state.config.restore.jsm;
    let issue = IssueKey::parse(issue).map_err(|e| Failure::Stop(Stop::Ignore(e.to_string())))?;
    let jsm = state.atlassian.jsm.as_ref().ok_or_else(|| {
        AtlassianError::Invalid(
            "the JSM site API is not configured (atlassian.site_email, site_api_token)".into(),
        )
    })?;
    let customer_request = match jsm.request(&issue).await {
        Ok(request) => request,
        Err(AtlassianError::NotFound { .. }) => {
            return Err(Failure::Stop(Stop::Ignore(format!(
                "JSM has no request {issue}"
            ))));
        }
        Err(error) => return Err(error.into()),
    };
    let type_id = customer_request.request_type_id.clone().unwrap_or_default();
    if !config.request_type_ids.is_empty() && !config.request_type_ids.contains(&type_id) {
        return Err(Failure::Stop(Stop::Ignore(format!(
            "request type {type_id:?} is not a restore request type"
        ))));
    }
    let reporter = customer_request
        .reporter
        .as_ref()
        .map(|r| r.account_id.clone())
        .ok_or_else(|| Failure::Stop(Stop::Ignore("the request has no reporter".into())))?;
    let account = AccountId::parse(reporter.to_string())
        .map_err(|e| Failure::Stop(Stop::Ignore(e.to_string())))?;
    let from_field = config.product_field.as_ref().and_then(|field| {
        customer_request
            .request_field_values
            .iter()
            .find(|value| &value.field_id == field)
            .and_then(|value| field_text(&value.value))
    });
    let product = match from_field {
        Some(value) => config
            .product_values
            .get(&value)
            .cloned()
            .or_else(|| ProductKey::from_request_text(&value).ok())
            .ok_or_else(|| {
                Failure::Stop(Stop::Deny {
                    reason: format!("the request's product field {value:?} names no product"),
                    message: "The request does not say which product to restore.".into(),
                })
            })?,
        None => config.default_product.clone().ok_or_else(|| {
            Failure::Stop(Stop::Deny {
                reason: "the request names no product and there is no default".into(),
                message: "The request does not say which product to restore.".into(),
            })
        })?,
    };
    Ok(Subject { account, product })
}

/// The text of a JSM field value: a string, or an option's `value`.
fn field_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.trim().to_string()),
        serde_json::Value::Object(map) => map
            .get("value")
            .and_then(|v| v.as_str())
            .map(|v| v.trim().to_string()),
        serde_json::Value::Array(items) => items.first().and_then(field_text),
        _ => None,
    }
}

async fn find_by_email(state: &AppState, email: &str) -> Result<Option<AccountId>, Failure> {
    let jira = state
        .atlassian
        .jira
        .as_ref()
        .ok_or_else(|| AtlassianError::Invalid("the Jira site API is not configured".into()))?;
    let page = jira.search_users_page(email, None).await?;
    Ok(page
        .items
        .into_iter()
        .find(|user| {
            user.email_address
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .map(|user| user.account_id))
}

/// What the rules would decide for an account, product and channel now (`rules explain`).
pub async fn explain(
    state: &AppState,
    account: &AccountId,
    product: &ProductKey,
    channel: Channel,
) -> Result<Verdict, AtlassianError> {
    let jira = state.atlassian.jira.as_ref().ok_or_else(|| {
        AtlassianError::Invalid(
            "the Jira site API is not configured (atlassian.site_email, site_api_token)".into(),
        )
    })?;
    let user = jira.user(account).await?;
    let subject = Subject {
        account: account.clone(),
        product: product.clone(),
    };
    let facts = match gather_facts(state, &subject, channel, &user).await {
        Ok(facts) => facts,
        Err(Failure::Upstream(error)) => return Err(error),
        Err(Failure::Db(error)) => {
            return Err(AtlassianError::Invalid(format!("database: {error}")));
        }
        Err(Failure::Stop(_) | Failure::Busy(_)) => {
            return Err(AtlassianError::Invalid("cannot gather facts".into()));
        }
    };
    Ok(rules::evaluate(
        &facts,
        &state.config.restore.rules,
        &state.config.restore.offboarding_groups,
    ))
}

async fn gather_facts(
    state: &AppState,
    subject: &Subject,
    channel: Channel,
    user: &JiraUser,
) -> Result<Facts, Failure> {
    let groups = match &user.groups {
        Some(groups) => groups.clone(),
        None => match &state.atlassian.jira {
            Some(jira) => jira.user_groups(&subject.account).await?,
            None => Vec::new(),
        },
    };
    let journal_groups = ledger::taken_groups(
        &state.db,
        subject.account.as_str(),
        subject.product.as_str(),
        state.site(),
    )
    .await?;
    let seats = match (
        subject.product.jira_application_key(),
        &state.atlassian.jira,
    ) {
        (Some(_), Some(jira)) => match jira.application_role(&subject.product).await {
            Ok(role) if role.has_unlimited_seats => Seats::Unlimited,
            Ok(role) => role
                .remaining_seats
                .map_or(Seats::Unknown, Seats::Remaining),
            Err(error) if error.is_temporary() => return Err(error.into()),
            Err(_) => Seats::Unknown,
        },
        _ => Seats::Unknown,
    };
    Ok(Facts {
        product: subject.product.clone(),
        channel,
        product_configured: state.config.sweep.product(&subject.product).is_some(),
        account_type: user.account_type.clone(),
        // Jira reports an org-suspended account as inactive. A suspension the sweep's ladder
        // made (`sweep_suspensions`) is reseat's own step, which a restore lifts; any other
        // suspension or deactivation still blocks.
        active: user.active
            || ledger::suspensions::open_suspension(&state.db, subject.account.as_str())
                .await?
                .is_some(),
        suspended: false,
        email: user.email_address.clone(),
        groups: groups
            .into_iter()
            .map(|g| GroupFact {
                id: g.group_id,
                name: g.name,
            })
            .collect(),
        journal_groups,
        journal_roles: crate::ledger::roles::taken_roles(
            &state.db,
            subject.account.as_str(),
            subject.product.as_str(),
            state.site(),
        )
        .await?
        .into_iter()
        .map(|taken| taken.role)
        .collect(),
        seats,
    })
}

async fn add_groups(state: &AppState, subject: &Subject, verdict: &Verdict) -> Result<(), Failure> {
    for group in &verdict.groups_to_add {
        // The product table says which API changes the product's seats: never a guess.
        match subject.product.family() {
            Some(ApiFamily::Confluence) => {
                let confluence = state.atlassian.confluence.as_ref().ok_or_else(|| {
                    AtlassianError::Invalid("the Confluence API is not configured".into())
                })?;
                confluence.add_to_group(&group.id, &subject.account).await?;
            }
            Some(ApiFamily::Jira) => {
                let jira = state.atlassian.jira.as_ref().ok_or_else(|| {
                    AtlassianError::Invalid("the Jira site API is not configured".into())
                })?;
                jira.add_to_group(&group.id, &subject.account).await?;
            }
            None => {
                return Err(AtlassianError::Invalid(format!(
                    "reseat cannot change access to {}: it is neither a Jira application nor Confluence",
                    subject.product
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// Reads the user's groups back: the restore counts only once every group is there.
async fn verify_groups(
    state: &AppState,
    subject: &Subject,
    verdict: &Verdict,
) -> Result<(), Failure> {
    let Some(jira) = state.atlassian.jira.as_ref() else {
        return Ok(());
    };
    let now: Vec<String> = jira
        .user_groups(&subject.account)
        .await?
        .into_iter()
        .map(|g| g.group_id.to_string())
        .collect();
    let missing: Vec<&str> = verdict
        .groups_to_add
        .iter()
        .map(|g| g.id.as_str())
        .filter(|id| !now.iter().any(|have| have == id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Upstream(AtlassianError::Transient {
            status: None,
            message: format!("groups not visible after adding: {missing:?}"),
        }))
    }
}

/// Answers the requester where the request came from, then records that it was answered.
async fn reply_and_mark(state: &AppState, request: &RestoreRequest) -> Result<(), JobError> {
    if let Err(error) = super::reply::reply(state, request).await {
        if error.is_temporary() {
            return Err(JobError::Retry {
                message: format!("reply: {error}"),
                after: None,
            });
        }
        // A reply that can never succeed (e.g. a transition that does not exist) must not
        // hold the request: the outcome stands and the problem is audited for the admins.
        tracing::error!(error = %error, request_id = %request.id, "cannot answer the requester");
        let _ = audit::record(
            &state.db,
            audit::Entry {
                actor: "reseat",
                action: "restore.reply_failed",
                account_id: request.account_id.as_deref(),
                product: request.product.as_deref(),
                details: json!({ "request_id": request.id, "error": error.to_string() }),
            },
        )
        .await;
    }
    store::mark_replied(&state.db, &request.id)
        .await
        .map_err(|e| JobError::retry(format!("database: {e}")))
}
