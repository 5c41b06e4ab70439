//! Signing in to the admin pages and keeping them safe to use.
//!
//! - Passwords: `[[admin.users]]` with argon2 PHC hashes (`reseat admin hash-password`).
//!   An unknown name is checked against a dummy hash so both cost the same time.
//! - One-time login links (`reseat admin login-link`): a random token whose SHA-256 is
//!   stored with an expiry; `GET` only shows a button, the `POST` uses it once.
//! - Sessions: a random cookie value (HttpOnly, SameSite=Strict, Path=/admin, Secure when
//!   `server.public_url` is https) whose SHA-256 keys a row with the admin and a CSRF token.
//! - CSRF: every state-changing form carries the session's token in a hidden `csrf` field,
//!   compared in constant time ([`AdminForm`]); the sign-in forms, before any session,
//!   double-submit a cookie instead.
//! - Failed sign-ins: attempts are counted per client address and per name
//!   (`admin.login_attempts_per_minute`); beyond it the answer is 429.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::store;
use crate::app::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "reseat_admin";
/// The double-submitted CSRF cookie of the sign-in forms.
pub const LOGIN_CSRF_COOKIE: &str = "reseat_admin_login";

/// A signed-in admin. Extracting it refuses the request otherwise: a page (`GET`) redirects
/// to the sign-in page, anything else gets 401.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub admin: String,
    /// The admin's role and scope, checked against the route before the handler runs.
    pub grant: crate::web::config::Grant,
    pub csrf: String,
    /// The SHA-256 of the cookie value (the session's key).
    pub key: String,
}

impl AdminSession {
    /// The actor audit entries name: `admin:<name>`.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.admin)
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(unauthenticated(parts));
        };
        let key = sha256_hex(&token);
        match store::session(&state.db, &key, state.db.now_ms()).await {
            Ok(Some(row)) => {
                // The entry it was made for must still be configured, unchanged.
                let current = entry_digest(state, &row.admin);
                let bound = match (&current, &row.entry_sha256) {
                    (Some(current), Some(stored)) => same_secret(current, stored),
                    _ => false,
                };
                if !bound {
                    tracing::info!(admin = %row.admin, "an admin session ended: its [[admin.users]] entry was removed or changed");
                    if let Err(error) = store::delete_session(&state.db, &key).await {
                        tracing::warn!(%error, "cannot delete an ended admin session");
                    }
                    return Err(unauthenticated(parts));
                }
                let Some(grant) = state.config.admin.user_grant(&row.admin) else {
                    return Err(unauthenticated(parts));
                };
                let path = parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| parts.uri.path().to_owned());
                let action = crate::web::config::Action::of_route(&parts.method, &path);
                if !grant.allows(action) {
                    tracing::warn!(actor = %grant.actor, role = grant.role.as_str(), action = action.as_str(), %path, "admin page refused: outside the admin's role");
                    grant.audit_refusal(&state.db, action).await;
                    return Err(super::pages::error_page(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "Your role ({}) does not allow this: it needs {} or above. Nothing was changed. Ask an owner if you need it.",
                            grant.role.as_str(),
                            action.least_role().as_str()
                        ),
                    ));
                }
                Ok(AdminSession {
                    grant,
                    admin: row.admin,
                    csrf: row.csrf,
                    key,
                })
            }
            Ok(None) => Err(unauthenticated(parts)),
            Err(error) => {
                tracing::error!(%error, "cannot read an admin session");
                Err(super::pages::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong; please try again.",
                ))
            }
        }
    }
}

fn unauthenticated(parts: &Parts) -> Response {
    let method = &parts.method;
    if method == Method::GET || method == Method::HEAD {
        // Back to the page asked for once signed in (a decision link from a Teams card).
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| safe_return_path(p).is_some() && *p != "/admin");
        match target {
            Some(target) => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", target)
                    .finish();
                Redirect::to(&format!("/admin/login?{query}")).into_response()
            }
            None => Redirect::to("/admin/login").into_response(),
        }
    } else {
        super::pages::error_page(
            StatusCode::UNAUTHORIZED,
            "You are not signed in (or your session ended). Sign in and try again.",
        )
    }
}

/// `next` when it is a path of the admin pages to return to after signing in; never another
/// site (`//host`, `/\\host`, a scheme) and never the sign-in pages themselves.
pub fn safe_return_path(next: &str) -> Option<&str> {
    let ok = next.len() <= 2_048
        && (next == "/admin" || next.starts_with("/admin/") || next.starts_with("/admin?"))
        && !next.starts_with("/admin/login")
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

/// A state-changing form of a signed-in admin whose `csrf` field matches the session's
/// token; anything else is refused with 403 before the handler runs. Repeated fields
/// (checkboxes) are kept.
pub struct AdminForm {
    pub session: AdminSession,
    pub fields: Vec<(String, String)>,
}

impl AdminForm {
    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a repeated field.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = AdminSession::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(&bytes).into_owned().collect();
        let submitted = fields
            .iter()
            .find(|(key, _)| key == "csrf")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        if !same_secret(submitted, &session.csrf) {
            return Err(csrf_refused(&session.admin));
        }
        Ok(AdminForm { session, fields })
    }
}

/// The 403 for a form without the right CSRF token.
pub fn csrf_refused(who: &str) -> Response {
    tracing::warn!(
        admin = who,
        "admin form refused: missing or wrong CSRF token"
    );
    super::pages::error_page(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from these pages. Go back, reload the page and try again.",
    )
}

