//! The seam between the sweep and warning emails.
//!
//! `apply` calls [`notify_warning`] inside the transaction that records the warning
//! (`sweep_warnings`, one per account, product, site and plan), so a warning is handed over
//! exactly once however often `apply` resumes. Until the notify area's outbox is merged this
//! writes an audit entry (`sweep.warning`) carrying everything the email needs; the outbox
//! plugs in here: enqueue the rendered warning in the same transaction with the dedupe key
//! [`WarningNotice::dedupe_key`].

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::audit;

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

/// Hands a warning over for delivery, inside the caller's transaction.
pub async fn notify_warning(
    conn: &mut AnyConnection,
    notice: &WarningNotice<'_>,
) -> Result<(), sqlx::Error> {
    audit::record_in(
        conn,
        audit::Entry {
            actor: "reseat",
            action: "sweep.warning",
            account_id: Some(notice.account_id),
            product: Some(notice.product),
            details: serde_json::json!({
                "dedupe_key": notice.dedupe_key(),
                "notice": notice,
            }),
        },
    )
    .await
}
