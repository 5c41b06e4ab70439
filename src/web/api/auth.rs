//! Bearer tokens for `/api/v1`. The configuration holds SHA-256 digests only; a presented
//! token is hashed and compared with every configured digest in constant time.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::web::config::{Action, AdminConfig, digest_from_hex};
use crate::web::error::ApiError;

/// The token a request was made with; audit entries name it `api:<name>`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_name: String,
}

/// Middleware: lets the request through with a [`Caller`] extension, or answers 401.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer);
    let Some(presented) = presented else {
        return unauthorized(
            "missing bearer token: send Authorization: Bearer <token>",
            "Bearer realm=\"reseat\"",
        );
    };
    match token_name(&state.config.admin, presented) {
        Some(name) => {
            let Some(grant) = state.config.admin.token_grant(&name) else {
                return unauthorized(
                    "the bearer token is not valid",
                    "Bearer realm=\"reseat\", error=\"invalid_token\"",
                );
            };
            let path = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| request.uri().path().to_owned());
            let action = Action::of_route(request.method(), &path);
            if !grant.allows(action) {
                tracing::warn!(actor = %grant.actor, role = grant.role.as_str(), action = action.as_str(), %path, "API request refused: outside the token's role");
                grant.audit_refusal(&state.db, action).await;
                return ApiError::Forbidden(format!(
                    "the token {:?} has the role {} and may not {} ({} or above needed)",
                    name,
                    grant.role.as_str(),
                    action.as_str(),
                    action.least_role().as_str()
                ))
                .into_response();
            }
            request.extensions_mut().insert(grant);
            request.extensions_mut().insert(Caller { token_name: name });
            next.run(request).await
        }
        None => unauthorized(
            "the bearer token is not valid",
            "Bearer realm=\"reseat\", error=\"invalid_token\"",
        ),
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The name of the configured token matching `presented`. Every digest is compared, so the
/// time taken does not depend on which one (if any) matches.
pub fn token_name(config: &AdminConfig, presented: &str) -> Option<String> {
    let digest = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for token in &config.api_tokens {
        let Some(expected) = digest_from_hex(&token.token_sha256) else {
            continue;
        };
        if bool::from(expected.ct_eq(digest.as_slice())) {
            found = Some(token.name.clone());
        }
    }
    found
}

fn unauthorized(message: &str, challenge: &'static str) -> Response {
    let mut response = ApiError::Unauthorized(message.into()).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::config::{ApiToken, hash_token};

    #[test]
    fn finds_the_token_by_its_digest() {
        let config = AdminConfig {
            api_tokens: vec![
                ApiToken {
                    name: "ci".into(),
                    token_sha256: hash_token("one"),
                    role: None,
                    sites: Vec::new(),
                    products: Vec::new(),
                },
                ApiToken {
                    name: "ops".into(),
                    token_sha256: hash_token("two").to_uppercase(),
                    role: None,
                    sites: Vec::new(),
                    products: Vec::new(),
                },
            ],
            users: Vec::new(),
            ..AdminConfig::default()
        };
        assert_eq!(token_name(&config, "one").as_deref(), Some("ci"));
        assert_eq!(token_name(&config, "two").as_deref(), Some("ops"));
        assert_eq!(token_name(&config, "three"), None);
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
