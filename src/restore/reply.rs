//! Answering the requester where the request came from: a public comment and a transition
//! (by name, from the configuration) on a JSM request. Link requests get their result page;
//! every channel also gets an email through the outbox.

use super::store::RestoreRequest;
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

/// What the requester is told, by outcome.
pub fn reply_text(request: &RestoreRequest) -> Option<String> {
    let product = product_name(request.product.as_deref());
    let message = request.message.as_deref().unwrap_or_default();
    match request.status.as_str() {
        "restored" => Some(format!(
            "Your access to {product} has been restored. It can take a minute to show everywhere."
        )),
        "pending" => Some(format!(
            "Your request for access to {product} is waiting for an administrator's approval. You will hear back here."
        )),
        "denied" => Some(
            format!("Your request for access to {product} was declined. {message}")
                .trim_end()
                .to_owned(),
        ),
        "failed" => Some(format!(
            "We could not restore your access to {product} automatically. An administrator will look at your request."
        )),
        _ => None,
    }
}

/// Sends the reply for a decided request.
pub async fn reply(state: &AppState, request: &RestoreRequest) -> Result<(), AtlassianError> {
    let Some(text) = reply_text(request) else {
        return Ok(());
    };
    if request.channel == "jsm" {
        reply_on_jsm(state, request, &text).await?;
    }
    reply_by_email(state, request)
        .await
        .map_err(|e| AtlassianError::Transient {
            status: None,
            message: format!("outbox: {e}"),
        })
}

/// The email for the outcome, once per request and outcome (the outbox dedupes).
async fn reply_by_email(state: &AppState, request: &RestoreRequest) -> Result<(), sqlx::Error> {
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
    let config = &state.config.restore.jsm;
    jsm.add_comment(&issue, text, true).await?;
    let transition = match request.status.as_str() {
        "restored" => Some(config.resolve_transition.as_str()),
        "denied" => Some(config.decline_transition.as_str()),
        "pending" => config.pending_transition.as_deref(),
        _ => None,
    };
    if let Some(name) = transition.filter(|name| !name.trim().is_empty()) {
        jsm.transition_by_name(&issue, name, None).await?;
    }
    Ok(())
}
