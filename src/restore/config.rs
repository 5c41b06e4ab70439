//! The `[restore]` section: channels, their secrets, the rules and the guards.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::Rule;
use crate::atlassian::ProductKey;
use crate::config::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreConfig {
    /// Groups (names or ids) whose members are never restored: leavers, offboarding.
    pub offboarding_groups: Vec<String>,
    /// How long "keep my access" defers a user's removal from a product.
    #[serde(with = "crate::config::duration")]
    pub keep_period: Duration,
    /// How long a restore waits for added groups to show when read back (Atlassian's admin
    /// changes are eventually consistent). The waiting spends none of the job's attempts;
    /// the restore fails only after this window.
    #[serde(with = "crate::config::duration")]
    pub verify_window: Duration,
    /// The JSM portal channel (`POST /hooks/jsm`).
    pub jsm: JsmChannel,
    /// The Jira Automation channel (`POST /hooks/automation`).
    pub automation: AutomationChannel,
    /// The Standard Webhooks channel (`POST /hooks/webhook`).
    pub webhook: WebhookChannel,
    /// Slack: the `/reseat restore …` slash command and approvals in a channel
    /// (`POST /hooks/slack/commands`, `POST /hooks/slack/interactions`).
    pub slack: SlackChannel,
    /// Microsoft Teams: the outgoing webhook (`POST /hooks/teams`) and approval cards.
    pub teams: super::teams::TeamsChannel,
    /// Restore on sign-in (`/hooks/okta`, `/hooks/signin`); off by default.
    pub signin: super::signin::SigninChannel,
    /// Ordered rules, first match wins; no match means `manual`.
    pub rules: Vec<Rule>,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        RestoreConfig {
            offboarding_groups: Vec::new(),
            keep_period: Duration::from_secs(90 * 86_400),
            verify_window: Duration::from_secs(60),
            jsm: JsmChannel::default(),
            automation: AutomationChannel::default(),
            webhook: WebhookChannel::default(),
            slack: SlackChannel::default(),
            teams: super::teams::TeamsChannel::default(),
            signin: super::signin::SigninChannel::default(),
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsmChannel {
    /// The shared secret the Automation rule sends; the channel is off without it.
    pub secret: Option<Secret>,
    /// The header carrying the secret.
    pub header: String,
    /// Request type ids that mean "restore my access"; requests of other types are ignored.
    /// Empty: every request is considered.
    pub request_type_ids: Vec<String>,
    /// A request field (id, e.g. `customfield_10050`) naming the product asked for.
    pub product_field: Option<String>,
    /// Maps values of `product_field` to products, e.g. `"Jira" = "jira-software"`; values
    /// that parse as product keys need no entry.
    pub product_values: BTreeMap<String, ProductKey>,
    /// The product when the request does not name one.
    pub default_product: Option<ProductKey>,
    /// The transition (by name) once access is restored.
    pub resolve_transition: String,
    /// The transition (by name) when the request is declined.
    pub decline_transition: String,
    /// The transition (by name) while an admin reviews the request; none when empty.
    pub pending_transition: Option<String>,
    /// A request field (id, e.g. `customfield_10051`) holding the requester's justification.
    pub justification_field: Option<String>,
}

impl Default for JsmChannel {
    fn default() -> Self {
        JsmChannel {
            secret: None,
            header: "X-Reseat-Token".into(),
            request_type_ids: Vec::new(),
            product_field: None,
            product_values: BTreeMap::new(),
            default_product: Some(ProductKey::JIRA_SOFTWARE),
            resolve_transition: "Resolve this issue".into(),
            decline_transition: "Decline".into(),
            pending_transition: None,
            justification_field: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutomationChannel {
    /// The shared secret the Automation rule sends; the channel is off without it.
    pub secret: Option<Secret>,
    /// The header carrying the secret.
    pub header: String,
    /// Identical calls within this window are one request.
    #[serde(with = "crate::config::duration")]
    pub dedupe_window: Duration,
}

impl Default for AutomationChannel {
    fn default() -> Self {
        AutomationChannel {
            secret: None,
            header: "X-Reseat-Token".into(),
            dedupe_window: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookChannel {
    /// Signing secrets (`whsec_<base64>`); the first signs nothing here but all verify, so
    /// a sender can rotate. The channel is off without any.
    pub secrets: Vec<Secret>,
    /// How far `webhook-timestamp` may be from now, either way.
    #[serde(with = "crate::config::duration")]
    pub tolerance: Duration,
}

impl Default for WebhookChannel {
    fn default() -> Self {
        WebhookChannel {
            secrets: Vec::new(),
            tolerance: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackChannel {
    /// The Slack app's signing secret (Basic Information > App Credentials); the channel is
    /// off without it.
    pub signing_secret: Option<Secret>,
    /// The bot token (`xoxb-…`, OAuth & Permissions) for `users.info`, `chat.postMessage`,
    /// `chat.update` and `views.open`.
    pub bot_token: Option<Secret>,
    /// Where the Slack Web API is (tests and the demo point it at the fake).
    pub api_base_url: url::Url,
    /// How far `X-Slack-Request-Timestamp` may be from now, either way.
    #[serde(with = "crate::config::duration")]
    pub tolerance: Duration,
    /// Email domains whose Slack users may ask (the email Slack reports for the user,
    /// `example.com` also matches `eu.example.com`). Required when the channel is on.
    pub allowed_domains: Vec<String>,
    /// The channel id (`C…`) where requests the rules send to an admin are posted with
    /// Approve and Deny buttons; none: approvals stay on `/admin/requests`.
    pub approvers_channel: Option<String>,
}

impl Default for SlackChannel {
    fn default() -> Self {
        SlackChannel {
            signing_secret: None,
            bot_token: None,
            api_base_url: url::Url::parse("https://slack.com/api").expect("a valid URL"),
            tolerance: Duration::from_secs(300),
            allowed_domains: Vec::new(),
            approvers_channel: None,
        }
    }
}

impl SlackChannel {
    /// Whether `email`'s domain is one of [`SlackChannel::allowed_domains`].
    pub fn allows_email(&self, email: &str) -> bool {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        let domain = domain.to_ascii_lowercase();
        self.allowed_domains.iter().any(|wanted| {
            let wanted = wanted.trim_start_matches('@').to_ascii_lowercase();
            domain == wanted || domain.ends_with(&format!(".{wanted}"))
        })
    }
}

impl RestoreConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.slack.signing_secret.is_some() {
            if self.slack.bot_token.is_none() {
                return Err(ConfigError::key(
                    "restore.slack.bot_token",
                    "the Slack channel needs the bot token (xoxb-…) to read who asks; set it or remove restore.slack.signing_secret",
                ));
            }
            if self.slack.allowed_domains.is_empty() {
                return Err(ConfigError::key(
                    "restore.slack.allowed_domains",
                    "the Slack channel accepts requests only from listed email domains; list at least one",
                ));
            }
        }
        self.teams.validate()?;
        self.signin.validate()?;
        for (index, secret) in self.webhook.secrets.iter().enumerate() {
            super::signature::decode_secret(secret.expose()).map_err(|problem| {
                ConfigError::key(format!("restore.webhook.secrets[{index}]"), problem)
            })?;
        }
        for (name, header) in [
            ("restore.jsm.header", &self.jsm.header),
            ("restore.automation.header", &self.automation.header),
        ] {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(ConfigError::key(
                    name,
                    format!("{header:?} is not a valid header name"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.name.trim().is_empty() {
                return Err(ConfigError::key(
                    format!("restore.rules[{index}].name"),
                    "must not be empty",
                ));
            }
            for (n, group) in rule.grant_groups.iter().enumerate() {
                if !group.is_cloud_shaped() {
                    return Err(ConfigError::key(
                        format!("restore.rules[{index}].grant_groups[{n}]"),
                        format!(
                            "{} (got {:?})",
                            crate::atlassian::GROUP_ID_HINT,
                            group.as_str()
                        ),
                    ));
                }
            }
            if !seen.insert(rule.name.as_str()) {
                return Err(ConfigError::key(
                    format!("restore.rules[{index}].name"),
                    format!(
                        "{:?} is used by an earlier rule; names must be unique",
                        rule.name
                    ),
                ));
            }
        }
        Ok(())
    }
}
