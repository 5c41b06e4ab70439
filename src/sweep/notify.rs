//! Telling users about the sweep: the warning before removal (with "keep my access" and
//! "restore" links) and the removal notice (with a restore link).
//!
//! Both are rendered into the outbox inside the transaction that records the step (the
//! warning row, the item marked done), with a dedupe key per plan, account, product and
//! site, so a message is handed over exactly once however often `apply` resumes. Accounts
//! with no visible email are audited instead.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::SweepError;
use crate::app::AppState;
use crate::audit;
use crate::notify::templates::{Removal, Warning};
use crate::notify::{LinkError, Purpose};
use crate::restore::reply::product_name;

/// Everything a warning email needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WarningNotice<'a> {
    pub plan_id: &'a str,
    pub account_id: &'a str,
    pub product: &'a str,
    pub site: &'a str,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub last_active: Option<DateTime<Utc>>,
    /// Access is removed from this time on unless the user is active again or keeps it.
    pub remove_after: DateTime<Utc>,
    pub reason: &'a str,
}

impl WarningNotice<'_> {
    /// The outbox dedupe key of this warning.
    pub fn dedupe_key(&self) -> String {
        format!(
            "sweep-warning:{}:{}:{}:{}",
            self.plan_id, self.account_id, self.product, self.site
        )
    }
}

/// Everything a removal notice needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemovalNotice<'a> {
    pub plan_id: &'a str,
    pub account_id: &'a str,
    pub product: &'a str,
    pub site: &'a str,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub last_active: Option<DateTime<Utc>>,
    pub removed_at: DateTime<Utc>,
}

fn link_error(error: LinkError) -> SweepError {
    match error {
        LinkError::Store(error) => SweepError::Db(error),
        other => SweepError::Config(other.to_string()),
    }
}

/// Queues the warning, inside the caller's transaction.
pub async fn notify_warning(
    state: &AppState,
    conn: &mut AnyConnection,
    notice: &WarningNotice<'_>,
) -> Result<(), SweepError> {
    let Some(email) = notice.email else {
        return no_address(
            conn,
            state.db.now_ms(),
            "sweep.warning",
            notice.account_id,
            notice.product,
            notice.dedupe_key(),
        )
        .await;
    };
    let links = &state.notify.links;
    let (account, product, site) = (notice.account_id, notice.product, notice.site);
    // "Keep" works until the removal; "restore" until well after it.
    let keep = links
        .issue(
            conn,
            Purpose::Keep,
            account,
            product,
            site,
            notice.remove_after,
        )
        .await
        .map_err(link_error)?;
    let restore_until = links.default_expiry(Purpose::Restore, notice.remove_after);
    let restore = links
        .issue(
            conn,
            Purpose::Restore,
            account,
            product,
            site,
            restore_until,
        )
        .await
        .map_err(link_error)?;
    let warning = Warning {
        display_name: notice.display_name.unwrap_or(email).to_string(),
        product_name: product_name(Some(product)),
        last_active: notice.last_active.map(|at| at.date_naive()),
        removal_date: notice.remove_after.date_naive(),
        keep_url: keep.url,
        restore_url: restore.url,
    };
    let outbox = &state.notify.outbox;
    let message = outbox
        .message(notice.dedupe_key(), email, &warning)
        .about(account, product);
    outbox.enqueue_in(conn, message).await?;
    Ok(())
}

/// Queues the removal notice, inside the caller's transaction.
pub async fn notify_removal(
    state: &AppState,
    conn: &mut AnyConnection,
    notice: &RemovalNotice<'_>,
) -> Result<(), SweepError> {
    let key = format!(
        "sweep-removal:{}:{}:{}:{}",
        notice.plan_id, notice.account_id, notice.product, notice.site
    );
    let Some(email) = notice.email else {
        return no_address(
            conn,
            state.db.now_ms(),
            "sweep.removal_notice",
            notice.account_id,
            notice.product,
            key,
        )
        .await;
    };
    let links = &state.notify.links;
    let until = links.default_expiry(Purpose::Restore, notice.removed_at);
    let restore = links
        .issue(
            conn,
            Purpose::Restore,
            notice.account_id,
            notice.product,
            notice.site,
            until,
        )
        .await
        .map_err(link_error)?;
    let removal = Removal {
        display_name: notice.display_name.unwrap_or(email).to_string(),
        product_name: product_name(Some(notice.product)),
        last_active: notice.last_active.map(|at| at.date_naive()),
        removed_on: notice.removed_at.date_naive(),
        restore_url: restore.url,
    };
    let outbox = &state.notify.outbox;
    let message = outbox
        .message(key, email, &removal)
        .about(notice.account_id, notice.product);
    outbox.enqueue_in(conn, message).await?;
    Ok(())
}

/// An account whose email Atlassian does not show cannot be told; the audit log says so.
async fn no_address(
    conn: &mut AnyConnection,
    now: i64,
    action: &str,
    account: &str,
    product: &str,
    key: String,
) -> Result<(), SweepError> {
    audit::record_in(
        conn,
        now,
        audit::Entry {
            actor: "reseat",
            role: None,
            action,
            account_id: Some(account),
            product: Some(product),
            details: serde_json::json!({ "dedupe_key": key, "delivered": false, "why": "no visible email address" }),
        },
    )
    .await?;
    Ok(())
}
