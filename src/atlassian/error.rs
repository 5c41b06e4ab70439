//! The one error type of the Atlassian client, how upstream error bodies become messages, and
//! the one function that decides when a failed membership change is really a success.

use std::time::Duration;

/// What went wrong calling Atlassian. Retry decisions are made on this type in `http.rs`;
/// callers decide what to do with what is left after retries.
#[derive(Debug, thiserror::Error)]
pub enum AtlassianError {
    /// 429 (or 503 with `Retry-After`) and the wait was too long or attempts ran out.
    #[error("rate limited by Atlassian{}", retry_after.map(|d| format!("; retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long Atlassian asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// 401: the API key or token is wrong, expired or revoked. Never retried.
    #[error("Atlassian refused the credentials (401): {message}")]
    Unauthorized {
        /// The upstream explanation.
        message: String,
    },
    /// 403: the credentials are valid but lack a permission (site admin, unscoped key, ...).
    #[error("Atlassian denied the call (403): {message}")]
    Forbidden {
        /// The upstream explanation.
        message: String,
    },
    /// 404: the user, group, request or organization does not exist (or is hidden).
    #[error("not found at Atlassian (404): {message}")]
    NotFound {
        /// The upstream explanation.
        message: String,
        /// The admin API's error code (`errors[].code`, e.g. `ADMIN-UAM-404-1`), when the
        /// body carries one. A 404 without it may be a route that does not exist, which
        /// proves nothing about the user or group it named.
        code: Option<String>,
    },
    /// 409: the request conflicts with the current state (or, on `users/search`, ran >10 s).
    #[error("conflict at Atlassian (409): {message}")]
    Conflict {
        /// The upstream explanation.
        message: String,
    },
    /// A failure that may pass: 5xx, timeout, dropped connection — after retries, or for a
    /// call that could not be retried blindly.
    #[error("Atlassian is unavailable{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Transient {
        /// The HTTP status, absent for timeouts and connection failures.
        status: Option<u16>,
        /// What happened.
        message: String,
    },
    /// Any other 4xx: the request is wrong and sending it again will not help.
    #[error("Atlassian rejected the call ({status}): {message}")]
    Permanent {
        /// The HTTP status.
        status: u16,
        /// The upstream explanation (Jira `errorMessages`/`errors`, JSM `errorMessage`, admin
        /// `errors[].title/detail`, Confluence `message`).
        message: String,
    },
    /// A 2xx response whose body is not what the API documents.
    #[error("malformed response from {endpoint}: {message}")]
    Decode {
        /// `METHOD /path/template` of the call.
        endpoint: String,
        /// Where and why decoding failed.
        message: String,
    },
    /// The client cannot be built or the call cannot be made from what it was given
    /// (missing base URL or credentials, unknown transition name, ...).
    #[error("{0}")]
    Invalid(String),
}

impl AtlassianError {
    /// Maps a non-2xx status and its body to an error (429 and 5xx included, for the retry
    /// layer to look at).
    pub(crate) fn from_status(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let message = upstream_message(body);
        match status {
            401 => Self::Unauthorized { message },
            403 => Self::Forbidden { message },
            404 => Self::NotFound {
                message,
                code: admin_error_code(body),
            },
            409 => Self::Conflict { message },
            429 => Self::RateLimited { retry_after },
            500..=599 => Self::Transient {
                status: Some(status),
                message,
            },
            _ => Self::Permanent { status, message },
        }
    }

    /// The HTTP status behind this error, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Conflict { .. } => Some(409),
            Self::Transient { status, .. } => *status,
            Self::Permanent { status, .. } => Some(*status),
            Self::Decode { .. } | Self::Invalid(_) => None,
        }
    }

    /// The upstream explanation, when Atlassian gave one.
    pub fn upstream_message(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { message }
            | Self::Forbidden { message }
            | Self::NotFound { message, .. }
            | Self::Conflict { message }
            | Self::Transient { message, .. }
            | Self::Permanent { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether trying again later (not within this call) may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }
}

