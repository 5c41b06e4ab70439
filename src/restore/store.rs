//! Restore requests, in the database (the journal is the ledger's: [`crate::ledger`]).

use serde::Serialize;
use sqlx::{Any, AnyConnection, FromRow};

use super::rules::Channel;
use super::status::Status;
use crate::audit;
use crate::queue::{NewJob, Queue};
use crate::store::{Db, is_unique_violation};

/// The job that processes a stored request.
pub const PROCESS_JOB: &str = "restore.process";

/// A request as the intake accepted it.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub channel: Channel,
    /// JSM issue key, webhook-id, token id, or a hash of the automation call; unique.
    pub idempotency_key: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    /// The site the request is for: every channel sets it here, in one place, so scoped
    /// admins see and decide only their sites' requests.
    pub site: String,
    pub payload: serde_json::Value,
    /// Why the requester needs the access, in their words (trimmed; none when empty).
    pub justification: Option<String>,
}

/// What the intake did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    New(String),
    /// Seen before: the original request's id; nothing new happened.
    Duplicate(String),
}

impl Accepted {
    pub fn id(&self) -> &str {
        match self {
            Accepted::New(id) | Accepted::Duplicate(id) => id,
        }
    }
}

/// One site, for lists narrowed to it: its name, and the first site's, which requests
/// stored without a site belong to.
#[derive(Debug, Clone)]
pub struct SiteFilter {
    pub name: String,
    pub first: String,
}

impl SiteFilter {
    pub fn of(state: &crate::app::AppState, site: &crate::app::AppState) -> SiteFilter {
        SiteFilter {
            name: site.site().to_owned(),
            first: state.site_names().into_iter().next().unwrap_or_default(),
        }
    }
}

/// A stored request.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RestoreRequest {
    pub id: String,
    pub channel: String,
    pub idempotency_key: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    pub status: String,
    pub decision: Option<String>,
    pub matched_rule: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub payload: String,
    pub verdict: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub replied_at: Option<i64>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// The job that processes it now (approving or denying names a new one).
    pub job_id: Option<i64>,
    /// When the first read-back missed the added groups (verification waits from here).
    pub verify_since: Option<i64>,
    /// The request, for the same account and product at the same time, whose outcome this
    /// one was answered with.
    pub coalesced_into: Option<String>,
    /// The site it is for; None on requests stored before sites were recorded
    /// ([`RestoreRequest::site_or`] reads those as the configured site).
    pub site: Option<String>,
    /// Why the requester needs the access, in their words.
    pub justification: Option<String>,
}

impl RestoreRequest {
    /// `state` seen from the site this request is for (`None` when reseat no longer
    /// manages that site). Requests without a site are the first site's.
    pub fn site_view(&self, state: &crate::app::AppState) -> Option<crate::app::AppState> {
        match self.site.as_deref() {
            Some(site) => state.for_site(site),
            None => state.each_site().into_iter().next(),
        }
    }

    /// The request's site, or `configured` (the install's site) for a request stored before
    /// sites were recorded.
    pub fn site_or<'a>(&'a self, configured: &'a str) -> &'a str {
        self.site.as_deref().unwrap_or(configured)
    }

    /// Whether `grant`'s scope covers the request (its site and product).
    pub fn in_scope(&self, grant: &crate::web::config::Grant, configured: &str) -> bool {
        grant.covers(self.site_or(configured), self.product.as_deref())
    }

    /// The typed status (an unknown stored value reads as `failed`, which waits for an admin).
    pub fn state(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }

    /// Whether processing reached a decision (the reply may still be owed).
    pub fn is_decided(&self) -> bool {
        self.state().is_decided()
    }
}

const COLUMNS: &str = "id, channel, idempotency_key, account_id, product, status, decision, \
    matched_rule, reason, message, payload, verdict, created_at, updated_at, replied_at, email, \
    display_name, job_id, verify_since, coalesced_into, site, justification";

/// Stores the request and its processing job in one transaction, before the HTTP answer.
pub async fn accept(queue: &Queue, request: NewRequest) -> Result<Accepted, sqlx::Error> {
    let mut tx = queue.db().pool().begin().await?;
    let accepted = accept_in(queue, &mut tx, request).await?;
    tx.commit().await?;
    Ok(accepted)
}

