//! Slack: the `/reseat restore <product> [why]` slash command and approvals in a channel.
//!
//! Both routes verify `X-Slack-Signature` on the raw body before parsing, within the
//! tolerance, in constant time, and refuse a signed request seen before (`slack_seen`): a
//! forged, stale or replayed request is 401 and changes nothing. The command is stored
//! like any request and answered at once; the worker reads who asks from Slack's
//! `users.info` (never from the body), maps the email to the Atlassian account and decides.
//! The outcome goes back through the command's `response_url` (or a direct message), see
//! [`messages`]. Requests the rules send to an admin are posted to the approvers' channel
//! with Approve and Deny buttons; a click counts only for a Slack user mapped to a reseat
//! admin whose role may decide the request.

pub mod api;
pub mod messages;
pub mod send;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::admin::{self, AdminError};
use super::rules::Channel;
use super::signature;
use super::store::{self, Accepted, NewRequest, RestoreRequest};
use crate::app::AppState;
use crate::audit;
use crate::web::config::Action;
use crate::web::error::ApiError;

/// The action ids of the approval message's buttons and the deny modal's callback id.
pub const APPROVE_ACTION: &str = "reseat_approve";
pub const DENY_ACTION: &str = "reseat_deny";
pub const DENY_CALLBACK: &str = "reseat_deny";
/// The deny modal's input (block id and action id).
pub const REASON_INPUT: &str = "reason";

/// `POST /hooks/slack/commands` — a slash command (form-encoded), answered with an
/// ephemeral message at once.
pub async fn commands(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authenticate(&state, &headers, body).await {
        Ok(body) => body,
        Err(error) => return refuse(&state, error).await,
    };
    let form = Form::parse(&body);
    let Some(user) = form.get("user_id").filter(|u| !u.is_empty()) else {
        return refuse(&state, ApiError::BadRequest("missing field user_id".into())).await;
    };
    let text = form.get("text").unwrap_or_default();
    let command = form.get("command").unwrap_or("/reseat");
    let (product, justification) = match parse_text(&state, text) {
        Ok(parsed) => parsed,
        Err(answer) => return ephemeral_answer(&answer.replace("{command}", command)),
    };
    let response_url = form.get("response_url").filter(|url| {
        state
            .slack
            .as_ref()
            .is_some_and(|api| api.accepts_response_url(url))
    });
    let signature_digest = digest(
        headers
            .get("x-slack-signature")
            .map(|v| v.as_bytes())
            .unwrap_or_default(),
    );
    let request = NewRequest {
        site: state.site().to_owned(),
        channel: Channel::Slack,
        idempotency_key: format!("slack:{signature_digest}"),
        account_id: None,
        product: Some(product.as_str().to_string()),
        payload: json!({ "slackUserId": user, "product": product.as_str(), "command": command }),
        justification,
    };
    let stored = async {
        let mut tx = state.db.pool().begin().await?;
        let accepted = store::accept_in(&state.queue, &mut tx, request).await?;
        if let Accepted::New(id) = &accepted {
            sqlx::query(
                "INSERT INTO slack_requests (request_id, user_id, response_url, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
            )
            .bind(id)
            .bind(user)
            .bind(response_url)
            .bind(state.db.now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(accepted)
    }
    .await;
    match stored {
        Ok(accepted) => ephemeral_answer(&format!(
            "Working on it: your request for {} is in (request {}). I will answer here in a moment.",
            product.display_name(),
            accepted.id()
        )),
        Err(error) => {
            tracing::error!(%error, "cannot store a Slack request");
            ephemeral_answer(
                "Something went wrong on our side; nothing was changed. Please try again in a minute.",
            )
        }
    }
}

/// `POST /hooks/slack/interactions` — a click on Approve or Deny (`block_actions`) or the
/// deny reason's modal (`view_submission`), form field `payload`.
pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authenticate(&state, &headers, body).await {
        Ok(body) => body,
        Err(error) => return refuse(&state, error).await,
    };
    let form = Form::parse(&body);
    let Some(payload) = form
        .get("payload")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    else {
        return refuse(
            &state,
            ApiError::BadRequest("missing or malformed payload".into()),
        )
        .await;
    };
    match payload.get("type").and_then(Value::as_str) {
        Some("block_actions") => on_click(&state, &payload).await,
        Some("view_submission") => on_submit(&state, &payload).await,
        _ => StatusCode::OK.into_response(),
    }
}

/// The words after the command: `restore <product> [justification…]`.
fn parse_text(
    state: &AppState,
    text: &str,
) -> Result<(crate::atlassian::ProductKey, Option<String>), String> {
    const HELP: &str = "Ask for your access back with `{command} restore jira` (or `confluence`, `jsm`), optionally followed by why you need it: `{command} restore jira I am back on the project`.";
    let super::command::Command::Restore {
        product: Some(product),
        justification,
    } = super::command::parse(text)
    else {
        return Err(HELP.into());
    };
    let product = super::intake::parse_product(state, Some(product))
        .map_err(|error| format!("{error}. {HELP}"))?;
    Ok((
        product,
        justification.and_then(|j| store::clean_justification(&j)),
    ))
}

/// Checks the channel is on, the body fits, the signature and timestamp, and that this
/// signed request was not seen before; returns the raw body.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let config = &state.config.restore.slack;
    let Some(secret) = config.signing_secret.as_ref() else {
        return Err(ApiError::NotFound(
            "the slack channel is not enabled".into(),
        ));
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(format!("cannot read the body: {rejection}"))
        }
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("x-slack-request-timestamp");
    let signature_header = header("x-slack-signature");
    signature::verify_slack(
        secret,
        timestamp,
        signature_header,
        &body,
        chrono::Utc::now().timestamp(),
        config.tolerance,
    )
    .map_err(|error| ApiError::Unauthorized(format!("signature refused: {error}")))?;
    let seen = digest(
        format!(
            "{}:{}",
            timestamp.unwrap_or_default(),
            signature_header.unwrap_or_default()
        )
        .as_bytes(),
    );
    let fresh = first_sighting(state, &seen)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if !fresh {
        return Err(ApiError::Unauthorized(
            "replayed: this signed request was received before".into(),
        ));
    }
    Ok(body)
}