/// The first `errors[].code` of an admin API error body (`{"errors":[{"code":"ADMIN-UAM-404-1",...}]}`).
fn admin_error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get("errors")?
        .as_array()?
        .iter()
        .find_map(|error| error.get("code")?.as_str().map(str::to_owned))
}

impl AtlassianError {
    /// Whether this is the admin API's documented "unknown resource" answer
    /// (`ADMIN-UAM-404-1`) for the account or group the call named: only that proves the
    /// thing is gone. A plain 404 (a route that does not exist, a proxy) never does.
    pub fn is_documented_not_found(&self) -> bool {
        matches!(self, Self::NotFound { code: Some(code), .. } if code == ADMIN_NOT_FOUND)
    }
}

/// The admin API's error code for an unknown user, group or other resource.
pub const ADMIN_NOT_FOUND: &str = "ADMIN-UAM-404-1";

/// Pulls a readable message out of an Atlassian error body, whichever API wrote it.
pub(crate) fn upstream_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return if text.is_empty() {
            "no explanation in the response body".to_owned()
        } else {
            text.chars().take(300).collect()
        };
    };
    let mut parts: Vec<String> = Vec::new();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    // Jira ErrorCollection: {"errorMessages": [..], "errors": {field: message}}
    if let Some(messages) = value.get("errorMessages").and_then(|v| v.as_array()) {
        parts.extend(messages.iter().filter_map(text));
    }
    match value.get("errors") {
        Some(serde_json::Value::Object(fields)) => {
            parts.extend(
                fields
                    .iter()
                    .filter_map(|(field, message)| Some(format!("{field}: {}", text(message)?))),
            );
        }
        // Admin API: {"errors": [{"title": .., "detail": ..}]}
        Some(serde_json::Value::Array(errors)) => {
            for error in errors {
                let title = error.get("title").and_then(|v| v.as_str());
                let detail = error.get("detail").and_then(|v| v.as_str());
                match (title, detail) {
                    (Some(t), Some(d)) => parts.push(format!("{t}: {d}")),
                    (Some(one), None) | (None, Some(one)) => parts.push(one.to_owned()),
                    (None, None) => {}
                }
            }
        }
        _ => {}
    }
    // JSM ErrorResponse {"errorMessage"}, Confluence/ProxyError/NoPermsError {"message"}.
    for key in ["errorMessage", "message"] {
        if let Some(message) = value.get(key).and_then(|v| v.as_str()) {
            parts.push(message.to_owned());
        }
    }
    if parts.is_empty() {
        value.to_string().chars().take(300).collect()
    } else {
        parts.join("; ")
    }
}

/// A change of group membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add the user to the group.
    Add,
    /// Remove the user from the group.
    Remove,
}

/// What a membership change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipOutcome {
    /// The membership changed now.
    Changed,
    /// The membership was already as asked (already a member / not a member): success.
    AlreadyInPlace,
}

