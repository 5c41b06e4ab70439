//! Typed clients for the Atlassian Cloud APIs reseat calls: the Organizations admin API,
//! Jira platform, Confluence v1 and Jira Service Management. One client per API family, each
//! with its own base URL, auth, rate limit and concurrency bound, all sharing one retry policy
//! (`http.rs`) and one error type (`error.rs`). Endpoint list: `docs/atlassian-endpoints.md`.

pub mod admin;
pub mod config;
pub mod confluence;
pub mod error;
pub mod http;
pub mod jira;
pub mod jsm;
pub mod page;
pub mod product;
pub mod transport;

pub use admin::{
    AccountStatus, AccountType, AdminClient, DirectoryProductAccess, DirectoryRemoval,
    DirectoryUser, LastActiveDates, Org, OrgUser, ProductAccess, ProductActivity, Workspace,
    WorkspaceAttributes,
};
pub use config::{AtlassianConfig, FamilyLimits, RetrySettings, UserListing, site_key};
pub use confluence::{ConfluenceClient, ConfluenceGroup, ConfluenceUser};
pub use error::{AtlassianError, MembershipChange, MembershipOutcome, classify_membership};
pub use http::{
    Auth, ReqwestTransport, Transport, TransportError, TransportRequest, TransportResponse,
};
pub use jira::{ApplicationRole, GroupRef, JiraClient, JiraUser};
pub use jsm::{
    Comment, CustomerRequest, FieldValue, JsmClient, JsmUser, RequestStatus, RequestType,
    Transition,
};
pub use page::{Page, PageToken, Paged};
pub use product::{
    AccountId, ApiFamily, GROUP_ID_HINT, GroupId, InvalidId, IssueKey, OrgId, ProductKey,
};

use http::ApiClient;
use secrecy::SecretString;
use std::sync::Arc;

/// The four clients, built from one `[atlassian]` section. A family whose credentials are
/// missing is `None`, so a CSV-only install needs no admin key.
#[derive(Debug)]
pub struct AtlassianClients {
    /// The Organizations admin API (needs `admin_api_key`): one client, and so one limit,
    /// for the whole org, shared by every site's clients.
    pub admin: Option<Arc<AdminClient>>,
    /// Jira platform (needs the site URL, `site_email` and `site_api_token`).
    pub jira: Option<JiraClient>,
    /// Confluence v1 (same credentials as Jira).
    pub confluence: Option<ConfluenceClient>,
    /// Jira Service Management (same credentials as Jira).
    pub jsm: Option<JsmClient>,
    /// The configured organization, parsed.
    pub org_id: Option<OrgId>,
}

impl AtlassianClients {
    /// Builds every client the configuration has credentials for, over reqwest.
    pub fn new(config: &AtlassianConfig) -> Result<Self, AtlassianError> {
        let transport = Arc::new(ReqwestTransport::new(config.retry.timeout)?);
        Self::with_transport(config, transport)
    }

    /// The same over a given transport (tests script one to drive retries on a paused clock).
    pub fn with_transport(
        config: &AtlassianConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, AtlassianError> {
        let retry = config.retry;
        let admin = config.admin_api_key.as_ref().map(|key| {
            let key = SecretString::from(key.expose().to_owned());
            Arc::new(AdminClient::new(
                ApiClient::new(
                    "admin",
                    config.admin_base_url.clone(),
                    Auth::Bearer(key),
                    config.admin,
                    retry,
                    transport.clone(),
                ),
                config.directory_id.clone(),
            ))
        });
        Self::with_admin(config, admin, transport)
    }

    /// One site's clients (its own Jira, Confluence and JSM limits) beside the org's admin
    /// client `admin`, which every site shares.
    pub fn for_site(
        config: &AtlassianConfig,
        admin: Option<Arc<AdminClient>>,
    ) -> Result<Self, AtlassianError> {
        let transport = Arc::new(ReqwestTransport::new(config.retry.timeout)?);
        Self::with_admin(config, admin, transport)
    }

    fn with_admin(
        config: &AtlassianConfig,
        admin: Option<Arc<AdminClient>>,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, AtlassianError> {
        let org_id = config
            .org_id
            .as_deref()
            .map(OrgId::parse)
            .transpose()
            .map_err(|e| AtlassianError::Invalid(format!("atlassian.org_id: {e}")))?;
        let retry = config.retry;
        let site_auth = match (&config.site_email, &config.site_api_token) {
            (Some(email), Some(token)) => Some(Auth::Basic {
                email: email.clone(),
                token: SecretString::from(token.expose().to_owned()),
            }),
            (None, None) => None,
            _ => {
                return Err(AtlassianError::Invalid(
                    "atlassian.site_email and atlassian.site_api_token go together: set both or neither"
                        .to_owned(),
                ));
            }
        };
        let site = match (site_auth, config.site_url()) {
            (Some(auth), Some(url)) => Some((auth, url)),
            (Some(_), None) => {
                return Err(AtlassianError::Invalid(
                    "site credentials are set but no site: set atlassian.site_name (acme for acme.atlassian.net) or atlassian.site_base_url"
                        .to_owned(),
                ));
            }
            (None, _) => None,
        };
        let family = |name, limits| {
            site.as_ref().map(|(auth, url)| {
                ApiClient::new(
                    name,
                    url.clone(),
                    auth.clone(),
                    limits,
                    retry,
                    transport.clone(),
                )
            })
        };
        Ok(Self {
            admin,
            jira: family("jira", config.jira).map(JiraClient::new),
            confluence: family("confluence", config.confluence).map(ConfluenceClient::new),
            jsm: family("jsm", config.jsm).map(JsmClient::new),
            org_id,
        })
    }
}