/// Records a signed request; false when it was recorded before (a replay). Rows older than
/// twice the tolerance are pruned: a request that old fails the timestamp check anyway.
async fn first_sighting(state: &AppState, seen: &str) -> Result<bool, sqlx::Error> {
    let now = state.db.now_ms();
    let window =
        i64::try_from(state.config.restore.slack.tolerance.as_millis()).unwrap_or(i64::MAX / 4);
    sqlx::query("DELETE FROM slack_seen WHERE seen_at < $1")
        .bind(now.saturating_sub(window.saturating_mul(2)))
        .execute(state.db.pool())
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO slack_seen (signature, seen_at) VALUES ($1, $2) \
         ON CONFLICT (signature) DO NOTHING",
    )
    .bind(seen)
    .bind(now)
    .execute(state.db.pool())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Audits a refused request (counted per minute, like the other channels) and answers.
async fn refuse(state: &AppState, error: ApiError) -> Response {
    let status = error.status().as_u16();
    tracing::warn!(channel = "slack", status, error = %error, "slack request refused");
    let reason = format!("{status}: {error}");
    let recorded = audit::refused(
        &state.db,
        audit::Refusal {
            action: "restore.rejected",
            source: Channel::Slack.as_str(),
            reason: &reason,
        },
    )
    .await;
    if let Err(audit_error) = recorded {
        tracing::error!(error = %audit_error, "cannot audit a refused request");
    }
    error.into_response()
}

fn ephemeral_answer(text: &str) -> Response {
    Json(json!({ "response_type": "ephemeral", "text": text })).into_response()
}

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A form body's fields.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn text_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str()
}

