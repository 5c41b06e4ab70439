//! `reseat rules explain` and `reseat requests list|approve|deny`.

use clap::{Args, Subcommand};

use super::rules::Channel;
use super::{admin, store, worker};
use crate::app::AppState;
use crate::atlassian::{AccountId, GroupId, ProductKey};
use crate::cli::{CliError, acting_grant};

/// How long `reseat requests approve|deny` waits for the outcome.
const CLI_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Show which restore rule decides for an account, product and channel, and why.
    Explain {
        /// The Atlassian account id.
        #[arg(long, value_name = "ID")]
        account: String,
        /// The product key: jira-software (or jira), jira-service-desk, confluence.
        #[arg(long, value_name = "KEY", value_parser = ProductKey::parse_known)]
        product: ProductKey,
        /// The channel the request would come from.
        #[arg(long, value_enum, default_value = "jsm")]
        channel: Channel,
        /// As if the request gave a justification (rules with require_justification).
        #[arg(long)]
        justified: bool,
    },
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    #[command(subcommand)]
    pub command: RequestsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List restore requests (pending ones by default).
    List {
        /// received, approved, verifying, pending, restored, denied, ignored, failed, or all.
        #[arg(long, default_value = "pending", value_parser = parse_status)]
        status: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Approve a pending or failed request: restore the journaled groups (and --groups).
    Approve {
        /// The request id.
        id: String,
        /// Extra group ids to add, for a user reseat never removed.
        #[arg(long, value_delimiter = ',', value_name = "GROUP_ID,…")]
        groups: Vec<String>,
        /// Act as this [[admin.users]] entry, with its role and scope (default: the CLI,
        /// owner of everything).
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
    },
    /// Deny a pending or failed request; the requester is told the reason.
    Deny {
        /// The request id.
        id: String,
        /// Shown to the requester.
        #[arg(long)]
        reason: String,
        /// Act as this [[admin.users]] entry, with its role and scope (default: the CLI,
        /// owner of everything).
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send a restore request to `/hooks/webhook` signed as a Standard Webhooks sender
    /// would sign it (to try the channel, or to check a sender's secret).
    Send {
        /// The service's webhook URL, e.g. http://127.0.0.1:8080/hooks/webhook.
        #[arg(long, value_name = "URL")]
        url: String,
        /// The signing secret (`whsec_…`), one of restore.webhook.secrets.
        #[arg(
            long,
            env = "RESEAT_WEBHOOK_SECRET",
            hide_env_values = true,
            value_name = "SECRET"
        )]
        secret: String,
        /// The Atlassian account id asking for access back.
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "email",
            conflicts_with = "email"
        )]
        account: Option<String>,
        /// Or the email address of the account.
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// The product key, e.g. jira-software, jira-service-desk, confluence.
        #[arg(long, value_name = "KEY")]
        product: String,
        /// The delivery id (`webhook-id`; the same id is one request). Default: a new one.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
}

/// Runs `reseat webhook send`; returns what to print.
pub async fn webhook(args: &WebhookArgs) -> Result<String, String> {
    let WebhookCommand::Send {
        url,
        secret,
        account,
        email,
        product,
        id,
    } = &args.command;
    let body = serde_json::to_vec(&serde_json::json!({
        "accountId": account,
        "email": email,
        "product": product,
    }))
    .map_err(|e| format!("webhook send: {e}"))?;
    // Absent fields are left out, not sent as null.
    let body = {
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| format!("webhook send: {e}"))?;
        value.retain(|_, v| !v.is_null());
        serde_json::to_vec(&value).map_err(|e| format!("webhook send: {e}"))?
    };
    let id = id
        .clone()
        .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
    let timestamp = chrono::Utc::now().timestamp();
    let signature = super::signature::sign(secret, &id, timestamp, &body)
        .map_err(|e| format!("--secret: {e}"))?;
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("webhook send: cannot reach {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(format!("{} {}\n", status.as_u16(), text.trim()))
    } else {
        Err(format!(
            "webhook send: {url} answered {}: {}",
            status,
            text.trim()
        ))
    }
}

/// A `--status` of `requests list`: one of the request states, or `all`.
fn parse_status(text: &str) -> Result<String, String> {
    if text == "all" || super::status::Status::parse(text).is_some() {
        return Ok(text.to_string());
    }
    let known: Vec<&str> = super::status::Status::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(["all"])
        .collect();
    Err(format!("expected one of {}", known.join(", ")))
}