/// The ONE place that decides whether a failed add/remove is in fact a success because the
/// membership is already as asked. Jira answers a re-add with
/// `400 {"errorMessages":["Cannot add user. User is already a member of 'x'"]}`; the other
/// answers (Jira/Confluence "not a member", Confluence "already a member") are matched by the
/// same phrases, whatever status (400, 404, 409) carries them. A 404 about an unknown group
/// or user does not contain these phrases and stays an error.
pub fn classify_membership(
    change: MembershipChange,
    result: Result<(), AtlassianError>,
) -> Result<MembershipOutcome, AtlassianError> {
    let error = match result {
        Ok(()) => return Ok(MembershipOutcome::Changed),
        Err(error) => error,
    };
    let phrases: &[&str] = match change {
        MembershipChange::Add => &[
            "already a member",
            "already member",
            "is already in group",
            "already in the group",
            "already exists in group",
        ],
        MembershipChange::Remove => &[
            "not a member",
            "not member of",
            "is not in group",
            "not in the group",
            "isn't a member",
            "does not belong to",
        ],
    };
    let settles = matches!(error.status(), Some(400 | 404 | 409))
        && error.upstream_message().is_some_and(|message| {
            let message = message.to_ascii_lowercase();
            phrases.iter().any(|phrase| message.contains(phrase))
        });
    if settles {
        Ok(MembershipOutcome::AlreadyInPlace)
    } else {
        Err(error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failed(status: u16, body: &str) -> Result<(), AtlassianError> {
        Err(AtlassianError::from_status(status, body.as_bytes(), None))
    }

    #[test]
    fn readding_a_member_is_success() {
        // Jira Cloud's answer to POST /rest/api/3/group/user for an existing member.
        let jira = failed(
            400,
            r#"{"errorMessages":["Cannot add user. User is already a member of 'jira-software-users'"],"errors":{}}"#,
        );
        assert_eq!(
            classify_membership(MembershipChange::Add, jira).unwrap(),
            MembershipOutcome::AlreadyInPlace
        );
        // Confluence's error shape: {"statusCode":..,"message":..}.
        let confluence = failed(
            400,
            r#"{"statusCode":400,"data":{"authorized":true,"valid":false,"errors":[]},"message":"com.atlassian.confluence.api.service.exceptions.BadRequestException: User is already a member of group confluence-users"}"#,
        );
        assert_eq!(
            classify_membership(MembershipChange::Add, confluence).unwrap(),
            MembershipOutcome::AlreadyInPlace
        );
    }

    #[test]
    fn removing_a_non_member_is_success() {
        let jira = failed(
            400,
            r#"{"errorMessages":["Cannot remove user. User is not a member of 'jira-software-users'"],"errors":{}}"#,
        );
        assert_eq!(
            classify_membership(MembershipChange::Remove, jira).unwrap(),
            MembershipOutcome::AlreadyInPlace
        );
        let confluence = failed(
            404,
            r#"{"statusCode":404,"message":"User 5b10ac8d82e05b22cc7d4ef5 is not a member of group confluence-users"}"#,
        );
        assert_eq!(
            classify_membership(MembershipChange::Remove, confluence).unwrap(),
            MembershipOutcome::AlreadyInPlace
        );
        assert_eq!(
            classify_membership(MembershipChange::Remove, Ok(())).unwrap(),
            MembershipOutcome::Changed
        );
    }

    #[test]
    fn real_failures_stay_failures() {
        let unknown_group = failed(
            404,
            r#"{"errorMessages":["Specified group does not exist."],"errors":{}}"#,
        );
        assert!(matches!(
            classify_membership(MembershipChange::Remove, unknown_group),
            Err(AtlassianError::NotFound { .. })
        ));
        // The phrase of the other direction does not settle anything.
        let wrong_direction = failed(
            400,
            r#"{"errorMessages":["Cannot add user. User is already a member of 'x'"]}"#,
        );
        assert!(classify_membership(MembershipChange::Remove, wrong_direction).is_err());
        // Only client-error statuses carry these answers.
        let server = failed(500, r#"{"errorMessages":["user is already a member"]}"#);
        assert!(classify_membership(MembershipChange::Add, server).is_err());
        let forbidden = failed(403, r#"{"errorMessages":["not a member of site-admins"]}"#);
        assert!(classify_membership(MembershipChange::Remove, forbidden).is_err());
    }

    #[test]
    fn messages_come_from_every_error_shape() {
        let jira = br#"{"errorMessages":["Group not found"],"errors":{"accountId":"is required"}}"#;
        assert_eq!(
            upstream_message(jira),
            "Group not found; accountId: is required"
        );
        let jsm = br#"{"errorMessage":"The comment must be public","i18nErrorMessage":{"i18nKey":"x","parameters":[]}}"#;
        assert_eq!(upstream_message(jsm), "The comment must be public");
        let admin = br#"{"errors":[{"id":"1","status":"400","code":"ADMIN-400-1","title":"Invalid page cursor","detail":"cursor is malformed"}]}"#;
        assert_eq!(
            upstream_message(admin),
            "Invalid page cursor: cursor is malformed"
        );
        assert_eq!(
            upstream_message(b"<html>Bad gateway</html>"),
            "<html>Bad gateway</html>"
        );
        assert_eq!(upstream_message(b""), "no explanation in the response body");
    }
}
