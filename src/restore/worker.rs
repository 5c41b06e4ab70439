//! Processing a stored restore request: resolve who asks for what (from Atlassian, never
//! from the request body), gather the facts, let the rules decide, give back exactly the
//! journaled access, verify it shows, journal, audit, and answer where the request came from.
//!
//! A request is processed by one job at a time, under the queue's lease: the worker, and
//! every surface that acts at once (a link, an admin's click) through [`run_now`], which
//! claims the job itself. Every status change is a compare-and-set on the status read
//! ([`store::set_outcome_in`]). Giving back a seat holds the seat's claim, so that it never
//! interleaves with a removal of the same seat or with another restore of it; requests for
//! the same seat at the same time share the first one's outcome.
//!
//! Every step is safe to repeat: a job that dies half-way runs again and re-adding a group
//! the user is already in is success; journal rows are unique per group and request; a
//! request already decided only gets the reply steps not done yet.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::rules::{self, Channel, Decision, Facts, GroupFact, Seats, Verdict};
use super::status::Status;
use super::store::{self, Outcome, RestoreRequest};
use crate::app::AppState;
use crate::atlassian::{
    AccountId, ApiFamily, AtlassianError, GroupId, IssueKey, JiraUser, ProductKey,
};
use crate::audit;
use crate::ledger::{self, JournalEntry};
use crate::queue::{HandlerFuture, Job, JobError, JobHandler, Worker, WorkerOutcome};

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
            process_job(&self.state, &payload.request_id, Some(job.id), last_attempt).await
        })
    }
}