/// The reseat admin a Slack user is: the `[[admin.users]]` entry naming their
/// `slack_user_id`, else the one whose `email` is their Slack email. `Err` is what they are
/// told when they may not decide this request. Whether they may is the admins' own rule
/// ([`crate::web::config::Grant::allows`] for [`Action::Decide`], and the scope).
async fn deciding_admin(
    state: &AppState,
    slack_user: &str,
    request: &RestoreRequest,
) -> Result<String, String> {
    let users = &state.config.admin.users;
    let mut admin = users
        .iter()
        .find(|u| u.slack_user_id.as_deref() == Some(slack_user));
    if admin.is_none()
        && let Some(api) = &state.slack
    {
        match api.user(slack_user).await {
            Ok(Some(user)) if !user.deleted && !user.is_bot => {
                if let Some(email) = user.profile.email.as_deref() {
                    admin = users.iter().find(|u| {
                        u.email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(email))
                    });
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot read the Slack user who clicked");
                return Err(
                    "Slack did not say who you are; nothing was changed. Please try again.".into(),
                );
            }
        }
    }
    let Some(admin) = admin else {
        return Err("You are not a reseat admin (no [[admin.users]] entry names your Slack user or email), so you cannot approve or deny requests. Nothing was changed.".into());
    };
    let Some(grant) = state.config.admin.user_grant(&admin.name) else {
        return Err("You are not a reseat admin. Nothing was changed.".into());
    };
    if !grant.allows(Action::Decide)
        || !grant.covers(request.site_or(state.site()), request.product.as_deref())
    {
        return Err(format!(
            "Your reseat role ({}) may not approve or deny this request. Nothing was changed.",
            grant.role.as_str()
        ));
    }
    Ok(admin.name.clone())
}

async fn audit_refused_decision(
    state: &AppState,
    slack_user: &str,
    request: &RestoreRequest,
    verb: &str,
    reason: &str,
) {
    let entry = audit::Entry {
        actor: &format!("slack:{slack_user}"),
        role: None,
        action: "restore.decision_refused",
        account_id: request.account_id.as_deref(),
        product: request.product.as_deref(),
        details: json!({ "request_id": request.id, "verb": verb, "reason": reason }),
    };
    if let Err(error) = audit::record(&state.db, entry).await {
        tracing::error!(%error, "cannot audit a refused Slack decision");
    }
}

/// What a click on an already-decided request is told.
fn already_decided(request: &RestoreRequest) -> String {
    let by = admin::approval_by(request).or_else(|| request.matched_rule.clone());
    match by {
        Some(by) => format!(
            "Request {} is already {} ({by}); nothing was changed.",
            request.id, request.status
        ),
        None => format!(
            "Request {} is already {}; nothing was changed.",
            request.id, request.status
        ),
    }
}

