//! The three webhook channels. Each authenticates first (static secret in constant time, or
//! a Standard Webhooks signature on the raw body), then parses, stores the request with its
//! idempotency key and its job in one transaction, and answers `202 {"requestId"}`. A
//! duplicate answers with the original request id and does nothing new. Every refusal is
//! audited and changes nothing else.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::rules::Channel;
use super::signature;
use super::store::{self, Accepted, NewRequest};
use crate::app::AppState;
use crate::atlassian::{AccountId, IssueKey, ProductKey};
use crate::audit;
use crate::config::Secret;
use crate::web::error::ApiError;

pub type Answer = Result<(StatusCode, Json<serde_json::Value>), ApiError>;

/// `POST /hooks/jsm` — `{"issueKey": "HELP-42"}` from a Jira Automation rule. Identity is
/// read back from JSM when the request is processed, never taken from the body.
pub async fn jsm(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let channel = Channel::Jsm;
    let state = match hook_site(&state, query.as_deref()) {
        Ok(site) => site,
        Err(error) => return finish(&state, channel, Err(error)).await,
    };
    let outcome = async {
        let config = &state.config.restore.jsm;
        check_static_secret(config.secret.as_ref(), &config.header, &headers, channel)?;
        let body = read_json_body(&headers, body)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            issue_key: Option<String>,
        }
        let parsed: Body = parse_json(&body)?;
        let key = parsed
            .issue_key
            .ok_or_else(|| ApiError::BadRequest("missing field issueKey".into()))?;
        let key = IssueKey::parse(key.trim()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(NewRequest {
            channel,
            site: state.site().to_owned(),
            idempotency_key: format!("jsm:{}{key}", site_part(&state)),
            account_id: None,
            product: None,
            payload: json!({ "issueKey": key.as_str() }),
            // Read from the request's field when it is processed (`restore.jsm.justification_field`).
            justification: None,
        })
    }
    .await;
    finish(&state, channel, outcome).await
}

/// `POST /hooks/automation` — `{"accountId": "…", "product": "…"}` from a Jira Automation
/// rule; the account is verified through the Jira user API when processed.
pub async fn automation(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let channel = Channel::Automation;
    let state = match hook_site(&state, query.as_deref()) {
        Ok(site) => site,
        Err(error) => return finish(&state, channel, Err(error)).await,
    };
    let outcome = async {
        let config = &state.config.restore.automation;
        check_static_secret(config.secret.as_ref(), &config.header, &headers, channel)?;
        let body = read_json_body(&headers, body)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            account_id: Option<String>,
            product: Option<String>,
            justification: Option<String>,
        }
        let parsed: Body = parse_json(&body)?;
        let account = parse_account(parsed.account_id)?;
        let product = parse_product(&state, parsed.product)?;
        // Automation retries and repeated rule runs within the window are one request.
        let window = state
            .config
            .restore
            .automation
            .dedupe_window
            .as_millis()
            .max(1) as i64;
        let bucket = state.db.now_ms() / window;
        let digest = Sha256::digest(format!("{account}|{}", product.as_str()));
        Ok(NewRequest {
            channel,
            site: state.site().to_owned(),
            idempotency_key: format!("automation:{}{}:{bucket}", site_part(&state), hex(&digest)),
            account_id: Some(account.to_string()),
            product: Some(product.as_str().to_string()),
            payload: json!({ "accountId": account.as_str(), "product": product.as_str() }),
            justification: parsed.justification,
        })
    }
    .await;
    finish(&state, channel, outcome).await
}

/// `POST /hooks/webhook` — Standard Webhooks; body `{"accountId"|"email", "product"}`.
pub async fn webhook(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let channel = Channel::Webhook;
    let state = match hook_site(&state, query.as_deref()) {
        Ok(site) => site,
        Err(error) => return finish(&state, channel, Err(error)).await,
    };
    let outcome = async {
        let config = &state.config.restore.webhook;
        if config.secrets.is_empty() {
            return Err(ApiError::NotFound(
                "the webhook channel is not enabled".into(),
            ));
        }
        let body = body.map_err(body_rejection)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        signature::verify(
            &config.secrets,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
            now,
            config.tolerance,
        )
        .map_err(|error| ApiError::Unauthorized(format!("signature refused: {error}")))?;
        check_json_content_type(&headers)?;
        let id = header("webhook-id").unwrap_or_default().to_string();
        if id.is_empty() || id.len() > 200 {
            return Err(ApiError::BadRequest(
                "webhook-id must be 1 to 200 characters".into(),
            ));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            account_id: Option<String>,
            email: Option<String>,
            product: Option<String>,
            justification: Option<String>,
        }
        let parsed: Body = parse_json(&body)?;
        let product = parse_product(&state, parsed.product)?;
        let (account, email) = match (parsed.account_id, parsed.email) {
            (Some(account), None) => (Some(parse_account(Some(account))?), None),
            (None, Some(email)) => (None, Some(parse_email(&email)?)),
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give accountId or email, not both".into(),
                ));
            }
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "missing field accountId (or email)".into(),
                ));
            }
        };
        Ok(NewRequest {
            channel,
            site: state.site().to_owned(),
            idempotency_key: format!("webhook:{}{id}", site_part(&state)),
            account_id: account.as_ref().map(|a| a.to_string()),
            product: Some(product.as_str().to_string()),
            payload: json!({
                "webhookId": id,
                "accountId": account.as_ref().map(AccountId::as_str),
                "email": email,
                "product": product.as_str(),
            }),
            justification: parsed.justification,
        })
    }
    .await;
    finish(&state, channel, outcome).await
}

