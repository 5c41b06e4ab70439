//! Restore on sign-in: the identity provider tells reseat that a user signed in to an
//! Atlassian app, and a user whose access reseat removed gets a request on channel `signin`,
//! decided by the rules like any other. Off unless `restore.signin.enabled`.
//!
//! - `GET|POST /hooks/okta`: Okta Event Hooks. The `GET` is Okta's one-time verification
//!   (`X-Okta-Verification-Challenge` → `{"verification": …}`); every request carries the
//!   authentication header configured on the hook, compared in constant time. Events of the
//!   configured types (`user.authentication.sso`) whose target app instance is mapped to a
//!   product (`restore.signin.okta.apps`, by app instance id or label) count.
//! - `POST /hooks/signin`: the same for any other identity provider, in the Standard
//!   Webhooks format: `{"type": "user.signin", "data": {"email", "product" | "app"}}`.
//!
//! Who was removed is read from reseat's own records (the plans' emails and the journal),
//! so a sign-in of someone reseat never removed makes no request and no Atlassian call.
//! Each delivery (Okta `eventId`, `webhook-id`) is processed once; a replay is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::intake::{self, parse_email};
use super::rules::Channel;
use super::store::{self, Accepted, NewRequest};
use super::{deliveries, signature};
use crate::app::AppState;
use crate::atlassian::ProductKey;
use crate::audit;
use crate::config::{ConfigError, Secret};
use crate::web::error::ApiError;

/// `[restore.signin]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigninChannel {
    /// Whether a sign-in asks for access back. Off by default: a sign-in proves who the user
    /// is, not that they need the product.
    pub enabled: bool,
    /// Okta Event Hooks (`/hooks/okta`).
    pub okta: OktaHook,
    /// Standard Webhooks sign-in events from any other identity provider (`/hooks/signin`).
    pub webhook: SigninWebhook,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OktaHook {
    /// The value of the authentication header configured on the Okta event hook; the hook
    /// is off without it.
    pub secret: Option<Secret>,
    /// The authentication header's name (the hook's "Authentication field").
    pub header: String,
    /// Event types that mean "signed in to an app".
    pub event_types: Vec<String>,
    /// Okta app instances (id `0oa…` or label) → the product they sign in to.
    pub apps: BTreeMap<String, ProductKey>,
    /// How old an event hook delivery (`eventTime`) may be.
    #[serde(with = "crate::config::duration")]
    pub tolerance: Duration,
}

