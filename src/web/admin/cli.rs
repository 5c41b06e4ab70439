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
        /// The admin's name, one of `[[admin.users]]`, recorded in the audit log as
        /// `admin:<name>` (default: $USER, or `demo` with --dir).
        #[arg(long)]
        name: Option<String>,
        /// For a running `reseat demo`: its `--dir` (or the directory it printed), whose
        /// demo.toml names its database and address.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Read an API token on standard input and print its SHA-256, for
    /// `[[admin.api_tokens]] token_sha256`.
    HashToken,
    /// Print the OpenAPI document of the admin API (`/api/v1/openapi.json`).
    Openapi,
    /// Say what a credential may do: its name, role, scope and allowed actions. Without
    /// `--as` or a token, the CLI itself (owner of everything).
    Whoami {
        /// An admin of `[[admin.users]]`.
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
        /// An API token (or RESEAT_API_TOKEN); matched against `[[admin.api_tokens]]`.
        #[arg(long, env = "RESEAT_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

/// The lines of `reseat admin whoami` for `grant`.
pub fn whoami(grant: &crate::web::config::Grant) -> String {
    let all = |list: &[String]| {
        if list.is_empty() {
            "all".to_string()
        } else {
            list.join(", ")
        }
    };
    let actions: Vec<&str> = grant
        .role
        .actions()
        .iter()
        .filter(|a| grant.allows(**a))
        .map(|a| a.as_str())
        .collect();
    format!(
        "name: {}\nrole: {}\nsites: {}\nproducts: {}\nactions: {}\n",
        grant.actor,
        grant.role.as_str(),
        all(&grant.sites),
        all(&grant.products),
        actions.join(", ")
    )
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
    // A session is bound to the admin's entry: a link for any other name would not open a page.
    if !state
        .config
        .admin
        .users
        .iter()
        .any(|user| user.name == name)
    {
        let known: Vec<&str> = state
            .config
            .admin
            .users
            .iter()
            .map(|user| user.name.as_str())
            .collect();
        return Err(if known.is_empty() {
            format!(
                "admin login-link: no [[admin.users]] entry named {name:?}, and a link only signs in a configured admin; add one (docs/admin.md), or give --dir of a running demo"
            )
        } else {
            format!(
                "admin login-link: no [[admin.users]] entry named {name:?}; configured: {}",
                known.join(", ")
            )
        });
    }
    let url = super::auth::create_login_link(state, name)
        .await
        .map_err(|e| format!("database: {e}"))?;
    Ok(format!(
        "{url}\n(works once, for {}; signs in as {name})\n",
        crate::config::duration::format(state.config.admin.login_link_ttl)
    ))
}

/// The configuration of the demo running in `dir`, from the file it wrote there.
pub fn demo_config(dir: &std::path::Path) -> Result<crate::config::Config, crate::cli::CliError> {
    let file = dir.join(crate::demo::DEMO_CONFIG_FILE);
    if !file.is_file() {
        return Err(crate::cli::CliError::Other(format!(
            "--dir: no {} in {}; give the directory `reseat demo` printed",
            crate::demo::DEMO_CONFIG_FILE,
            dir.display()
        )));
    }
    Ok(crate::config::Config::load(
        &crate::config::Sources::from_process(Some(file)),
    )?)
}
