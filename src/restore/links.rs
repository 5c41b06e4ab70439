//! `GET|POST /restore/{token}` and `GET|POST /keep/{token}`: the links in reseat's emails.
//!
//! `GET` only shows what will happen and changes nothing — mail scanners open links. The
//! form's `POST` (with a CSRF token, double-submitted in a cookie) uses the link, once: the
//! token is consumed in the same transaction as the restore request or the keep it creates.
//! A bad link gets one plain page whatever the reason; the reason goes to the log and audit.

use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::reply::product_name;
use super::rules::Channel;
use super::status::Status;
use super::store::{self, NewRequest};
use super::worker;
use crate::app::AppState;
use crate::audit;
use crate::notify::{LinkError, Purpose, TokenClaims, TokenRejection};

const CSRF_COOKIE: &str = "reseat_csrf";

/// How long the restore page waits for the restore before saying it is under way.
const INLINE_WAIT: Duration = Duration::from_secs(15);

#[derive(Template)]
#[template(path = "pages/confirm.html")]
struct ConfirmPage<'a> {
    organisation: &'a str,
    support_contact: Option<&'a str>,
    heading: String,
    lines: Vec<String>,
    button: &'a str,
    csrf: &'a str,
    /// The restore page asks why (optional); the keep page does not.
    ask_justification: bool,
    /// A rule that may decide this link's request requires a justification.
    justification_required: bool,
}

#[derive(Template)]
#[template(path = "pages/result.html")]
struct ResultPage<'a> {
    organisation: &'a str,
    support_contact: Option<&'a str>,
    heading: String,
    lines: Vec<String>,
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    /// Why the user needs the access (the restore page's text box; optional).
    #[serde(default)]
    justification: Option<String>,
}

pub async fn restore_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let state = site_view(&state, &token, Purpose::Restore);
    confirm(&state, &token, Purpose::Restore).await
}

pub async fn keep_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let state = site_view(&state, &token, Purpose::Keep);
    confirm(&state, &token, Purpose::Keep).await
}

pub async fn restore_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    let state = site_view(&state, &token, Purpose::Restore);
    submit(&state, &token, Purpose::Restore, &headers, &form).await
}

pub async fn keep_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    let state = site_view(&state, &token, Purpose::Keep);
    submit(&state, &token, Purpose::Keep, &headers, &form).await
}

/// The view of the site a link was issued for: its keep period, its channels, its clients.
/// A link for a site reseat does not manage keeps the default view, and `usable` refuses
/// it as a link for another site.
fn site_view(state: &AppState, token: &str, purpose: Purpose) -> AppState {
    state
        .notify
        .links
        .verify(token, purpose, state.clock().now())
        .ok()
        .and_then(|claims| state.for_site(&claims.site))
        .unwrap_or_else(|| state.clone())
}

/// Whether a rule that may decide a link's request for `product` requires a justification:
/// the page then asks for one, since the link works once and a request without it would be
/// declined.
fn needs_justification(state: &AppState, product: &str) -> bool {
    let product = crate::atlassian::ProductKey::parse(product).ok();
    state.config.restore.rules.iter().any(|rule| {
        rule.require_justification
            && (rule.channels.is_empty() || rule.channels.contains(&Channel::Link))
            && (rule.products.is_empty()
                || product.as_ref().is_some_and(|p| rule.products.contains(p)))
    })
}

