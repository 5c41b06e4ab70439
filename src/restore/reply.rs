//! Answering the requester where the request came from: a public comment and a transition
//! (by name, from the configuration) on a JSM request. Link requests get their result page;
//! every channel also gets an email through the outbox.

use chrono::{DateTime, Utc};

use super::status::Status;
use super::store::{self, ReplyStep, RestoreRequest, StepState};
use crate::app::AppState;
use crate::atlassian::{AtlassianError, IssueKey, ProductKey};
use crate::notify::templates::{Declined, Pending, Restored};

/// A product's name as people know it.
pub fn product_name(product: Option<&str>) -> String {
    match product.map(ProductKey::parse) {
        Some(Ok(key)) => key.display_name().to_owned(),
        Some(Err(_)) | None => "the product".to_owned(),
    }
}

/// What the requester is told, by outcome; `until` from [`access_until`].
pub fn reply_text(request: &RestoreRequest, until: Option<DateTime<Utc>>) -> Option<String> {
    let product = product_name(request.product.as_deref());
    request
        .state()
        .reply_text(&product, request.message.as_deref(), until)
}

/// When the access a restored request gave back ends (`approve_for`); `None` when it was
/// given for good, or the request is not restored.
pub async fn access_until(
    state: &AppState,
    request: &RestoreRequest,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    if request.state() != Status::Restored {
        return Ok(None);
    }
    crate::ledger::grants::until_of(&state.db, &request.id).await
}

