//! The `[admin]` section: who may use the admin JSON API (bearer tokens, stored as SHA-256
//! digests) and the admin pages (users with password hashes).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, duration};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer tokens for `/api/v1`; the API answers 401 to everything while this is empty.
    pub api_tokens: Vec<ApiToken>,
    /// People who may sign in to the admin pages.
    pub users: Vec<AdminUser>,
    /// How long an admin page session lasts after signing in.
    #[serde(with = "duration")]
    pub session_ttl: Duration,
    /// How long a link from `reseat admin login-link` works (it works once).
    #[serde(with = "duration")]
    pub login_link_ttl: Duration,
    /// Sign-in attempts allowed per minute, counted per client address and per user name;
    /// further attempts are refused with 429 until the minute has passed.
    pub login_attempts_per_minute: u32,
    /// The largest export file the import page takes (`/admin/import`), in bytes. The file is
    /// streamed to disk, never held in memory; `server.body_limit_bytes` does not apply to it.
    pub import_max_bytes: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            api_tokens: Vec::new(),
            users: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            login_link_ttl: Duration::from_secs(15 * 60),
            login_attempts_per_minute: 5,
            import_max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// One API token. Only its SHA-256 digest is configured, so the file holds nothing that
/// opens the API; `reseat admin hash-token` (or `printf %s TOKEN | sha256sum`) makes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who uses the token (`ci`, `terraform`); audit entries name it as `api:<name>`.
    pub name: String,
    /// The lowercase hex SHA-256 of the token (64 characters).
    pub token_sha256: String,
    /// What the token may do (`viewer`, `approver`, `operator`, `owner`); without it,
    /// `owner`, as before roles existed.
    #[serde(default)]
    pub role: Option<Role>,
    /// Sites the token is limited to (by site name); empty: every site.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Products the token is limited to (any spelling of the product table); empty: all.
    #[serde(default)]
    pub products: Vec<String>,
}

/// One admin who signs in to the pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// The login name; audit entries name it as `admin:<name>`.
    pub name: String,
    /// An argon2 PHC string (`$argon2id$...`). Held like a secret: `config check` and logs
    /// show `[redacted]`, so the hash cannot be taken away and attacked offline.
    pub password_hash: crate::config::Secret,
    /// What the admin may do; without it, `owner`, as before roles existed.
    #[serde(default)]
    pub role: Option<Role>,
    /// Sites the admin is limited to (by site name); empty: every site.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Products the admin is limited to (any spelling of the product table); empty: all.
    #[serde(default)]
    pub products: Vec<String>,
    /// The admin's Slack user id (`U…`): their clicks on Approve and Deny in Slack count as
    /// this admin's, within this admin's role and scope.
    #[serde(default)]
    pub slack_user_id: Option<String>,
    /// The admin's email; a Slack user whose Slack email matches it (case-insensitively)
    /// is this admin when no entry names their `slack_user_id`.
    #[serde(default)]
    pub email: Option<String>,
}

/// What an admin or an API token may do. Each role can do everything the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything: plans, requests, users, audit, rules, stats.
    Viewer,
    /// Also approves or denies restore requests.
    Approver,
    /// Also plans, excludes plan items, imports and applies plans.
    Operator,
    /// Also sees the configuration and key status. The CLI acts as owner by default.
    Owner,
}

/// A kind of action, each allowed from one role up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read pages and lists.
    Read,
    /// Approve or deny a restore request.
    Decide,
    /// Plan, exclude plan items, import, apply a plan.
    Operate,
    /// See config and key status.
    Configure,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Read,
        Action::Decide,
        Action::Operate,
        Action::Configure,
    ];

    /// The least role that may take this action.
    pub fn least_role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Decide => Role::Approver,
            Action::Operate => Role::Operator,
            Action::Configure => Role::Owner,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Decide => "decide",
            Action::Operate => "operate",
            Action::Configure => "configure",
        }
    }
}

