//! Jira Service Management REST API (`/rest/servicedeskapi`, Basic `email:api_token`): read a
//! customer request (reporter, request type, fields, status), comment on it, and transition it
//! by name.

use crate::atlassian::error::AtlassianError;
use crate::atlassian::http::{ApiClient, Call, Method};
use crate::atlassian::page::{Page, PageToken, Paged, next_offset};
use crate::atlassian::product::{AccountId, IssueKey};
use serde::Deserialize;
use serde_json::json;

/// Page size for `start`/`limit` listings.
const PAGE_SIZE: u64 = 50;

/// A JSM user as the request API shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsmUser {
    /// The account id: for a reporter, the user whose access a restore request is about.
    pub account_id: AccountId,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email, when visible.
    #[serde(default)]
    pub email_address: Option<String>,
    /// Whether the account is active.
    #[serde(default)]
    pub active: Option<bool>,
}

/// The request type of a request (`expand=requestType`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestType {
    /// The request type id.
    pub id: String,
    /// The request type name ("Restore my access").
    #[serde(default)]
    pub name: String,
}

/// One field of a request as the customer filled it in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldValue {
    /// The field id (`summary`, `customfield_10010`, ...).
    pub field_id: String,
    /// The field label.
    #[serde(default)]
    pub label: Option<String>,
    /// The raw value (string, object or array, per field type).
    #[serde(default)]
    pub value: serde_json::Value,
}

/// The current status of a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStatus {
    /// The status name.
    pub status: String,
    /// `NEW`, `INDETERMINATE`, `DONE`, ...
    #[serde(default)]
    pub status_category: Option<String>,
}

/// A customer request (`GET /rest/servicedeskapi/request/{issueIdOrKey}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRequest {
    /// The issue id.
    #[serde(default)]
    pub issue_id: Option<String>,
    /// The issue key.
    pub issue_key: String,
    /// The request type id.
    #[serde(default)]
    pub request_type_id: Option<String>,
    /// The request type, expanded.
    #[serde(default)]
    pub request_type: Option<RequestType>,
    /// The service desk id.
    #[serde(default)]
    pub service_desk_id: Option<String>,
    /// Who raised the request.
    #[serde(default)]
    pub reporter: Option<JsmUser>,
    /// The fields as filled in.
    #[serde(default)]
    pub request_field_values: Vec<FieldValue>,
    /// The current status.
    #[serde(default)]
    pub current_status: Option<RequestStatus>,
}

/// A comment on a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Comment {
    /// The comment id.
    pub id: String,
    /// The text.
    #[serde(default)]
    pub body: String,
    /// Whether customers see it.
    #[serde(default)]
    pub public: bool,
}

/// A transition the request can take now.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transition {
    /// The transition id (per workflow; never hard-code it).
    pub id: String,
    /// The transition name ("Resolve", "Decline", ...).
    pub name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PagedDto<T> {
    #[serde(default)]
    start: Option<u64>,
    #[serde(default)]
    is_last_page: Option<bool>,
    values: Vec<T>,
}

/// Client of the JSM REST API.
#[derive(Debug)]
pub struct JsmClient {
    api: ApiClient,
}

impl JsmClient {
    pub(crate) fn new(api: ApiClient) -> Self {
        Self { api }
    }

    /// A request with its reporter, request type, fields and status.
    pub async fn request(&self, issue: &IssueKey) -> Result<CustomerRequest, AtlassianError> {
        let call = Call::get(
            "/rest/servicedeskapi/request/{issueIdOrKey}",
            &[issue.as_str()],
        )
        .query("expand", "requestType");
        self.api.json(&call).await
    }

