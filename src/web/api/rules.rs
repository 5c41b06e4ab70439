//! The rule tester: what the restore rules would decide for an account now.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::ApiQuery;
use super::views::Explanation;
use crate::app::AppState;
use crate::atlassian::{AccountId, AtlassianError, ProductKey};
use crate::restore::rules::Channel;
use crate::web::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// The Atlassian account id.
    #[param(pattern = "^[A-Za-z0-9_:-]{1,128}$")]
    account: String,
    /// The product key: `jira-software`, `jira-servicedesk`, `confluence`, ….
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    product: String,
    /// The channel the request would come through.
    #[param(inline)]
    channel: ExplainChannel,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExplainChannel {
    Jsm,
    Automation,
    Webhook,
    Link,
    Slack,
    Teams,
    Signin,
}

impl From<ExplainChannel> for Channel {
    fn from(channel: ExplainChannel) -> Channel {
        match channel {
            ExplainChannel::Jsm => Channel::Jsm,
            ExplainChannel::Automation => Channel::Automation,
            ExplainChannel::Webhook => Channel::Webhook,
            ExplainChannel::Link => Channel::Link,
            ExplainChannel::Slack => Channel::Slack,
            ExplainChannel::Teams => Channel::Teams,
            ExplainChannel::Signin => Channel::Signin,
        }
    }
}

/// Evaluates the guards and rules against the account as Atlassian reports it now; nothing
/// changes.
#[utoipa::path(
    get,
    path = "/api/v1/rules/explain",
    tag = "rules",
    params(ExplainQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The decision and the trace of every rule", body = Explanation),
        (status = 400, description = "A parameter is missing or malformed", body = ErrorBody),
        (status = 404, description = "Atlassian knows no such account", body = ErrorBody),
        (status = 422, description = "The Jira site API is not configured", body = ErrorBody),
        (status = 502, description = "Atlassian failed or could not be reached", body = ErrorBody),
    )
)]
pub async fn explain(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ExplainQuery>,
) -> Result<Json<Explanation>, ApiError> {
    let account =
        AccountId::parse(query.account).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let product = ProductKey::parse(&query.product)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let verdict =
        crate::restore::worker::explain(&state, &account, &product, query.channel.into(), false)
            .await
            .map_err(|error| match error {
                AtlassianError::NotFound { .. } => {
                    ApiError::NotFound(format!("Atlassian knows no account {:?}", account.as_str()))
                }
                AtlassianError::Invalid(message) if message.contains("not configured") => {
                    ApiError::Unprocessable(message)
                }
                other => ApiError::BadGateway(other.into()),
            })?;
    Ok(Json(verdict.into()))
}