impl Action {
    /// The action a route takes, for the admin pages and the API alike (one table for both):
    /// the configuration (`…/config`) is [`Action::Configure`]; other reading is a `GET`;
    /// approving or denying a request (and a decision link) is [`Action::Decide`]; signing
    /// out is reading; any other change is [`Action::Operate`].
    pub fn of_route(method: &axum::http::Method, path: &str) -> Action {
        if path.ends_with("/config") {
            return Action::Configure;
        }
        // A decision link (`/admin/requests/{id}/decide/{token}`) decides, even to show its
        // confirmation: only someone who may decide sees it.
        if path.contains("/decide/") {
            Action::Decide
        } else if method == axum::http::Method::GET
            || method == axum::http::Method::HEAD
            || path.ends_with("/logout")
        {
            Action::Read
        } else if path.ends_with("/approve") || path.ends_with("/deny") {
            Action::Decide
        } else {
            Action::Operate
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Owner => "owner",
        }
    }

    pub fn allows(self, action: Action) -> bool {
        self >= action.least_role()
    }

    /// The actions this role may take (before scope).
    pub fn actions(self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|action| self.allows(*action))
            .collect()
    }
}

/// What one credential (an admin, a token, the CLI) may do: its role and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// `admin:<name>`, `api:<name>` or `cli`.
    pub actor: String,
    pub role: Role,
    /// Site names; empty: every site.
    pub sites: Vec<String>,
    /// Canonical product keys; empty: every product.
    pub products: Vec<String>,
}

impl Grant {
    /// The CLI, which holds the config and the database: owner of everything.
    pub fn cli() -> Grant {
        Grant {
            actor: "cli".into(),
            role: Role::Owner,
            sites: Vec::new(),
            products: Vec::new(),
        }
    }

    fn new(actor: String, role: Option<Role>, sites: &[String], products: &[String]) -> Grant {
        Grant {
            actor,
            role: role.unwrap_or(Role::Owner),
            sites: sites.to_vec(),
            products: products
                .iter()
                .map(|p| {
                    crate::atlassian::ProductKey::parse(p)
                        .map(|key| key.as_str().to_string())
                        .unwrap_or_else(|_| p.clone())
                })
                .collect(),
        }
    }

    /// Whether the role allows `action` (the scope is checked item by item: [`Grant::covers`]).
    pub fn allows(&self, action: Action) -> bool {
        self.role.allows(action)
    }