/// The same inside the caller's transaction (a link's use and its request go together).
pub async fn accept_in(
    queue: &Queue,
    conn: &mut AnyConnection,
    request: NewRequest,
) -> Result<Accepted, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = queue.db().now_ms();
    let justification = request
        .justification
        .as_deref()
        .and_then(clean_justification);
    // `ON CONFLICT DO NOTHING` keeps a PostgreSQL transaction usable on a duplicate.
    let inserted = sqlx::query(
        "INSERT INTO restore_requests (id, channel, idempotency_key, account_id, product, status, \
         payload, created_at, updated_at, site, justification) \
         VALUES ($1, $2, $3, $4, $5, 'received', $6, $7, $7, $8, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&id)
    .bind(request.channel.as_str())
    .bind(&request.idempotency_key)
    .bind(request.account_id.as_deref())
    .bind(request.product.as_deref())
    .bind(request.payload.to_string())
    .bind(now)
    .bind(&request.site)
    .bind(justification.as_deref())
    .execute(&mut *conn)
    .await;
    let inserted = match inserted {
        Ok(result) => result.rows_affected() == 1,
        Err(error) if is_unique_violation(&error) => false,
        Err(error) => return Err(error),
    };
    if !inserted {
        let existing: String =
            sqlx::query_scalar("SELECT id FROM restore_requests WHERE idempotency_key = $1")
                .bind(&request.idempotency_key)
                .fetch_one(&mut *conn)
                .await?;
        return Ok(Accepted::Duplicate(existing));
    }
    let job_id = queue
        .enqueue_in(
            conn,
            NewJob::new(PROCESS_JOB, serde_json::json!({ "request_id": id }))
                .dedupe_key(format!("restore:{id}")),
        )
        .await?;
    sqlx::query("UPDATE restore_requests SET job_id = $1 WHERE id = $2")
        .bind(job_id)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    audit::record_in(
        conn,
        now,
        audit::Entry {
            actor: request.channel.as_str(),
            role: None,
            action: "restore.received",
            account_id: request.account_id.as_deref(),
            product: request.product.as_deref(),
            details: serde_json::json!({
                "request_id": id,
                "key": request.idempotency_key,
                "justification": justification,
            }),
        },
    )
    .await?;
    Ok(Accepted::New(id))
}

/// The longest justification kept, in characters; longer text is cut there.
pub const JUSTIFICATION_MAX_CHARS: usize = 2000;

/// A justification as stored: trimmed, at most [`JUSTIFICATION_MAX_CHARS`], none when empty.
pub fn clean_justification(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(text.chars().take(JUSTIFICATION_MAX_CHARS).collect())
}

/// Records the justification a request learns when it is processed (a JSM field), unless
/// it has one already, and audits it (`restore.justification`) with the request.
pub async fn set_justification(
    db: &Db,
    request: &RestoreRequest,
    account_id: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    let Some(text) = clean_justification(text) else {
        return Ok(());
    };
    let mut tx = db.pool().begin().await?;
    let updated = sqlx::query(
        "UPDATE restore_requests SET justification = $1 WHERE id = $2 AND justification IS NULL",
    )
    .bind(&text)
    .bind(&request.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 1 {
        audit::record_in(
            &mut tx,
            db.now_ms(),
            audit::Entry {
                actor: &request.channel,
                role: None,
                action: "restore.justification",
                account_id: Some(account_id),
                product: request.product.as_deref(),
                details: serde_json::json!({ "request_id": request.id, "justification": text }),
            },
        )
        .await?;
    }
    tx.commit().await
}

/// The request stored under an idempotency key (`link:<token id>`, `jsm:<issue>`, …).
pub async fn by_key(db: &Db, key: &str) -> Result<Option<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(db.pool())
    .await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// Requests in a status, oldest first.
pub async fn list_by_status(
    db: &Db,
    status: &str,
    limit: i64,
) -> Result<Vec<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests WHERE status = $1 ORDER BY created_at, id LIMIT $2"
    ))
    .bind(status)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// Every request, newest first.
