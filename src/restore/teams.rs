//! Microsoft Teams: the outgoing-webhook channel (`POST /hooks/teams`) and the approval
//! cards posted to a channel through an incoming webhook or a Workflows URL.
//!
//! - Intake: Teams signs every message with `Authorization: HMAC <base64 HMAC-SHA256 of the
//!   raw body>` keyed by the base64-decoded security token it showed when the outgoing
//!   webhook was created. The signature is checked, in constant time, before the body is
//!   parsed; the message's `timestamp` must be recent and its `id` new (a replay is refused
//!   with 401 and changes nothing). Teams waits 5 seconds for the answer: the request is
//!   stored, processed for at most `reply_wait`, and answered with an Adaptive Card.
//! - Who asks: outgoing webhooks carry the sender's Entra object id (`from.aadObjectId`)
//!   and name, not an email. The sender is mapped through `restore.teams.users` (object id →
//!   email), else `from.userPrincipalName` when Teams sends it (and
//!   `use_user_principal_name` is on); a sender mapped neither way is told how to ask
//!   instead, and nothing is stored. The account is then found in Atlassian by that email,
//!   as for the generic webhook: the rules see Atlassian's record, not the message.
//! - Approvals: a request the rules send to an admin is posted to `notify_url` as a card
//!   (requester, product, site, rule trace, groups to give back) whose Approve and Deny
//!   buttons open signed, single-use decision links ([`decision_url`]) on the admin pages.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

pub use super::command::Command;
use super::intake::{self, parse_email};
use super::rules::Channel;
use super::status::Status;
use super::store::{self, Accepted, NewRequest, RestoreRequest};
use super::{command, deliveries, reply, worker};
use crate::app::AppState;
use crate::atlassian::{AtlassianError, ProductKey};
use crate::config::{ConfigError, Secret};
use crate::web::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// The content type of an Adaptive Card attachment.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

/// `[restore.teams]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeamsChannel {
    /// The outgoing webhook's security token, base64 as Teams shows it when the webhook is
    /// created. `POST /hooks/teams` is off without it.
    pub secret: Option<Secret>,
    /// How far a message's `timestamp` may be from now, either way.
    #[serde(with = "crate::config::duration")]
    pub tolerance: Duration,
    /// Senders by Entra (Azure AD) object id (`from.aadObjectId`) → the email of their
    /// Atlassian account.
    pub users: BTreeMap<String, String>,
    /// Use `from.userPrincipalName` as the email when Teams sends it and the sender is not in
    /// `users`.
    pub use_user_principal_name: bool,
    /// The product when the message names none (`restore`).
    pub default_product: Option<ProductKey>,
    /// How long the answer waits for the outcome before saying the request is under way
    /// (Teams gives up after 5 seconds).
    #[serde(with = "crate::config::duration")]
    pub reply_wait: Duration,
    /// Where approval cards are posted: a Teams incoming-webhook URL or a Workflows
    /// ("when a Teams webhook request is received") URL. No cards without it. The URL is a
    /// credential: anyone holding it can post to the channel.
    pub notify_url: Option<Secret>,
    /// How long the Approve and Deny links of a card work.
    #[serde(with = "crate::config::duration")]
    pub decision_link_ttl: Duration,
}

impl Default for TeamsChannel {
    fn default() -> Self {
        TeamsChannel {
            secret: None,
            tolerance: Duration::from_secs(300),
            users: BTreeMap::new(),
            use_user_principal_name: true,
            default_product: Some(ProductKey::JIRA_SOFTWARE),
            reply_wait: Duration::from_secs(3),
            notify_url: None,
            decision_link_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

impl TeamsChannel {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.secret
            && decode_key(secret).is_err()
        {
            return Err(ConfigError::key(
                "restore.teams.secret",
                "expected the base64 security token Teams shows when the outgoing webhook is created",
            ));
        }
        if self.reply_wait >= Duration::from_secs(5) {
            return Err(ConfigError::key(
                "restore.teams.reply_wait",
                "must be under 5s: Teams stops waiting for the answer after 5 seconds",
            ));
        }
        if let Some(url) = &self.notify_url {
            match url::Url::parse(url.expose()) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => {
                    return Err(ConfigError::key(
                        "restore.teams.notify_url",
                        "expected the https URL of a Teams incoming webhook or Workflows trigger",
                    ));
                }
            }
        }
        for (id, email) in &self.users {
            if parse_email(email).is_err() {
                return Err(ConfigError::key(
                    format!("restore.teams.users.{id}"),
                    format!("{email:?} is not an email address"),
                ));
            }
        }
        Ok(())
    }
}

fn decode_key(secret: &Secret) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(secret.expose().trim())
}