/// Sends the reply for a decided request, as steps: the JSM comment, the JSM transition and
/// the email are each recorded when done, and a retry resumes at the first step not done.
/// A step that was sent without its answer being recorded (a lost answer, a crash) is
/// checked on the platform before it is sent again.
pub async fn reply(state: &AppState, request: &RestoreRequest) -> Result<(), AtlassianError> {
    let db = |e: sqlx::Error| AtlassianError::Transient {
        status: None,
        message: format!("database: {e}"),
    };
    let until = access_until(state, request).await.map_err(db)?;
    let Some(text) = reply_text(request, until) else {
        return Ok(());
    };
    let status = request.state();
    if request.channel == "jsm" {
        reply_on_jsm(state, request, status, &text).await?;
    }
    let step_done = |step| async move {
        store::reply_step(&state.db, &request.id, status, step)
            .await
            .map(|s| s == Some(StepState::Done))
            .map_err(db)
    };
    let record_done = |step| async move {
        store::record_step(&state.db, &request.id, status, step, StepState::Done)
            .await
            .map_err(db)
    };
    // Approvers see a request waiting for them (pending, or failed and waiting for an admin
    // as on the Teams card) in their Slack channel, with the buttons; once per request.
    if status.is_open() && !step_done(ReplyStep::SlackApproval).await? {
        super::slack::messages::post_approval(state, request).await?;
        record_done(ReplyStep::SlackApproval).await?;
    }
    if request.channel == "slack" && !step_done(ReplyStep::Slack).await? {
        super::slack::messages::tell_requester(state, request, &text).await?;
        record_done(ReplyStep::Slack).await?;
    }
    // A request answered with another's outcome: that one's email is the confirmation.
    if request.coalesced_into.is_some() {
        return Ok(());
    }
    if store::reply_step(&state.db, &request.id, status, ReplyStep::Email)
        .await
        .map_err(db)?
        != Some(StepState::Done)
    {
        reply_by_email(state, request, until).await.map_err(db)?;
        store::record_step(
            &state.db,
            &request.id,
            status,
            ReplyStep::Email,
            StepState::Done,
        )
        .await
        .map_err(db)?;
    }
    // A request waiting for an admin: the approval card for the Teams channel, once.
    if status.is_open()
        && state.config.restore.teams.notify_url.is_some()
        && store::reply_step(&state.db, &request.id, status, ReplyStep::TeamsCard)
            .await
            .map_err(db)?
            != Some(StepState::Done)
    {
        super::teams::notify_pending(state, request).await?;
        store::record_step(
            &state.db,
            &request.id,
            status,
            ReplyStep::TeamsCard,
            StepState::Done,
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// The email for the outcome, once per request and outcome (the outbox dedupes).
async fn reply_by_email(
    state: &AppState,
    request: &RestoreRequest,
    until: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    let Some(email) = request.email.as_deref() else {
        return Ok(());
    };
    let display_name = request
        .display_name
        .clone()
        .unwrap_or_else(|| email.to_string());
    let product_name = product_name(request.product.as_deref());
    let outbox = &state.notify.outbox;
    let key = format!("restore-reply:{}:{}", request.id, request.status);
    let message = match request.status.as_str() {
        "restored" => outbox.message(
            key,
            email,
            &Restored {
                display_name,
                product_name,
                until,
            },
        ),
        // A failure waits for an admin too; the requester hears the same.
        "pending" | "failed" => outbox.message(
            key,
            email,
            &Pending {
                display_name,
                product_name,
                request_id: request.id.clone(),
            },
        ),
        "denied" => outbox.message(
            key,
            email,
            &Declined {
                display_name,
                product_name,
                request_id: request.id.clone(),
                reason: request.message.clone().unwrap_or_default(),
            },
        ),
        _ => return Ok(()),
    };
    let message = match (&request.account_id, &request.product) {
        (Some(account), Some(product)) => message.about(account.clone(), product.clone()),
        _ => message,
    };
    outbox.enqueue(message).await?;
    Ok(())
}

async fn reply_on_jsm(
    state: &AppState,
    request: &RestoreRequest,
    status: Status,
    text: &str,
) -> Result<(), AtlassianError> {
    let payload: serde_json::Value = serde_json::from_str(&request.payload).unwrap_or_default();
    let Some(issue) = payload.get("issueKey").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let issue = IssueKey::parse(issue).map_err(|e| AtlassianError::Invalid(e.to_string()))?;
    let Some(jsm) = state.atlassian.jsm.as_ref() else {
        return Err(AtlassianError::Invalid(
            "the JSM site API is not configured".into(),
        ));
    };
    let db = |e: sqlx::Error| AtlassianError::Transient {
        status: None,
        message: format!("database: {e}"),
    };
    let step = |step| store::reply_step(&state.db, &request.id, status, step);
    let record = |step, done| store::record_step(&state.db, &request.id, status, step, done);

    match step(ReplyStep::Comment).await.map_err(db)? {
        Some(StepState::Done) => {}
        seen => {
            // Sent before without an answer recorded: posted, unless JSM does not show it.
            let posted = seen == Some(StepState::Sent)
                && jsm
                    .comments(&issue)
                    .await?
                    .iter()
                    .any(|c| c.public && c.body.trim() == text.trim());
            if !posted {
                record(ReplyStep::Comment, StepState::Sent)
                    .await
                    .map_err(db)?;
                jsm.add_comment(&issue, text, true).await?;
            }
            record(ReplyStep::Comment, StepState::Done)
                .await
                .map_err(db)?;
        }
    }

    let config = &state.config.restore.jsm;
    let transition = match status {
        Status::Restored => Some(config.resolve_transition.as_str()),
        Status::Denied => Some(config.decline_transition.as_str()),
        Status::Pending => config.pending_transition.as_deref(),
        _ => None,
    };
    let Some(name) = transition.filter(|name| !name.trim().is_empty()) else {
        return Ok(());
    };
    match step(ReplyStep::Transition).await.map_err(db)? {
        Some(StepState::Done) => {}
        seen => {
            // Sent before: if the request can no longer take the transition, it took it.
            let taken = seen == Some(StepState::Sent)
                && !jsm
                    .transitions(&issue)
                    .await?
                    .iter()
                    .any(|t| t.name.trim().eq_ignore_ascii_case(name.trim()));
            if !taken {
                record(ReplyStep::Transition, StepState::Sent)
                    .await
                    .map_err(db)?;
                jsm.transition_by_name(&issue, name, None).await?;
            }
            record(ReplyStep::Transition, StepState::Done)
                .await
                .map_err(db)?;
        }
    }
    Ok(())
}
