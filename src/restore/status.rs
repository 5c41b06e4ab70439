//! A restore request's status: the states, the transitions between them and what the
//! requester is told in each, in one place.
//!
//! ```text
//! received ──┬─> restored | pending | denied | ignored | failed
//!            └─> verifying ──> restored | failed
//! pending, failed ──> approved (an admin) ──> restored | verifying | pending | denied | failed
//! pending, failed ──> denied (an admin)
//! ```
//!
//! Every change is a compare-and-set on the status the writer read
//! ([`super::store::set_outcome_in`]): a writer that lost a race changes nothing.

use chrono::{DateTime, Utc};
use std::fmt;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Stored by the intake; its job has not decided it yet.
    Received,
    /// An admin approved it; its job restores.
    Approved,
    /// The groups were added; the platform does not show them yet (eventual consistency).
    Verifying,
    /// Waiting for an admin.
    Pending,
    Restored,
    Denied,
    /// Not a restore request (another JSM request type): left alone, no reply.
    Ignored,
    /// Could not be done automatically; waits for an admin.
    Failed,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Received,
        Status::Approved,
        Status::Verifying,
        Status::Pending,
        Status::Restored,
        Status::Denied,
        Status::Ignored,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Approved => "approved",
            Status::Verifying => "verifying",
            Status::Pending => "pending",
            Status::Restored => "restored",
            Status::Denied => "denied",
            Status::Ignored => "ignored",
            Status::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether processing reached a decision (the reply may still be owed).
    pub fn is_decided(self) -> bool {
        matches!(
            self,
            Status::Restored | Status::Pending | Status::Denied | Status::Ignored | Status::Failed
        )
    }

    /// Whether an admin may approve or deny it.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Failed)
    }

    /// Whether the request may go from `self` to `next`.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        match self {
            Received => matches!(
                next,
                Verifying | Restored | Pending | Denied | Ignored | Failed
            ),
            Approved => matches!(next, Verifying | Restored | Pending | Denied | Failed),
            Verifying => matches!(next, Restored | Failed),
            Pending | Failed => matches!(next, Approved | Denied),
            Restored | Denied | Ignored => false,
        }
    }

    /// What the requester is told (JSM comment, Slack, Teams), or `None` when they are not
    /// answered. `until`: the end of access given back for a while (`approve_for`).
    pub fn reply_text(
        self,
        product: &str,
        message: Option<&str>,
        until: Option<DateTime<Utc>>,
    ) -> Option<String> {
        match self {
            Status::Restored => Some(
                format!(
                    "Your access to {product} has been restored. It can take a minute to show everywhere. {}",
                    until.map(|u| time_bound(product, u)).unwrap_or_default()
                )
                .trim_end()
                .to_owned(),
            ),
            Status::Pending => Some(format!(
                "Your request for access to {product} is waiting for an administrator's approval. You will hear back here."
            )),
            Status::Denied => Some(
                format!(
                    "Your request for access to {product} was declined. {}",
                    message.unwrap_or_default()
                )
                .trim_end()
                .to_owned(),
            ),
            Status::Failed => Some(format!(
                "We could not restore your access to {product} automatically. An administrator will look at your request."
            )),
            Status::Received | Status::Approved | Status::Verifying | Status::Ignored => None,
        }
    }

    /// The result page of a restore link: heading and lines.
    pub fn link_page(
        self,
        product: &str,
        message: Option<&str>,
        until: Option<DateTime<Utc>>,
    ) -> (String, Vec<String>) {
        match self {
            Status::Restored => (
                format!("Your {product} access is back"),
                std::iter::once(
                    "You can use it again now; it may take a minute to show everywhere."
                        .to_string(),
                )
                .chain(until.map(|u| time_bound(product, u)))
                .collect(),
            ),
            Status::Pending => (
                "Waiting for approval".to_string(),
                vec![format!(
                    "Your request for {product} needs an administrator's approval. You will get an email when it is decided."
                )],
            ),
            Status::Denied => (
                "Request declined".to_string(),
                vec![message.unwrap_or("Your request was declined.").to_string()],
            ),
            Status::Failed => (
                "We could not do it automatically".to_string(),
                vec![
                    "An administrator will look at your request. You will get an email."
                        .to_string(),
                ],
            ),
            Status::Received | Status::Approved | Status::Verifying | Status::Ignored => (
                "We are restoring your access".to_string(),
                vec![
                    "This takes a little longer than usual. You will get an email when it is done."
                        .to_string(),
                ],
            ),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a requester given access for a while is told: until when, and what keeps it.
pub fn time_bound(product: &str, until: DateTime<Utc>) -> String {
    format!(
        "This access is for a while: it ends on {}, unless you work in {product} before then or ask to keep it. You will get a reminder with a link to keep it first.",
        until.format("%-d %B %Y")
    )
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn every_status_parses_back_and_final_ones_go_nowhere() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        for done in [Status::Restored, Status::Denied, Status::Ignored] {
            assert!(Status::ALL.iter().all(|next| !done.can_become(*next)));
        }
        assert!(Status::Pending.can_become(Status::Approved));
        assert!(!Status::Received.can_become(Status::Approved));
        assert!(!Status::Verifying.can_become(Status::Pending));
    }
}