/// Runs `reseat rules …`; returns what to print.
pub async fn rules(state: &AppState, args: &RulesArgs) -> Result<String, String> {
    let RulesCommand::Explain {
        account,
        product,
        channel,
        justified,
    } = &args.command;
    let account = AccountId::parse(account.trim()).map_err(|e| format!("--account: {e}"))?;
    let verdict = worker::explain(state, &account, product, *channel, *justified)
        .await
        .map_err(|e| format!("cannot read the account from Atlassian: {e}"))?;
    Ok(format!(
        "account {account}, product {}, channel {channel}\n{}",
        product.as_str(),
        verdict.explain()
    ))
}

/// What an approval led to, the stored reason, and what to do next.
fn outcome(request: &store::RestoreRequest) -> String {
    let id = &request.id;
    let mut out = format!("request {id}: {}\n", request.status);
    if let Some(why) = request.message.as_deref().or(request.reason.as_deref()) {
        out.push_str(&format!("  {why}\n"));
    }
    let next = match request.status.as_str() {
        "pending" => Some(format!(
            "next: reseat requests approve {id} --groups GROUP_ID,… (the groups to add), or reseat requests deny {id} --reason …"
        )),
        "failed" => Some(format!(
            "next: reseat requests approve {id} to try again, or reseat requests deny {id} --reason …"
        )),
        "received" | "approved" => Some(
            "next: not finished yet; a running `reseat serve` finishes it (`reseat requests list --status all` shows the outcome)".to_string(),
        ),
        _ => None,
    };
    if let Some(next) = next {
        out.push_str(&format!("  {next}\n"));
    }
    out
}

/// An approval or denial refused (role or scope: exit status 2) or failed.
fn decide_error(error: admin::AdminError) -> CliError {
    match error {
        admin::AdminError::Refused(refused) => CliError::Refused(refused.to_string()),
        other => CliError::Other(other.to_string()),
    }
}

/// Runs `reseat requests …`; returns what to print.
pub async fn requests(state: &AppState, args: &RequestsArgs) -> Result<String, CliError> {
    match &args.command {
        RequestsCommand::List { status, limit } => {
            let rows = if status == "all" {
                store::list_recent(&state.db, *limit).await
            } else {
                store::list_by_status(&state.db, status, *limit).await
            }
            .map_err(|e| CliError::Other(format!("database: {e}")))?;
            let mut out = String::new();
            for r in &rows {
                out.push_str(&format!(
                    "{}  {:<9} {:<10} {:<26} {:<18} {}\n",
                    r.id,
                    r.status,
                    r.channel,
                    r.account_id.as_deref().unwrap_or("-"),
                    r.product.as_deref().unwrap_or("-"),
                    r.message.as_deref().or(r.reason.as_deref()).unwrap_or(""),
                ));
            }
            out.push_str(&format!("{} request(s)\n", rows.len()));
            Ok(out)
        }
        RequestsCommand::Approve {
            id,
            groups,
            as_admin,
        } => {
            let grant = acting_grant(&state.config, as_admin.as_deref())?;
            let groups = groups
                .iter()
                .map(|g| {
                    GroupId::parse(g.trim()).map_err(|e| CliError::Other(format!("--groups: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            admin::approve(state, id, &grant, groups)
                .await
                .map_err(decide_error)?;
            // Act now, through the queue's lease, rather than wait for a running `serve`.
            let request = worker::run_now(state, id, CLI_WAIT)
                .await
                .map_err(|e| CliError::Other(e.to_string()))?;
            Ok(match request {
                Some(request) => outcome(&request),
                None => format!("request {id}: not found\n"),
            })
        }
        RequestsCommand::Deny {
            id,
            reason,
            as_admin,
        } => {
            let grant = acting_grant(&state.config, as_admin.as_deref())?;
            if reason.trim().is_empty() {
                return Err(CliError::Other("--reason: tell the requester why".into()));
            }
            admin::deny(state, id, &grant, reason)
                .await
                .map_err(decide_error)?;
            worker::run_now(state, id, CLI_WAIT)
                .await
                .map_err(|e| CliError::Other(e.to_string()))?;
            Ok(format!("request {id}: denied\n"))
        }
    }
}
