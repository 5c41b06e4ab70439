//! What reseat says in Slack: the requester's answer (through the command's
//! `response_url` while it works, 30 minutes, else a direct message from the bot), the
//! approval message with its buttons in the approvers' channel, its update once decided,
//! and the modal that asks a denier for the reason. User text is escaped for mrkdwn.

use serde_json::{Value, json};

use super::api::{SlackApi, SlackError};
use super::{APPROVE_ACTION, DENY_ACTION, DENY_CALLBACK, REASON_INPUT};
use crate::app::AppState;
use crate::restore::reply::product_name;
use crate::restore::store::RestoreRequest;

/// How long Slack accepts posts to a `response_url`.
const RESPONSE_URL_TTL_MS: i64 = 30 * 60 * 1000;
/// Slack's limit on a section's text.
const SECTION_MAX: usize = 2900;

/// `&`, `<` and `>` escaped, as Slack's mrkdwn needs (else `<!channel>` would ping).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(text: String) -> String {
    if text.chars().count() <= SECTION_MAX {
        return text;
    }
    let mut short: String = text.chars().take(SECTION_MAX).collect();
    short.push('…');
    short
}

/// Posts an ephemeral message to whoever used the `response_url`; failures are logged.
pub async fn ephemeral(api: &SlackApi, response_url: &str, text: &str) {
    let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
    if let Err(error) = api.respond(response_url, body).await {
        tracing::warn!(%error, "cannot answer in Slack");
    }
}

#[derive(sqlx::FromRow)]
struct SlackRow {
    user_id: Option<String>,
    response_url: Option<String>,
    created_at: i64,
    approval_channel: Option<String>,
    approval_ts: Option<String>,
}

async fn slack_row(state: &AppState, id: &str) -> Result<Option<SlackRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, response_url, created_at, approval_channel, approval_ts \
         FROM slack_requests WHERE request_id = $1",
    )
    .bind(id)
    .fetch_optional(state.db.pool())
    .await
}

fn db(error: sqlx::Error) -> SlackError {
    SlackError::Transient(format!("database: {error}"))
}

/// Tells a Slack requester the outcome: through the command's `response_url` while Slack
/// takes it, else (or when Slack refuses it) as a direct message from the bot.
pub async fn tell_requester(
    state: &AppState,
    request: &RestoreRequest,
    text: &str,
) -> Result<(), SlackError> {
    let Some(api) = state.slack.as_ref() else {
        return Ok(());
    };
    let Some(row) = slack_row(state, &request.id).await.map_err(db)? else {
        return Ok(());
    };
    let fresh = state.db.now_ms() - row.created_at < RESPONSE_URL_TTL_MS;
    if let Some(url) = row.response_url.as_deref().filter(|_| fresh) {
        let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
        match api.respond(url, body).await {
            Ok(()) => return Ok(()),
            Err(SlackError::Refused(error)) => {
                tracing::info!(%error, "response_url refused; sending a direct message");
            }
            Err(error) => return Err(error),
        }
    }
    let Some(user) = row.user_id.as_deref() else {
        return Ok(());
    };
    api.post_message(user, text, None).await.map(|_| ())
}

/// The approval message of a request the rules sent to an admin, once per request.
pub async fn post_approval(state: &AppState, request: &RestoreRequest) -> Result<(), SlackError> {
    let (Some(api), Some(channel)) = (
        state.slack.as_ref(),
        state.config.restore.slack.approvers_channel.as_deref(),
    ) else {
        return Ok(());
    };
    if slack_row(state, &request.id)
        .await
        .map_err(db)?
        .is_some_and(|row| row.approval_ts.is_some())
    {
        return Ok(());
    }
    let (text, blocks) = approval_message(state, request, None).await.map_err(db)?;
    let (channel, ts) = api.post_message(channel, &text, Some(blocks)).await?;
    sqlx::query(
        "INSERT INTO slack_requests (request_id, created_at, approval_channel, approval_ts) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO UPDATE SET \
         approval_channel = excluded.approval_channel, approval_ts = excluded.approval_ts",
    )
    .bind(&request.id)
    .bind(state.db.now_ms())
    .bind(channel)
    .bind(ts)
    .execute(state.db.pool())
    .await
    .map_err(db)?;
    Ok(())
}

/// Replaces the approval message's buttons with the decision and who made it.
pub async fn show_decision(state: &AppState, request_id: &str, decision: &str) {
    let Some(api) = state.slack.as_ref() else {
        return;
    };
    let run = async {
        let Some(row) = slack_row(state, request_id).await.map_err(db)? else {
            return Ok(());
        };
        let (Some(channel), Some(ts)) = (row.approval_channel, row.approval_ts) else {
            return Ok(());
        };
        let Some(request) = crate::restore::store::get(&state.db, request_id)
            .await
            .map_err(db)?
        else {
            return Ok(());
        };
        let (text, blocks) = approval_message(state, &request, Some(decision))
            .await
            .map_err(db)?;
        api.update(&channel, &ts, &text, blocks).await
    };
    if let Err(error) = run.await {
        tracing::warn!(%error, request_id, "cannot update the approval message");
    }
}