    /// Adds a comment; `public = false` makes it an internal note. Not idempotent (a repeat
    /// posts a second comment), so it is retried only when the request certainly did not run
    /// (429, 503 with `Retry-After`, connection refused).
    pub async fn add_comment(
        &self,
        issue: &IssueKey,
        body: &str,
        public: bool,
    ) -> Result<Comment, AtlassianError> {
        let call = Call::new(
            Method::POST,
            "/rest/servicedeskapi/request/{issueIdOrKey}/comment",
            &[issue.as_str()],
        )
        .json(json!({ "body": body, "public": public }));
        self.api.json(&call).await
    }

    /// One page of the request's comments, oldest first.
    pub async fn comments_page(
        &self,
        issue: &IssueKey,
        token: Option<&PageToken>,
    ) -> Result<Page<Comment>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get(
            "/rest/servicedeskapi/request/{issueIdOrKey}/comment",
            &[issue.as_str()],
        )
        .query("start", start)
        .query("limit", PAGE_SIZE);
        let paged: PagedDto<Comment> = self.api.json(&call).await?;
        let start = paged.start.unwrap_or(start);
        let is_last = paged.is_last_page.unwrap_or(true);
        let next = next_offset(start, paged.values.len(), is_last);
        Ok(Page {
            items: paged.values,
            next,
        })
    }

    /// Every comment on the request (to tell whether a comment whose answer was lost was
    /// posted).
    pub async fn comments(&self, issue: &IssueKey) -> Result<Vec<Comment>, AtlassianError> {
        let issue = issue.clone();
        Paged::new(None, move |token| {
            let issue = issue.clone();
            Box::pin(async move { self.comments_page(&issue, token.as_ref()).await })
        })
        .collect_all()
        .await
    }

    /// One page of the transitions the request can take now.
    pub async fn transitions_page(
        &self,
        issue: &IssueKey,
        token: Option<&PageToken>,
    ) -> Result<Page<Transition>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get(
            "/rest/servicedeskapi/request/{issueIdOrKey}/transition",
            &[issue.as_str()],
        )
        .query("start", start)
        .query("limit", PAGE_SIZE);
        let paged: PagedDto<Transition> = self.api.json(&call).await?;
        let start = paged.start.unwrap_or(start);
        let is_last = paged.is_last_page.unwrap_or(true);
        let next = next_offset(start, paged.values.len(), is_last);
        Ok(Page {
            items: paged.values,
            next,
        })
    }

    /// Every transition the request can take now.
    pub async fn transitions(&self, issue: &IssueKey) -> Result<Vec<Transition>, AtlassianError> {
        let issue = issue.clone();
        Paged::new(None, move |token| {
            let issue = issue.clone();
            Box::pin(async move { self.transitions_page(&issue, token.as_ref()).await })
        })
        .collect_all()
        .await
    }

    /// Performs the transition called `name` (case-insensitive), resolving the name to the
    /// workflow's id first. Not idempotent (a repeat may find the transition gone), so not
    /// retried blindly. An unknown name is [`AtlassianError::Invalid`], naming the choices.
    pub async fn transition_by_name(
        &self,
        issue: &IssueKey,
        name: &str,
        comment: Option<&str>,
    ) -> Result<Transition, AtlassianError> {
        let transitions = self.transitions(issue).await?;
        let wanted = name.trim();
        let Some(transition) = transitions
            .iter()
            .find(|t| t.name.trim().eq_ignore_ascii_case(wanted))
            .cloned()
        else {
            let names: Vec<&str> = transitions.iter().map(|t| t.name.as_str()).collect();
            return Err(AtlassianError::Invalid(format!(
                "request {issue} has no transition named {wanted:?}; it can take: {names:?}"
            )));
        };
        let mut body = json!({ "id": transition.id });
        if let Some(comment) = comment {
            body["additionalComment"] = json!({ "body": comment });
        }
        let call = Call::new(
            Method::POST,
            "/rest/servicedeskapi/request/{issueIdOrKey}/transition",
            &[issue.as_str()],
        )
        .json(body);
        self.api.execute(&call).await?;
        Ok(transition)
    }
}