/// How a surface that acts at once waits for the outcome.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Runs the request's job now, under the queue's lease (or, when a worker holds it, waits
/// for that worker), for at most `wait`; returns the request as it then is. This is how a
/// link, an admin's approval and the CLI process a request: never beside the queue.
pub async fn run_now(
    state: &AppState,
    id: &str,
    wait: Duration,
) -> Result<Option<RestoreRequest>, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + wait;
    let worker = Worker::new(state.queue.clone(), format!("now:{}", uuid::Uuid::new_v4()))
        .handle(store::PROCESS_JOB, RestoreProcessor::new(state.clone()));
    loop {
        let Some(request) = store::get(&state.db, id).await? else {
            return Ok(None);
        };
        if request.is_decided() && request.replied_at.is_some() {
            return Ok(Some(request));
        }
        let ran = match request.job_id {
            Some(job) => {
                // In a task of its own: a page that stops waiting never abandons a claimed
                // job half-way (it would wait for its lease to expire).
                let worker = worker.clone();
                let mut run = tokio::spawn(async move { worker.run_now(job).await });
                match tokio::time::timeout_at(deadline, &mut run).await {
                    Ok(Ok(ran)) => ran?,
                    Ok(Err(error)) => {
                        tracing::error!(%error, request_id = %id, "the restore run stopped");
                        return store::get(&state.db, id).await;
                    }
                    // Still running: it finishes on its own, and the outcome is emailed.
                    Err(_) => return store::get(&state.db, id).await,
                }
            }
            None => None,
        };
        match ran {
            Some(WorkerOutcome::Completed { .. }) => continue,
            // Waiting out something (a consistency window, a removal of the same seat) or
            // failing for now: the queue takes it from here.
            Some(_) => return store::get(&state.db, id).await,
            // Another worker holds it, or it is finished: wait for its outcome.
            None => {}
        }
        if tokio::time::Instant::now() + WAIT_POLL >= deadline {
            return store::get(&state.db, id).await;
        }
        tokio::time::sleep(WAIT_POLL).await;
        let request = store::get(&state.db, id).await?;
        if request.as_ref().is_some_and(|r| r.is_decided()) {
            return Ok(request);
        }
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
    Upstream(AtlassianError),
    Db(sqlx::Error),
    /// Not a failure: wait (a consistency window, the seat held by a removal) without
    /// spending an attempt.
    Later {
        message: String,
        after: Duration,
    },
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

/// Processes a request outside any job (tests and tools); the job handler and
/// [`run_now`] are the ways the service does it.
pub async fn process(state: &AppState, id: &str, last_attempt: bool) -> Result<(), JobError> {
    process_job(state, id, None, last_attempt).await
}

#[tracing::instrument(skip_all, fields(request_id = %id))]
async fn process_job(
    state: &AppState,
    id: &str,
    job_id: Option<i64>,
    last_attempt: bool,
) -> Result<(), JobError> {
    let db_error = |e: sqlx::Error| JobError::retry(format!("database: {e}"));
    let Some(request) = store::get(&state.db, id).await.map_err(db_error)? else {
        return Err(JobError::Permanent(format!(
            "restore request {id} does not exist"
        )));
    };
    // The request is processed on its own site: that site's rules, guards and clients.
    let site_view = request.site_view(state).ok_or_else(|| {
        JobError::Permanent(format!(
            "restore request {id} is for site {}, which this configuration does not manage",
            request.site.as_deref().unwrap_or_default()
        ))
    })?;
    let state = &site_view;
    if let (Some(current), Some(mine)) = (request.job_id, job_id)
        && current != mine
    {
        // An admin's decision named a newer job; that one acts.
        tracing::debug!(job_id = mine, current, "stale restore job; nothing to do");
        return Ok(());
    }
    let status = request.state();
    if status.is_decided() {
        if request.replied_at.is_none() {
            reply_and_mark(state, &request).await?;
        }
        return Ok(());
    }
    let channel = Channel::parse(&request.channel)
        .ok_or_else(|| JobError::Permanent(format!("unknown channel {:?}", request.channel)))?;
    match decide_and_apply(state, &request, status, channel).await {
        Ok(()) => {}
        Err(Failure::Later { message, after }) => {
            return Err(JobError::Later { message, after });
        }
        Err(Failure::Stop(Stop::Ignore(reason))) => {
            let outcome = Outcome {
                reason: Some(&reason),
                ..Outcome::status(Status::Ignored)
            };
            finish(state, &request, status, outcome, "restore.ignored").await?;
        }
        Err(Failure::Stop(Stop::Deny { reason, message })) => {
            let outcome = Outcome {
                decision: Some("deny"),
                reason: Some(&reason),
                message: Some(&message),
                ..Outcome::status(Status::Denied)
            };
            finish(state, &request, status, outcome, "restore.denied").await?;
        }
        Err(Failure::Db(error)) => return Err(db_error(error)),
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
                reason: Some(&reason),
                message: Some(
                    "We could not restore your access automatically. An administrator will look at your request.",
                ),
                ..Outcome::status(Status::Failed)
            };
            tracing::error!(error = %reason, "restore failed permanently");
            // A request still verifying failed from there; reread the status it is in.
            let now = store::get(&state.db, id)
                .await
                .map_err(db_error)?
                .map_or(status, |r| r.state());
            finish(state, &request, now, outcome, "restore.failed").await?;
        }
    }
    let request = store::get(&state.db, id).await.map_err(db_error)?;
    if let Some(request) = request.filter(|r| r.is_decided() && r.replied_at.is_none()) {
        reply_and_mark(state, &request).await?;
    }
    Ok(())
}