    /// The role's name, as audit entries record it.
    pub fn role_name(&self) -> &'static str {
        self.role.as_str()
    }

    /// How a decision is credited on a request (`approved by ana`, `approved by api:ci`).
    pub fn label(&self) -> &str {
        self.actor.strip_prefix("admin:").unwrap_or(&self.actor)
    }

    /// THE scope check: whether a thing of `site` and `product` is inside the scope. A
    /// `product` of None stands for every product of the site (a whole plan, a sweep, a
    /// request whose product is not known yet): only a grant limited to no product covers
    /// it. Every list filter and every action on an item asks this.
    pub fn covers(&self, site: &str, product: Option<&str>) -> bool {
        let site_ok = self.sites.is_empty() || self.sites.iter().any(|x| x == site);
        let product_ok = self.products.is_empty()
            || product.is_some_and(|p| {
                let p = crate::atlassian::ProductKey::parse(p)
                    .map(|key| key.as_str().to_string())
                    .unwrap_or_else(|_| p.to_string());
                self.products.contains(&p)
            });
        site_ok && product_ok
    }

    /// Whether anything of `site` is inside the scope (some product of it, or all): a plan
    /// of the site is listed, showing only the items [`Grant::covers`].
    pub fn sees_site(&self, site: &str) -> bool {
        if self.products.is_empty() {
            return self.covers(site, None);
        }
        self.products.iter().any(|p| self.covers(site, Some(p)))
    }

    /// The role allows `action`, or the refusal (audited as `role.refused`).
    pub async fn require(&self, db: &crate::store::Db, action: Action) -> Result<(), Refused> {
        if self.allows(action) {
            return Ok(());
        }
        self.audit_refusal(db, action).await;
        Err(Refused::Role {
            actor: self.actor.clone(),
            role: self.role,
            action,
        })
    }

    /// The scope covers (`site`, `product`), or the refusal (audited as `role.refused`);
    /// `what` names the thing in the refusal (`request 0190…`, `plan 0190…`).
    pub async fn require_scope(
        &self,
        db: &crate::store::Db,
        site: &str,
        product: Option<&str>,
        what: &str,
    ) -> Result<(), Refused> {
        if self.covers(site, product) {
            return Ok(());
        }
        tracing::info!(actor = %self.actor, role = self.role.as_str(), what, "refused: outside the credential's scope");
        let reason = format!("{} outside its scope", self.role.as_str());
        self.count_refusal(db, &reason).await;
        Err(Refused::Scope {
            actor: self.actor.clone(),
            what: what.to_string(),
            scope: self.scope_text(),
        })
    }

    /// `sites: all, products: jira-servicedesk`.
    pub fn scope_text(&self) -> String {
        let all = |list: &[String]| {
            if list.is_empty() {
                "all".to_string()
            } else {
                list.join(", ")
            }
        };
        format!(
            "sites: {}; products: {}",
            all(&self.sites),
            all(&self.products)
        )
    }

    /// Counts a refused action in the aggregated refusal audit (`audit_refusals`): action
    /// `role.refused`, the actor as source, `<role> may not <action>` as reason.
    pub async fn audit_refusal(&self, db: &crate::store::Db, action: Action) {
        let reason = format!("{} may not {}", self.role.as_str(), action.as_str());
        self.count_refusal(db, &reason).await;
    }

    async fn count_refusal(&self, db: &crate::store::Db, reason: &str) {
        let refusal = crate::audit::Refusal {
            action: "role.refused",
            source: &self.actor,
            reason,
        };
        if let Err(error) = crate::audit::refused(db, refusal).await {
            tracing::warn!(%error, "cannot count a refused action");
        }
    }

    /// Whether the scope is the whole install.
    pub fn unscoped(&self) -> bool {
        self.sites.is_empty() && self.products.is_empty()
    }
}

/// Why a credential may not do something. Nothing was changed when this is returned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    /// Above the credential's role.
    #[error(
        "{actor} has the role {} and may not {} ({} or above needed); nothing was changed",
        role.as_str(),
        action.as_str(),
        action.least_role().as_str()
    )]
    Role {
        actor: String,
        role: Role,
        action: Action,
    },
    /// On a thing outside the credential's sites or products.
    #[error("{what} is outside the scope of {actor} ({scope}); nothing was changed")]
    Scope {
        actor: String,
        what: String,
        scope: String,
    },
}

impl AdminConfig {
    /// The grant of the admin `name` (`None` if not configured).
    pub fn user_grant(&self, name: &str) -> Option<Grant> {
        self.users
            .iter()
            .find(|u| u.name == name)
            .map(|u| Grant::new(format!("admin:{}", u.name), u.role, &u.sites, &u.products))
    }

    /// The grant of the API token `name` (`None` if not configured).
    pub fn token_grant(&self, name: &str) -> Option<Grant> {
        self.api_tokens
            .iter()
            .find(|t| t.name == name)
            .map(|t| Grant::new(format!("api:{}", t.name), t.role, &t.sites, &t.products))
    }

    /// Entries that set no `role` (read as `owner`), for `config check`'s note.
    pub fn entries_without_role(&self) -> Vec<String> {
        let users = self
            .users
            .iter()
            .filter(|u| u.role.is_none())
            .map(|u| format!("admin:{}", u.name));
        let tokens = self
            .api_tokens
            .iter()
            .filter(|t| t.role.is_none())
            .map(|t| format!("api:{}", t.name));
        users.chain(tokens).collect()
    }