impl Default for OktaHook {
    fn default() -> Self {
        OktaHook {
            secret: None,
            header: "Authorization".into(),
            event_types: vec!["user.authentication.sso".into()],
            apps: BTreeMap::new(),
            tolerance: Duration::from_secs(900),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigninWebhook {
    /// Signing secrets (`whsec_<base64>`), all verify; `/hooks/signin` is off without any.
    pub secrets: Vec<Secret>,
    /// How far `webhook-timestamp` may be from now, either way.
    #[serde(with = "crate::config::duration")]
    pub tolerance: Duration,
    /// App names an event may give instead of `product` → the product.
    pub apps: BTreeMap<String, ProductKey>,
}

impl Default for SigninWebhook {
    fn default() -> Self {
        SigninWebhook {
            secrets: Vec::new(),
            tolerance: Duration::from_secs(300),
            apps: BTreeMap::new(),
        }
    }
}

impl SigninChannel {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (index, secret) in self.webhook.secrets.iter().enumerate() {
            signature::decode_secret(secret.expose()).map_err(|problem| {
                ConfigError::key(format!("restore.signin.webhook.secrets[{index}]"), problem)
            })?;
        }
        if axum::http::HeaderName::from_bytes(self.okta.header.as_bytes()).is_err() {
            return Err(ConfigError::key(
                "restore.signin.okta.header",
                format!("{:?} is not a valid header name", self.okta.header),
            ));
        }
        if self.enabled && self.okta.secret.is_some() && self.okta.apps.is_empty() {
            return Err(ConfigError::key(
                "restore.signin.okta.apps",
                "map at least one Okta app instance (id or label) to a product",
            ));
        }
        Ok(())
    }
}

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn okta_enabled(state: &AppState) -> Result<&Secret, ApiError> {
    let config = &state.config.restore.signin;
    match (&config.okta.secret, config.enabled) {
        (Some(secret), true) => Ok(secret),
        _ => Err(ApiError::NotFound(
            "restore on sign-in (Okta) is not enabled".into(),
        )),
    }
}

fn check_okta_header(
    state: &AppState,
    secret: &Secret,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let name = &state.config.restore.signin.okta.header;
    let presented = headers
        .get(name.as_str())
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if presented.is_empty() {
        return Err(ApiError::Unauthorized(format!("missing header {name}")));
    }
    if !signature::static_secret_matches(presented, secret) {
        return Err(ApiError::Unauthorized(format!("wrong secret in {name}")));
    }
    Ok(())
}

/// `GET /hooks/okta`: Okta's one-time verification of the hook.
pub async fn okta_verify(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let outcome = async {
        let secret = okta_enabled(&state)?;
        check_okta_header(&state, secret, &headers)?;
        let challenge = headers
            .get("x-okta-verification-challenge")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .ok_or_else(|| {
                ApiError::BadRequest("missing header X-Okta-Verification-Challenge".into())
            })?;
        tracing::info!("Okta event hook verified");
        Ok((StatusCode::OK, Json(json!({ "verification": challenge }))))
    }
    .await;
    refused_on_error(&state, outcome).await
}

async fn refused_on_error(state: &AppState, outcome: Answer) -> Answer {
    if let Err(error) = &outcome {
        intake::audit_refusal(state, Channel::Signin, error).await;
    }
    outcome
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaDelivery {
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    data: OktaData,
}

#[derive(Debug, Default, Deserialize)]
struct OktaData {
    #[serde(default)]
    events: Vec<OktaEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaEvent {
    #[serde(default)]
    uuid: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    actor: Option<OktaObject>,
    #[serde(default)]
    outcome: Option<OktaOutcome>,
    #[serde(default)]
    target: Vec<OktaObject>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaObject {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    alternate_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OktaOutcome {
    #[serde(default)]
    result: String,
}

/// One sign-in reseat understood.
#[derive(Clone)]
struct SignIn {
    key: String,
    email: String,
    product: ProductKey,
    source: Value,
}

/// `POST /hooks/okta`: Okta event hook deliveries.
pub async fn okta(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let outcome = async {
        let secret = okta_enabled(&state)?;
        check_okta_header(&state, secret, &headers)?;
        let body = body.map_err(intake::body_rejection)?;
        intake::check_json_content_type(&headers)?;
        let delivery: OktaDelivery = intake::parse_json(&body)?;
        let config = &state.config.restore.signin.okta;
        let sent = delivery
            .event_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(|| ApiError::Unauthorized("the delivery has no valid eventTime".into()))?;
        let age = (state.clock().now() - sent.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs();
        if age > i64::try_from(config.tolerance.as_secs()).unwrap_or(i64::MAX) {
            return Err(ApiError::Unauthorized(
                "the delivery's eventTime is outside the tolerance".into(),
            ));
        }
        if !deliveries::valid_id(&delivery.event_id) {
            return Err(ApiError::BadRequest(
                "eventId must be 1 to 200 characters".into(),
            ));
        }
        let mut sign_ins = Vec::new();
        for event in &delivery.data.events {
            if !config.event_types.iter().any(|t| t == &event.event_type) {
                continue;
            }
            if event
                .outcome
                .as_ref()
                .is_some_and(|o| !o.result.eq_ignore_ascii_case("SUCCESS"))
            {
                continue;
            }
            let Some(email) = event
                .actor
                .as_ref()
                .filter(|a| a.kind == "User")
                .and_then(|a| a.alternate_id.as_deref())
                .and_then(|e| parse_email(e).ok())
            else {
                continue;
            };
            let product = event
                .target
                .iter()
                .filter(|t| t.kind == "AppInstance")
                .find_map(|t| {
                    config.apps.get(&t.id).or_else(|| {
                        [t.alternate_id.as_deref(), t.display_name.as_deref()]
                            .into_iter()
                            .flatten()
                            .find_map(|label| config.apps.get(label))
                    })
                });
            let Some(product) = product else {
                continue;
            };
            let id = if deliveries::valid_id(&event.uuid) {
                event.uuid.clone()
            } else {
                continue;
            };
            sign_ins.push(SignIn {
                key: format!("signin:okta:{id}"),
                email,
                product: product.clone(),
                source: json!({ "source": "okta", "eventId": delivery.event_id, "eventUuid": id }),
            });
        }
        let answer = record(&state, "okta", &delivery.event_id, sign_ins).await?;
        Ok((StatusCode::OK, Json(answer)))
    }
    .await;
    refused_on_error(&state, outcome).await
}

/// `POST /hooks/signin`: a Standard Webhooks `user.signin` event.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let outcome = async {
        let config = &state.config.restore.signin;
        if !config.enabled || config.webhook.secrets.is_empty() {
            return Err(ApiError::NotFound(
                "restore on sign-in (webhook) is not enabled".into(),
            ));
        }
        let body = body.map_err(intake::body_rejection)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        signature::verify(
            &config.webhook.secrets,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
            state.clock().now().timestamp(),
            config.webhook.tolerance,
        )
        .map_err(|error| ApiError::Unauthorized(format!("signature refused: {error}")))?;
        intake::check_json_content_type(&headers)?;
        let id = header("webhook-id").unwrap_or_default().to_string();
        if !deliveries::valid_id(&id) {
            return Err(ApiError::BadRequest(
                "webhook-id must be 1 to 200 characters".into(),
            ));
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            data: Data,
        }
        #[derive(Default, Deserialize)]
        struct Data {
            email: Option<String>,
            product: Option<String>,
            app: Option<String>,
        }
        let event: Event = intake::parse_json(&body)?;
        if event.kind != "user.signin" {
            return Err(ApiError::BadRequest(format!(
                "expected type \"user.signin\", got {:?}",
                event.kind
            )));
        }
        let email = event
            .data
            .email
            .as_deref()
            .ok_or_else(|| ApiError::BadRequest("missing field data.email".into()))
            .and_then(parse_email)?;
        let product = match (&event.data.product, &event.data.app) {
            (Some(product), _) => ProductKey::from_request_text(product)
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?,
            (None, Some(app)) => config.webhook.apps.get(app).cloned().ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "app {app:?} is not in restore.signin.webhook.apps"
                ))
            })?,
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "missing field data.product (or data.app)".into(),
                ));
            }
        };
        let sign_in = SignIn {
            key: format!("signin:webhook:{id}"),
            email,
            product,
            source: json!({ "source": "webhook", "webhookId": id }),
        };
        let answer = record(&state, "signin", &id, vec![sign_in]).await?;
        let status = if answer["requests"].as_array().is_some_and(|r| !r.is_empty()) {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(answer)))
    }
    .await;
    refused_on_error(&state, outcome).await
}