/// Writes an outcome reached without giving anything back, with its audit row, if the
/// request is still in `expected`.
async fn finish(
    state: &AppState,
    request: &RestoreRequest,
    expected: Status,
    outcome: Outcome<'_>,
    action: &str,
) -> Result<(), JobError> {
    let run = async {
        let mut tx = state.db.pool().begin().await?;
        if !store::set_outcome_in(&mut tx, state.db.now_ms(), &request.id, expected, &outcome)
            .await?
        {
            tracing::warn!(request_id = %request.id, "the request changed meanwhile; its outcome stands");
            return Ok(());
        }
        audit::record_in(
            &mut tx,
            state.db.now_ms(),
            audit::Entry {
                actor: "reseat",
                role: None,
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
    status: Status,
    channel: Channel,
) -> Result<(), Failure> {
    let stored = match (status, &request.account_id, &request.product) {
        (Status::Verifying, Some(account), Some(product)) => {
            match (AccountId::parse(account), ProductKey::parse(product)) {
                (Ok(account), Ok(product)) => Some(Subject { account, product }),
                _ => None,
            }
        }
        _ => None,
    };
    let subject = match stored {
        Some(subject) => subject,
        None => resolve(state, request, channel).await?,
    };
    // A chat request names no site: with several, it is for the one site that removed the
    // access (the journal says which), and is processed there.
    if matches!(channel, Channel::Slack | Channel::Teams)
        && status == Status::Received
        && let Some(site) = removed_on_one_other_site(state, &subject).await?
        && store::move_site(&state.db, &request.id, state.site(), site.site()).await?
    {
        tracing::info!(
            site = site.site(),
            "the request moves to the site that removed the access"
        );
        let moved = store::get(&state.db, &request.id)
            .await?
            .ok_or_else(|| Failure::Stop(Stop::Ignore("the request is gone".into())))?;
        return Box::pin(decide_and_apply(&site, &moved, status, channel)).await;
    }
    store::set_subject(
        &state.db,
        &request.id,
        subject.account.as_str(),
        subject.product.as_str(),
    )
    .await?;
    // Taking and giving back a seat never interleave: a removal (or another restore) of
    // this seat that runs now ends first, and what the journal says was taken is read only
    // once it has. The job waits for it without spending an attempt.
    let seat = ledger::Seat::new(
        subject.account.as_str(),
        subject.product.as_str(),
        state.site(),
    );
    let claim = match ledger::seat::try_claim(
        &state.db,
        &seat,
        &ledger::seat::restore_holder(&request.id),
        ledger::seat::CLAIM_TTL,
    )
    .await?
    {
        Ok(claim) => claim,
        Err(busy) => {
            return Err(Failure::Later {
                message: format!("the seat is held by {}; runs right after it", busy.holder),
                after: busy.retry_in(),
            });
        }
    };
    let result = match status {
        Status::Verifying => verify_restore(state, request, &subject).await,
        _ => decide_holding_seat(state, request, status, channel, &subject).await,
    };
    claim.release().await;
    result
}

/// Decides and gives back, holding the seat's claim.
async fn decide_holding_seat(
    state: &AppState,
    request: &RestoreRequest,
    status: Status,
    channel: Channel,
    subject: &Subject,
) -> Result<(), Failure> {
    if status == Status::Received
        && let Some(first) = store::decided_since_for_subject(
            &state.db,
            request,
            subject.account.as_str(),
            subject.product.as_str(),
        )
        .await?
    {
        return coalesce(state, request, status, subject, &first).await;
    }
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
    // A JSM request learns its justification while resolving: read what is stored now.
    let has_justification = request.justification.is_some()
        || store::get(&state.db, &request.id)
            .await?
            .is_some_and(|r| r.justification.is_some());
    let facts = gather_facts(state, subject, channel, &user, has_justification).await?;
    let offboarding = &state.config.restore.offboarding_groups;
    let verdict = match super::admin::approval(request) {
        // An admin approved: the guards still hold, the rules are not asked again, and only
        // the product's access groups may be added.
        Some(approval) => {
            let refused = super::admin::refused_groups(
                state,
                &subject.product,
                &facts.journal_groups,
                &approval.groups,
            )
            .await?;
            super::admin::approved_verdict(&facts, &approval, offboarding, &refused)
        }
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
            give_back(state, request, subject, &verdict.groups_to_add).await?;
            let missing = missing_groups(state, subject, &verdict.groups_to_add).await?;
            if !missing.is_empty() {
                // Added, not visible yet: verify within the window, holding the outcome.
                let mut conn = state.db.pool().acquire().await?;
                let outcome = outcome(Status::Verifying, subject, &user, &verdict, verdict_json);
                if store::set_outcome_in(
                    &mut conn,
                    state.db.now_ms(),
                    &request.id,
                    status,
                    &outcome,
                )
                .await?
                {
                    drop(conn);
                    let since = store::verify_since(&state.db, &request.id).await?;
                    return Err(wait_for_consistency(state, since, &missing));
                }
                return Ok(());
            }
            let outcome = outcome(Status::Restored, subject, &user, &verdict, verdict_json);
            record_restored(
                state,
                request,
                status,
                subject,
                &verdict.groups_to_add,
                verdict.rule.as_deref(),
                &outcome,
            )
            .await?;
        }
        Decision::Manual | Decision::Deny => {
            let (next, action) = match verdict.decision {
                Decision::Manual => (Status::Pending, "restore.pending"),
                _ => (Status::Denied, "restore.denied"),
            };
            let mut tx = state.db.pool().begin().await?;
            if !store::set_outcome_in(
                &mut tx,
                state.db.now_ms(),
                &request.id,
                status,
                &outcome(next, subject, &user, &verdict, verdict_json),
            )
            .await?
            {
                return Ok(());
            }
            audit::record_in(
                &mut tx,
                state.db.now_ms(),
                audit::Entry {
                    actor: "reseat",
                    role: None,
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
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Another request for the same seat was decided while this one waited: this one gets
/// that outcome, with nothing given back twice and no second confirmation email.
async fn coalesce(
    state: &AppState,
    request: &RestoreRequest,
    status: Status,
    subject: &Subject,
    first: &RestoreRequest,
) -> Result<(), Failure> {
    let reason = format!("asked at the same time as request {}", first.id);
    let outcome = Outcome {
        account_id: Some(subject.account.as_str()),
        product: Some(subject.product.as_str()),
        decision: first.decision.as_deref(),
        matched_rule: first.matched_rule.as_deref(),
        reason: Some(&reason),
        message: first.message.as_deref(),
        email: first.email.as_deref(),
        display_name: first.display_name.as_deref(),
        coalesced_into: Some(&first.id),
        ..Outcome::status(first.state())
    };
    let mut tx = state.db.pool().begin().await?;
    if !store::set_outcome_in(&mut tx, state.db.now_ms(), &request.id, status, &outcome).await? {
        return Ok(());
    }
    audit::record_in(
        &mut tx,
        state.db.now_ms(),
        audit::Entry {
            actor: "reseat",
            role: None,
            action: "restore.coalesced",
            account_id: Some(subject.account.as_str()),
            product: Some(subject.product.as_str()),
            details: json!({ "request_id": request.id, "into": first.id, "status": first.status }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The groups (and what else was taken) an approval gives back. Adding a group the user is
/// already in is success, so this is safe to repeat.
async fn give_back(
    state: &AppState,
    request: &RestoreRequest,
    subject: &Subject,
    groups: &[GroupFact],
) -> Result<(), Failure> {
    add_groups(state, subject, groups).await?;
    // The direct roles the sweep revoked come back too (journaled per request).
    crate::sweep::roles::regrant(state, &subject.account, &subject.product, &request.id)
        .await
        .map_err(|e| match e {
            crate::sweep::roles::RoleError::Upstream(e) => Failure::Upstream(e),
            crate::sweep::roles::RoleError::Db(e) => Failure::Db(e),
        })?;
    Ok(())
}

/// A request whose groups were added and not yet visible: read them back again.
async fn verify_restore(
    state: &AppState,
    request: &RestoreRequest,
    subject: &Subject,
) -> Result<(), Failure> {
    let verdict: serde_json::Value = request
        .verdict
        .as_deref()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let groups: Vec<GroupFact> = verdict
        .get("groups_to_add")
        .and_then(|g| g.as_array())
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let id = GroupId::parse(g.get("id")?.as_str()?).ok()?;
            let name = g.get("name")?.as_str()?.to_string();
            Some(GroupFact { id, name })
        })
        .collect();
    let rule = verdict.get("rule").and_then(|r| r.as_str());
    let missing = missing_groups(state, subject, &groups).await?;
    if missing.is_empty() {
        return record_restored(
            state,
            request,
            Status::Verifying,
            subject,
            &groups,
            rule,
            &Outcome::status(Status::Restored),
        )
        .await;
    }
    let since = request.verify_since.unwrap_or_else(|| state.db.now_ms());
    match wait_for_consistency(state, since, &missing) {
        Failure::Later { message, after } => Err(Failure::Later { message, after }),
        failure => {
            // The window is over: add once more (an add may have been lost) and count it
            // as a failed attempt.
            give_back(state, request, subject, &groups).await?;
            Err(failure)
        }
    }
}

/// Waits (without spending an attempt) while inside the consistency window, with a backoff
/// that grows with the time already waited; a transient failure after the window.
fn wait_for_consistency(state: &AppState, since: i64, missing: &[String]) -> Failure {
    let window = state.config.restore.verify_window;
    let waited = Duration::from_millis(u64::try_from(state.db.now_ms() - since).unwrap_or(0));
    if waited < window {
        let floor = window / 240;
        let ceiling = window / 6;
        let after = waited.clamp(floor, ceiling).min(window - waited);
        return Failure::Later {
            message: format!("groups not visible yet after adding: {missing:?}"),
            after: after.max(Duration::from_millis(1)),
        };
    }
    Failure::Upstream(AtlassianError::Transient {
        status: None,
        message: format!(
            "groups still not visible {}s after adding: {missing:?}",
            window.as_secs()
        ),
    })
}

/// Journals and audits what was given back and marks the request restored, in one
/// transaction, if the request is still in `expected`.
async fn record_restored(
    state: &AppState,
    request: &RestoreRequest,
    expected: Status,
    subject: &Subject,
    groups: &[GroupFact],
    rule: Option<&str>,
    outcome: &Outcome<'_>,
) -> Result<(), Failure> {
    let account = subject.account.as_str();
    let product = subject.product.as_str();
    let suspension = ledger::suspensions::open_suspension(&state.db, account).await?;
    let mut tx = state.db.pool().begin().await?;
    if !store::set_outcome_in(&mut tx, state.db.now_ms(), &request.id, expected, outcome).await? {
        tracing::warn!(request_id = %request.id, "the request changed meanwhile; its outcome stands");
        return Ok(());
    }
    if let Some(id) = suspension {
        ledger::suspensions::close_suspension_in(
            &mut tx,
            id,
            ledger::SuspensionEnd::Restored,
            state.clock().now(),
        )
        .await?;
        audit::record_in(
            &mut tx,
            state.db.now_ms(),
            audit::Entry {
                actor: "reseat",
                role: None,
                action: "restore.unsuspended",
                account_id: Some(account),
                product: Some(product),
                details: json!({ "request_id": request.id }),
            },
        )
        .await?;
    }
    // Given back for good, or for as long as the deciding rule says (`approve_for`).
    let approve_for = rule.and_then(|name| {
        state
            .config
            .restore
            .rules
            .iter()
            .find(|r| r.name == name && r.decision == super::rules::Decision::Approve)
            .and_then(|r| r.approve_for)
    });
    let until = approve_for.map(|d| {
        state.clock().now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
    });
    ledger::grants::record_restore(
        &mut tx,
        state.db.now_ms(),
        &request.id,
        account,
        product,
        state.site(),
        until,
    )
    .await?;
    for group in groups {
        ledger::journal::journal_restored_in(
            &mut tx,
            state.db.now_ms(),
            &JournalEntry {
                account_id: account,
                product,
                site: state.site(),
                group_id: group.id.as_str(),
                group_name: &group.name,
                run_id: None,
                request_id: Some(&request.id),
                reason: rule.unwrap_or("approved"),
            },
        )
        .await?;
    }
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    audit::record_in(
        &mut tx,
        state.db.now_ms(),
        audit::Entry {
            actor: "reseat",
            role: None,
            action: "restore.groups_added",
            account_id: Some(account),
            product: Some(product),
            details: json!({ "request_id": request.id, "groups": ids, "rule": rule }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn outcome<'a>(
    status: Status,
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
        coalesced_into: None,
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
        Channel::Jsm => resolve_jsm(state, request, &text("issueKey").unwrap_or_default()).await,
        Channel::Slack => {
            let product = product()?;
            let user =
                text("slackUserId").ok_or_else(|| deny("no Slack user in the request".into()))?;
            let account = resolve_slack(state, &user).await?;
            Ok(Subject { account, product })
        }
        Channel::Automation | Channel::Link => {
            let account =
                text("accountId").ok_or_else(|| deny("no account in the request".into()))?;
            let account = AccountId::parse(account).map_err(|e| deny(e.to_string()))?;
            Ok(Subject {
                account,
                product: product()?,
            })
        }
        // Teams and sign-in requests name the account (sign-in: the one reseat removed) or
        // the email the sender was mapped to; the account is read from Atlassian either way.
        Channel::Webhook | Channel::Teams | Channel::Signin => {
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

/// With several sites: the one other site where reseat took `subject`'s product away and has
/// not given it back, when it is the only site that did. None when this site did, or none
/// or several did (the request stays where it was accepted).
async fn removed_on_one_other_site(
    state: &AppState,
    subject: &Subject,
) -> Result<Option<AppState>, sqlx::Error> {
    if !state.is_multi_site() {
        return Ok(None);
    }
    let (account, product) = (subject.account.as_str(), subject.product.as_str());
    let mut removed = Vec::new();
    for site in state.each_site() {
        let groups = ledger::taken_groups(&state.db, account, product, site.site()).await?;
        let roles = ledger::roles::taken_roles(&state.db, account, product, site.site()).await?;
        if !groups.is_empty() || !roles.is_empty() {
            removed.push(site);
        }
    }
    match removed.as_slice() {
        [only] if only.site() != state.site() => Ok(removed.pop()),
        _ => Ok(None),
    }
}

/// The Atlassian account of a Slack user: their email as Slack's `users.info` reports it
/// (never the request body), accepted only in `restore.slack.allowed_domains`, looked up
/// like the webhook channel's email.
async fn resolve_slack(state: &AppState, user_id: &str) -> Result<AccountId, Failure> {
    let refuse = |reason: String, message: &str| {
        Failure::Stop(Stop::Deny {
            reason,
            message: message.to_string(),
        })
    };
    let api = state.slack.as_ref().ok_or_else(|| {
        AtlassianError::Invalid(
            "the Slack channel has no bot token (restore.slack.bot_token)".into(),
        )
    })?;
    let user = api
        .user(user_id)
        .await
        .map_err(|e| Failure::Upstream(e.into()))?
        .filter(|u| !u.deleted && !u.is_bot)
        .ok_or_else(|| {
            refuse(
                format!("Slack knows no active user {user_id}"),
                "We could not tell who you are in Slack.",
            )
        })?;
    let email = user.profile.email.clone().ok_or_else(|| {
        refuse(
            format!("Slack shows no email for the user {user_id} (the app needs users:read.email)"),
            "Slack does not show reseat your email address, so we cannot tell which account is yours. Please ask your administrator.",
        )
    })?;
    if !state.config.restore.slack.allows_email(&email) {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        return Err(refuse(
            format!(
                "the Slack user {user_id}'s email domain {domain} is not in restore.slack.allowed_domains"
            ),
            &format!(
                "Requests from Slack are accepted only for your organisation's email domains, and {domain} is not one of them. Please ask your administrator."
            ),
        ));
    }
    find_by_email(state, &email).await?.ok_or_else(|| {
        refuse(
            format!("no Atlassian account has the Slack user {user_id}'s email"),
            "We could not find an Atlassian account with your Slack email address. Please ask your administrator.",
        )
    })
}

async fn resolve_jsm(
    state: &AppState,
    request: &RestoreRequest,
    issue: &str,
) -> Result<Subject, Failure> {
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
    let justification = config.justification_field.as_ref().and_then(|field| {
        customer_request
            .request_field_values
            .iter()
            .find(|value| &value.field_id == field)
            .and_then(|value| field_text(&value.value))
    });
    if let Some(text) = justification {
        store::set_justification(&state.db, request, account.as_str(), &text).await?;
    }
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

/// What the rules would decide for an account, product and channel now (`rules explain`),
/// for a request with a justification or without.
pub async fn explain(
    state: &AppState,
    account: &AccountId,
    product: &ProductKey,
    channel: Channel,
    justified: bool,
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
    let facts = match gather_facts(state, &subject, channel, &user, justified).await {
        Ok(facts) => facts,
        Err(Failure::Upstream(error)) => return Err(error),
        Err(Failure::Db(error)) => {
            return Err(AtlassianError::Invalid(format!("database: {error}")));
        }
        Err(Failure::Stop(_) | Failure::Later { .. }) => {
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
    has_justification: bool,
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
    // Jira reports an account suspended at the org as inactive. A suspension the sweep's
    // ladder made (`sweep_suspensions`) is reseat's own step, which a restore lifts; for any
    // other inactive account the org's directory says whether it is suspended there
    // (guarded as suspended) or deactivated or closed (guarded as inactive).
    let own_suspension = ledger::suspensions::open_suspension(&state.db, subject.account.as_str())
        .await?
        .is_some();
    let suspended = !user.active && !own_suspension && suspended_at_org(state, subject).await?;
    let active = user.active || own_suspension || suspended;
    Ok(Facts {
        product: subject.product.clone(),
        channel,
        product_configured: state.config.sweep.product(&subject.product).is_some(),
        account_type: user.account_type.clone(),
        active,
        suspended,
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
        has_justification,
    })
}

/// Whether the org's directory shows the account suspended (v2 user details: `status` or
/// `membershipStatus`). False when the admin API is not configured or no directory holds
/// the account.
async fn suspended_at_org(state: &AppState, subject: &Subject) -> Result<bool, Failure> {
    let (Some(admin), Some(org)) = (&state.atlassian.admin, &state.atlassian.org_id) else {
        return Ok(false);
    };
    let user = admin.directory_user(org, &subject.account).await?;
    Ok(user.is_some_and(|u| {
        u.status.as_deref() == Some("suspended")
            || u.membership_status.as_deref() == Some("suspended")
    }))
}

async fn add_groups(
    state: &AppState,
    subject: &Subject,
    groups: &[GroupFact],
) -> Result<(), Failure> {
    for group in groups {
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

/// Reads the user's groups back: the ids of the given groups that do not show yet.
async fn missing_groups(
    state: &AppState,
    subject: &Subject,
    groups: &[GroupFact],
) -> Result<Vec<String>, Failure> {
    let Some(jira) = state.atlassian.jira.as_ref() else {
        return Ok(Vec::new());
    };
    let now: Vec<String> = jira
        .user_groups(&subject.account)
        .await?
        .into_iter()
        .map(|g| g.group_id.to_string())
        .collect();
    Ok(groups
        .iter()
        .map(|g| g.id.as_str())
        .filter(|id| !now.iter().any(|have| have == id))
        .map(str::to_owned)
        .collect())
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
                role: None,
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