    /// Checks the entries; `site` is the configured site name (scopes must name it).
    pub fn validate_scopes(&self, sites_known: &[&str]) -> Result<(), ConfigError> {
        let entries = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("admin.users[{i}]"), &u.sites, &u.products))
            .chain(
                self.api_tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("admin.api_tokens[{i}]"), &t.sites, &t.products)),
            );
        for (place, sites, products) in entries {
            for (index, name) in sites.iter().enumerate() {
                if !sites_known.contains(&name.as_str()) {
                    return Err(ConfigError::key(
                        format!("{place}.sites[{index}]"),
                        format!(
                            "unknown site {name:?}; configured sites: {}",
                            sites_known.join(", ")
                        ),
                    ));
                }
            }
            for (index, product) in products.iter().enumerate() {
                if let Err(message) = crate::atlassian::ProductKey::parse_known(product) {
                    return Err(ConfigError::key(
                        format!("{place}.products[{index}]"),
                        message,
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (index, user) in self.users.iter().enumerate() {
            let place = format!("admin.users[{index}]");
            if !is_token_name(&user.name) {
                return Err(ConfigError::key(
                    format!("{place}.name"),
                    "expected a name of letters, digits, - and _ (at most 64), e.g. \"ana\"",
                ));
            }
            if self.users[..index]
                .iter()
                .any(|other| other.name == user.name)
            {
                return Err(ConfigError::key(
                    format!("{place}.name"),
                    format!("the name {:?} is used by another user", user.name),
                ));
            }
            if argon2::PasswordHash::new(user.password_hash.expose()).is_err() {
                return Err(ConfigError::key(
                    format!("{place}.password_hash"),
                    "expected an argon2 PHC string ($argon2id$...): run `reseat admin hash-password`",
                ));
            }
        }
        if self.login_attempts_per_minute == 0 {
            return Err(ConfigError::key(
                "admin.login_attempts_per_minute",
                "expected at least 1",
            ));
        }
        if self.import_max_bytes < 1024 {
            return Err(ConfigError::key(
                "admin.import_max_bytes",
                "expected at least 1024 bytes (an export file of one user is larger)",
            ));
        }
        if self.session_ttl.is_zero() || self.login_link_ttl.is_zero() {
            return Err(ConfigError::key(
                "admin.session_ttl",
                "session_ttl and login_link_ttl must be longer than zero",
            ));
        }
        for (index, token) in self.api_tokens.iter().enumerate() {
            let place = format!("admin.api_tokens[{index}]");
            if !is_token_name(&token.name) {
                return Err(ConfigError::key(
                    format!("{place}.name"),
                    "expected a name of letters, digits, - and _ (at most 64), e.g. \"ci\"",
                ));
            }
            if self.api_tokens[..index]
                .iter()
                .any(|other| other.name == token.name)
            {
                return Err(ConfigError::key(
                    format!("{place}.name"),
                    format!("the name {:?} is used by another token", token.name),
                ));
            }
            if digest_from_hex(&token.token_sha256).is_none() {
                return Err(ConfigError::key(
                    format!("{place}.token_sha256"),
                    "expected 64 hex characters: the SHA-256 of the token (reseat admin hash-token)",
                ));
            }
        }
        Ok(())
    }
}

fn is_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The SHA-256 of a token, as configured in `token_sha256`.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A 64-character hex digest as bytes (either case).
pub fn digest_from_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_sha256sum() {
        // printf %s secret | sha256sum
        assert_eq!(
            hash_token("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert!(digest_from_hex(&hash_token("secret")).is_some());
        assert!(digest_from_hex("zz").is_none());
    }

    #[test]
    fn refuses_bad_digest_and_duplicate_names() {
        let token = |name: &str, digest: &str| ApiToken {
            name: name.into(),
            token_sha256: digest.into(),
            role: None,
            sites: Vec::new(),
            products: Vec::new(),
        };
        let good = hash_token("x");
        let config = AdminConfig {
            api_tokens: vec![token("ci", "abc")],
            ..AdminConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.place, "admin.api_tokens[0].token_sha256");
        let config = AdminConfig {
            api_tokens: vec![token("ci", &good), token("ci", &good)],
            ..AdminConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().place,
            "admin.api_tokens[1].name"
        );
        let config = AdminConfig {
            api_tokens: vec![token("ci", &good)],
            ..AdminConfig::default()
        };
        assert!(config.validate().is_ok());
    }
}
