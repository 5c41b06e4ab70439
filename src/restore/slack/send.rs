//! `reseat slack send`: a slash command signed as Slack signs it, to try the Slack channel
//! against the demo's fake Slack (or to check a signing secret). It posts the command,
//! prints the immediate answer, then waits for what reseat posts to the command's
//! `response_url` on the fake and prints that too.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::sim::slack::{SlashCommand, sign};

/// How long `slack send` waits for the follow-up on the `response_url`.
const FOLLOW_UP_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Args)]
pub struct SlackArgs {
    #[command(subcommand)]
    pub command: SlackCommand,
}

#[derive(Debug, Subcommand)]
pub enum SlackCommand {
    /// Send `/reseat <text>` to reseat's `/hooks/slack/commands`, signed with the signing
    /// secret, as the Slack user `--user`; print the answer and the follow-up.
    Send {
        /// The service's command URL, e.g. http://127.0.0.1:8080/hooks/slack/commands.
        #[arg(long, value_name = "URL")]
        url: String,
        /// The Slack app's signing secret (restore.slack.signing_secret).
        #[arg(
            long,
            env = "RESEAT_SLACK_SIGNING_SECRET",
            hide_env_values = true,
            value_name = "SECRET"
        )]
        secret: String,
        /// The fake Slack's address (the demo prints it): where the `response_url` points
        /// and where the follow-up is read back.
        #[arg(long, value_name = "URL")]
        slack: String,
        /// The Slack user id sending the command (the fake's `users.info` knows it).
        #[arg(long, value_name = "ID")]
        user: String,
        /// The command's text, e.g. `restore jira on call this week`.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
    },
}

/// Runs `slack send`; the printed lines, or one line saying what failed.
pub async fn send(args: &SlackArgs) -> Result<String, String> {
    let SlackCommand::Send {
        url,
        secret,
        slack,
        user,
        text,
    } = &args.command;
    let slack = slack.trim_end_matches('/');
    let response_id = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let command = SlashCommand {
        command: "/reseat".into(),
        text: text.join(" "),
        user_id: user.clone(),
        user_name: user.clone(),
        channel_id: "D0CLI".into(),
        response_url: format!("{slack}/response/{response_id}"),
        trigger_id: format!("{response_id}.trigger"),
    };
    let body = command.body();
    let timestamp = chrono::Utc::now().timestamp();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("slack send: {e}"))?;
    let response = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header(
            "x-slack-signature",
            sign(secret, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("slack send: cannot reach {url}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("slack send: {url} answered {status}: {answer}"));
    }
    let mut out = format!("answer: {}\n", message_text(&answer));
    let deadline = tokio::time::Instant::now() + FOLLOW_UP_WAIT;
    loop {
        let responses: Value = match http.get(format!("{slack}/_slack/responses")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => return Err(format!("slack send: cannot read {slack}: {e}")),
        };
        let follow_up = responses.as_array().and_then(|all| {
            all.iter()
                .rfind(|r| r["id"] == response_id.as_str())
                .map(|r| message_text(&r["body"]))
        });
        match follow_up {
            Some(text) => {
                out.push_str(&format!("follow-up: {text}\n"));
                return Ok(out);
            }
            None if tokio::time::Instant::now() >= deadline => {
                out.push_str(&format!(
                    "follow-up: none within {}s; the request is on the admin pages\n",
                    FOLLOW_UP_WAIT.as_secs()
                ));
                return Ok(out);
            }
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A Slack message's text, or its blocks' texts when it has none.
fn message_text(message: &Value) -> String {
    if let Some(text) = message["text"].as_str().filter(|t| !t.is_empty()) {
        return text.to_owned();
    }
    message.to_string()
}