/// The `Authorization` value Teams sends for `body`: `HMAC <base64>`.
pub fn sign(secret_base64: &str, body: &[u8]) -> Result<String, String> {
    let key = STANDARD
        .decode(secret_base64.trim())
        .map_err(|_| "the secret is not base64".to_string())?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(body);
    Ok(format!(
        "HMAC {}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Whether `authorization` is Teams' signature of `body` (constant time).
pub fn verify(secret: &Secret, authorization: Option<&str>, body: &[u8]) -> Result<(), String> {
    let presented = authorization.ok_or("missing header Authorization")?;
    let encoded = presented
        .strip_prefix("HMAC ")
        .ok_or("Authorization is not an HMAC signature")?;
    let signature = STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the HMAC signature is not base64")?;
    let key = decode_key(secret).map_err(|_| "restore.teams.secret is not base64")?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| "bad key")?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| "the HMAC signature does not match".to_string())
}

/// The parts of a Teams outgoing-webhook activity reseat reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    from: From,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct From {
    #[serde(default)]
    aad_object_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

/// The message text without the bot's mention, tags and HTML entities Teams adds.
pub fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if after.len() >= 4 && after[..4].eq_ignore_ascii_case("<at>") {
            // The mention: `<at>reseat</at>`, dropped with its text.
            match after.to_ascii_lowercase().find("</at>") {
                Some(end) => rest = &after[end + 5..],
                None => rest = "",
            }
        } else {
            match after.find('>') {
                Some(end) => {
                    out.push(' ');
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        }
    }
    out.push_str(rest);
    let out = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads `restore jira [justification]` from a Teams message (see [`command::parse`]).
pub fn parse_command(text: &str) -> Command {
    command::parse(&plain_text(text))
}

fn product_of(text: &str) -> Option<ProductKey> {
    ProductKey::from_display_name(text)
        .or_else(|| {
            ProductKey::parse(&text.replace(' ', "-"))
                .ok()
                .filter(|k| k.is_known())
        })
        .or_else(|| ProductKey::from_request_text(text).ok())
}

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

/// `POST /hooks/teams`: a message to reseat's outgoing webhook.
pub async fn hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let channel = Channel::Teams;
    match handle(&state, &headers, body).await {
        Ok(card) => Ok((StatusCode::OK, Json(card))),
        Err(error) => {
            intake::audit_refusal(&state, channel, &error).await;
            Err(error)
        }
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let config = &state.config.restore.teams;
    let Some(secret) = config.secret.as_ref() else {
        return Err(ApiError::NotFound(
            "the teams channel is not enabled".into(),
        ));
    };
    let body = body.map_err(intake::body_rejection)?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    verify(secret, authorization, &body)
        .map_err(|problem| ApiError::Unauthorized(format!("signature refused: {problem}")))?;
    // Signed: the body is Teams' own.
    let activity: Activity = intake::parse_json(&body)?;
    let now = state.clock().now();
    let sent = activity
        .timestamp
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(|| ApiError::Unauthorized("the message has no valid timestamp".into()))?;
    let age = (now - sent.with_timezone(&chrono::Utc)).num_seconds().abs();
    if age > i64::try_from(config.tolerance.as_secs()).unwrap_or(i64::MAX) {
        return Err(ApiError::Unauthorized(
            "the message timestamp is outside the tolerance".into(),
        ));
    }
    if !deliveries::valid_id(&activity.id) {
        return Err(ApiError::BadRequest(
            "the message id must be 1 to 200 characters".into(),
        ));
    }
    if activity.kind != "message" {
        return Err(ApiError::BadRequest(format!(
            "expected a message activity, got {:?}",
            activity.kind
        )));
    }
    let mut tx = state.db.pool().begin().await?;
    if !deliveries::first_time_in(&mut tx, state.db.now_ms(), "teams", &activity.id).await? {
        return Err(ApiError::Unauthorized(
            "this message was received before (a replay); nothing was changed".into(),
        ));
    }
    let (product, justification) = match parse_command(&activity.text) {
        Command::Help => {
            tx.commit().await?;
            return Ok(card_message(help_card()));
        }
        Command::Restore {
            product,
            justification,
        } => (product, justification),
    };
    let product = match product.as_deref().map(product_of) {
        Some(Some(key)) => key,
        Some(None) => {
            tx.commit().await?;
            return Ok(card_message(help_card()));
        }
        None => match &config.default_product {
            Some(key) => key.clone(),
            None => {
                tx.commit().await?;
                return Ok(card_message(help_card()));
            }
        },
    };
    if product.is_known() && state.config.sweep.product(&product).is_none() {
        tx.commit().await?;
        return Ok(card_message(text_card(
            "Not managed here",
            &format!(
                "reseat does not manage {} here. Ask your administrator.",
                product.display_name()
            ),
        )));
    }
    let Some(email) = sender_email(config, &activity.from) else {
        tx.commit().await?;
        tracing::info!("a Teams sender is mapped to no email; told how to ask instead");
        return Ok(card_message(unmapped_card(state)));
    };
    let accepted = store::accept_in(
        &state.queue,
        &mut tx,
        NewRequest {
            channel: Channel::Teams,
            site: state.site().to_owned(),
            justification: justification.clone(),
            idempotency_key: format!("teams:{}", activity.id),
            account_id: None,
            product: Some(product.as_str().to_string()),
            payload: json!({
                "messageId": activity.id,
                "email": email,
                "product": product.as_str(),
                "justification": justification,
                "aadObjectId": activity.from.aad_object_id,
                "senderName": activity.from.name,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    let id = match accepted {
        Accepted::New(id) | Accepted::Duplicate(id) => id,
    };
    let request = worker::run_now(state, &id, config.reply_wait).await?;
    let text = match &request {
        Some(request) => reply::reply_text(request, reply::access_until(state, request).await?),
        None => None,
    };
    Ok(card_message(outcome_card(
        &id,
        request.as_ref(),
        text,
        &product,
    )))
}

fn sender_email(config: &TeamsChannel, from: &From) -> Option<String> {
    if let Some(email) = from
        .aad_object_id
        .as_deref()
        .and_then(|id| config.users.get(id))
    {
        return Some(email.trim().to_string());
    }
    if config.use_user_principal_name {
        return from
            .user_principal_name
            .as_deref()
            .and_then(|upn| parse_email(upn).ok());
    }
    None
}

/// A message with one Adaptive Card attachment: what Teams shows as the answer, and what an
/// incoming webhook or a Workflows trigger accepts.
pub fn card_message(card: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": ADAPTIVE_CARD,
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn card(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    card
}

fn heading(text: &str) -> Value {
    json!({ "type": "TextBlock", "text": plain(text), "weight": "Bolder", "size": "Medium", "wrap": true })
}

fn paragraph(text: &str) -> Value {
    json!({ "type": "TextBlock", "text": plain(text), "wrap": true })
}

/// Text shown as written: Adaptive Cards render a subset of Markdown, so the characters
/// that make links, emphasis or headings are escaped (a display name cannot add a link).
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '[' | ']' | '(' | ')' | '*' | '_' | '`' | '#' | '>' | '<' | '~' | '|' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn text_card(title: &str, text: &str) -> Value {
    card(vec![heading(title), paragraph(text)], Vec::new())
}

fn help_card() -> Value {
    text_card(
        "Ask reseat for your access back",
        "Write: restore <product> [why you need it], for example \"restore jira for the release\" or \"restore confluence\".",
    )
}

/// The answer to a sender reseat cannot map to an email.
fn unmapped_card(state: &AppState) -> Value {
    let mail = &state.config.mail;
    let mut lines = vec![
        "Teams does not tell reseat your email address, and your Teams account is not mapped to one here, so nothing was requested.".to_string(),
    ];
    if let Some(portal) = &mail.portal_url {
        lines.push(format!("Ask on the service portal instead: {portal}"));
    }
    lines.push(
        "Or use the restore link in the email reseat sent you when your access was removed."
            .to_string(),
    );
    if let Some(contact) = &mail.support_contact {
        lines.push(format!("Questions: {contact}"));
    }
    let mut body = vec![heading("reseat cannot tell who you are")];
    body.extend(lines.iter().map(|l| paragraph(l)));
    card(body, Vec::new())
}

fn outcome_card(
    id: &str,
    request: Option<&RestoreRequest>,
    text: Option<String>,
    product: &ProductKey,
) -> Value {
    let product_name = product.display_name();
    let status = request.map_or(Status::Received, RestoreRequest::state);
    let text = text.unwrap_or_else(|| {
            format!("Your request for {product_name} is being processed. You will get an email with the outcome.")
        });
    let title = match status {
        Status::Restored => "Access restored",
        Status::Pending | Status::Failed => "Waiting for an administrator",
        Status::Denied => "Request declined",
        _ => "Request received",
    };
    card(
        vec![
            heading(title),
            paragraph(&text),
            json!({ "type": "TextBlock", "text": format!("Request {id}"), "isSubtle": true, "size": "Small", "wrap": true }),
        ],
        Vec::new(),
    )
}

/// The URL of a decision link: `/admin/requests/{id}/decide/{token}`.
pub fn decision_url(state: &AppState, request_id: &str, token: &str) -> String {
    format!(
        "{}/admin/requests/{request_id}/decide/{token}",
        state.config.public_url().trim_end_matches('/')
    )
}

/// Posts the approval card of a request waiting for an admin to `notify_url`, once per
/// request and status (the reply's steps record it). Nothing without `notify_url`.
pub async fn notify_pending(
    state: &AppState,
    request: &RestoreRequest,
) -> Result<(), AtlassianError> {
    let Some(url) = state.config.restore.teams.notify_url.as_ref() else {
        return Ok(());
    };
    let invalid = |m: String| AtlassianError::Invalid(m);
    let transient = |m: String| AtlassianError::Transient {
        status: None,
        message: m,
    };
    let (Some(account), Some(product)) = (&request.account_id, &request.product) else {
        return Ok(());
    };
    let ttl = chrono::Duration::from_std(state.config.restore.teams.decision_link_ttl)
        .unwrap_or(chrono::Duration::days(7));
    let expires = state.clock().now() + ttl;
    let mut links = Vec::new();
    {
        let mut tx = state
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| transient(format!("database: {e}")))?;
        for decision in ["approve", "deny"] {
            let issued = state
                .notify
                .links
                .issue_decision(
                    &mut tx,
                    &request.id,
                    decision,
                    account,
                    product,
                    state.site(),
                    expires,
                )
                .await
                .map_err(|e| invalid(format!("decision link: {e}")))?;
            links.push(decision_url(state, &request.id, &issued.token));
        }
        tx.commit()
            .await
            .map_err(|e| transient(format!("database: {e}")))?;
    }
    let groups = crate::ledger::taken_groups(&state.db, account, product, state.site())
        .await
        .map_err(|e| transient(format!("database: {e}")))?;
    let card = approval_card(state, request, &groups, &links[0], &links[1]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| invalid(format!("http client: {e}")))?;
    let response = client
        .post(url.expose())
        .json(&card_message(card))
        .send()
        .await
        // The URL is a credential: the error names no URL.
        .map_err(|e| transient(format!("posting to Teams failed: {}", e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        tracing::info!(request_id = %request.id, "approval card posted to Teams");
        return Ok(());
    }
    let message = format!("Teams answered {} to the approval card", status.as_u16());
    if status.is_server_error() || status.as_u16() == 429 {
        Err(transient(message))
    } else {
        Err(invalid(message))
    }
}

fn approval_card(
    state: &AppState,
    request: &RestoreRequest,
    groups: &[super::rules::GroupFact],
    approve_url: &str,
    deny_url: &str,
) -> Value {
    let product = reply::product_name(request.product.as_deref());
    let requester = match (&request.display_name, &request.email) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        (Some(name), None) => name.clone(),
        (None, Some(email)) => email.clone(),
        (None, None) => request.account_id.clone().unwrap_or_default(),
    };
    // The stored justification: every channel's (a JSM field, a link's box, Slack), as
    // approvers see it everywhere else.
    let justification = request.justification.clone();
    let group_names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let mut facts = vec![
        ("Requester", requester),
        ("Account", request.account_id.clone().unwrap_or_default()),
        ("Product", product.clone()),
        ("Site", state.site().to_string()),
        ("Channel", request.channel.clone()),
        (
            "Groups to give back",
            if group_names.is_empty() {
                "none journaled (an approval without groups waits again)".into()
            } else {
                group_names.join(", ")
            },
        ),
    ];
    if let Some(why) = justification {
        facts.push(("Justification", why));
    }
    let facts: Vec<Value> = facts
        .into_iter()
        .map(|(title, value)| json!({ "title": title, "value": plain(&value) }))
        .collect();
    let trace = crate::web::admin::explanation_lines(request.verdict.as_deref());
    let mut body = vec![
        heading(&format!("{product} access request waits for approval")),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    if let Some(message) = &request.message {
        body.push(paragraph(message));
    }
    if !trace.is_empty() {
        body.push(
            json!({ "type": "TextBlock", "text": "Rule trace", "weight": "Bolder", "wrap": true }),
        );
        for line in trace {
            body.push(json!({ "type": "TextBlock", "text": plain(&line), "fontType": "Monospace", "size": "Small", "wrap": true, "spacing": "None" }));
        }
    }
    body.push(json!({ "type": "TextBlock", "text": format!("Request {}", request.id), "isSubtle": true, "size": "Small", "wrap": true }));
    card(
        body,
        vec![
            json!({ "type": "Action.OpenUrl", "title": "Approve", "url": approve_url }),
            json!({ "type": "Action.OpenUrl", "title": "Deny", "url": deny_url }),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mention_and_markup_are_not_part_of_the_command() {
        assert_eq!(
            parse_command("<at>reseat</at> restore jira&nbsp;for the release\n"),
            Command::Restore {
                product: Some("jira".into()),
                justification: Some("for the release".into())
            }
        );
        assert_eq!(
            parse_command("<at>reseat</at> restore jira service management please"),
            Command::Restore {
                product: Some("jira service management".into()),
                justification: Some("please".into())
            }
        );
        assert_eq!(
            parse_command("<at>Re Seat</at> RESTORE"),
            Command::Restore {
                product: None,
                justification: None
            }
        );
        assert_eq!(parse_command("<at>reseat</at> hello"), Command::Help);
        assert_eq!(parse_command(""), Command::Help);
    }

    #[test]
    fn aliases_come_from_the_product_table() {
        assert_eq!(product_of("jira"), Some(ProductKey::JIRA_SOFTWARE));
        assert_eq!(
            product_of("jira service management").map(|k| k.as_str().to_string()),
            ProductKey::from_display_name("Jira Service Management")
                .map(|k| k.as_str().to_string())
        );
    }

    #[test]
    fn signatures_verify_only_for_the_exact_body_and_key() {
        let key = STANDARD.encode([9u8; 32]);
        let secret = Secret::new(key.clone());
        let body = br#"{"type":"message"}"#;
        let header = sign(&key, body).unwrap();
        assert!(verify(&secret, Some(&header), body).is_ok());
        assert!(verify(&secret, Some(&header), b"{}").is_err());
        assert!(verify(&secret, None, body).is_err());
        assert!(verify(&secret, Some("Bearer x"), body).is_err());
        let other = sign(&STANDARD.encode([8u8; 32]), body).unwrap();
        assert!(verify(&secret, Some(&other), body).is_err());
    }

    #[test]
    fn card_text_cannot_make_links() {
        assert_eq!(plain("[x](http://evil)"), "\\[x\\]\\(http://evil\\)");
    }
}
