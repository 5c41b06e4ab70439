//! `reseat admin hash-password` and `reseat admin login-link`.

use std::io::Read;

use clap::{Args, Subcommand};

use crate::app::AppState;

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Read a password from stdin and print its argon2 hash, for `[[admin.users]]`
    /// `password_hash` (e.g. `printf %s 'secret' | reseat admin hash-password`).
    HashPassword,
    /// Print a one-time link that signs an admin in to the admin pages.
    LoginLink {
        /// The admin's name, recorded in the audit log as `admin:<name>`.
        #[arg(long, env = "USER", default_value = "admin")]
        name: String,
    },
    /// Read an API token on standard input and print its SHA-256, for
    /// `[[admin.api_tokens]] token_sha256`.
    HashToken,
    /// Print the OpenAPI document of the admin API (`/api/v1/openapi.json`).
    Openapi,
}

/// Hashes the password read from `input` (one line; the trailing newline is dropped).
pub fn hash_password(mut input: impl Read) -> Result<String, String> {
    let mut password = String::new();
    input
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("no password on stdin: printf %s 'secret' | reseat admin hash-password".into());
    }
    super::auth::hash_password(password).map_err(|e| format!("cannot hash the password: {e}"))
}

/// Creates a login link; returns the line to print.
pub async fn login_link(state: &AppState, name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("--name: expected letters, digits, '.', '-' and '_' (at most 64)".into());
    }
    let url = super::auth::create_login_link(state, name)
        .await
        .map_err(|e| format!("database: {e}"))?;
    Ok(format!(
        "{url}\n(works once, for {}; signs in as {name})\n",
        crate::config::duration::format(state.config.admin.login_link_ttl)
    ))
}
