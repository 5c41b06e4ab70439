//! What an owner sees of the configuration (`/admin/config`, `GET /api/v1/config`): the
//! effective configuration with every secret redacted, and which keys and secrets are set.
//! Never a secret's value, nor its length.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Config;

/// A link-signing key by its id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkKey {
    pub id: String,
    /// Whether new links are signed with it (`links.signing_key`); the others only verify.
    pub active: bool,
}

/// Which keys and secrets are configured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyStatus {
    /// The link-signing keys (`links.keys`), by id.
    pub link_keys: Vec<LinkKey>,
    /// The organization admin API key (`atlassian.admin_api_key`) is set.
    pub admin_api_key: bool,
    /// The site API token (`atlassian.site_api_token`) is set.
    pub site_api_token: bool,
    /// The JSM channel's shared secret (`restore.jsm.secret`) is set.
    pub jsm_secret: bool,
    /// The Automation channel's shared secret (`restore.automation.secret`) is set.
    pub automation_secret: bool,
    /// How many webhook signing secrets (`restore.webhook.secrets`) are set.
    pub webhook_secrets: usize,
    /// The SMTP password (`mail.smtp.password`) is set.
    pub smtp_password: bool,
    /// The metrics token (`server.metrics_token`) is set.
    pub metrics_token: bool,
    /// How many API tokens (`[[admin.api_tokens]]`) and admins (`[[admin.users]]`) there are.
    pub api_tokens: usize,
    pub admin_users: usize,
}

/// The configuration as an owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    /// The effective configuration as TOML, secrets shown as `[redacted]`.
    pub effective: String,
    pub keys: KeyStatus,
}

impl KeyStatus {
    pub fn of(config: &Config) -> KeyStatus {
        let active = config.links.signing_key.as_deref();
        KeyStatus {
            link_keys: config
                .links
                .keys
                .keys()
                .map(|id| LinkKey {
                    id: id.clone(),
                    active: Some(id.as_str()) == active,
                })
                .collect(),
            admin_api_key: config.atlassian.admin_api_key.is_some(),
            site_api_token: config.atlassian.site_api_token.is_some(),
            jsm_secret: config.restore.jsm.secret.is_some(),
            automation_secret: config.restore.automation.secret.is_some(),
            webhook_secrets: config.restore.webhook.secrets.len(),
            smtp_password: config.mail.smtp.password.is_some(),
            metrics_token: config.server.metrics_token.is_some(),
            api_tokens: config.admin.api_tokens.len(),
            admin_users: config.admin.users.len(),
        }
    }

    /// One `name: set|not set` line per key, for the page.
    pub fn lines(&self) -> Vec<(String, String)> {
        let set = |yes: bool| if yes { "set" } else { "not set" }.to_string();
        let mut lines = Vec::new();
        if self.link_keys.is_empty() {
            lines.push(("link signing keys".to_string(), "none".to_string()));
        }
        for key in &self.link_keys {
            lines.push((
                format!("link signing key {}", key.id),
                if key.active {
                    "set, active: signs new links"
                } else {
                    "set, verifies older links"
                }
                .to_string(),
            ));
        }
        lines.extend([
            ("admin API key".to_string(), set(self.admin_api_key)),
            ("site API token".to_string(), set(self.site_api_token)),
            ("JSM channel secret".to_string(), set(self.jsm_secret)),
            (
                "Automation channel secret".to_string(),
                set(self.automation_secret),
            ),
            (
                "webhook signing secrets".to_string(),
                self.webhook_secrets.to_string(),
            ),
            ("SMTP password".to_string(), set(self.smtp_password)),
            ("metrics token".to_string(), set(self.metrics_token)),
            ("API tokens".to_string(), self.api_tokens.to_string()),
            ("admins".to_string(), self.admin_users.to_string()),
        ]);
        lines
    }
}

impl ConfigView {
    pub fn of(config: &Config) -> ConfigView {
        ConfigView {
            effective: config.to_redacted_toml(),
            keys: KeyStatus::of(config),
        }
    }
}
