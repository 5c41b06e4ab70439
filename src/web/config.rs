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
}

impl AdminConfig {
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