/// Each site where reseat removed `product` from the account whose plan recorded `email`,
/// with that account: reseat's own records only, no Atlassian call. A sign-in to the
/// identity provider is for the whole org, so with several sites every site that took the
/// product away gets a request (the rules decide each); a site that does not manage the
/// product gets none.
async fn removed_on_sites(
    state: &AppState,
    email: &str,
    product: &ProductKey,
) -> Result<Vec<(AppState, String)>, sqlx::Error> {
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM plan_items WHERE LOWER(email) = LOWER($1) \
         AND product = $2 ORDER BY account_id",
    )
    .bind(email)
    .bind(product.as_str())
    .fetch_all(state.db.pool())
    .await?;
    let mut found = Vec::new();
    for site in state.each_site() {
        let managed = !product.is_known() || site.config.sweep.product(product).is_some();
        if !managed {
            continue;
        }
        for account in &candidates {
            let groups =
                crate::ledger::taken_groups(&site.db, account, product.as_str(), site.site())
                    .await?;
            let roles =
                crate::ledger::roles::taken_roles(&site.db, account, product.as_str(), site.site())
                    .await?;
            if !groups.is_empty() || !roles.is_empty() {
                found.push((site, account.clone()));
                break;
            }
        }
    }
    Ok(found)
}

/// Stores a request for each sign-in of a user reseat removed, with the delivery, in one
/// transaction; a delivery seen before is refused.
async fn record(
    state: &AppState,
    source: &str,
    delivery_id: &str,
    sign_ins: Vec<SignIn>,
) -> Result<Value, ApiError> {
    let mut found = Vec::new();
    let mut nothing = Vec::new();
    let mut asked = Vec::new();
    for sign_in in sign_ins {
        let sites = removed_on_sites(state, &sign_in.email, &sign_in.product).await?;
        if sites.is_empty() {
            nothing.push(sign_in);
            continue;
        }
        for (site, account) in sites {
            // One sign-in request per removal: a person who signs in every day while the
            // rules keep them waiting (or declined them) is not asked for, or mailed, again.
            match asked_since_removal(&site, &account, &sign_in.product).await? {
                Some(request) => asked.push((sign_in.clone(), account, request)),
                None => found.push((sign_in.clone(), site, account)),
            }
        }
    }
    let mut tx = state.db.pool().begin().await?;
    if !deliveries::first_time_in(&mut tx, state.db.now_ms(), source, delivery_id).await? {
        return Err(ApiError::Unauthorized(
            "this delivery was received before (a replay); nothing was changed".into(),
        ));
    }
    let mut ids = Vec::new();
    for (sign_in, site, account) in found {
        let mut payload = json!({
            "accountId": account,
            "email": sign_in.email,
            "product": sign_in.product.as_str(),
        });
        if let (Some(target), Some(extra)) = (payload.as_object_mut(), sign_in.source.as_object()) {
            target.extend(extra.clone());
        }
        let accepted = store::accept_in(
            &state.queue,
            &mut tx,
            NewRequest {
                channel: Channel::Signin,
                site: site.site().to_owned(),
                justification: None,
                // One request per site and sign-in (keys were made before sites were).
                idempotency_key: if state.is_multi_site() {
                    format!("{}:{}", sign_in.key, site.site())
                } else {
                    sign_in.key
                },
                account_id: Some(account),
                product: Some(sign_in.product.as_str().to_string()),
                payload,
            },
        )
        .await?;
        ids.push(match accepted {
            Accepted::New(id) | Accepted::Duplicate(id) => id,
        });
    }
    // Sign-ins that ask for nothing are audited, each with why.
    let ignored = nothing
        .iter()
        .map(|sign_in| {
            (
                sign_in,
                None,
                json!({
                    "reason": "nothing to restore: reseat removed no access of this user",
                    "email": sign_in.email,
                    "delivery": sign_in.source,
                }),
            )
        })
        .chain(asked.iter().map(|(sign_in, account, request)| {
            (
                sign_in,
                Some(account.as_str()),
                json!({
                    "reason": "a sign-in asked for this access already since it was removed",
                    "request_id": request,
                    "delivery": sign_in.source,
                }),
            )
        }));
    for (sign_in, account, details) in ignored {
        audit::record_in(
            &mut tx,
            state.db.now_ms(),
            audit::Entry {
                actor: Channel::Signin.as_str(),
                role: None,
                action: "restore.signin_ignored",
                account_id: account,
                product: Some(sign_in.product.as_str()),
                details,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(json!({
        "requests": ids,
        "nothingToRestore": nothing.len(),
        "askedAlready": asked.iter().map(|(_, _, id)| id).collect::<Vec<_>>(),
    }))
}

/// The sign-in request for this seat made since reseat last removed it, if any.
async fn asked_since_removal(
    site: &AppState,
    account: &str,
    product: &ProductKey,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM restore_requests WHERE channel = 'signin' AND account_id = $1 \
         AND product = $2 AND site = $3 AND created_at >= (SELECT MAX(created_at) FROM journal \
         WHERE account_id = $1 AND product = $2 AND site = $3 AND action = 'removed') \
         ORDER BY created_at LIMIT 1",
    )
    .bind(account)
    .bind(product.as_str())
    .bind(site.site())
    .fetch_optional(site.db.pool())
    .await
}