pub async fn list_recent(db: &Db, limit: i64) -> Result<Vec<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests ORDER BY created_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// The outcome of processing, written with the request.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    pub status: Status,
    pub account_id: Option<&'a str>,
    pub product: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub matched_rule: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub verdict: Option<serde_json::Value>,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    /// The request whose outcome this one shares.
    pub coalesced_into: Option<&'a str>,
}

impl Outcome<'_> {
    /// An outcome that changes only the status.
    pub fn status(status: Status) -> Outcome<'static> {
        Outcome {
            status,
            account_id: None,
            product: None,
            decision: None,
            matched_rule: None,
            reason: None,
            message: None,
            verdict: None,
            email: None,
            display_name: None,
            coalesced_into: None,
        }
    }
}

/// Writes the outcome if the request is still in `expected` (compare-and-set). Returns false,
/// changing nothing, when another writer changed the request first or the transition is not
/// one [`Status::can_become`] allows.
pub async fn set_outcome_in(
    conn: &mut AnyConnection,
    now: i64,
    id: &str,
    expected: Status,
    outcome: &Outcome<'_>,
) -> Result<bool, sqlx::Error> {
    if !expected.can_become(outcome.status) {
        tracing::error!(request_id = %id, from = %expected, to = %outcome.status, "refused a status change the request cannot take");
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE restore_requests SET status = $1, account_id = COALESCE($2, account_id), \
         product = COALESCE($3, product), decision = COALESCE($4, decision), \
         matched_rule = COALESCE($5, matched_rule), reason = COALESCE($6, reason), \
         message = COALESCE($7, message), verdict = COALESCE($8, verdict), updated_at = $9, \
         email = COALESCE($11, email), display_name = COALESCE($12, display_name), \
         coalesced_into = COALESCE($14, coalesced_into) \
         WHERE id = $10 AND status = $13",
    )
    .bind(outcome.status.as_str())
    .bind(outcome.account_id)
    .bind(outcome.product)
    .bind(outcome.decision)
    .bind(outcome.matched_rule)
    .bind(outcome.reason)
    .bind(outcome.message)
    .bind(outcome.verdict.as_ref().map(|v| v.to_string()))
    .bind(now)
    .bind(id)
    .bind(outcome.email)
    .bind(outcome.display_name)
    .bind(expected.as_str())
    .bind(outcome.coalesced_into)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records who the request is about as soon as it is known (a JSM request learns it from
/// JSM), so that requests for the same seat find each other.
pub async fn set_subject(
    db: &Db,
    id: &str,
    account: &str,
    product: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE restore_requests SET account_id = $1, product = $2 WHERE id = $3 \
         AND (account_id IS NULL OR product IS NULL)",
    )
    .bind(account)
    .bind(product)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Moves a request still on `from` to site `to` (a Slack or Teams request, accepted before
/// its account was known, belongs on the site that removed the access); false when it was
/// moved or decided meanwhile.
pub async fn move_site(db: &Db, id: &str, from: &str, to: &str) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE restore_requests SET site = $1 WHERE id = $2 AND site = $3 AND status = 'received'",
    )
    .bind(to)
    .bind(id)
    .bind(from)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Notes when verification first missed the added groups; returns that time (UTC ms).
pub async fn verify_since(db: &Db, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "UPDATE restore_requests SET verify_since = $1 WHERE id = $2 AND verify_since IS NULL",
    )
    .bind(db.now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    sqlx::query_scalar("SELECT verify_since FROM restore_requests WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
}

/// An admin's decision: `expected` (pending or failed) becomes `next` (approved or denied),
/// with the payload and the job that acts on it. False when the request is no longer in
/// `expected` (a second click, another admin): nothing changed.
pub async fn reopen_in(
    conn: &mut AnyConnection,
    now: i64,
    id: &str,
    expected: Status,
    next: Status,
    payload: &str,
    job_id: i64,
) -> Result<bool, sqlx::Error> {
    if !expected.can_become(next) {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE restore_requests SET status = $1, payload = $2, job_id = $3, replied_at = NULL, \
         verify_since = NULL, updated_at = $4 WHERE id = $5 AND status = $6",
    )
    .bind(next.as_str())
    .bind(payload)
    .bind(job_id)
    .bind(now)
    .bind(id)
    .bind(expected.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A request for the same account and product that was restored after `request` arrived:
/// they asked at the same time, and `request` is answered with that outcome. (A request
/// sent to an admin or denied is not shared: each such request is decided by the rules.)
pub async fn decided_since_for_subject(
    db: &Db,
    request: &RestoreRequest,
    account: &str,
    product: &str,
) -> Result<Option<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests WHERE account_id = $1 AND product = $2 \
         AND id <> $3 AND status = 'restored' AND coalesced_into IS NULL \
         AND updated_at >= $4 AND COALESCE(site, '') = COALESCE($5, '') \
         ORDER BY updated_at, id LIMIT 1"
    ))
    .bind(account)
    .bind(product)
    .bind(&request.id)
    .bind(request.created_at)
    .bind(request.site.as_deref())
    .fetch_optional(db.pool())
    .await
}

/// One step of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStep {
    Comment,
    Transition,
    Email,
    /// The answer to a Slack requester.
    Slack,
    /// The approval message in the Slack approvers' channel.
    SlackApproval,
    /// The approval card posted to Teams.
    TeamsCard,
}

impl ReplyStep {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStep::Comment => "comment",
            ReplyStep::Transition => "transition",
            ReplyStep::Email => "email",
            ReplyStep::Slack => "slack",
            ReplyStep::SlackApproval => "slack_approval",
            ReplyStep::TeamsCard => "teams_card",
        }
    }
}

