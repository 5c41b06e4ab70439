//! The Slack Web API client: `users.info`, `chat.postMessage`, `chat.update`, `views.open`
//! with the bot token, and posting to a `response_url`. Slack answers HTTP 200 with
//! `{"ok": false, "error": …}` on failure; 429 and 5xx are temporary.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Secret;
use crate::restore::config::SlackChannel;

/// Why a Slack call failed.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// 429, 5xx, a timeout or a dropped connection: try again later.
    #[error("Slack is unavailable: {0}")]
    Transient(String),
    /// `ok: false` with Slack's error code (`channel_not_found`, `invalid_auth`, …), or a
    /// URL reseat will not post to.
    #[error("Slack refused the call: {0}")]
    Refused(String),
}

impl SlackError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, SlackError::Transient(_))
    }
}

impl From<SlackError> for crate::atlassian::AtlassianError {
    /// For the reply steps, which share the Atlassian retry decision: temporary or not.
    fn from(error: SlackError) -> Self {
        match error {
            SlackError::Transient(message) => crate::atlassian::AtlassianError::Transient {
                status: None,
                message: format!("slack: {message}"),
            },
            SlackError::Refused(message) => {
                crate::atlassian::AtlassianError::Invalid(format!("slack: {message}"))
            }
        }
    }
}

/// A Slack user as `users.info` reports them.
#[derive(Debug, Clone, Deserialize)]
pub struct SlackUser {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub real_name: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub profile: Profile,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub real_name: Option<String>,
}

impl SlackUser {
    /// The name people know them by.
    pub fn display_name(&self) -> &str {
        self.real_name
            .as_deref()
            .or(self.profile.real_name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.name)
    }
}

/// One client for the Slack Web API.
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl SlackApi {
    /// The client, when the channel has a bot token.
    pub fn from_config(config: &SlackChannel) -> Option<SlackApi> {
        let token = config.bot_token.clone()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        Some(SlackApi {
            http,
            base: config
                .api_base_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            token,
        })
    }

    /// Whether reseat posts to this `response_url`: Slack's own hooks over HTTPS, or the
    /// host of the configured Web API (the fake in tests and the demo).
    pub fn accepts_response_url(&self, url: &str) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        if parsed.scheme() == "https" && parsed.host_str() == Some("hooks.slack.com") {
            return true;
        }
        url::Url::parse(&self.base).is_ok_and(|base| base.origin() == parsed.origin())
    }

    #[tracing::instrument(skip_all, fields(method))]
    async fn call(&self, method: &str, body: Value) -> Result<Value, SlackError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| SlackError::Transient(format!("{method}: {}", e.without_url())))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(SlackError::Transient(format!("{method}: HTTP {status}")));
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| SlackError::Transient(format!("{method}: {}", e.without_url())))?;
        if value.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(value);
        }
        let error = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error");
        if matches!(
            error,
            "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable"
        ) {
            return Err(SlackError::Transient(format!("{method}: {error}")));
        }
        Err(SlackError::Refused(format!("{method}: {error}")))
    }

    /// `users.info`: who a Slack user is, with their email (`users:read.email`). `None`
    /// when Slack knows no such user.
    pub async fn user(&self, user: &str) -> Result<Option<SlackUser>, SlackError> {
        match self.call("users.info", json!({ "user": user })).await {
            Ok(value) => {
                let user = value
                    .get("user")
                    .cloned()
                    .and_then(|u| serde_json::from_value(u).ok())
                    .ok_or_else(|| {
                        SlackError::Refused("users.info: no user in the answer".into())
                    })?;
                Ok(Some(user))
            }
            Err(SlackError::Refused(error)) if error.ends_with("user_not_found") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `chat.postMessage`; the message's `(channel, ts)`.
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<Value>,
    ) -> Result<(String, String), SlackError> {
        let mut body = json!({ "channel": channel, "text": text });
        if let Some(blocks) = blocks {
            body["blocks"] = blocks;
        }
        let value = self.call("chat.postMessage", body).await?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        match (text("channel"), text("ts")) {
            (Some(channel), Some(ts)) => Ok((channel, ts)),
            _ => Err(SlackError::Refused(
                "chat.postMessage: no ts in the answer".into(),
            )),
        }
    }

    /// `chat.update` of a message the bot posted.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Value,
    ) -> Result<(), SlackError> {
        self.call(
            "chat.update",
            json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks }),
        )
        .await
        .map(|_| ())
    }

    /// `views.open`: a modal, within 3 seconds of the click that gave `trigger_id`.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), SlackError> {
        self.call(
            "views.open",
            json!({ "trigger_id": trigger_id, "view": view }),
        )
        .await
        .map(|_| ())
    }

    /// Posts a message to a `response_url` (no token: the URL is the credential).
    pub async fn respond(&self, response_url: &str, body: Value) -> Result<(), SlackError> {
        if !self.accepts_response_url(response_url) {
            return Err(SlackError::Refused(
                "the response_url is not a Slack hooks URL".into(),
            ));
        }
        let response = self
            .http
            .post(response_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SlackError::Transient(format!("response_url: {}", e.without_url())))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(SlackError::Transient(format!(
                "response_url: HTTP {status}"
            )));
        }
        if !status.is_success() {
            // Expired (older than 30 minutes) or used 5 times: Slack says 404.
            return Err(SlackError::Refused(format!("response_url: HTTP {status}")));
        }
        Ok(())
    }
}