async fn confirm(state: &AppState, token: &str, purpose: Purpose) -> Response {
    let claims = match usable(state, token, purpose).await {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    let product = product_name(Some(&claims.product));
    let (heading, lines, button) = match purpose {
        Purpose::Restore => (
            format!("Get your {product} access back"),
            vec![
                format!(
                    "This gives your account back the {product} access that was removed because it had not been used for a while."
                ),
                "It usually takes a few seconds. You will also get an email.".to_string(),
            ],
            "Restore my access",
        ),
        Purpose::Keep => (
            format!("Keep your {product} access"),
            vec![format!(
                "This keeps your {product} access for another {} days, even if you do not use it.",
                state.config.restore.keep_period.as_secs() / 86_400
            )],
            "Keep my access",
        ),
        // Decision links are admin pages (`/admin/requests/{id}/decide/{token}`).
        Purpose::Decide => return rejected(state, purpose, TokenRejection::WrongPurpose).await,
    };
    let csrf = random_token();
    let page = ConfirmPage {
        organisation: &state.config.mail.organisation,
        support_contact: state.config.mail.support_contact.as_deref(),
        heading,
        lines,
        button,
        csrf: &csrf,
        ask_justification: purpose == Purpose::Restore,
        justification_required: purpose == Purpose::Restore
            && needs_justification(state, &claims.product),
    };
    let mut response = render(StatusCode::OK, page.render());
    let secure = if state.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn submit(
    state: &AppState,
    token: &str,
    purpose: Purpose,
    headers: &HeaderMap,
    form: &LinkForm,
) -> Response {
    if !csrf_matches(headers, &form.csrf) {
        let _ = audit_rejection(state, purpose, "csrf").await;
        return result(
            state,
            StatusCode::FORBIDDEN,
            "This page has expired",
            vec!["Please open the link from your email again and press the button once.".into()],
        );
    }
    if purpose == Purpose::Restore
        && let Some(response) = used_by_its_request(state, token).await
    {
        return response;
    }
    let claims = match usable(state, token, purpose).await {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    let outcome = match purpose {
        Purpose::Restore => use_restore(state, &claims, form.justification.as_deref()).await,
        Purpose::Keep => use_keep(state, &claims).await,
        Purpose::Decide => return rejected(state, purpose, TokenRejection::WrongPurpose).await,
    };
    match outcome {
        Ok(response) => response,
        Err(LinkError::Rejected(rejection)) => rejected(state, purpose, rejection).await,
        Err(error) => {
            tracing::error!(%error, "cannot use a link");
            result(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                vec!["Your link was not used; please try again in a minute.".into()],
            )
        }
    }
}

async fn use_restore(
    state: &AppState,
    claims: &TokenClaims,
    justification: Option<&str>,
) -> Result<Response, LinkError> {
    let mut tx = state.db.pool().begin().await?;
    state
        .notify
        .links
        .consume(&mut tx, claims, state.clock().now())
        .await?;
    let accepted = store::accept_in(
        &state.queue,
        &mut tx,
        NewRequest {
            channel: Channel::Link,
            site: state.site().to_owned(),
            idempotency_key: format!("link:{}", claims.token_id),
            account_id: Some(claims.account_id.clone()),
            product: Some(claims.product.clone()),
            payload: json!({ "accountId": claims.account_id, "product": claims.product, "tokenId": claims.token_id }),
            justification: justification.map(str::to_owned),
        },
    )
    .await?;
    tx.commit().await?;
    restore_outcome(state, accepted.id(), &claims.product).await
}

/// Processes the link's request now, through the queue (or waits for the worker that has
/// it), and shows where it is.
async fn restore_outcome(state: &AppState, id: &str, product: &str) -> Result<Response, LinkError> {
    let request = worker::run_now(state, id, INLINE_WAIT).await?;
    if request.as_ref().is_none_or(|r| !r.is_decided()) {
        tracing::warn!(request_id = %id, "restore still running; the queue finishes it");
    }
    let product = product_name(Some(product));
    let until = match &request {
        Some(request) => super::reply::access_until(state, request).await?,
        None => None,
    };
    let (heading, lines) = request
        .as_ref()
        .map_or(Status::Received, |r| r.state())
        .link_page(
            &product,
            request.as_ref().and_then(|r| r.message.as_deref()),
            until,
        );
    Ok(result(state, StatusCode::OK, &heading, lines))
}

/// A restore link POSTed again after its first answer was lost (a dropped connection, a
/// retried form): the token is used, by the request it started, whose outcome is shown.
async fn used_by_its_request(state: &AppState, token: &str) -> Option<Response> {
    let claims = state
        .notify
        .links
        .verify(token, Purpose::Restore, state.clock().now())
        .ok()?;
    if claims.site != state.site() {
        return None;
    }
    let request = store::by_key(&state.db, &format!("link:{}", claims.token_id))
        .await
        .ok()??;
    match restore_outcome(state, &request.id, &claims.product).await {
        Ok(response) => Some(response),
        Err(error) => {
            tracing::error!(%error, "cannot show a used link's request");
            None
        }
    }
}

async fn use_keep(state: &AppState, claims: &TokenClaims) -> Result<Response, LinkError> {
    let until = state.clock().now()
        + chrono::Duration::from_std(state.config.restore.keep_period).unwrap_or_default();
    let mut tx = state.db.pool().begin().await?;
    state
        .notify
        .links
        .consume(&mut tx, claims, state.clock().now())
        .await?;
    crate::ledger::keeps::add_keep_in(
        &mut tx,
        state.db.now_ms(),
        &claims.account_id,
        &claims.product,
        &claims.site,
        until,
        "link",
    )
    .await?;
    audit::record_in(
        &mut tx,
        state.db.now_ms(),
        audit::Entry {
            actor: "link",
            role: None,
            action: "keep.recorded",
            account_id: Some(&claims.account_id),
            product: Some(&claims.product),
            details: json!({ "token_id": claims.token_id, "until": until.to_rfc3339() }),
        },
    )
    .await?;
    tx.commit().await?;
    let product = product_name(Some(&claims.product));
    Ok(result(
        state,
        StatusCode::OK,
        &format!("You keep your {product} access"),
        vec![format!(
            "Nothing will be removed before {}.",
            until.format("%-d %B %Y")
        )],
    ))
}

/// Verifies the token and checks it is issued, unused and for this site.
async fn usable(state: &AppState, token: &str, purpose: Purpose) -> Result<TokenClaims, Response> {
    let claims = match state
        .notify
        .links
        .verify(token, purpose, state.clock().now())
    {
        Ok(claims) => claims,
        Err(rejection) => return Err(rejected(state, purpose, rejection).await),
    };
    if crate::atlassian::site_key(&claims.site) != crate::atlassian::site_key(state.site()) {
        return Err(rejected(state, purpose, TokenRejection::WrongSite).await);
    }
    let checked = match state.db.pool().acquire().await {
        Ok(mut conn) => state.notify.links.check(&mut conn, &claims).await,
        Err(error) => Err(LinkError::Store(error)),
    };
    match checked {
        Ok(()) => Ok(claims),
        Err(LinkError::Rejected(rejection)) => Err(rejected(state, purpose, rejection).await),
        Err(error) => {
            tracing::error!(%error, "cannot check a link");
            Err(result(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                vec!["Please try again in a minute.".into()],
            ))
        }
    }
}

async fn rejected(state: &AppState, purpose: Purpose, rejection: TokenRejection) -> Response {
    let _ = audit_rejection(state, purpose, rejection.as_str()).await;
    let status = match rejection {
        TokenRejection::Expired | TokenRejection::AlreadyUsed => StatusCode::GONE,
        _ => StatusCode::BAD_REQUEST,
    };
    result(
        state,
        status,
        "This link cannot be used",
        vec![
            "It may have been used already or be too old.".into(),
            "If you still need access, ask for it on the service portal.".into(),
        ],
    )
}

async fn audit_rejection(
    state: &AppState,
    purpose: Purpose,
    reason: &str,
) -> Result<(), sqlx::Error> {
    tracing::warn!(purpose = %purpose, reason, "link refused");
    // Anyone can send a forged link: counted per minute, not a row each.
    audit::refused(
        &state.db,
        audit::Refusal {
            action: "link.rejected",
            source: &format!("link:{}", purpose.as_str()),
            reason,
        },
    )
    .await
}

fn result(state: &AppState, status: StatusCode, heading: &str, lines: Vec<String>) -> Response {
    let page = ResultPage {
        organisation: &state.config.mail.organisation,
        support_contact: state.config.mail.support_contact.as_deref(),
        heading: heading.to_string(),
        lines,
    };
    render(status, page.render())
}

/// A page with the headers every link page carries: never cached, never framed, and the
/// token in the URL never sent on as a referrer.
fn render(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let mut response = match html {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn csrf_matches(headers: &HeaderMap, submitted: &str) -> bool {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_string());
    match cookie {
        Some(cookie) if !submitted.is_empty() && cookie.len() == submitted.len() => {
            cookie.as_bytes().ct_eq(submitted.as_bytes()).into()
        }
        _ => false,
    }
}