/// How far a reply step got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Sent, no answer recorded: it may have taken effect.
    Sent,
    Done,
}

/// Where one step of the reply for `status` is.
pub async fn reply_step(
    db: &Db,
    id: &str,
    status: Status,
    step: ReplyStep,
) -> Result<Option<StepState>, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM restore_reply_steps WHERE request_id = $1 AND status = $2 AND step = $3",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(step.as_str())
    .fetch_optional(db.pool())
    .await?;
    Ok(state.map(|s| {
        if s == "done" {
            StepState::Done
        } else {
            StepState::Sent
        }
    }))
}

/// Records that a reply step was sent (before the call) or done (after it).
pub async fn record_step(
    db: &Db,
    id: &str,
    status: Status,
    step: ReplyStep,
    state: StepState,
) -> Result<(), sqlx::Error> {
    let state = match state {
        StepState::Sent => "sent",
        StepState::Done => "done",
    };
    sqlx::query(
        "INSERT INTO restore_reply_steps (request_id, status, step, state, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id, status, step) \
         DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(step.as_str())
    .bind(state)
    .bind(db.now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Marks the requester as answered.
pub async fn mark_replied(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE restore_requests SET replied_at = $1 WHERE id = $2")
        .bind(db.now_ms())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// One page of requests, newest first, optionally in one status; `before` is the id of the
/// last request of the previous page (an unknown id gives an empty page).
pub async fn list_page(
    db: &Db,
    status: Option<&str>,
    site: Option<&SiteFilter>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests WHERE ($1 IS NULL OR status = $1) \
         AND ($2 IS NULL OR (created_at, id) < \
              (SELECT created_at, id FROM restore_requests WHERE id = $2)) \
         AND ($4 IS NULL OR COALESCE(site, $5) = $4) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    ))
    .bind(status)
    .bind(before)
    .bind(limit)
    .bind(site.map(|s| s.name.as_str()))
    .bind(site.map(|s| s.first.as_str()))
    .fetch_all(db.pool())
    .await
}

/// Requests about one account, oldest first, at most `limit`.
pub async fn list_for_account(
    db: &Db,
    account: &str,
    limit: i64,
) -> Result<Vec<RestoreRequest>, sqlx::Error> {
    sqlx::query_as::<Any, RestoreRequest>(&format!(
        "SELECT {COLUMNS} FROM restore_requests WHERE account_id = $1 \
         ORDER BY created_at, id LIMIT $2"
    ))
    .bind(account)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// How many requests are in each status.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, COUNT(*) FROM restore_requests GROUP BY status ORDER BY status")
        .fetch_all(db.pool())
        .await
}