async fn on_click(state: &AppState, payload: &Value) -> Response {
    let Some(api) = state.slack.clone() else {
        return StatusCode::OK.into_response();
    };
    let action = payload
        .get("actions")
        .and_then(|a| a.get(0))
        .cloned()
        .unwrap_or_default();
    let action_id = text_at(&action, &["action_id"]).unwrap_or_default();
    let request_id = text_at(&action, &["value"]).unwrap_or_default();
    let slack_user = text_at(payload, &["user", "id"]).unwrap_or_default();
    let response_url = text_at(payload, &["response_url"]).unwrap_or_default();
    let tell = |text: String| {
        let api = api.clone();
        let url = response_url.to_string();
        async move { messages::ephemeral(&api, &url, &text).await }
    };
    if action_id != APPROVE_ACTION && action_id != DENY_ACTION {
        return StatusCode::OK.into_response();
    }
    let request = match store::get(&state.db, request_id).await {
        Ok(Some(request)) => request,
        Ok(None) => {
            tell(format!("There is no request {request_id}.")).await;
            return StatusCode::OK.into_response();
        }
        Err(error) => {
            tracing::error!(%error, "cannot read a request for a Slack click");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let verb = if action_id == APPROVE_ACTION {
        "approve"
    } else {
        "deny"
    };
    let admin = match deciding_admin(state, slack_user, &request).await {
        Ok(admin) => admin,
        Err(refusal) => {
            audit_refused_decision(state, slack_user, &request, verb, &refusal).await;
            tell(refusal).await;
            return StatusCode::OK.into_response();
        }
    };
    if !request.state().is_open() {
        tell(already_decided(&request)).await;
        return StatusCode::OK.into_response();
    }
    if action_id == DENY_ACTION {
        let trigger = text_at(payload, &["trigger_id"]).unwrap_or_default();
        if let Err(error) = api
            .open_view(trigger, messages::deny_modal(&request.id))
            .await
        {
            tracing::warn!(%error, "cannot open the deny modal");
            tell("Slack did not open the form for the reason; nothing was changed. Please try again, or deny on /admin/requests.".into()).await;
        }
        return StatusCode::OK.into_response();
    }
    let Some(grant) = state.config.admin.user_grant(&admin) else {
        tell("You are not a reseat admin. Nothing was changed.".into()).await;
        return StatusCode::OK.into_response();
    };
    match admin::approve(state, &request.id, &grant, Vec::new()).await {
        Ok(()) => {
            let decision = format!("Approved by {admin} (<@{slack_user}>); restoring now.");
            messages::show_decision(state, &request.id, &decision).await;
        }
        Err(AdminError::NotOpen { .. }) => {
            if let Ok(Some(now)) = store::get(&state.db, &request.id).await {
                tell(already_decided(&now)).await;
            }
        }
        Err(error) => tell(format!("Could not approve: {error}")).await,
    }
    StatusCode::OK.into_response()
}

async fn on_submit(state: &AppState, payload: &Value) -> Response {
    let errors = |text: &str| {
        Json(json!({ "response_action": "errors", "errors": { REASON_INPUT: text } }))
            .into_response()
    };
    if text_at(payload, &["view", "callback_id"]) != Some(DENY_CALLBACK) {
        return StatusCode::OK.into_response();
    }
    let request_id = text_at(payload, &["view", "private_metadata"]).unwrap_or_default();
    let slack_user = text_at(payload, &["user", "id"]).unwrap_or_default();
    let reason = text_at(
        payload,
        &[
            "view",
            "state",
            "values",
            REASON_INPUT,
            REASON_INPUT,
            "value",
        ],
    )
    .map(str::trim)
    .unwrap_or_default();
    let request = match store::get(&state.db, request_id).await {
        Ok(Some(request)) => request,
        Ok(None) => return errors("There is no such request."),
        Err(error) => {
            tracing::error!(%error, "cannot read a request for a Slack denial");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let admin = match deciding_admin(state, slack_user, &request).await {
        Ok(admin) => admin,
        Err(refusal) => {
            audit_refused_decision(state, slack_user, &request, "deny", &refusal).await;
            return errors(&refusal);
        }
    };
    if reason.is_empty() {
        return errors("Say why: the requester is told the reason.");
    }
    let Some(grant) = state.config.admin.user_grant(&admin) else {
        return errors("You are not a reseat admin. Nothing was changed.");
    };
    match admin::deny(state, &request.id, &grant, reason).await {
        Ok(()) => {
            let decision = format!("Denied by {admin} (<@{slack_user}>): {reason}");
            messages::show_decision(state, &request.id, &decision).await;
            Json(json!({ "response_action": "clear" })).into_response()
        }
        Err(AdminError::NotOpen { .. }) => match store::get(&state.db, &request.id).await {
            Ok(Some(now)) => errors(&already_decided(&now)),
            _ => errors("The request is already decided; nothing was changed."),
        },
        Err(error) => errors(&format!("Could not deny: {error}")),
    }
}