/// Constant-time comparison of two secrets (length is not secret).
pub fn same_secret(submitted: &str, expected: &str) -> bool {
    !submitted.is_empty()
        && submitted.len() == expected.len()
        && bool::from(submitted.as_bytes().ct_eq(expected.as_bytes()))
}

/// The client's address: the peer the listener saw (`unknown` without one, e.g.
/// in-process), or, when that peer is one of `server.trusted_proxies`, the nearest address
/// in `X-Forwarded-For` that is not a trusted proxy itself.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let trusted = state.config.server.trusted_proxy_nets().unwrap_or_default();
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        Ok(ClientAddr(match peer {
            Some(peer) => client_address(peer, &forwarded, &trusted).to_string(),
            None => "unknown".into(),
        }))
    }
}

/// Walks `X-Forwarded-For` from the nearest hop while the hop it came through is trusted.
fn client_address(
    peer: std::net::IpAddr,
    forwarded: &[&str],
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) => client = ip,
            // A hop a trusted proxy would not write: stop at the proxy.
            Err(_) => break,
        }
    }
    client
}

/// Counts sign-in attempts per client address and per name.
pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> LoginLimiter {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        LoginLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Takes one attempt for the address and for the name from that address; false when
    /// either has none left. A name is never locked out everywhere: guesses from one
    /// address do not keep its admin out from another.
    pub fn allow(&self, addr: &str, name: &str) -> bool {
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        let by_addr = self.limiter.check_key(&format!("addr:{addr}")).is_ok();
        let by_name = self
            .limiter
            .check_key(&format!("name:{}@{addr}", name.to_lowercase()))
            .is_ok();
        by_addr && by_name
    }
}

/// Shared between the sign-in handlers (an axum extension of the admin router).
pub type SharedLimiter = Arc<LoginLimiter>;

/// An argon2id PHC string for a password (what `admin.users[].password_hash` holds).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` is the configured password of `name`. Runs argon2 off the async
/// threads; an unknown name costs the same as a known one.
pub async fn check_password(state: &AppState, name: &str, password: &str) -> bool {
    let configured = state
        .config
        .admin
        .users
        .iter()
        .find(|user| user.name == name)
        .map(|user| user.password_hash.expose().to_string());
    let known = configured.is_some();
    let hash = configured.unwrap_or_else(|| DUMMY_HASH.to_string());
    let password = password.to_string();
    let verified = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    known && verified
}

/// The hash of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0FwV3o+X3sWf8R3h0kC9E0bU6XiVvN0yYq8dZ5m9Cho";

/// The digest a session of `admin` is bound to: its configured entry (name and password
/// hash). None when no such admin is configured.
fn entry_digest(state: &AppState, admin: &str) -> Option<String> {
    state
        .config
        .admin
        .users
        .iter()
        .find(|user| user.name == admin)
        .map(|user| sha256_hex(&format!("{}\n{}", user.name, user.password_hash.expose())))
}

/// Starts a session for `admin`; returns the `Set-Cookie` value. A session for a name with
/// no configured entry is bound to nothing, so it never opens a page.
pub async fn start_session(state: &AppState, admin: &str) -> Result<HeaderValue, sqlx::Error> {
    let token = random_token();
    let csrf = random_token();
    let now = state.db.now_ms();
    let ttl = state.config.admin.session_ttl;
    let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let entry = entry_digest(state, admin).unwrap_or_default();
    store::create_session(
        &state.db,
        &sha256_hex(&token),
        admin,
        &entry,
        &csrf,
        now,
        expires,
    )
    .await?;
    Ok(cookie_header(
        state,
        SESSION_COOKIE,
        &token,
        "/admin",
        ttl.as_secs(),
    ))
}

/// Creates a login link for `admin`; returns its URL.
pub async fn create_login_link(state: &AppState, admin: &str) -> Result<String, sqlx::Error> {
    let token = random_token();
    let now = state.db.now_ms();
    let ttl = state.config.admin.login_link_ttl;
    let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    store::create_login_link(&state.db, &sha256_hex(&token), admin, now, expires).await?;
    Ok(format!(
        "{}/admin/login/{token}",
        state.config.public_url().trim_end_matches('/')
    ))
}

/// A `Set-Cookie` value with the flags every admin cookie carries.
pub fn cookie_header(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if state.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of a cookie in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("", ""));
        assert!(!same_secret("ab", "abc"));
    }

    #[test]
    fn the_limiter_counts_per_address_and_per_name_from_that_address() {
        let limiter = LoginLimiter::new(2);
        assert!(limiter.allow("1.1.1.1", "ana"));
        assert!(limiter.allow("1.1.1.1", "ana"));
        assert!(
            !limiter.allow("1.1.1.1", "ana"),
            "used up from this address"
        );
        assert!(!limiter.allow("1.1.1.1", "bob"), "the address is used up");
        assert!(
            limiter.allow("2.2.2.2", "ana"),
            "not locked out from elsewhere"
        );
    }

    #[test]
    fn forwarded_for_counts_only_through_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Straight from the internet: the header is the client's own claim, ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // Through the proxy: the address it saw.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // A client's forged hop before the real one is not believed.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["1.2.3.4", "198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // Two trusted proxies in a row.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["198.51.100.7", "10.1.1.1"], &trusted),
            ip("198.51.100.7")
        );
        // Garbage from a trusted proxy: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["not-an-ip"], &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &["1.2.3.4"], &[]),
            ip("10.0.0.5")
        );
    }
}
