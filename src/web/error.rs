//! The error every JSON endpoint answers with: a status and
//! `{"error": {"code": "...", "message": "..."}}`. Internal causes are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong secret, signature or token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the credential's role or scope does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or a channel that is not enabled).
    #[error("{0}")]
    NotFound(String),
    /// 409: the thing is not in a state that allows this (a request already decided).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than `server.body_limit_bytes`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422: well-formed but not acceptable (unknown product, …).
    #[error("{0}")]
    Unprocessable(String),
    /// 502: Atlassian failed or could not be reached; the cause goes to the log only.
    #[error("the Atlassian API did not answer as expected")]
    BadGateway(#[source] anyhow::Error),
    /// 500: a database or internal failure; the cause goes to the log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::BadGateway(_) => "bad_gateway",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            ApiError::BadGateway(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "upstream failed")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        };
        (self.status(), Json(body)).into_response()
    }
}

/// The body of every JSON error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `unauthorized`, `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `unprocessable`, `bad_gateway`,
    /// `internal`.
    #[schema(example = "not_found")]
    pub code: String,
    /// For a person; never contains internal causes.
    pub message: String,
}

impl From<crate::web::config::Refused> for ApiError {
    fn from(refused: crate::web::config::Refused) -> Self {
        ApiError::Forbidden(refused.to_string())
    }
}
