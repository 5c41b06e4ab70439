//! The simulated Jira Service Management service desk: request types, customer
//! requests, their comments and a small fixed workflow (statuses and transitions).

use chrono::{DateTime, Utc};

use super::model::{Product, Uid};

/// Service desk id served at `/rest/servicedeskapi/servicedesk/{id}`.
pub const SERVICE_DESK_ID: &str = "1";
/// Project key of the service desk; requests are `HELP-1`, `HELP-2`, …
pub const PROJECT_KEY: &str = "HELP";
/// Request type id of "Restore my access".
pub const RESTORE_REQUEST_TYPE_ID: &str = "10";
/// Field id of the "Product" select field on the restore request type.
pub const PRODUCT_FIELD_ID: &str = "customfield_10100";
/// Field id of the "Why do you need it?" text field on the restore request type.
pub const JUSTIFICATION_FIELD_ID: &str = "customfield_10101";

/// A workflow status: name and status category.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    /// Status name (`currentStatus.status`).
    pub name: &'static str,
    /// `NEW`, `INDETERMINATE` or `DONE`.
    pub category: &'static str,
}

/// The workflow's statuses; a request starts in the first.
pub const STATUSES: [Status; 4] = [
    Status {
        name: "Waiting for support",
        category: "NEW",
    },
    Status {
        name: "In progress",
        category: "INDETERMINATE",
    },
    Status {
        name: "Resolved",
        category: "DONE",
    },
    Status {
        name: "Declined",
        category: "DONE",
    },
];

/// A transition: id, name, the statuses it is available from, the status it leads to.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    /// Transition id.
    pub id: &'static str,
    /// Transition name.
    pub name: &'static str,
    /// Indices into [`STATUSES`] where it is offered.
    pub from: &'static [usize],
    /// Index into [`STATUSES`] it leads to.
    pub to: usize,
}

/// The workflow's transitions.
pub const TRANSITIONS: [Transition; 6] = [
    Transition {
        id: "11",
        name: "Resolve this issue",
        from: &[0, 1],
        to: 2,
    },
    Transition {
        id: "21",
        name: "Decline",
        from: &[0, 1],
        to: 3,
    },
    Transition {
        id: "31",
        name: "Start progress",
        from: &[0],
        to: 1,
    },
    Transition {
        id: "41",
        name: "Escalate",
        from: &[0],
        to: 1,
    },
    Transition {
        id: "51",
        name: "Stop progress",
        from: &[1],
        to: 0,
    },
    Transition {
        id: "61",
        name: "Reopen",
        from: &[2, 3],
        to: 0,
    },
];

/// Transitions available from a status, in table order.
pub fn transitions_from(status: usize) -> impl Iterator<Item = &'static Transition> {
    TRANSITIONS.iter().filter(move |t| t.from.contains(&status))
}

/// A request type of the service desk.
#[derive(Debug, Clone)]
pub struct RequestType {
    pub id: String,
    pub name: String,
    pub description: String,
    pub help_text: String,
}

/// A comment on a request.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: String,
    pub body: String,
    pub public: bool,
    pub author: Uid,
    pub created: DateTime<Utc>,
}

/// A customer request.
#[derive(Debug, Clone)]
pub struct Request {
    pub issue_id: String,
    pub key: String,
    pub request_type_id: String,
    pub reporter: Uid,
    pub created: DateTime<Utc>,
    pub summary: String,
    pub description: String,
    pub product: Option<Product>,
    /// The "Why do you need it?" text, when the reporter wrote one.
    pub justification: Option<String>,
    pub status: usize,
    pub status_date: DateTime<Utc>,
    pub comments: Vec<Comment>,
}

/// The service desk and everything in it.
#[derive(Debug, Clone, Default)]
pub struct ServiceDesk {
    pub request_types: Vec<RequestType>,
    pub requests: Vec<Request>,
    pub next_comment_id: u64,
}

impl ServiceDesk {
    /// The desk with its seeded request types and no requests.
    pub fn seeded() -> ServiceDesk {
        let rt = |id: &str, name: &str, description: &str, help: &str| RequestType {
            id: id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            help_text: help.to_owned(),
        };
        ServiceDesk {
            request_types: vec![
                rt(
                    RESTORE_REQUEST_TYPE_ID,
                    "Restore my access",
                    "Get back access to a product you lost for inactivity",
                    "Tell us which product you need again.",
                ),
                rt("11", "Get IT help", "Get IT help", "Describe the problem."),
                rt("12", "Request new software", "Request new software", ""),
            ],
            requests: Vec::new(),
            next_comment_id: 10_000,
        }
    }

    /// A request by issue key or issue id.
    pub fn find(&self, id_or_key: &str) -> Option<usize> {
        self.requests
            .iter()
            .position(|r| r.key == id_or_key || r.issue_id == id_or_key)
    }
}