/// The site a hook call is for: `?site=NAME` on the hook's URL (each site's JSM or
/// Automation rule calls its own), else the first site.
fn hook_site(state: &AppState, query: Option<&str>) -> Result<AppState, ApiError> {
    let named = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(key, _)| key == "site")
            .map(|(_, value)| value.into_owned())
    });
    Ok(state
        .named_site(named.as_deref())
        .map_err(ApiError::NotFound)?
        .unwrap_or_else(|| state.clone()))
}

/// `site:` in idempotency keys when reseat manages several sites (an issue key or a
/// webhook id is unique on one site only); empty for one site, as keys always were.
fn site_part(state: &AppState) -> String {
    if state.is_multi_site() {
        format!("{}:", state.site())
    } else {
        String::new()
    }
}

/// Stores an accepted request, or audits the refusal.
async fn finish(
    state: &AppState,
    channel: Channel,
    outcome: Result<NewRequest, ApiError>,
) -> Answer {
    match outcome {
        Ok(request) => {
            let accepted = store::accept(&state.queue, request).await?;
            let status = match &accepted {
                Accepted::New(_) => "accepted",
                Accepted::Duplicate(_) => "duplicate",
            };
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "requestId": accepted.id(), "status": status })),
            ))
        }
        Err(error) => {
            audit_refusal(state, channel, &error).await;
            Err(error)
        }
    }
}

/// Logs and audits a refused delivery of `channel`.
pub(super) async fn audit_refusal(state: &AppState, channel: Channel, error: &ApiError) {
    tracing::warn!(channel = %channel, status = error.status().as_u16(), error = %error, "restore request refused");
    let status = error.status().as_u16();
    // Refusals anyone can cause without the channel's secret (no or a wrong secret,
    // a channel not enabled, an oversized or non-JSON body) are counted per minute;
    // a request that passed authentication and was still refused gets its own row.
    let recorded = if matches!(status, 401 | 404 | 413 | 415) {
        audit::refused(
            &state.db,
            audit::Refusal {
                action: "restore.rejected",
                source: channel.as_str(),
                reason: &format!("{status}: {error}"),
            },
        )
        .await
    } else {
        let entry = audit::Entry {
            actor: channel.as_str(),
            role: None,
            action: "restore.rejected",
            account_id: None,
            product: None,
            details: json!({ "status": status, "reason": error.to_string() }),
        };
        audit::record(&state.db, entry).await
    };
    if let Err(audit_error) = recorded {
        tracing::error!(error = %audit_error, "cannot audit a refused request");
    }
}

fn check_static_secret(
    secret: Option<&Secret>,
    header_name: &str,
    headers: &HeaderMap,
    channel: Channel,
) -> Result<(), ApiError> {
    let Some(secret) = secret else {
        return Err(ApiError::NotFound(format!(
            "the {channel} channel is not enabled"
        )));
    };
    let presented = headers
        .get(header_name)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if presented.is_empty() {
        return Err(ApiError::Unauthorized(format!(
            "missing header {header_name}"
        )));
    }
    if !signature::static_secret_matches(presented, secret) {
        return Err(ApiError::Unauthorized(format!(
            "wrong secret in {header_name}"
        )));
    }
    Ok(())
}

pub(super) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(format!("cannot read the body: {rejection}"))
    }
}

pub(super) fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

fn read_json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(body_rejection)?;
    check_json_content_type(headers)?;
    Ok(body)
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("malformed JSON: {error}")))
}

fn parse_account(account: Option<String>) -> Result<AccountId, ApiError> {
    let account = account.ok_or_else(|| ApiError::BadRequest("missing field accountId".into()))?;
    AccountId::parse(account.trim()).map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub(super) fn parse_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && email.len() <= 254
                && !email.contains(char::is_whitespace) =>
        {
            Ok(email.to_string())
        }
        _ => Err(ApiError::BadRequest("email is not an email address".into())),
    }
}

/// The product a request names, through the product table. A product reseat knows but does
/// not manage here is refused at the door; a name reseat does not know at all is accepted
/// and goes to an administrator (the rules send it to `manual`), never declined.
pub fn parse_product(state: &AppState, product: Option<String>) -> Result<ProductKey, ApiError> {
    let product = product.ok_or_else(|| ApiError::BadRequest("missing field product".into()))?;
    let key = ProductKey::from_request_text(&product)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    if key.is_known() && state.config.sweep.product(&key).is_none() {
        return Err(ApiError::Unprocessable(format!(
            "product {:?} is not managed by reseat",
            key.as_str()
        )));
    }
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