/// The approval message: requester, product, site, justification, the groups an approval
/// gives back, the rules' trace, and the buttons (or the decision, once made).
async fn approval_message(
    state: &AppState,
    request: &RestoreRequest,
    decision: Option<&str>,
) -> Result<(String, Value), sqlx::Error> {
    let product = product_name(request.product.as_deref());
    let who = match (&request.display_name, &request.email) {
        (Some(name), Some(email)) => format!("{name} ({email})"),
        (Some(name), None) => name.clone(),
        (None, Some(email)) => email.clone(),
        (None, None) => request
            .account_id
            .clone()
            .unwrap_or_else(|| "someone".into()),
    };
    let account = request.account_id.clone().unwrap_or_default();
    let groups = match (&request.account_id, &request.product) {
        (Some(account), Some(product)) => {
            crate::ledger::taken_groups(&state.db, account, product, state.site()).await?
        }
        _ => Vec::new(),
    };
    let groups = if groups.is_empty() {
        "none recorded: reseat did not remove this access (approve on /admin/requests naming the groups)".to_string()
    } else {
        groups
            .iter()
            .map(|g| g.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let trace = crate::web::admin::requests::explanation(request.verdict.as_deref()).join("\n");
    let justification = request
        .justification
        .clone()
        .unwrap_or_else(|| "(none given)".into());
    let text = format!("Restore request from {who} for {product}");
    let mut blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(format!(
            "*Restore request* from *{}* for *{}*",
            escape(&who),
            escape(&product)
        )) } }),
        json!({ "type": "section", "fields": [
            { "type": "mrkdwn", "text": format!("*Account*\n{}", escape(&account)) },
            { "type": "mrkdwn", "text": format!("*Site*\n{}", escape(state.site())) },
            { "type": "mrkdwn", "text": format!("*Channel*\n{}", escape(&request.channel)) },
            { "type": "mrkdwn", "text": format!("*Request*\n{}", escape(&request.id)) },
        ] }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(format!("*Justification*\n{}", escape(&justification))) } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(format!("*Groups given back*\n{}", escape(&groups))) } }),
    ];
    if !trace.is_empty() {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(format!("*Why an admin decides*\n```{}```", escape(&trace))) } }));
    }
    match decision {
        None => blocks.push(json!({ "type": "actions", "block_id": "decide", "elements": [
            { "type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": request.id,
              "text": { "type": "plain_text", "text": "Approve" } },
            { "type": "button", "action_id": DENY_ACTION, "style": "danger", "value": request.id,
              "text": { "type": "plain_text", "text": "Deny" } },
        ] })),
        Some(decision) => blocks.push(json!({ "type": "context", "elements": [
            { "type": "mrkdwn", "text": cut(escape_decision(decision)) },
        ] })),
    }
    let text = match decision {
        Some(decision) => format!("{text}: {decision}"),
        None => text,
    };
    Ok((text, Value::Array(blocks)))
}

/// A decision line: the admin's reason is escaped; the `<@U…>` mention reseat wrote is kept.
fn escape_decision(decision: &str) -> String {
    // The mention is `<@` + a Slack user id (letters and digits) + `>`, written by reseat.
    let mut out = String::new();
    let mut rest = decision;
    while let Some(start) = rest.find("<@") {
        let (before, from) = rest.split_at(start);
        out.push_str(&escape(before));
        match from.find('>') {
            Some(end) if from[2..end].chars().all(|c| c.is_ascii_alphanumeric()) => {
                out.push_str(&from[..=end]);
                rest = &from[end + 1..];
            }
            _ => {
                out.push_str(&escape(&from[..2]));
                rest = &from[2..];
            }
        }
    }
    out.push_str(&escape(rest));
    out
}

/// The modal that asks a denier why (the requester is told the reason).
pub fn deny_modal(request_id: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": DENY_CALLBACK,
        "private_metadata": request_id,
        "title": { "type": "plain_text", "text": "Deny request" },
        "submit": { "type": "plain_text", "text": "Deny" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [{
            "type": "input",
            "block_id": REASON_INPUT,
            "label": { "type": "plain_text", "text": "Reason (the requester is told)" },
            "element": { "type": "plain_text_input", "action_id": REASON_INPUT, "multiline": true, "max_length": 500 },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_mention_or_link_but_reseats_mention_stays() {
        assert_eq!(
            escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
        assert_eq!(
            escape_decision("Denied by ana (<@U123>): <!here> no"),
            "Denied by ana (<@U123>): &lt;!here&gt; no"
        );
        assert_eq!(escape_decision("<@U1 x>"), "&lt;@U1 x&gt;");
    }
}
