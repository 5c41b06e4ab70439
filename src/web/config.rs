//! The `[admin]` section: who may use the admin JSON API (bearer tokens, stored as SHA-256
//! digests) and the admin pages (users with password hashes).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer tokens for `/api/v1`; the API answers 401 to everything while this is empty.
    pub api_tokens: Vec<ApiToken>,
    /// People who may sign in to the admin pages.
    pub users: Vec<AdminUser>,
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
    /// An argon2 PHC string (`$argon2id$...`).
    pub password_hash: String,
}

impl AdminConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
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
            users: Vec::new(),
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.place, "admin.api_tokens[0].token_sha256");
        let config = AdminConfig {
            api_tokens: vec![token("ci", &good), token("ci", &good)],
            users: Vec::new(),
        };
        assert_eq!(
            config.validate().unwrap_err().place,
            "admin.api_tokens[1].name"
        );
        let config = AdminConfig {
            api_tokens: vec![token("ci", &good)],
            users: Vec::new(),
        };
        assert!(config.validate().is_ok());
    }
}

#[cfg(test)]
mod load_tests {
    use crate::config::{Config, Sources};

    #[test]
    fn tokens_come_from_the_environment_as_one_toml_value() {
        let digest = super::hash_token("t");
        let config = Config::load(&Sources {
            file: None,
            env: vec![(
                "RESEAT_ADMIN__API_TOKENS".into(),
                format!("[{{name = \"ci\", token_sha256 = \"{digest}\"}}]"),
            )],
        })
        .unwrap();
        assert_eq!(config.admin.api_tokens[0].name, "ci");
        let error = Config::load(&Sources {
            file: None,
            env: vec![(
                "RESEAT_ADMIN__API_TOKENS".into(),
                "[{name = \"ci\", token_sha256 = \"nope\"}]".into(),
            )],
        })
        .unwrap_err();
        assert_eq!(error.place, "admin.api_tokens[0].token_sha256");
    }
}
